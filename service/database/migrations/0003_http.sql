-- 0003: state of the HTTP layer that is not derived from the log.

-- First responses to POSTs sent with an Idempotency-Key, replayed to retries. Scoped per
-- person so that two callers can never see each other's responses.
CREATE TABLE http_responses (
    person_id   text        NOT NULL,
    key         text        NOT NULL,
    fingerprint bytea       NOT NULL,
    status      integer     NOT NULL,
    headers     jsonb       NOT NULL,
    body        bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (person_id, key)
);

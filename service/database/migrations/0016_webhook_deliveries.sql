-- 0016: webhook deliveries (service/workers/webhooks.py plans them, webhook_sender.py sends
-- them; docs/WEBHOOKS.md "Delivery"). Not a read model: rows record what left (or will leave)
-- for the outside world, so they are never rebuilt from the log, and the planner starts at
-- the head of the log: a rebuild or an import sends nothing.
--
-- One row per (endpoint, event), planned by the `webhooks` delivery reader in the
-- transaction that moves its checkpoint, with its payload built then (redacted for the
-- endpoint's audience) and its `webhook-id` (msg_id, kept on every retry and redelivery).
-- state: pending (waiting for due_at), sending (claimed until lease_until: a row still
-- `sending` past its lease was claimed by an instance that died; it is sent again with the
-- same msg_id), delivered (a 2xx), failed (410, the last retry, or the endpoint went away).
CREATE TABLE webhook_deliveries (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id   text        NOT NULL,
    position     bigint      NOT NULL,
    msg_id       text        NOT NULL,
    kind         text        NOT NULL,
    payload      text        NOT NULL,
    state        text        NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'sending', 'delivered', 'failed')),
    due_at       timestamptz NOT NULL,
    lease_until  timestamptz,
    attempts     integer     NOT NULL DEFAULT 0,
    last_status  integer,
    last_error   text,
    created_at   timestamptz NOT NULL,
    finished_at  timestamptz,
    UNIQUE (webhook_id, position)
);
-- What a sender claims: due rows waiting, or whose lease ran out.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (due_at, id)
    WHERE state IN ('pending', 'sending');
-- The per-endpoint cap: rows in flight of an endpoint.
CREATE INDEX webhook_deliveries_sending ON webhook_deliveries (webhook_id)
    WHERE state = 'sending';
-- An endpoint's deliveries, newest first (the API; pruning).
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (webhook_id, id);

-- Every attempt at a delivery: its HTTP status (NULL: no answer), how long it took, the
-- start of the answer's body (at most 1 KiB) or the error. The last 100 per endpoint are
-- kept.
CREATE TABLE webhook_attempts (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id  bigint      NOT NULL REFERENCES webhook_deliveries ON DELETE CASCADE,
    webhook_id   text        NOT NULL,
    at           timestamptz NOT NULL,
    status       integer,
    duration_ms  integer     NOT NULL,
    response     text,
    error        text
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (webhook_id, id);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);

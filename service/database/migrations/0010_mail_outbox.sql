-- 0010: e-mail out (service/mail/). One row per notice and recipient, planned by the `mail`
-- delivery reader in the transaction that moves its checkpoint, then claimed and sent by
-- each instance's sender. Not a read model: rows record mail that left (or will leave) for
-- the outside world, so they are never rebuilt from the log; a rebuild sends nothing.
--
-- state: planned (waiting for due_at), sending (claimed until lease_until: a row still
-- `sending` past its lease was claimed by an instance that died, and is sent again with the
-- same Message-ID), sent, failed (a permanent 5xx, or too many tries), skipped (the kind's
-- e-mail is off, or the person may no longer see the item or be mailed at send time).
-- digest_day: the row goes out in that local day's digest, not alone.

CREATE TABLE mail_outbox (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    person_id       text        NOT NULL,
    notice_position bigint      NOT NULL,
    kind            text        NOT NULL,
    project_id      text        NOT NULL,
    recording_id    text,
    thread_id       text,
    actor_id        text,
    noticed_at      timestamptz NOT NULL,
    state           text        NOT NULL DEFAULT 'planned'
        CHECK (state IN ('planned', 'sending', 'sent', 'failed', 'skipped')),
    digest_day      date,
    due_at          timestamptz NOT NULL,
    lease_until     timestamptz,
    attempts        integer     NOT NULL DEFAULT 0,
    last_error      text,
    message_id      text,
    sent_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (notice_position, person_id)
);

-- What a sender claims: due rows waiting or whose lease ran out.
CREATE INDEX mail_outbox_due ON mail_outbox (due_at) WHERE state IN ('planned', 'sending');
CREATE INDEX mail_outbox_person ON mail_outbox (person_id, digest_day) WHERE state = 'planned';

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
-- same msg_id), delivered (a 2xx), failed (410, the last retry, or the endpoint went away),
-- skipped (never sent: the hook's audience or URL changed after the row was planned; the
-- reason in last_error). url and audience: the hook's when the row was planned (the payload
-- was built for that audience, to go to that URL).
CREATE TABLE webhook_deliveries (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id   text        NOT NULL,
    position     bigint      NOT NULL,
    msg_id       text        NOT NULL,
    kind         text        NOT NULL,
    payload      text        NOT NULL,
    url          text        NOT NULL,
    audience     text        NOT NULL,
    state        text        NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'sending', 'delivered', 'failed', 'skipped')),
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

-- Claiming due deliveries (service/reads/webhook_deliveries.py): one call, one round trip.
-- The advisory lock serialises claimers across instances so that the per-endpoint cap
-- ($4, p_cap) holds; the claim is a statement after the lock's, so its snapshot sees what
-- the previous holder committed. Endpoints at their cap are left out before the candidates
-- are cut to p_limit rows (a slow endpoint's backlog never hides another's due rows); each
-- endpoint then gets at most its room. No row locks on the candidates: the lock keeps other
-- claimers out, and the UPDATE checks each row's state again (a mark committed meanwhile by
-- an instance whose lease ran out wins). Each row claimed comes with its hook's url and
-- audience now (hook_url, hook_audience; NULL: the hook is gone) read from the `webhooks`
-- read model, so that the sender skips rows planned for another audience or URL. The commit does not wait for the WAL flush: a
-- claim lost in a crash leaves its rows due, sent later with the same webhook-id.
CREATE FUNCTION cairn_webhook_claim(p_now timestamptz, p_lease timestamptz, p_limit int,
                                    p_cap int)
RETURNS TABLE (id bigint, webhook_id text, "position" bigint, msg_id text, payload text,
               attempts int, url text, audience text, hook_url text, hook_audience text)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
BEGIN
    PERFORM pg_advisory_xact_lock(1464355659, 1);
    PERFORM set_config('synchronous_commit', 'off', true);
    RETURN QUERY
    WITH busy AS (
        SELECT webhook_id, count(*)::int AS n FROM webhook_deliveries
        WHERE state = 'sending' AND lease_until > p_now GROUP BY webhook_id
    ), candidates AS (
        SELECT d.id, d.webhook_id, d.due_at FROM webhook_deliveries d
        WHERE d.state IN ('pending', 'sending') AND d.due_at <= p_now
          AND (d.state = 'pending' OR d.lease_until <= p_now)
          AND d.webhook_id NOT IN (SELECT webhook_id FROM busy WHERE n >= p_cap)
        ORDER BY d.due_at, d.id LIMIT p_limit
    ), ranked AS (
        SELECT c.id, row_number() OVER (PARTITION BY c.webhook_id ORDER BY c.due_at, c.id) AS rn,
               coalesce(b.n, 0) AS n
        FROM candidates c LEFT JOIN busy b USING (webhook_id)
    )
    UPDATE webhook_deliveries w SET state = 'sending', lease_until = p_lease, attempts = w.attempts + 1
    FROM ranked
    WHERE w.id = ranked.id AND ranked.rn + ranked.n <= p_cap
      AND (w.state = 'pending' OR (w.state = 'sending' AND w.lease_until <= p_now))
    RETURNING w.id, w.webhook_id, w.position, w.msg_id, w.payload, w.attempts, w.url,
              w.audience,
              (SELECT h.url FROM webhooks h WHERE h.webhook_id = w.webhook_id),
              (SELECT h.audience FROM webhooks h WHERE h.webhook_id = w.webhook_id);
END
$fn$;

-- A delivery answered 2xx, marked with its attempt, and the next due delivery claimed in
-- the same call (what each delivery in flight does before passing its slot on: one round
-- trip instead of two). The claim is a later statement of the same transaction: it sees
-- the slot freed.
CREATE FUNCTION cairn_webhook_delivered_next(p_id bigint, p_at timestamptz, p_status int,
                                             p_duration int, p_response text,
                                             p_now timestamptz, p_lease timestamptz, p_cap int)
RETURNS TABLE (id bigint, webhook_id text, "position" bigint, msg_id text, payload text,
               attempts int, url text, audience text, hook_url text, hook_audience text)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    WITH done AS (
        UPDATE webhook_deliveries SET state = 'delivered', lease_until = NULL,
               last_status = p_status, last_error = NULL, finished_at = p_at
        WHERE id = p_id RETURNING id, webhook_id
    )
    INSERT INTO webhook_attempts (delivery_id, webhook_id, at, status, duration_ms, response)
    SELECT id, webhook_id, p_at, p_status, p_duration, p_response FROM done;
    RETURN QUERY SELECT * FROM cairn_webhook_claim(p_now, p_lease, 1, p_cap);
END
$fn$;

-- 0002: bookkeeping of projections (read models). Read models themselves live in one
-- schema per projection generation (p_<name>_<generation>), exposed through views in
-- public, so a rebuild can fill a fresh generation while the old one serves, then swap
-- the views in one transaction.

CREATE TABLE projections (
    name            text        PRIMARY KEY,
    version         integer     NOT NULL,
    generation      integer     NOT NULL,
    -- The checkpoint: the log-order cursor of the last event applied. Written in the same
    -- transaction as the read-model rows it covers, so a crash can never apply an event
    -- twice or skip one (exactly-once effect).
    tx_id           xid8        NOT NULL DEFAULT '0',
    position        bigint      NOT NULL DEFAULT 0,
    events_applied  bigint      NOT NULL DEFAULT 0,
    last_event_at   timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- 0008: where each delivery reader of the log stands (service/workers/reader.py): the
-- notice worker, mail, and later webhooks. Not a read model: a delivery has effects outside
-- the database (a mail sent, a request made), so its place is never rebuilt. A reader with
-- no row starts at the head of the log when it first runs: history is never delivered.

CREATE TABLE delivery_checkpoints (
    name       text        PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    tx_id      xid8        NOT NULL,
    position   bigint      NOT NULL,
    delivered  bigint      NOT NULL DEFAULT 0,
    started_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

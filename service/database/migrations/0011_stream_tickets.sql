-- 0011: WebSocket tickets (POST /v1/stream/tickets; issue #18). A browser cannot set a
-- header on a WebSocket, and a long-lived API token in a URL ends up in logs and histories:
-- it mints a ticket with its token instead, and opens /v1/stream?ticket=<ticket>. A ticket is
-- single-use (redeeming deletes its row: one DELETE, so two instances racing for one ticket
-- cannot both win) and expires 30 s after it was minted. It names the API token that minted
-- it (by hash), so it carries that token's scopes and dies with it. Only the ticket's
-- SHA-256 is stored. In the database, not in an instance's memory: a ticket minted on one
-- instance opens a socket on another. Not derived from the log.

CREATE TABLE stream_tickets (
    ticket_hash text        PRIMARY KEY CHECK (ticket_hash ~ '^[0-9a-f]{64}$'),
    token_hash  text        NOT NULL,
    expires_at  timestamptz NOT NULL
);

CREATE INDEX stream_tickets_expiry ON stream_tickets (expires_at);

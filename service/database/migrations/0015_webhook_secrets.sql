-- 0015: the signing secrets of webhook endpoints (docs/WEBHOOKS.md). Not derived from the
-- log: the log says a hook was created or its secret rotated (WebhookCreated,
-- WebhookSecretRotated on webhook-<id>), never the secret, which is written here in the
-- same transaction. Kept in clear: Cairn must sign with it (HMAC-SHA256, Standard Webhooks).
-- A rotation sets the current secret's retired_at 24 h ahead and adds a new one: until then
-- both sign every delivery. Rows whose retired_at has passed sign nothing.
CREATE TABLE webhook_secrets (
    webhook_id text        NOT NULL,
    secret     text        NOT NULL CHECK (secret ^@ 'whsec_'),
    created_at timestamptz NOT NULL,
    retired_at timestamptz,
    PRIMARY KEY (webhook_id, created_at)
);

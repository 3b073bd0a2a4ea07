-- 0013: OAuth 2 for third-party front ends (issue #18). Not derived from the log: registered
-- apps (a confidential app's secret as its SHA-256 only), the grants people made to them,
-- single-use authorization codes (60 s, bound to app, redirect URI, PKCE challenge and
-- scopes; only their SHA-256 kept) and refresh tokens (rotated: each used once, a reused one
-- revokes its grant). The access tokens are API tokens (TokenIssued in person-<id>, with an
-- expiry); oauth_access_tokens says which grant issued each, so that revoking a grant revokes
-- them. Secrets never reach the log.

CREATE TABLE oauth_apps (
    app_id        text        PRIMARY KEY,
    name          text        NOT NULL,
    redirect_uris text[]      NOT NULL,
    confidential  boolean     NOT NULL,
    secret_hash   text        CHECK (secret_hash ~ '^[0-9a-f]{64}$'),
    created_by    text        NOT NULL,
    created_at    timestamptz NOT NULL,
    deleted_at    timestamptz
);

CREATE TABLE oauth_grants (
    grant_id   text        PRIMARY KEY,
    app_id     text        NOT NULL REFERENCES oauth_apps,
    person_id  text        NOT NULL,
    scopes     text[]      NOT NULL,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz
);

CREATE INDEX oauth_grants_person ON oauth_grants (person_id, app_id);

CREATE TABLE oauth_codes (
    code_hash      text        PRIMARY KEY CHECK (code_hash ~ '^[0-9a-f]{64}$'),
    grant_id       text        NOT NULL REFERENCES oauth_grants,
    redirect_uri   text        NOT NULL,
    code_challenge text        NOT NULL,
    expires_at     timestamptz NOT NULL,
    used_at        timestamptz
);

CREATE TABLE oauth_refresh_tokens (
    token_hash text        PRIMARY KEY CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    grant_id   text        NOT NULL REFERENCES oauth_grants,
    created_at timestamptz NOT NULL,
    used_at    timestamptz
);

CREATE INDEX oauth_refresh_tokens_grant ON oauth_refresh_tokens (grant_id);

CREATE TABLE oauth_access_tokens (
    token_id   text PRIMARY KEY,
    token_hash text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    grant_id   text NOT NULL REFERENCES oauth_grants
);

CREATE INDEX oauth_access_tokens_grant ON oauth_access_tokens (grant_id);

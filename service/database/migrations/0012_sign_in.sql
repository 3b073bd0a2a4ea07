-- 0012: sign-in for people (docs/API.md "Sessions"). Not derived from the log: these rows
-- hold or guard secrets, which the log never holds. What happened (a password changed, a
-- person signed in) is in the log as PasswordChanged and PersonSignedIn, without secrets.

-- A person's password: its argon2id hash (PHC string), written in the same transaction as
-- the PasswordChanged event. Kept out of the log: a hash is still a secret (it can be
-- attacked offline), and the log is copied, exported and never forgets.
CREATE TABLE passwords (
    person_id  text        PRIMARY KEY,
    hash       text        NOT NULL,
    changed_at timestamptz NOT NULL
);

-- Sessions of people signed in through a browser. The cookie carries a random secret;
-- only its SHA-256 (hex) is stored. A session ends by being deleted (sign-out, revocation,
-- a password change, a reset, a deactivation) or by inactivity (last_seen_at older than
-- CAIRN_SESSION_IDLE: never answered, purged when met).
CREATE TABLE sessions (
    session_id   text        PRIMARY KEY,
    secret_hash  text        NOT NULL UNIQUE,
    person_id    text        NOT NULL,
    created_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    user_agent   text        NOT NULL DEFAULT ''
);
CREATE INDEX sessions_person ON sessions (person_id, created_at);

-- Failed sign-ins per address (lower-cased; known or not), for the lockout: `failures`
-- in a row, and the instant before which the address may not sign in with a password.
CREATE TABLE sign_in_failures (
    email        text        PRIMARY KEY,
    failures     integer     NOT NULL,
    locked_until timestamptz
);

-- Single-use tokens sent by mail: a passwordless sign-in link (purpose 'sign_in') or a
-- password reset link ('reset'). Only the SHA-256 (hex) of the token is kept here.
CREATE TABLE sign_in_tokens (
    token_hash text        PRIMARY KEY,
    purpose    text        NOT NULL CHECK (purpose IN ('sign_in', 'reset')),
    person_id  text        NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);

-- The seam to mail out: one row per mail carrying a sign-in or reset link, to be sent and
-- deleted by the mail side (docs/OPERATIONS.md "Sign-in mail"). The token is here in the
-- clear because the mail must carry it; the row lives until sent, the token 15 minutes.
CREATE TABLE sign_in_mail (
    mail_id    bigserial   PRIMARY KEY,
    purpose    text        NOT NULL CHECK (purpose IN ('sign_in', 'reset')),
    person_id  text        NOT NULL,
    email      text        NOT NULL,
    token      text        NOT NULL,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL
);

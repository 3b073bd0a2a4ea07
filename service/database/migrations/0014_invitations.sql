-- 0014: invitations (docs/API.md "Invitations"), and mail carrying a link sent by the mail
-- side (docs/OPERATIONS.md "Sign-in mail"). Not derived from the log: these rows hold or
-- guard secrets. What happened is in the log (InvitationSent, InvitationAccepted,
-- InvitationRevoked on stream invitation-<id>), without the token.

-- An invitation: who is invited (email, name, role, company), to which project in which
-- role, by whom, until when. Only the SHA-256 (hex) of its single-use token is kept; a
-- resend replaces it (the old token dies). Written in the same transaction as its events.
CREATE TABLE invitations (
    invitation_id text        PRIMARY KEY,
    token_hash    text        NOT NULL UNIQUE,
    email         text        NOT NULL,
    name          text,
    role          text        NOT NULL,
    company       text,
    project_id    text,
    project_role  text,
    inviter_id    text        NOT NULL,
    created_at    timestamptz NOT NULL,
    sent_at       timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    accepted_at   timestamptz,
    person_id     text,
    revoked_at    timestamptz
);
CREATE INDEX invitations_project ON invitations (project_id, created_at);

-- sign_in_mail carries invitations too (purpose 'invitation': no person yet, so the name,
-- language and what to say travel in the row), and is retried like other mail.
ALTER TABLE sign_in_mail DROP CONSTRAINT sign_in_mail_purpose_check;
ALTER TABLE sign_in_mail ADD CONSTRAINT sign_in_mail_purpose_check
    CHECK (purpose IN ('sign_in', 'reset', 'invitation'));
ALTER TABLE sign_in_mail ALTER COLUMN person_id DROP NOT NULL;
ALTER TABLE sign_in_mail
    ADD COLUMN invitation_id text,
    ADD COLUMN name          text,
    ADD COLUMN locale        text,
    ADD COLUMN inviter       text,
    ADD COLUMN project       text,
    ADD COLUMN attempts      integer     NOT NULL DEFAULT 0,
    ADD COLUMN next_at       timestamptz;

-- 0009: the keys that sign mail addresses (reply+<token>@…, project+<token>@…) and
-- one-click unsubscribe links (service/domain/mail_addresses.py). Unlike signing_keys
-- (links living minutes), a mail token lives as long as a mailbox keeps the mail it came in:
-- a rotation adds a newer key and never deletes the older ones (`cairn mail rotate-key`;
-- deleting a leaked key by hand kills its tokens at once). Not derived from the log.
-- Key ids are 4 hex digits: a reply address must fit RFC 5321's 64-octet local part.

CREATE TABLE mail_keys (
    key_id     text        PRIMARY KEY CHECK (key_id ~ '^[0-9a-f]{4}$'),
    secret     bytea       NOT NULL CHECK (length(secret) >= 32),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

INSERT INTO mail_keys (key_id, secret)
SELECT substr(replace(gen_random_uuid()::text, '-', ''), 1, 4),
       decode(replace(gen_random_uuid()::text, '-', '')
              || replace(gen_random_uuid()::text, '-', ''), 'hex');

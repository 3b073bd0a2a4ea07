-- 0007: the keys that sign short-lived links to files (service/domain/signing.py), shared by
-- every instance: a link minted by one is checked by another. Not derived from the log.
--
-- The first key is made here, once, by the migration (migrations run one at a time under
-- their advisory lock, so two instances starting together cannot make two). Its 32 random
-- bytes come from two gen_random_uuid() (244 random bits; built in since PostgreSQL 13,
-- where gen_random_bytes needs pgcrypto). Rotation inserts a newer key
-- (service/reads/signing_keys.py, `rotate`): the newest signs, the older ones still check
-- the links they signed until those expire.

CREATE TABLE signing_keys (
    key_id     text        PRIMARY KEY CHECK (key_id ~ '^[0-9a-z]{1,32}$'),
    secret     bytea       NOT NULL CHECK (length(secret) >= 32),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

INSERT INTO signing_keys (key_id, secret)
SELECT substr(replace(gen_random_uuid()::text, '-', ''), 1, 8),
       decode(replace(gen_random_uuid()::text, '-', '')
              || replace(gen_random_uuid()::text, '-', ''), 'hex');

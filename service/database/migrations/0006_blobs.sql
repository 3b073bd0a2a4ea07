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

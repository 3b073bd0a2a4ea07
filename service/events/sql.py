"""The event store's SQL statements on the ``events`` table, and why each is written so.

asyncpg prepares every statement and PostgreSQL caches a plan per statement text, so the
text of a statement is part of its performance: see "SQL and the plan cache" in
docs/ARCHITECTURE.md before changing one.
"""

from __future__ import annotations

COLUMNS = (
    "position, tx_id, stream_id, stream_version, project_id, event_type, schema_version, "
    "data, metadata, recorded_at, hash"
)
# The horizon: every transaction with a smaller id has finished, so nothing can commit
# "behind" a row we return. Rows of later transactions wait until the horizon passes them:
# late, never lost, and never a timeout that skips anything.
#
# Pages of the log send an event's metadata and time only when they differ from the row
# before (NULL otherwise; both columns are NOT NULL, so NULL cannot mean anything else).
# The events of one append share both, and every event of a transaction has the same
# recorded_at (now() is the transaction's start), so a batch-heavy log costs the client
# about 0.8 us less per event to receive and decode.
#
# Nor do they send the event type: the data carries it as its tag, so the client decodes
# each row with a decoder for any type and names the type from the class (one column, and
# one string per row, fewer to build and free).
_SHARED_COLUMNS = """position, tx_id, stream_id, stream_version, project_id, NULL::text, schema_version,
    data, CASE WHEN metadata = lag(metadata) OVER w THEN NULL ELSE metadata END,
    CASE WHEN tx_id = lag(tx_id) OVER w THEN NULL ELSE recorded_at END, hash"""


def _read_after_sql(where: str) -> str:
    """A page of the log after cursor ($1, $2), at most $3 rows, below the horizon, with
    the shared columns sent once (see above); ``where`` narrows the rows further."""
    return f"""
SELECT {_SHARED_COLUMNS} FROM (
    SELECT {COLUMNS} FROM events
    WHERE {where}(tx_id, position) > ($1::xid8, $2::bigint)
      AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
    ORDER BY tx_id, position
    LIMIT $3
) page
WINDOW w AS (ORDER BY tx_id, position)
ORDER BY tx_id, position
"""


READ_AFTER = _read_after_sql("")
READ_AFTER_PROJECT = _read_after_sql("project_id = $4 AND ")
# A live reader's page: the readable rows after the cursor plus, in the same statement and
# so under the same snapshot, at most one committed row the horizon still hides (``ready``
# false). Two separate statements would race: if the transaction holding the horizon
# ended between them, the second would find nothing hidden and the reader would sleep a
# whole poll interval with readable rows waiting (a rollback sends no wake-up).
# The hidden row is looked for after the cursor or the horizon, whichever is later, as one
# row comparison: written as "(tx_id, position) > cursor AND tx_id >= horizon", the index
# scan would start at the cursor and walk the whole backlog on every page of a catch-up.
_HORIZON = "pg_snapshot_xmin(pg_current_snapshot())"
_HIDDEN_START = f"""(
    CASE WHEN $1::xid8 >= {_HORIZON} THEN $1::xid8 ELSE {_HORIZON} END,
    CASE WHEN $1::xid8 >= {_HORIZON} THEN $2::bigint ELSE 0 END
)"""
PAGE = f"""
SELECT * FROM (
    (SELECT {COLUMNS}, true AS ready FROM events
     WHERE (tx_id, position) > ($1::xid8, $2::bigint) AND tx_id < {_HORIZON}
     ORDER BY tx_id, position
     LIMIT $3)
    UNION ALL
    (SELECT {COLUMNS}, false FROM events
     WHERE (tx_id, position) > {_HIDDEN_START}
     ORDER BY tx_id, position
     LIMIT 1)
) page
ORDER BY tx_id, position
"""
PAGE_PROJECT = f"""
SELECT * FROM (
    (SELECT {COLUMNS}, true AS ready FROM events
     WHERE project_id = $4
       AND (tx_id, position) > ($1::xid8, $2::bigint) AND tx_id < {_HORIZON}
     ORDER BY tx_id, position
     LIMIT $3)
    UNION ALL
    (SELECT {COLUMNS}, false FROM events
     WHERE project_id = $4 AND (tx_id, position) > {_HIDDEN_START}
     ORDER BY tx_id, position
     LIMIT 1)
) page
ORDER BY tx_id, position
"""
# Anything committed after a cursor, readable or not. Asked after a separate read, it must
# not look at the horizon: the horizon may have moved past hidden rows in between, and
# those rows are then readable, not hidden, yet unread.
#
# Written as "the first such row" and not as EXISTS: a prepared EXISTS soon gets a generic
# plan, and PostgreSQL's generic plan for it is a sequential scan (it expects a third of the
# table to match and stop early), which reads the whole log when nothing is pending: 51 ms
# per call on 200,000 events. Ordered by the index with LIMIT 1, every plan is one probe.
PENDING = """
SELECT 1 FROM events WHERE (tx_id, position) > ($1::xid8, $2::bigint)
ORDER BY tx_id, position LIMIT 1
"""
PENDING_PROJECT = """
SELECT 1 FROM events WHERE project_id = $3 AND (tx_id, position) > ($1::xid8, $2::bigint)
ORDER BY project_id, tx_id, position LIMIT 1
"""

# One event, no idempotency key: cairn_append's single-event branch as one statement.
# It inserts nothing when the stream is not at $2 (>= 0); a writer racing for the same
# version fails on events_stream_version_key. The hash is the same chain link
# cairn_append computes: sha256(previous link || cairn_event_canonical(...)).
APPEND_ONE = """
WITH prev AS (
    SELECT stream_version, hash FROM events WHERE stream_id = $1
    ORDER BY stream_version DESC LIMIT 1
), cur AS (
    SELECT coalesce((SELECT stream_version FROM prev), 0) AS v,
           coalesce((SELECT hash FROM prev), '\\x'::bytea) AS h
)
INSERT INTO events (stream_id, stream_version, project_id, event_type, schema_version,
                    data, metadata, recorded_at, hash)
SELECT $1, cur.v + 1, $3, $4, $5, $6::jsonb, $7::jsonb, now(),
       sha256(cur.h || cairn_event_canonical(
           $1, cur.v + 1, $3, $4, $5, $6::jsonb, $7::jsonb, now()))
FROM cur
WHERE $2::bigint < 0 OR cur.v = $2::bigint
RETURNING position, tx_id, stream_version
"""
# The same for an exact expected version (or NO_STREAM): the previous link is looked up by
# its version, a plain index probe, which costs the server ~6 % less than the CTE above.
# No row to build on (the stream is below $2) inserts nothing; a stream beyond $2 fails on
# events_stream_version_key.
APPEND_EXACT = """
INSERT INTO events (stream_id, stream_version, project_id, event_type, schema_version,
                    data, metadata, recorded_at, hash)
SELECT $1, prev.v + 1, $3, $4, $5, $6::jsonb, $7::jsonb, now(),
       sha256(prev.h || cairn_event_canonical(
           $1, prev.v + 1, $3, $4, $5, $6::jsonb, $7::jsonb, now()))
FROM (
    SELECT stream_version AS v, hash AS h FROM events
    WHERE stream_id = $1 AND stream_version = $2::bigint
    UNION ALL
    SELECT 0, '\\x'::bytea WHERE $2::bigint = 0
) prev
RETURNING position, tx_id, stream_version
"""
# The append made earlier under an idempotency key, if it committed (see appended()).
APPENDED = """
SELECT k.fingerprint, e.position, e.tx_id, e.stream_version
FROM append_keys k LEFT JOIN events e ON e.position = ANY (k.positions)
WHERE k.key = $1
ORDER BY e.position
"""
# Whether any stream's name starts with $1 (``^@``: a literal prefix, no LIKE wildcards).
# No index can answer a prefix in every collation (the unique key's btree follows the
# database's collation, in which a prefix is one contiguous range only under "C"), so this
# is a walk that stops at its first match. It is meant for rare questions such as "is
# anybody in the log yet", once per start: a real log's first events are its first people
# (and, in the unique key's order, e-mail claims and people come before projects and
# recordings), so with a match the walk is short whichever way PostgreSQL takes; only a log
# without one is read whole, and a new log is empty.
STREAM_WITH_PREFIX = "SELECT 1 FROM events WHERE stream_id ^@ $1 LIMIT 1"
# Every string value of a key anywhere in events' data (`strict`: lax mode would unwrap
# arrays and match twice); {key} is an identifier (checked by the caller). A whole scan of
# the log: for rare chores (`cairn blobs gc`), never a request.
DATA_VALUES = (
    "SELECT DISTINCT v #>> '{{}}' FROM events, jsonb_path_query(data, 'strict $.**.{key}') AS v "
    "WHERE jsonb_typeof(v) = 'string'"
)
STREAM_VERSION = "SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = $1"
APPEND = "SELECT out_position, out_tx_id, out_stream_version, out_replayed FROM cairn_append($1, $2, $3, $4::jsonb, $5::jsonb, $6, $7)"

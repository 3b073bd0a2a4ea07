"""Verifying the tamper-evident hash chain of the log.

Each event's ``hash`` is ``sha256(previous hash in its stream || canonical bytes)``, computed
by PostgreSQL in ``cairn_append`` (the canonical bytes come from ``cairn_event_canonical``, so
writer and verifier cannot disagree on formatting). Chains are per stream so that appends to
different streams never wait for each other.

What the per-stream chain detects, walking every stream from version 1:

* a changed event (data, metadata, type, time, project): its hash no longer matches;
* a removed event in the middle of a stream: the stream's versions skip a number and the
  next event's link no longer matches;
* reordered events within a stream: versions or links no longer match.

What it cannot detect on its own: removal of the *newest* events of a stream, or of a whole
stream, or a rewrite of a whole stream with freshly computed hashes. Those need the stream
heads kept somewhere the tamperer cannot reach (an export, a signed receipt); ``cairn
verify`` prints the head of every stream's chain digest for exactly that purpose.

:func:`verify` also checks that every event's transaction id is one this PostgreSQL has
already handed out. Log order is ``(tx_id, position)`` and readers take only ``tx_id`` below
the oldest running transaction, so a log restored with ``pg_dump``/``pg_restore`` into
another server whose transaction counter is behind the dump's would be broken although every
chain holds: its readers would not see the restored events, and new events would be ordered
before them. The cure is to move that server's counter past them (``pg_resetwal --epoch``,
docs/OPERATIONS.md).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import asyncpg

_CHECK = """
SELECT position, stream_id, stream_version,
       stream_version = row_number() OVER w AS in_sequence,
       hash = sha256(coalesce(lag(hash) OVER w, '\\x'::bytea) || cairn_event_canonical(
           stream_id, stream_version, project_id, event_type, schema_version, data, metadata,
           recorded_at)) AS link_ok,
       hash
FROM events
WINDOW w AS (PARTITION BY stream_id ORDER BY stream_version)
ORDER BY stream_id, stream_version
"""


_AHEAD = """
SELECT count(*) AS ahead, floor(max(tx_id::text::numeric) / 4294967296)::bigint + 1 AS epoch
FROM events
WHERE tx_id >= pg_snapshot_xmax(pg_current_snapshot())
"""
"""Events of transactions this server has not reached, and the transaction id epoch past
them (a transaction id is its epoch times 2^32 plus a 32-bit counter)."""


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of :func:`verify`: how much was checked and the first broken place, if any."""

    events: int
    streams: int
    first_broken: int | None
    reason: str | None
    digest: str
    """sha256 over every stream's head hash, in stream order: a fingerprint of the whole log."""
    ahead: int = 0
    """Events whose transaction id this server has not reached (see the module)."""
    epoch: int | None = None
    """When ``ahead``: the transaction id epoch that puts this server's counter past them."""

    @property
    def ok(self) -> bool:
        return self.first_broken is None and self.ahead == 0


async def verify(conn: asyncpg.Connection, *, batch: int = 5000) -> VerifyReport:
    """Walk every stream's chain; report the lowest log position where it breaks.

    Reads inside one REPEATABLE READ transaction, so a concurrent append cannot make a
    consistent log look broken.
    """
    events = 0
    streams = 0
    first: tuple[int, str] | None = None
    heads = hashlib.sha256()
    last_stream: str | None = None
    last_hash = b""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        cursor = conn.cursor(_CHECK, prefetch=batch)
        async for row in cursor:
            events += 1
            if row["stream_id"] != last_stream:
                if last_stream is not None:
                    heads.update(last_stream.encode() + b"\x00" + last_hash)
                streams += 1
                last_stream = row["stream_id"]
            last_hash = bytes(row["hash"])
            problem = None
            if not row["in_sequence"]:
                problem = (
                    f"stream {row['stream_id']!r} skips to version {row['stream_version']} "
                    "(an event before it was removed or renumbered)"
                )
            elif not row["link_ok"]:
                problem = (
                    f"stream {row['stream_id']!r} version {row['stream_version']}: hash does not "
                    "match its content and the previous link (changed, removed or reordered)"
                )
            if problem is not None and (first is None or row["position"] < first[0]):
                first = (row["position"], problem)
        ahead = await conn.fetchrow(_AHEAD)
    if last_stream is not None:
        heads.update(last_stream.encode() + b"\x00" + last_hash)
    return VerifyReport(
        events=events,
        streams=streams,
        first_broken=first[0] if first else None,
        reason=first[1] if first else None,
        digest=heads.hexdigest(),
        ahead=ahead["ahead"],
        epoch=ahead["epoch"] if ahead["ahead"] else None,
    )

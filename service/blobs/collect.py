"""``cairn blobs gc`` and ``cairn blobs verify``: removing blobs nobody attached, and
re-hashing every blob.

**What gc removes.** A blob goes when, after the grace (default 24 h):

* it was last published (uploaded, or uploaded again) before the grace,
* every attachable naming it was created before the grace and is unattached, or was
  last claimed before the grace (a claim whose command was then refused names the blob
  in no event: once the grace has passed, nothing will), or none names it, and
* no event names it: the log's ``data`` is scanned for ``sha256`` values anywhere in it
  (events embed :class:`~service.blobs.store.FileRef`\\ s, whose key is ``sha256``).

Uploads whose process died before publishing (their row still in ``blob_uploads`` after the
grace) go too, with their chunks.

**Why a concurrent attach cannot lose a file.** An event names a new file only after its
command :func:`~.attachables.claim`\\ ed the attachable, which sets ``attached_at`` under
the attachable's row lock. gc deletes each blob in a transaction that first locks the
blob's row, then every attachable naming it (``FOR UPDATE``, which waits for a claim in
flight and then reads the row as it committed), and checks the first two rules again
there: a claim that landed first keeps the blob; one that comes later waits, finds its
attachable deleted and gets None. A new attachable of the same bytes needs the blob's row
(its foreign key takes a share lock on it) and so waits as well, and a new upload of them
touches the blob (see postgres.py), which the re-check sees. The log is scanned before the
deletions: an event committed after the scan names a blob only through a claim (seen by
the re-check) or by copying a reference already in the log (seen by the scan).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

import asyncpg

from .postgres import CHUNK_SIZE, delete_blob

_CANDIDATES = """
SELECT b.sha256, b.size FROM blobs b
WHERE b.touched_at < now() - $1::interval
  AND NOT EXISTS (
      SELECT 1 FROM attachables a
      WHERE a.sha256 = b.sha256
        AND (a.attached_at >= now() - $1::interval OR a.created_at >= now() - $1::interval)
  )
ORDER BY b.created_at, b.sha256
"""


@dataclass
class Collected:
    """What a gc run removed (or, dry, would remove)."""

    blobs: list[tuple[str, int]] = field(default_factory=list)
    """(sha256, size) of each blob."""
    uploads: int = 0
    """Abandoned uploads (never published) dropped."""
    kept: int = 0
    """Candidates found attached, touched or referenced when their deletion was due."""


async def gc(
    conn: asyncpg.Connection,
    *,
    grace: timedelta,
    dry_run: bool,
    referenced: Callable[[], Awaitable[set[str]]],
) -> Collected:
    """Remove (``dry_run``: only list) the blobs gc may remove (see the module) and the
    abandoned uploads, on ``conn`` (one short transaction per blob).

    Args:
        referenced: the SHA-256 values the log's events name (the event store's
            ``values_in_data("sha256")``: only the store reads the log); called once,
            before any deletion, and only when some blob is a candidate.
    """
    done = Collected()
    candidates = await conn.fetch(_CANDIDATES, grace)
    if candidates:
        named = await referenced()
        candidates = [row for row in candidates if row["sha256"] not in named]
    for row in candidates:
        sha256 = row["sha256"]
        if dry_run:
            done.blobs.append((sha256, row["size"]))
            continue
        async with conn.transaction():
            if await _still_removable(conn, sha256, grace):
                await conn.execute("DELETE FROM attachables WHERE sha256 = $1", sha256)
                await delete_blob(conn, sha256)
                done.blobs.append((sha256, row["size"]))
            else:
                done.kept += 1
    abandoned = await conn.fetch(
        "SELECT upload_id FROM blob_uploads WHERE started_at < now() - $1::interval", grace
    )
    done.uploads = len(abandoned)
    if not dry_run:
        for upload in abandoned:
            async with conn.transaction():
                await conn.execute("DELETE FROM blob_chunks WHERE upload_id = $1", upload[0])
                await conn.execute("DELETE FROM blob_uploads WHERE upload_id = $1", upload[0])
    return done


async def _still_removable(conn: asyncpg.Connection, sha256: str, grace: timedelta) -> bool:
    """The module's first two rules again, on the locked rows (in the caller's transaction)."""
    touched = await conn.fetchval(
        "SELECT touched_at < now() - $2::interval FROM blobs WHERE sha256 = $1 FOR UPDATE",
        sha256,
        grace,
    )
    if not touched:
        return False
    rows = await conn.fetch(
        "SELECT created_at < now() - $2::interval "
        "AND (attached_at IS NULL OR attached_at < now() - $2::interval) AS idle "
        "FROM attachables WHERE sha256 = $1 FOR UPDATE",
        sha256,
        grace,
    )
    return all(row["idle"] for row in rows)


@dataclass
class Verified:
    """What ``cairn blobs verify`` found."""

    blobs: int = 0
    bytes: int = 0
    broken: list[str] = field(default_factory=list)
    """One line per broken blob: its sha256 and what is wrong."""


async def verify(conn: asyncpg.Connection) -> Verified:
    """Re-hash every blob from its chunks, one chunk in memory at a time; name each whose
    chunks are missing, misnumbered or of the wrong length, or whose bytes hash otherwise."""
    found = Verified()
    blobs = await conn.fetch("SELECT sha256, upload_id, size FROM blobs ORDER BY sha256")
    for blob in blobs:
        sha256, size = blob["sha256"], blob["size"]
        found.blobs += 1
        found.bytes += size
        expected = -(-size // CHUNK_SIZE)
        digest = hashlib.sha256()
        problem = None
        for number in range(expected):
            data = await conn.fetchval(
                "SELECT data FROM blob_chunks WHERE upload_id = $1 AND n = $2",
                blob["upload_id"],
                number,
            )
            if data is None:
                problem = f"chunk {number} is missing"
                break
            length = min(CHUNK_SIZE, size - number * CHUNK_SIZE)
            if len(data) != length:
                problem = f"chunk {number} holds {len(data)} bytes, not {length}"
                break
            digest.update(data)
        if problem is None:
            extra = await conn.fetchval(
                "SELECT count(*) FROM blob_chunks WHERE upload_id = $1 AND n >= $2",
                blob["upload_id"],
                expected,
            )
            if extra:
                problem = f"{extra} chunks past its size"
            elif digest.hexdigest() != sha256:
                problem = f"its bytes hash to {digest.hexdigest()}"
        if problem is not None:
            found.broken.append(f"{sha256}: {problem}")
    return found

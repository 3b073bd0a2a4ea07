"""The default blob store: blobs in PostgreSQL, in 1 MiB ``bytea`` rows (migration 0006).

Why not one transaction per blob: the event log's readers take only the events of
transactions older than every transaction still running (``pg_snapshot_xmin``, see
``service/events/reading.py``). A transaction held open while an upload streams in (seconds,
minutes on a slow link) would hold back every projection, the real-time hub and every
write's read-your-writes wait for as long. So an upload is written in short transactions
instead, and made visible by one short transaction at the end:

1. a row in ``blob_uploads`` names a fresh upload id (committed at once);
2. each 1 MiB chunk is inserted into ``blob_chunks`` under that id, in a statement (and a
   transaction) of its own, while the bytes are hashed as they arrive; nothing reads
   chunks but through a row of ``blobs``, so these are invisible;
3. publishing inserts the row of ``blobs`` (SHA-256, upload id, size) and deletes the row
   of ``blob_uploads``, in one transaction. When the SHA-256 is stored already (also when
   an identical upload races this one: the primary key decides, not a look-up before the
   insert), the existing blob is kept, touched, and this upload's chunks are dropped.

On :class:`~service.errors.TooLarge`, a cancellation (the client went away) or any other
error the staged chunks are deleted (shielded from the cancellation) before the error goes
on. Only a process that dies mid-upload leaves them behind: ``cairn blobs gc`` drops uploads
older than its grace.

Reads fetch one chunk per statement, each on a connection taken from the pool for that
statement alone (the next chunk's while the caller takes this one): a slow reader holds no
connection, and no more than two chunks in memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, Final

import asyncpg

from ..errors import NotFound, TooLarge
from .store import BlobInfo

CHUNK_SIZE: Final = 1024 * 1024
READ_BATCH: Final = 4
"""Chunks read by one statement (4 MiB): fewer round trips, two batches in memory at most."""
"""Bytes per row of ``blob_chunks`` (the last row of a blob may hold fewer)."""

_cleanups: set[asyncio.Task[None]] = set()
"""Clean-ups running on after the upload that started them was cancelled (kept referenced
until they end: the event loop keeps only weak references to tasks)."""


class PostgresBlobStore:
    """:class:`~service.blobs.store.BlobStore` on PostgreSQL (see the module).

    Args:
        pool: an asyncpg pool on a migrated database (the event store's will do: every
            statement here is short).
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def put(self, chunks: AsyncIterable[bytes], *, max_size: int) -> BlobInfo:
        """Store the bytes ``chunks`` yields (see :meth:`BlobStore.put` and the module).

        Raises:
            TooLarge: more than ``max_size`` bytes arrived; the staged chunks are deleted.
        """
        upload_id = uuid.uuid4()
        await self.pool.execute("INSERT INTO blob_uploads (upload_id) VALUES ($1)", upload_id)
        try:
            sha256, size = await self._stage(upload_id, chunks, max_size)
            return await self._publish(upload_id, sha256, size)
        except BaseException:
            # Shielded: a cancelled upload (its client left) must still clean up, and the
            # clean-up runs on even if this await is cancelled again.
            cleanup = asyncio.ensure_future(self._discard(upload_id))
            _cleanups.add(cleanup)
            cleanup.add_done_callback(_cleanups.discard)
            await asyncio.shield(cleanup)
            raise

    async def _stage(
        self, upload_id: uuid.UUID, chunks: AsyncIterable[bytes], max_size: int
    ) -> tuple[str, int]:
        """Write ``chunks`` under ``upload_id`` in 1 MiB rows; their SHA-256 and length.

        One row is written while the next arrives (at most one insert in flight): the
        database's work overlaps the network's, with two rows in memory at most.
        """
        digest = hashlib.sha256()
        size = 0
        number = 0
        buffer = bytearray()
        writing: asyncio.Task[Any] | None = None
        try:
            async for piece in chunks:
                size += len(piece)
                if size > max_size:
                    raise TooLarge(max_size)
                digest.update(piece)
                buffer += piece
                while len(buffer) >= CHUNK_SIZE:
                    row = bytes(buffer[:CHUNK_SIZE])
                    del buffer[:CHUNK_SIZE]
                    if writing is not None:
                        await writing
                    writing = asyncio.ensure_future(self._write(upload_id, number, row))
                    number += 1
            if writing is not None:
                await writing
                writing = None
            if buffer:
                await self._write(upload_id, number, bytes(buffer))
        finally:
            if writing is not None and not writing.done():
                writing.cancel()
                await asyncio.gather(writing, return_exceptions=True)
        return digest.hexdigest(), size

    async def _write(self, upload_id: uuid.UUID, number: int, data: bytes) -> None:
        await self.pool.execute(
            "INSERT INTO blob_chunks (upload_id, n, data) VALUES ($1, $2, $3)",
            upload_id,
            number,
            data,
        )

    async def _publish(self, upload_id: uuid.UUID, sha256: str, size: int) -> BlobInfo:
        async with self.pool.acquire() as conn, conn.transaction():
            # The primary key decides which of two identical uploads keeps its chunks:
            # the second waits for the first's insert and finds its row (then touched, so
            # that gc keeps it: see cli's gc).
            kept = await conn.fetchval(
                "INSERT INTO blobs (sha256, upload_id, size) VALUES ($1, $2, $3) "
                "ON CONFLICT (sha256) DO UPDATE SET touched_at = now() "
                "RETURNING upload_id",
                sha256,
                upload_id,
                size,
            )
            if kept != upload_id:
                await conn.execute("DELETE FROM blob_chunks WHERE upload_id = $1", upload_id)
            await conn.execute("DELETE FROM blob_uploads WHERE upload_id = $1", upload_id)
        return BlobInfo(sha256=sha256, size=size)

    async def _discard(self, upload_id: uuid.UUID) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM blob_chunks WHERE upload_id = $1", upload_id)
            await conn.execute("DELETE FROM blob_uploads WHERE upload_id = $1", upload_id)

    async def stat(self, sha256: str) -> BlobInfo | None:
        """The complete blob with this key, or None."""
        row = await self.pool.fetchrow("SELECT size FROM blobs WHERE sha256 = $1", sha256)
        return None if row is None else BlobInfo(sha256=sha256, size=row["size"])

    async def read(
        self, sha256: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """The blob's bytes ``[start, end)`` (``end`` None or past the end: to its end), a
        chunk row (or the part of one in the range) at a time; only the rows overlapping
        the range are read.

        Raises:
            NotFound: no complete blob has this key.
            ValueError: ``start`` is negative or after ``end``.
        """
        row = await self.pool.fetchrow(
            "SELECT upload_id, size FROM blobs WHERE sha256 = $1", sha256
        )
        if row is None:
            raise NotFound(f"no blob {sha256}")
        size: int = row["size"]
        stop = size if end is None else min(end, size)
        if start < 0 or (end is not None and end < start):
            raise ValueError(f"bad range [{start}, {end})")
        pieces = []
        position = start
        while position < stop:
            number, offset = divmod(position, CHUNK_SIZE)
            length = min(CHUNK_SIZE - offset, stop - position)
            pieces.append((number, offset, length))
            position += length
        # Up to READ_BATCH chunks a statement, and the next batch fetched while the caller
        # takes this one (one statement in flight, two batches in memory at most): the
        # database's work overlaps the caller's. A lone piece of a chunk (a small range)
        # reads only its bytes.
        batches = [pieces[i : i + READ_BATCH] for i in range(0, len(pieces), READ_BATCH)]
        upload_id = row["upload_id"]
        fetching: asyncio.Future[list[bytes | None]] | None = None
        try:
            for i, batch in enumerate(batches):
                if fetching is None:
                    fetching = asyncio.ensure_future(self._batch(upload_id, batch))
                datas = await fetching
                fetching = None
                if i + 1 < len(batches):
                    fetching = asyncio.ensure_future(self._batch(upload_id, batches[i + 1]))
                for (number, _, length), data in zip(batch, datas, strict=True):
                    if data is None or len(data) != length:
                        raise NotFound(f"blob {sha256} lacks bytes of chunk {number}")
                    yield data
        finally:
            if fetching is not None:
                fetching.cancel()
                await asyncio.gather(fetching, return_exceptions=True)

    async def _batch(
        self, upload_id: uuid.UUID, batch: list[tuple[int, int, int]]
    ) -> list[bytes | None]:
        """The bytes of each piece of ``batch`` (consecutive chunks), None for a chunk
        missing."""
        if len(batch) == 1:
            return [await self._chunk(upload_id, *batch[0])]
        rows = await self.pool.fetch(
            "SELECT n, data FROM blob_chunks WHERE upload_id = $1 AND n BETWEEN $2 AND $3",
            upload_id,
            batch[0][0],
            batch[-1][0],
        )
        found: dict[int, bytes] = {r["n"]: r["data"] for r in rows}
        out: list[bytes | None] = []
        for number, offset, length in batch:
            data = found.get(number)
            whole = data is not None and offset == 0 and len(data) == length
            out.append(data if whole or data is None else data[offset : offset + length])
        return out

    async def _chunk(
        self, upload_id: uuid.UUID, number: int, offset: int, length: int
    ) -> bytes | None:
        # substring() of an uncompressed out-of-line value fetches only the TOAST pieces it
        # needs (migration 0006 stores chunks EXTERNAL).
        data: bytes | None = await self.pool.fetchval(
            "SELECT substring(data FROM $3 FOR $4) FROM blob_chunks "
            "WHERE upload_id = $1 AND n = $2",
            upload_id,
            number,
            offset + 1,
            length,
        )
        return data

    async def delete(self, sha256: str) -> None:
        """Forget the blob and its chunks (``cairn blobs gc`` only: see :mod:`.collect`)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await delete_blob(conn, sha256)


async def delete_blob(conn: asyncpg.Connection, sha256: str) -> None:
    """Delete blob ``sha256`` and its chunks on ``conn`` (in its caller's transaction)."""
    upload_id = await conn.fetchval(
        "DELETE FROM blobs WHERE sha256 = $1 RETURNING upload_id", sha256
    )
    if upload_id is not None:
        await conn.execute("DELETE FROM blob_chunks WHERE upload_id = $1", upload_id)

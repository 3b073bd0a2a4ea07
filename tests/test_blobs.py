"""The PostgreSQL blob store, attachables and ``cairn blobs gc``/``verify`` against a real
PostgreSQL: byte-exact round trips and ranges, nothing left by a failed upload, identical
bytes stored once, gc's rules (and a claim racing it), verify finding damage."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest

from service.blobs import attachables
from service.blobs.collect import gc, verify
from service.blobs.postgres import CHUNK_SIZE, PostgresBlobStore
from service.blobs.store import BlobInfo, FileRef
from service.errors import NotFound, TooLarge
from service.events.base import Event, Metadata, register
from service.events.store import ANY, EventStore

from .support.cli import child_env, run_cairn

MiB = 1024 * 1024


@register
class FileMentioned(Event, frozen=True, kw_only=True):
    """A test event naming a file as events do: a FileRef in its data, nested."""

    files: list[FileRef]


async def _pieces(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for at in range(0, len(data), size):
        yield data[at : at + size]


async def _read(
    blobs: PostgresBlobStore, sha256: str, start: int = 0, end: int | None = None
) -> bytes:
    return b"".join([piece async for piece in blobs.read(sha256, start, end)])


async def _count(pool: asyncpg.Pool, table: str) -> int:
    count: int = await pool.fetchval(f"SELECT count(*) FROM {table}")
    return count


@pytest.fixture
def blobs(store: EventStore) -> PostgresBlobStore:
    return PostgresBlobStore(store.pool)


@pytest.mark.parametrize("size", [0, 1, 10 * MiB + 7])
async def test_round_trips_are_byte_exact(blobs: PostgresBlobStore, size: int) -> None:
    """0 B, 1 B and 10 MiB (and a few) come back byte for byte, keyed by their SHA-256."""
    data = os.urandom(size)
    info = await blobs.put(_pieces(data), max_size=size)
    assert info == BlobInfo(sha256=hashlib.sha256(data).hexdigest(), size=size)
    assert await blobs.stat(info.sha256) == info
    assert await _read(blobs, info.sha256) == data
    rows = await blobs.pool.fetchval("SELECT count(*) FROM blob_chunks")
    assert rows == -(-size // CHUNK_SIZE)
    assert await _count(blobs.pool, "blob_uploads") == 0


async def test_ranges_read_only_the_chunks_they_overlap(blobs: PostgresBlobStore) -> None:
    """Ranges anywhere (first byte, last byte, across chunk edges, past the end, empty)
    come back exactly."""
    data = os.urandom(3 * CHUNK_SIZE + 5)
    info = await blobs.put(_pieces(data, 300_000), max_size=len(data))
    size = len(data)
    for start, end in [
        (0, 1),
        (size - 1, size),
        (CHUNK_SIZE - 3, CHUNK_SIZE + 3),
        (5, 2 * CHUNK_SIZE + 9),
        (2 * CHUNK_SIZE, None),
        (size - 10, size + 100),
        (7, 7),
        (size, None),
    ]:
        assert await _read(blobs, info.sha256, start, end) == data[start:end], (start, end)
    with pytest.raises(ValueError, match="bad range"):
        await _read(blobs, info.sha256, 9, 3)
    with pytest.raises(NotFound):
        await _read(blobs, "0" * 64)
    assert await blobs.stat("0" * 64) is None


async def test_too_large_is_refused_as_it_passes_and_leaves_nothing(
    blobs: PostgresBlobStore,
) -> None:
    """Past max_size, put raises TooLarge before reading on, and no row of it stays."""
    read = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal read
        while True:
            read += 1
            yield b"x" * 100_000

    with pytest.raises(TooLarge) as refused:
        await blobs.put(endless(), max_size=3 * MiB)
    assert refused.value.limit == 3 * MiB
    assert read == 32  # 3,200,000 bytes: the first piece past 3 MiB
    for table in ("blob_chunks", "blob_uploads", "blobs"):
        assert await _count(blobs.pool, table) == 0, table


async def test_an_error_or_a_cancellation_mid_stream_leaves_nothing(
    blobs: PostgresBlobStore,
) -> None:
    """A source that fails, or an upload cancelled (its client left), after chunks were
    written: the staged chunks are deleted."""
    started = asyncio.Event()

    async def failing() -> AsyncIterator[bytes]:
        yield os.urandom(3 * MiB)
        raise ConnectionResetError("gone")

    async def stalling() -> AsyncIterator[bytes]:
        yield os.urandom(3 * MiB)
        started.set()
        await asyncio.Event().wait()
        yield b""

    with pytest.raises(ConnectionResetError):
        await blobs.put(failing(), max_size=10 * MiB)
    task = asyncio.create_task(blobs.put(stalling(), max_size=10 * MiB))
    await started.wait()
    assert await _count(blobs.pool, "blob_chunks") >= 2
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for table in ("blob_chunks", "blob_uploads", "blobs"):
        assert await _count(blobs.pool, table) == 0, table


async def test_identical_uploads_racing_end_with_one_blob(blobs: PostgresBlobStore) -> None:
    """Eight uploads of the same bytes at once: one blob row, one set of chunks."""
    data = os.urandom(2 * MiB + 3)
    infos = await asyncio.gather(*(blobs.put(_pieces(data), max_size=len(data)) for _ in range(8)))
    assert len(set(infos)) == 1
    assert await _count(blobs.pool, "blobs") == 1
    assert await _count(blobs.pool, "blob_chunks") == 3
    assert await _count(blobs.pool, "blob_uploads") == 0
    assert await _read(blobs, infos[0].sha256) == data


async def test_a_claim_is_its_uploaders_alone(blobs: PostgresBlobStore) -> None:
    """claim returns the file to its uploader (again on a retry) and None to anyone else or
    for an unknown id."""
    info = await blobs.put(_pieces(b"hello"), max_size=10)
    await attachables.create(
        blobs.pool, "att_1", info, name="hi.txt", content_type="text/plain", created_by="per_a"
    )
    assert await attachables.claim(blobs.pool, "att_1", "per_b") is None
    assert await attachables.claim(blobs.pool, "att_x", "per_a") is None
    ref = FileRef(sha256=info.sha256, size=5, content_type="text/plain", name="hi.txt")
    assert await attachables.claim(blobs.pool, "att_1", "per_a") == ref
    first = await blobs.pool.fetchval("SELECT attached_at FROM attachables")
    assert await attachables.claim(blobs.pool, "att_1", "per_a") == ref
    assert await blobs.pool.fetchval("SELECT attached_at FROM attachables") == first


async def _blob_with_attachable(
    blobs: PostgresBlobStore, data: bytes, attachable_id: str, *, age: timedelta
) -> BlobInfo:
    info = await blobs.put(_pieces(data), max_size=len(data))
    await attachables.create(
        blobs.pool, attachable_id, info, name="f", content_type="text/plain", created_by="per_a"
    )
    await _age(blobs.pool, info.sha256, age)
    return info


async def _age(pool: asyncpg.Pool, sha256: str, age: timedelta) -> None:
    await pool.execute(
        "UPDATE blobs SET created_at = now() - $2::interval, touched_at = now() - $2::interval "
        "WHERE sha256 = $1",
        sha256,
        age,
    )
    await pool.execute(
        "UPDATE attachables SET created_at = now() - $2::interval WHERE sha256 = $1", sha256, age
    )


async def test_gc_removes_only_old_unattached_unreferenced_blobs(
    store: EventStore, blobs: PostgresBlobStore
) -> None:
    """Of six blobs, gc removes the old one nobody attached or named, one claimed a day ago
    that no event names (its command was refused), and an abandoned upload; it keeps a young
    one, a freshly attached one and one an event names. Dry, it only lists."""
    day = timedelta(hours=25)
    old = await _blob_with_attachable(blobs, b"old and unattached", "att_old", age=day)
    young = await _blob_with_attachable(blobs, b"young", "att_young", age=timedelta(hours=1))
    attached = await _blob_with_attachable(blobs, b"attached", "att_attached", age=day)
    assert await attachables.claim(blobs.pool, "att_attached", "per_a") is not None
    # Claimed a day ago by a command that was then refused: no event names it.
    refused = await _blob_with_attachable(blobs, b"claimed, then refused", "att_refused", age=day)
    assert await attachables.claim(blobs.pool, "att_refused", "per_a") is not None
    await blobs.pool.execute(
        "UPDATE attachables SET attached_at = now() - interval '25 hours' "
        "WHERE attachable_id = 'att_refused'"
    )
    named = await _blob_with_attachable(blobs, b"named by an event", "att_named", age=day)
    ref = FileRef(sha256=named.sha256, size=named.size, content_type="text/plain", name="f")
    await store.append("note-1", [FileMentioned(files=[ref])], ANY, Metadata(actor="per_a"))
    await blobs.pool.execute(
        "INSERT INTO blob_uploads (upload_id, started_at) VALUES "
        "('00000000-0000-0000-0000-000000000001', now() - interval '2 days')"
    )
    await blobs.pool.execute(
        "INSERT INTO blob_chunks VALUES ('00000000-0000-0000-0000-000000000001', 0, 'abc')"
    )

    async with blobs.pool.acquire() as conn:
        dry = await gc(conn, grace=timedelta(hours=24), dry_run=True, referenced=_values(store))
        gone = sorted([(old.sha256, old.size), (refused.sha256, refused.size)])
        assert sorted(dry.blobs) == gone
        assert dry.uploads == 1
        assert await _count(blobs.pool, "blobs") == 5
        done = await gc(conn, grace=timedelta(hours=24), dry_run=False, referenced=_values(store))
    assert sorted(done.blobs) == gone
    assert done.uploads == 1
    left = {row[0] for row in await blobs.pool.fetch("SELECT sha256 FROM blobs")}
    assert left == {young.sha256, attached.sha256, named.sha256}
    assert (
        await blobs.pool.fetchval("SELECT count(*) FROM attachables WHERE sha256 = $1", old.sha256)
        == 0
    )
    assert await _count(blobs.pool, "blob_uploads") == 0
    assert await _count(blobs.pool, "blob_chunks") == 3


def _values(store: EventStore):  # type: ignore[no-untyped-def]
    async def referenced() -> set[str]:
        return await store.values_in_data("sha256")

    return referenced


async def test_a_claim_racing_gc_never_keeps_an_attachable_without_its_blob(
    store: EventStore, blobs: PostgresBlobStore
) -> None:
    """Claims and gc runs at once, many times over: every attachable claimed has its blob
    (gc saw it attached and kept it, or removed it and the claim found nothing)."""
    outcomes: set[str] = set()
    for round_ in range(30):
        info = await _blob_with_attachable(
            blobs, f"race {round_}".encode(), f"att_{round_}", age=timedelta(days=2)
        )

        async def collect() -> None:
            async with blobs.pool.acquire() as conn:
                await gc(conn, grace=timedelta(days=1), dry_run=False, referenced=_values(store))

        claimed, _ = await asyncio.gather(
            attachables.claim(blobs.pool, f"att_{round_}", "per_a"), collect()
        )
        blob = await blobs.stat(info.sha256)
        if claimed is not None:
            assert blob is not None, round_
            assert await _read(blobs, info.sha256) == f"race {round_}".encode()
            outcomes.add("claimed, kept")
        else:
            assert blob is None
            outcomes.add("collected, claim found nothing")
    # Not asserted to see both (timing decides), but say which were seen if this fails.
    assert outcomes, outcomes


async def test_a_new_upload_of_old_bytes_keeps_them_from_gc(
    blobs: PostgresBlobStore, store: EventStore
) -> None:
    """Bytes stored long ago and never attached, uploaded again: the blob is touched, gc
    keeps it."""
    info = await _blob_with_attachable(blobs, b"again", "att_a", age=timedelta(days=3))
    assert await blobs.put(_pieces(b"again"), max_size=10) == info
    async with blobs.pool.acquire() as conn:
        done = await gc(conn, grace=timedelta(days=1), dry_run=False, referenced=_values(store))
    assert done.blobs == []
    assert await blobs.stat(info.sha256) == info


async def test_verify_finds_corrupt_and_missing_chunks(blobs: PostgresBlobStore) -> None:
    """verify counts intact blobs, then names one whose chunk was altered and one that lost
    a chunk."""
    good = await blobs.put(_pieces(os.urandom(2 * MiB)), max_size=3 * MiB)
    hurt = await blobs.put(_pieces(os.urandom(2 * MiB + 1)), max_size=3 * MiB)
    lost = await blobs.put(_pieces(os.urandom(MiB + 1)), max_size=3 * MiB)
    async with blobs.pool.acquire() as conn:
        found = await verify(conn)
        assert (found.blobs, found.bytes, found.broken) == (3, 5 * MiB + 2, [])
        await conn.execute(
            # One byte changed, whatever it held (writing a fixed byte left it intact
            # once in 256 runs: CI met that).
            "UPDATE blob_chunks SET data = set_byte(data, 9, (get_byte(data, 9) + 1) % 256) "
            "WHERE upload_id = (SELECT upload_id FROM blobs WHERE sha256 = $1) AND n = 1",
            hurt.sha256,
        )
        await conn.execute(
            "DELETE FROM blob_chunks WHERE n = 1 AND "
            "upload_id = (SELECT upload_id FROM blobs WHERE sha256 = $1)",
            lost.sha256,
        )
        found = await verify(conn)
    assert good.sha256 not in " ".join(found.broken)
    by_blob = {line.split(":")[0]: line for line in found.broken}
    assert set(by_blob) == {hurt.sha256, lost.sha256}
    assert "hash to" in by_blob[hurt.sha256]
    assert "chunk 1 is missing" in by_blob[lost.sha256]


async def test_the_commands_print_what_they_did(
    database_url: str, blobs: PostgresBlobStore
) -> None:
    """cairn blobs gc --dry-run names what it would remove, gc removes it, verify says the
    count and bytes (exit 0), then names a corrupt blob (exit 1)."""
    env = child_env(database_url)
    old = await _blob_with_attachable(blobs, b"old bytes", "att_old", age=timedelta(days=2))
    kept = await blobs.put(_pieces(b"kept"), max_size=10)
    code, out = await run_cairn("blobs", "gc", "--dry-run", env=env)
    assert code == 0, out
    assert f"would remove {old.sha256} (9 bytes)" in out
    assert await blobs.stat(old.sha256) is not None
    code, out = await run_cairn("blobs", "gc", "--grace", "1h", env=env)
    assert code == 0, out
    assert f"removed {old.sha256} (9 bytes)" in out
    assert await blobs.stat(old.sha256) is None
    code, out = await run_cairn("blobs", "verify", env=env)
    assert (code, out.strip()) == (0, "1 blobs, 4 bytes: all intact"), out
    await blobs.pool.execute("UPDATE blob_chunks SET data = 'evil'")
    code, out = await run_cairn("blobs", "verify", env=env)
    assert code == 1, out
    assert f"CORRUPT {kept.sha256}: its bytes hash to" in out

"""The delivery reader (service/workers/reader.py): starts at the head, hands every later
event over exactly once with its checkpoint in the same transaction, across two readers and
concurrent writers, and never hands over history."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg
import pytest

from service.events.base import Metadata, RecordedEvent
from service.events.store import ANY, EventStore
from service.workers.reader import DeliveryReader

from .support.events import NoteWritten

META = Metadata(actor="per_" + "0" * 20, request_id="test")


async def _write(store: EventStore, stream: str, n: int) -> None:
    for i in range(n):
        await store.append(stream, [NoteWritten(text=f"{stream} {i}")], ANY, META)


async def test_starts_at_head_and_delivers_each_later_event_once(store: EventStore) -> None:
    await _write(store, "note-history", 5)
    await store.pool.execute(
        "CREATE TABLE handed (position bigint PRIMARY KEY, stream_id text NOT NULL)"
    )

    async def handle(conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        # A duplicate would violate the primary key and roll the step back: the test would
        # then see fewer rows than events, never more.
        await conn.executemany(
            "INSERT INTO handed VALUES ($1, $2)", [(e.position, e.stream_id) for e in events]
        )

    readers = [
        DeliveryReader(store, "test_reader", handle, stream_prefixes=("note-a",), batch=7)
        for _ in range(2)
    ]
    await readers[0].start_at_head()
    for reader in readers:
        reader.start()
    try:
        await asyncio.gather(*(_write(store, f"note-{s}", 40) for s in ("a1", "a2", "b1", "a3")))
        wanted = {
            e.position for e in await store.read_all(0, 10_000) if e.stream_id.startswith("note-a")
        }
        async with asyncio.timeout(20):
            while True:
                got = {r[0] for r in await store.pool.fetch("SELECT position FROM handed")}
                if got == wanted:
                    break
                assert got <= wanted
                await asyncio.sleep(0.05)
    finally:
        for reader in readers:
            await reader.stop()
    assert len(wanted) == 120
    rows = await store.pool.fetch("SELECT stream_id FROM handed")
    assert not any(r[0] == "note-history" for r in rows)
    place = await readers[1].place()
    assert place == (await store.head())
    delivered = await store.pool.fetchval(
        "SELECT delivered FROM delivery_checkpoints WHERE name = 'test_reader'"
    )
    assert delivered == 120


async def test_a_failing_handler_loses_nothing(store: EventStore) -> None:
    seen: list[int] = []
    fail = [True]

    async def handle(conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        if fail[0]:
            fail[0] = False
            raise RuntimeError("boom")
        seen.extend(e.position for e in events)

    reader = DeliveryReader(store, "failing", handle)
    assert await reader.step() == 0  # creates the checkpoint at the head
    await _write(store, "note-x", 3)
    with pytest.raises(RuntimeError):
        await reader.step()
    assert seen == []
    assert await reader.step() == 3
    assert len(seen) == 3

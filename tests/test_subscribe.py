"""Readers of the global log: catch up, follow live, never skip or repeat an event.

The headline is the gap stress test: concurrent writers with slow and rolled-back
transactions, and subscribers that must see every committed event exactly once, in log
order. The others take the reader through PostgreSQL restarts, killed connections, a
missing LISTEN connection, and the races of the wake-up machinery.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import aclosing
from typing import Any

import asyncpg
import pytest

from service.database.migrate import migrate_url
from service.errors import DatabaseUnavailable
from service.events.base import Event, RecordedEvent, register
from service.events.store import ANY, NO_STREAM, START, EventStore
from service.events.wakeup import Listener

from .support.postgres import Cluster, OwnCluster, own_cluster, with_database
from .support.waiting import eventually

# Only there to turn a hang into a failure; no assertion depends on timing.
GUARD = 60.0
# A poll interval no test waits out: a reader that gets an event under it was woken.
NEVER = 3600.0
# A LISTEN connection that can never be made: the socket directory does not exist.
NO_LISTEN = "postgresql://nobody@/nowhere?host=/nonexistent-cairn-socket-dir"


@register
class Ticked(Event, frozen=True, kw_only=True):
    n: int


class _Rollback(Exception):
    """Raised inside a transaction to roll it back."""


async def log_order(url: str) -> list[int]:
    """Every committed position, in log order, straight from the table."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT position FROM events ORDER BY tx_id, position")
    finally:
        await conn.close()
    return [r["position"] for r in rows]


async def read_until(
    events: AsyncIterator[RecordedEvent],
    stop: Callable[[RecordedEvent], bool],
    got: list[RecordedEvent] | None = None,
) -> list[RecordedEvent]:
    """Collect ``events`` up to and including the first one ``stop`` accepts."""
    got = [] if got is None else got
    async with asyncio.timeout(GUARD):
        async for event in events:
            got.append(event)
            if stop(event):
                break
    return got


def is_stream(stream_id: str) -> Callable[[RecordedEvent], bool]:
    return lambda event: event.stream_id == stream_id


async def wait_for_count(got: list[Any], n: int, store: EventStore) -> None:
    """Wait until ``got`` holds ``n`` items, re-checking on every wake-up of ``store``."""
    async with asyncio.timeout(GUARD):
        while len(got) < n:
            await store.wakeups.wait(store.wakeups.generation, 0.05)


# ------------------------------------------------------------ catch up, then live


async def test_catch_up_then_live(store: EventStore, database_url: str) -> None:
    """A subscriber started late yields the old events, then new ones, in log order, once each."""
    for i in range(3):
        await store.append(f"tick-{i}", [Ticked(n=i)], NO_STREAM)
    got: list[RecordedEvent] = []
    async with aclosing(store.subscribe()) as events:
        reader = asyncio.create_task(read_until(events, is_stream("tick-end"), got))
        await wait_for_count(got, 3, store)
        for i in range(3, 6):
            await store.append(f"tick-{i}", [Ticked(n=i), Ticked(n=i + 100)], NO_STREAM)
        await store.append("tick-end", [Ticked(n=-1)], NO_STREAM)
        await reader
    assert [e.position for e in got] == await log_order(database_url)
    assert [e.event.n for e in got[:3]] == [0, 1, 2]  # type: ignore[attr-defined]
    assert len(got) == 3 + 6 + 1


async def test_subscribe_after_starts_right_after(store: EventStore) -> None:
    """subscribe(after=p) yields exactly the events after p in log order, and no earlier one."""
    result = await store.append("s", [Ticked(n=i) for i in range(5)], NO_STREAM)
    p = result.positions[1]
    async with aclosing(store.subscribe(after=p)) as events:
        got = await read_until(events, lambda e: e.position == result.positions[-1])
    assert [e.position for e in got] == result.positions[2:]


# ------------------------------------------------------------ gap stress

WRITERS = 16
TOTAL = 20_000


def _plan(rng: random.Random) -> list[tuple[str, int]]:
    """The writers' work: (mode, events) jobs whose committed events add up to TOTAL.

    Multi-event appends keep the run short; the mix of quick, slow (transaction held open
    0-50 ms) and rolled-back jobs is what opens gaps.
    """
    jobs: list[tuple[str, int]] = []
    committed = 0
    while committed < TOTAL:
        mode = rng.choices(["quick", "slow", "rollback"], weights=[70, 20, 10])[0]
        size = min(rng.randint(1, 5), TOTAL - committed) if mode != "rollback" else 3
        jobs.append((mode, size))
        if mode != "rollback":
            committed += size
    return jobs


@pytest.mark.slow
async def test_gap_stress(store: EventStore, database_url: str) -> None:
    """16 writers with slow and rolled-back transactions append 20,000 events; three
    subscribers running throughout each see every committed event exactly once, in log
    order, and no rolled-back one, where a naive position tailer misses one."""
    rng = random.Random(20_000)
    jobs: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
    for job in _plan(rng):
        jobs.put_nowait(job)
    committed: list[int] = []
    rolled_back: list[int] = []

    # Two subscribers on stores of their own, as if in other processes (woken by NOTIFY),
    # one on the writers' store (woken in-process).
    others = [await EventStore.open(database_url, max_size=3, poll_interval=0.5) for _ in "ab"]
    subscribers = [store, *others]
    seen: list[list[RecordedEvent]] = [[] for _ in subscribers]

    async def subscriber(s: EventStore, got: list[RecordedEvent]) -> None:
        async with aclosing(s.subscribe()) as events:
            await read_until(events, is_stream("stress-end"), got)

    # The naive tailer reads "position > last seen" with no horizon, woken like the others.
    naive: set[int] = set()
    passed_late = asyncio.Event()
    late_position = 0

    async def naive_tailer() -> None:
        conn = await asyncpg.connect(database_url)
        last = 0
        try:
            async with asyncio.timeout(GUARD):
                while True:
                    generation = store.wakeups.generation
                    rows = await conn.fetch(
                        "SELECT position, stream_id FROM events WHERE position > $1 "
                        "ORDER BY position",
                        last,
                    )
                    for row in rows:
                        naive.add(row["position"])
                        last = row["position"]
                        if row["stream_id"] == "stress-end":
                            return
                    if late_position and last > late_position:
                        passed_late.set()
                    await store.wakeups.wait(generation, 0.05)
        finally:
            await conn.close()

    async def writer(w: int) -> None:
        stream = f"writer-{w}"
        while not jobs.empty():
            mode, size = jobs.get_nowait()
            events = [Ticked(n=w) for _ in range(size)]
            if mode == "quick":
                committed.extend((await store.append(stream, events, ANY)).positions)
                continue
            async with store.pool.acquire() as conn:
                with contextlib.suppress(_Rollback):
                    async with conn.transaction():
                        result = await store.append(stream, events, ANY, connection=conn)
                        # The workload itself: a transaction kept open while others commit.
                        await asyncio.sleep(rng.uniform(0, 0.05))
                        if mode == "rollback":
                            rolled_back.extend(result.positions)
                            raise _Rollback
                    committed.extend(result.positions)
                    store.committed()

    started = time.perf_counter()
    readers = [
        asyncio.create_task(subscriber(s, g)) for s, g in zip(subscribers, seen, strict=True)
    ]
    tailer = asyncio.create_task(naive_tailer())
    await store.append("stress-start", [Ticked(n=0)], NO_STREAM)
    for got in seen:
        await wait_for_count(got, 1, store)

    # One transaction takes a position before every writer and commits only once the naive
    # tailer has read past it: the tailer can then never see it, deterministically.
    async with store.pool.acquire() as conn:
        async with conn.transaction():
            late = await store.append("stress-late", [Ticked(n=-1)], NO_STREAM, connection=conn)
            late_position = late.positions[0]
            writers = [asyncio.create_task(writer(w)) for w in range(WRITERS)]
            async with asyncio.timeout(GUARD):
                await passed_late.wait()
        store.committed()
    async with asyncio.timeout(GUARD):
        await asyncio.gather(*writers)
    await store.append("stress-end", [Ticked(n=0)], NO_STREAM)
    async with asyncio.timeout(GUARD):
        await asyncio.gather(*readers, tailer)
    elapsed = time.perf_counter() - started
    for other in others:
        await other.close()

    log = await log_order(database_url)
    assert len(committed) == TOTAL
    assert set(log) == {*committed, late_position, log[0], log[-1]}
    assert rolled_back
    assert set(log).isdisjoint(rolled_back)
    for got in seen:
        positions = [e.position for e in got]
        assert len(positions) == len(set(positions)) == len(log)
        assert set(positions).isdisjoint(rolled_back)
        assert positions == log
        assert [e.cursor for e in got] == sorted(e.cursor for e in got)
    assert late_position not in naive
    missed = len(set(log) - naive)
    print(
        f"\ngap stress: {len(log)} events, {len(rolled_back)} rolled back, {elapsed:.1f} s; "
        f"naive tailer missed {missed} ({100 * missed / len(log):.2f} %)"
    )


# ------------------------------------------------------------ surviving the server


@pytest.fixture
def own_server() -> Iterator[OwnCluster]:
    """A throwaway embedded PostgreSQL of this test's own, so it may be restarted."""
    with own_cluster() as cluster:
        yield cluster


async def append_retrying(store: EventStore, stream_id: str, n: int) -> None:
    """Append as a client should while the server comes back: retry with the same key."""
    await eventually(
        lambda: store.append(stream_id, [Ticked(n=n)], ANY, idempotency_key=f"{stream_id}-{n}"),
        timeout=GUARD,
        interval=0.1,
        retry_on=(DatabaseUnavailable,),
    )


async def _subscribe_through(
    stores: list[EventStore], url: str, outage: Callable[[], Awaitable[None]]
) -> None:
    """Subscribers on ``stores`` see events appended before and after ``outage`` exactly once."""
    writer = stores[0]
    seen: list[list[RecordedEvent]] = [[] for _ in stores]

    async def subscriber(s: EventStore, got: list[RecordedEvent]) -> None:
        async with aclosing(s.subscribe()) as events:
            await read_until(events, is_stream("end"), got)

    readers = [asyncio.create_task(subscriber(s, g)) for s, g in zip(stores, seen, strict=True)]
    for n in range(5):
        await append_retrying(writer, "before", n)
    for got in seen:
        await wait_for_count(got, 5, writer)
    await outage()
    for n in range(5):
        await append_retrying(writer, "after", n)
    await append_retrying(writer, "end", 0)
    async with asyncio.timeout(GUARD):
        await asyncio.gather(*readers)
    log = await log_order(url)
    assert len(log) == 11
    for got in seen:
        assert [e.position for e in got] == log


async def test_subscription_survives_postgres_restart(own_server: OwnCluster) -> None:
    """A subscriber keeps going through a real PostgreSQL restart and misses or repeats nothing."""
    url = own_server.url()
    await migrate_url(url)
    store = await EventStore.open(url, poll_interval=0.5)
    conn = await asyncpg.connect(url)
    started_before = await conn.fetchval("SELECT pg_postmaster_start_time()")
    await conn.close()

    async def restart() -> None:
        await asyncio.to_thread(own_server.restart)

    try:
        await _subscribe_through([store], url, restart)
    finally:
        await store.close()
    conn = await asyncpg.connect(url)
    assert await conn.fetchval("SELECT pg_postmaster_start_time()") > started_before
    await conn.close()


async def test_subscription_survives_killed_connections(
    store: EventStore, database_url: str
) -> None:
    """Killing every connection to the database (LISTEN one included) loses no event, also
    for a subscriber in another store that only a NOTIFY can wake."""
    other = await EventStore.open(database_url, poll_interval=NEVER)
    other.wakeups.start()

    async def kill_everything() -> None:
        async with asyncio.timeout(GUARD):
            await store.wakeups.connected.wait()
            await other.wakeups.connected.wait()
        conn = await asyncpg.connect(database_url)
        try:
            killed = await conn.fetchval(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 10000)) "
                "FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
        finally:
            await conn.close()
        # At least both LISTEN connections and both pools' connections.
        assert killed >= 4
        # Not waiting for the listeners to come back is the point: whatever commits
        # before a listener's LISTEN is found by the re-read its reconnect triggers.

    try:
        await _subscribe_through([store, other], database_url, kill_everything)
    finally:
        await other.close()


# ------------------------------------------------------------ wake-ups


@pytest.fixture
async def deaf_store(database_url: str) -> AsyncIterator[EventStore]:
    """A store whose LISTEN connection can never be made and which never polls in time."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    store = EventStore(pool, NO_LISTEN, poll_interval=NEVER)
    yield store
    await store.close()


@pytest.mark.parametrize("in_transaction", [False, True])
async def test_append_wakes_readers_in_process(
    deaf_store: EventStore, in_transaction: bool
) -> None:
    """An append wakes live readers of the same process directly, without LISTEN/NOTIFY."""
    store = deaf_store
    await store.append("wake", [Ticked(n=0)], NO_STREAM)
    got: list[RecordedEvent] = []
    async with aclosing(store.subscribe()) as events:
        reader = asyncio.create_task(read_until(events, lambda e: e.event.n == 1, got))  # type: ignore[attr-defined]
        await wait_for_count(got, 1, store)
        if in_transaction:
            async with store.pool.acquire() as conn, conn.transaction():
                await store.append("wake", [Ticked(n=1)], 1, connection=conn)
            store.committed()
        else:
            await store.append("wake", [Ticked(n=1)], 1)
        await reader
    assert not store.wakeups.connected.is_set()
    assert [e.event.n for e in got] == [0, 1]  # type: ignore[attr-defined]


class _HookedPool:
    """A real pool that runs a one-shot hook right after a reader's query returns.

    Used to open, deterministically, the window between a read and whatever the reader
    does next. Every query still goes to PostgreSQL.
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.after_read: Callable[[], Awaitable[None]] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)

    async def fetch(self, query: str, *args: Any, **kw: Any) -> list[asyncpg.Record]:
        rows = await self._pool.fetch(query, *args, **kw)
        if self.after_read is not None and "cairn_append" not in query:
            hook, self.after_read = self.after_read, None
            await hook()
        return rows  # type: ignore[no-any-return]


@pytest.mark.parametrize("rollback", ["while the reader waits", "right after its read"])
async def test_events_behind_a_rolled_back_transaction(database_url: str, rollback: str) -> None:
    """Events hidden behind an open transaction reach a live reader when that transaction
    rolls back, though a rollback wakes nobody, whenever the rollback lands."""
    pool = _HookedPool(await asyncpg.create_pool(database_url, min_size=1, max_size=4))
    store = EventStore(pool, NO_LISTEN, poll_interval=NEVER)  # type: ignore[arg-type]
    holder = await asyncpg.connect(database_url)
    try:
        await store.append("first", [Ticked(n=0)], NO_STREAM)
        got: list[RecordedEvent] = []
        async with aclosing(store.subscribe()) as events:
            reader = asyncio.create_task(read_until(events, is_stream("behind"), got))
            await wait_for_count(got, 1, store)
            # An older transaction with an id holds the horizon back.
            holder_tx = holder.transaction()
            await holder_tx.start()
            await holder.fetchval("SELECT pg_current_xact_id()")
            if rollback == "right after its read":
                pool.after_read = holder_tx.rollback
            await store.append("behind", [Ticked(n=1)], NO_STREAM)
            if rollback == "while the reader waits":
                await holder_tx.rollback()
            await reader
        assert [e.stream_id for e in got] == ["first", "behind"]
    finally:
        await holder.close()
        await store.close()


async def test_has_hidden_sees_events_freed_since_the_read(
    store: EventStore, database_url: str
) -> None:
    """has_hidden() after a short read is true for events that became readable in between."""
    holder = await asyncpg.connect(database_url)
    try:
        tx = holder.transaction()
        await tx.start()
        await holder.fetchval("SELECT pg_current_xact_id()")
        await store.append("late", [Ticked(n=0)], NO_STREAM)
        assert await store.read_after(START) == []
        assert await store.has_hidden(START)
        await tx.rollback()
        # Readable now, and still unread: the reader must look again.
        assert await store.has_hidden(START)
        assert len(await store.read_after(START)) == 1
        last = (await store.read_after(START))[-1].cursor
        assert not await store.has_hidden(last)
    finally:
        await holder.close()


async def test_close_ends_live_subscriptions(database_url: str) -> None:
    """Closing the store ends its live subscriptions instead of leaving them retrying."""
    store = await EventStore.open(database_url, poll_interval=NEVER)
    await store.append("s", [Ticked(n=0)], NO_STREAM)
    got: list[RecordedEvent] = []

    async def subscriber() -> None:
        async for event in store.subscribe():
            got.append(event)

    reader = asyncio.create_task(subscriber())
    await wait_for_count(got, 1, store)
    await store.close()
    async with asyncio.timeout(GUARD):
        await reader
    assert len(got) == 1


async def test_listener_outlives_a_missing_database(cluster: Cluster) -> None:
    """The LISTEN connection keeps retrying through errors that are not network errors
    (here: its database does not exist yet) and connects once it can."""
    name = f"cairn_late_{random.randrange(10**9)}"
    listener = Listener(with_database(cluster.admin_url, name), reconnect_delay=0.01)
    listener.start()
    admin = await asyncpg.connect(cluster.admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        async with asyncio.timeout(GUARD):
            await listener.connected.wait()
    finally:
        await listener.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_cancelled_waiter_stops_even_when_woken() -> None:
    """A reader cancelled in the same instant it is woken is cancelled, not resumed."""
    listener = Listener(NO_LISTEN)
    waiter = asyncio.create_task(listener.wait(listener.generation, NEVER))
    await asyncio.sleep(0)  # let it start waiting
    listener.wake()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter

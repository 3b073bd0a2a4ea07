"""Comparing read models: the live generation of each projection against one rebuilt from
the log, row for row."""

from __future__ import annotations

import asyncpg

from service.events.store import EventStore
from service.projections.engine import ProjectionEngine


async def _tables(conn: asyncpg.Connection, schema: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 "
        "ORDER BY table_name",
        schema,
    )
    return [r["table_name"] for r in rows]


async def differences(conn: asyncpg.Connection, a: str, b: str) -> dict[str, tuple[int, int]]:
    """Tables of schemas ``a`` and ``b`` that differ, with the rows each has that the other
    lacks (a multiset comparison: row for row, duplicates counted)."""
    tables = await _tables(conn, a)
    assert tables == await _tables(conn, b)
    assert tables, f"no tables in {a}"
    diff = {}
    for t in tables:
        only_a = await conn.fetchval(
            f"SELECT count(*) FROM (SELECT * FROM {a}.{t} EXCEPT ALL SELECT * FROM {b}.{t}) d"
        )
        only_b = await conn.fetchval(
            f"SELECT count(*) FROM (SELECT * FROM {b}.{t} EXCEPT ALL SELECT * FROM {a}.{t}) d"
        )
        if only_a or only_b:
            diff[t] = (only_a, only_b)
    return diff


async def caught_up(engine: ProjectionEngine) -> tuple[int, int]:
    """Wait until every projection has applied the whole log; return the log's head.

    ``head()`` is the last event a gap-free reader may read *now*: an open transaction
    anywhere (a live server's projection batch, say) can hide later, committed events. So
    wait for the projections, then check that nothing committed is still hidden behind
    the head, and go again if something is (otherwise the read models may be caught up to
    different points of a log that is not all visible yet)."""
    store = engine.store
    while True:
        seen = store.wakeups.generation
        head = await store.head()
        await engine.refresh()
        assert await engine.wait_for(head, 60), await engine.status()
        if not await store.has_hidden(head):
            return head
        await store.wakeups.wait(seen, 0.05)


async def live_schema(conn: asyncpg.Connection, name: str) -> str:
    generation = await conn.fetchval("SELECT generation FROM projections WHERE name = $1", name)
    return f"p_{name}_{generation}"


async def rebuilt_differences(store: EventStore, engine: ProjectionEngine) -> dict[str, object]:
    """Each projection's differences between its live generation and one rebuilt from the
    whole log (empty when every read model equals a fresh rebuild)."""
    head = await caught_up(engine)
    found: dict[str, object] = {}
    async with store.pool.acquire() as conn:
        for name in engine.projections:
            shadow = await engine.build_shadow(name, until=head)
            try:
                diff = await differences(conn, await live_schema(conn, name), shadow)
            finally:
                await engine.drop_shadow(shadow)
            if diff:
                found[name] = diff
    return found

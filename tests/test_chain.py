"""The hash chain: an intact log verifies, and tampering (as superuser, triggers off) is caught."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from service.events.base import Event, register
from service.events.chain import VerifyReport, verify
from service.events.store import NO_STREAM, EventStore


@register
class ChainNoted(Event, frozen=True, kw_only=True):
    n: int


@pytest.fixture
async def log(store: EventStore) -> dict[str, int]:
    """Two streams written in turns: a1 b1 a2 b2 a3 b3; returns each event's position."""
    positions: dict[str, int] = {}
    for version in range(1, 4):
        for stream in "ab":
            result = await store.append(
                stream, [ChainNoted(n=10 * version)], NO_STREAM if version == 1 else version - 1
            )
            positions[f"{stream}{version}"] = result.positions[0]
    return positions


@pytest.fixture
async def superuser(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


async def tamper(conn: asyncpg.Connection, sql: str, *args: object) -> None:
    """Run ``sql`` with the log's triggers off, as an attacker with superuser rights could."""
    async with conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(sql, *args)


async def test_intact_log_verifies(log: dict[str, int], superuser: asyncpg.Connection) -> None:
    """An untouched log verifies, with every event and stream counted."""
    report = await verify(superuser)
    assert report.ok
    assert (report.events, report.streams) == (6, 2)
    assert report.first_broken is None
    assert report.reason is None


TAMPERINGS = {
    "changed data": (
        "UPDATE events SET data = jsonb_set(data, '{n}', '99') WHERE position = $1",
        ["a2"],
        "a2",
    ),
    "changed metadata": (
        """UPDATE events SET metadata = '{"actor": "mallory"}' WHERE position = $1""",
        ["b2"],
        "b2",
    ),
    # The removed event cannot be named; the first event after it in its stream is.
    "deleted middle event": ("DELETE FROM events WHERE position = $1", ["a2"], "a3"),
    "swapped events": (
        "UPDATE events e SET data = o.data FROM events o "
        "WHERE (e.position, o.position) IN (($1, $2), ($2, $1))",
        ["b1", "b2"],
        "b1",
    ),
}


@pytest.mark.parametrize("kind", TAMPERINGS)
async def test_tampering_is_caught(
    log: dict[str, int], superuser: asyncpg.Connection, kind: str
) -> None:
    """Each kind of tampering breaks the chain, and the first broken position is named."""
    sql, targets, first = TAMPERINGS[kind]
    await tamper(superuser, sql, *(log[t] for t in targets))
    report = await verify(superuser)
    assert not report.ok
    assert report.first_broken == log[first]
    assert report.reason is not None


async def test_first_broken_is_lowest_position_across_streams(
    log: dict[str, int], superuser: asyncpg.Connection
) -> None:
    """With breaks in two streams, the one earliest in the log is named, not the first stream's."""
    await tamper(superuser, "DELETE FROM events WHERE position = $1", log["a2"])
    await tamper(superuser, "DELETE FROM events WHERE position = $1", log["b1"])
    report = await verify(superuser)
    # a's first break is a3 (after the hole); b's is b2, which comes earlier in the log.
    assert log["b2"] < log["a3"]
    assert report.first_broken == log["b2"]


async def test_removed_stream_head_shows_only_in_digest(
    log: dict[str, int], superuser: asyncpg.Connection
) -> None:
    """Removing a stream's newest event leaves the chain intact but changes the digest."""
    before: VerifyReport = await verify(superuser)
    await tamper(superuser, "DELETE FROM events WHERE position = $1", log["a3"])
    after = await verify(superuser)
    # Documented limit: nothing links to a stream's last event, so the chain cannot name it.
    assert after.ok
    assert after.events == before.events - 1
    assert after.digest != before.digest


async def test_every_append_path_links_the_same_chain(
    store: EventStore, superuser: asyncpg.Connection
) -> None:
    """Single events go in with one SQL statement, keyed and multi-event appends through
    ``cairn_append``: in one stream, mixed, the chain they build verifies link by link."""
    await store.append("mixed", [ChainNoted(n=1)], NO_STREAM)  # single statement
    await store.append("mixed", [ChainNoted(n=2)], 1, idempotency_key="k-2")  # cairn_append
    await store.append("mixed", [ChainNoted(n=3), ChainNoted(n=4)], 2)  # cairn_append
    await store.append("mixed", [ChainNoted(n=5)], 4)  # single statement again
    assert (await verify(superuser)).ok
    original = await superuser.fetchval("SELECT data FROM events WHERE stream_version = 5")
    async with superuser.transaction():
        await superuser.execute("SET LOCAL session_replication_role = replica")
        await superuser.execute("UPDATE events SET data = '{\"n\": 6}' WHERE stream_version = 5")
    report = await verify(superuser)
    assert (report.events, report.first_broken) == (5, 5)
    async with superuser.transaction():
        await superuser.execute("SET LOCAL session_replication_role = replica")
        await superuser.execute("UPDATE events SET data = $1 WHERE stream_version = 5", original)
    report = await verify(superuser)
    assert report.ok
    assert report.events == 5


async def test_events_from_transactions_the_server_has_not_reached_fail_verification(
    log: dict[str, int], superuser: asyncpg.Connection
) -> None:
    """A log whose events carry transaction ids ahead of the server's counter (a dump
    restored into another server) fails verification although every chain holds, naming the
    transaction id epoch that moves the counter past them."""
    assert (await verify(superuser)).ahead == 0
    await tamper(
        superuser,
        "UPDATE events SET tx_id = ((pg_snapshot_xmax(pg_current_snapshot())::text::numeric "
        "+ 3 * 4294967296)::text)::xid8 WHERE position = ANY($1::bigint[])",
        [log["a3"], log["b3"]],
    )
    report = await verify(superuser)
    assert not report.ok
    assert report.first_broken is None
    assert report.ahead == 2
    counter = await superuser.fetchval("SELECT pg_snapshot_xmax(pg_current_snapshot())::text")
    assert report.epoch == int(counter) // 2**32 + 4

"""The event store against a real PostgreSQL: appends, concurrency, idempotency, immutability."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import msgspec
import pytest

from service.errors import (
    IdempotencyKeyReused,
    UnknownEventType,
    UnknownPosition,
    WrongExpectedVersion,
)
from service.events.base import Event, Metadata, register, upcaster
from service.events.store import ANY, NO_STREAM, AppendResult, EventStore

from .support.events import NoteWritten


@register
class NoteRenamed(Event, frozen=True, kw_only=True):
    """At v2: ``title`` split into ``old`` and ``new`` (v1 had only ``title``)."""

    schema_version = 2
    old: str | None
    new: str


@upcaster("NoteRenamed", from_version=1)
def _note_renamed_v1(data: dict[str, Any]) -> dict[str, Any]:
    return {"old": None, "new": data["title"]}


async def test_append_then_read_stream_and_log(store: EventStore) -> None:
    """Appended events come back from the stream and the log with versions and positions."""
    meta = Metadata(actor="person-1", request_id="r1")
    first = await store.append("note-1", [NoteWritten(text="a")], NO_STREAM, meta, project_id="p1")
    second = await store.append(
        "note-1", [NoteWritten(text="b"), NoteWritten(text="c")], 1, meta, project_id="p1"
    )
    assert first.stream_version == 1
    assert second.stream_version == 3
    assert len(second.positions) == 2

    stream = await store.read_stream("note-1")
    assert [e.stream_version for e in stream] == [1, 2, 3]
    assert [e.event for e in stream] == [NoteWritten(text=t) for t in "abc"]
    assert stream[0].metadata.actor == "person-1"
    assert stream[0].project_id == "p1"

    log = await store.read_all(0)
    assert [e.position for e in log] == first.positions + second.positions
    assert [e.position for e in await store.read_all(first.positions[0])] == second.positions
    assert await store.read_all(0, limit=1) == log[:1]


@pytest.mark.parametrize(
    ("expected", "ok"),
    [(ANY, True), (NO_STREAM, False), (1, False), (2, True), (3, False)],
)
async def test_expected_version(store: EventStore, expected: int, ok: bool) -> None:
    """Only ANY or the exact current version may append; anything else is a typed conflict."""
    await store.append("s", [NoteWritten(text="1"), NoteWritten(text="2")], NO_STREAM)
    if ok:
        result = await store.append("s", [NoteWritten(text="3")], expected)
        assert result.stream_version == 3
    else:
        with pytest.raises(WrongExpectedVersion) as info:
            await store.append("s", [NoteWritten(text="3")], expected)
        assert info.value.actual == 2
        assert await store.stream_version("s") == 2


async def test_twenty_racers_one_winner(store: EventStore) -> None:
    """20 tasks append version N+1 of one stream at once: exactly one wins, 19 conflict."""
    await store.append("race", [NoteWritten(text="seed")], NO_STREAM)

    async def attempt(i: int) -> str:
        try:
            await store.append("race", [NoteWritten(text=f"t{i}")], 1)
        except WrongExpectedVersion:
            return "conflict"
        return "won"

    outcomes = await asyncio.gather(*(attempt(i) for i in range(20)))
    assert outcomes.count("won") == 1
    assert outcomes.count("conflict") == 19
    assert await store.stream_version("race") == 2


async def test_any_version_racers_all_land(store: EventStore) -> None:
    """Concurrent appends with ANY never conflict and never lose an event."""
    await asyncio.gather(
        *(store.append("busy", [NoteWritten(text=str(i))], ANY) for i in range(20))
    )
    stream = await store.read_stream("busy")
    assert [e.stream_version for e in stream] == list(range(1, 21))
    assert sorted(e.event.text for e in stream) == sorted(str(i) for i in range(20))  # type: ignore[attr-defined]


async def test_multi_event_append_is_atomic(store: EventStore) -> None:
    """A failed multi-event append leaves nothing behind."""
    await store.append("atomic", [NoteWritten(text="x")], NO_STREAM)
    with pytest.raises(WrongExpectedVersion):
        await store.append("atomic", [NoteWritten(text="y"), NoteWritten(text="z")], NO_STREAM)
    assert len(await store.read_all(0)) == 1


async def test_idempotent_retry_returns_first_positions(store: EventStore) -> None:
    """A retried append with the same key returns the original positions and appends nothing."""
    events = [NoteWritten(text="once"), NoteWritten(text="twice")]
    first = await store.append("idem", events, NO_STREAM, idempotency_key="k1")
    again = await store.append("idem", events, NO_STREAM, idempotency_key="k1")
    assert again.positions == first.positions
    assert again.replayed
    assert not first.replayed
    assert len(await store.read_all(0)) == 2
    with pytest.raises(IdempotencyKeyReused):
        await store.append("idem", [NoteWritten(text="other")], ANY, idempotency_key="k1")


async def test_idempotency_race_appends_once(store: EventStore) -> None:
    """Ten identical appends racing with one key write the events exactly once."""
    events = [NoteWritten(text="race")]
    results = await asyncio.gather(
        *(store.append("idem-race", events, ANY, idempotency_key="same") for _ in range(10))
    )
    assert len({tuple(r.positions) for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert len(await store.read_all(0)) == 1


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE events SET data = '{}'",
        "UPDATE events SET data = '{}' WHERE false",
        "DELETE FROM events",
        "TRUNCATE events",
    ],
)
async def test_log_is_immutable(store: EventStore, database_url: str, statement: str) -> None:
    """PostgreSQL itself refuses UPDATE, DELETE and TRUNCATE of the log, with a clear error."""
    await store.append("imm", [NoteWritten(text="keep")], NO_STREAM)
    conn = await asyncpg.connect(database_url)
    try:
        with pytest.raises(asyncpg.PostgresError, match="append-only") as info:
            await conn.execute(statement)
        assert info.value.sqlstate == "CA003"
    finally:
        await conn.close()
    assert [e.event for e in await store.read_stream("imm")] == [NoteWritten(text="keep")]


async def test_stored_v1_event_is_upcast(store: EventStore, database_url: str) -> None:
    """A NoteRenamed stored at v1 (with the old shape) reads back as the current v2 type."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.fetch(
            "SELECT * FROM cairn_append('old', 0, NULL, $1::jsonb, '{}'::jsonb, NULL, NULL)",
            msgspec.json.encode(
                [
                    {
                        "type": "NoteRenamed",
                        "schema_version": 1,
                        "data": {"type": "NoteRenamed", "title": "T"},
                    }
                ]
            ).decode(),
        )
    finally:
        await conn.close()
    await store.append("old", [NoteRenamed(old="T", new="U")], 1)
    events = await store.read_stream("old")
    assert [e.schema_version for e in events] == [1, 2]
    assert [e.event for e in events] == [
        NoteRenamed(old=None, new="T"),
        NoteRenamed(old="T", new="U"),
    ]
    # Pages of the log name each type from the data's own tag: the same events.
    assert await store.read_all(0) == events


async def test_a_page_with_an_unknown_type_is_an_error(
    store: EventStore, database_url: str
) -> None:
    """An event of a type this code does not know cannot be read, from a stream or the log."""
    await store.append("known", [NoteWritten(text="a")], NO_STREAM)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.fetch(
            "SELECT * FROM cairn_append('alien', 0, NULL, $1::jsonb, '{}'::jsonb, NULL, NULL)",
            '[{"type": "FromTheFuture", "schema_version": 1, "data": {"type": "FromTheFuture"}}]',
        )
    finally:
        await conn.close()
    with pytest.raises(UnknownEventType):
        await store.read_all(0)
    with pytest.raises(UnknownEventType):
        await store.read_stream("alien")
    assert [e.event for e in await store.read_all(0, limit=1)] == [NoteWritten(text="a")]


async def test_unknown_position_is_an_error(store: EventStore) -> None:
    """Reading after a position that does not exist raises instead of guessing."""
    with pytest.raises(UnknownPosition):
        await store.read_all(12345)


async def test_pages_share_metadata_and_time_exactly(store: EventStore) -> None:
    """Pages send an append's shared metadata and time once; every event still gets its own."""
    one = Metadata(actor="a", request_id="r1")
    two = Metadata(actor="b", request_id="r2")
    await store.append("m-1", [NoteWritten(text="1"), NoteWritten(text="2")], NO_STREAM, one)
    await store.append("m-2", [NoteWritten(text="3")], NO_STREAM, two)
    await store.append("m-1", [NoteWritten(text="4")], 2, one)
    log = await store.read_all(0)
    assert [e.metadata for e in log] == [one, one, two, one]
    assert log[0].recorded_at == log[1].recorded_at
    # Each page starts afresh: its first row carries its own metadata and time.
    for after in range(len(log)):
        page = await store.read_all(log[after - 1].position if after else 0, limit=1)
        assert page == [log[after]]
    by_stream = {e.position: e for s in ("m-1", "m-2") for e in await store.read_stream(s)}
    assert [by_stream[e.position] for e in log] == log


async def test_a_big_page_keeps_each_events_metadata_and_time(store: EventStore) -> None:
    """A page decoded in slices (with the next page read meanwhile) still gives every event
    its own append's metadata and time, also where a slice starts inside an append."""
    metas = [Metadata(actor=f"actor-{n}", request_id=f"r{n}") for n in range(5)]
    for n, meta in enumerate(metas):
        events = [NoteWritten(text=f"{n}.{i}") for i in range(150)]
        await store.append(f"big-{n}", events, NO_STREAM, meta)
    page = await store.read_all(0, limit=700)
    assert len(page) == 700
    assert [e.metadata for e in page] == [metas[i // 150] for i in range(700)]
    times = {n: (await store.read_stream(f"big-{n}", limit=1))[0].recorded_at for n in range(5)}
    assert [e.recorded_at for e in page] == [times[i // 150] for i in range(700)]
    assert page == [e for n in range(5) for e in await store.read_stream(f"big-{n}")][:700]
    rest = await store.read_all(page[-1].position, limit=700)
    assert [e.event for e in rest] == [NoteWritten(text=f"4.{i}") for i in range(100, 150)]


async def test_read_ahead_never_serves_a_stale_short_page(store: EventStore) -> None:
    """A walking reader gets pages read ahead, but never one that misses a later commit."""
    for n in range(10):
        await store.append(f"ra-{n}", [NoteWritten(text=str(n))], NO_STREAM)
    everything = await store.read_all(0, limit=100)
    walked: list[int] = []
    after = 0
    while page := await store.read_all(after, limit=3):
        walked += [e.position for e in page]
        after = page[-1].position
    # The last page was short: its read-ahead (if any) must not hide what commits now.
    assert walked == [e.position for e in everything]
    late = await store.append("ra-late", [NoteWritten(text="late")], NO_STREAM)
    assert [e.position for e in await store.read_all(after, limit=3)] == late.positions
    # A full page read ahead is the page a fresh read returns.
    first = await store.read_all(0, limit=5)
    ahead = (first[-1].cursor, 5, None)
    assert ahead in store._ahead  # the next page is being read ahead...
    await store.append("ra-later", [NoteWritten(text="later")], NO_STREAM)
    second = await store.read_all(first[-1].position, limit=5)
    assert ahead not in store._ahead  # ...and that read-ahead served this page
    fresh_second = await store.read_after(first[-1].cursor, 5)
    assert second == fresh_second


async def test_a_named_fingerprint_decides_what_a_retry_is(store: EventStore) -> None:
    """Under a key with a caller-named fingerprint, a retry carrying other events (a second
    decision stamped with a new time) replays the first append; another fingerprint is
    refused. ``appended`` finds the first append without trying again."""

    async def append(text: str, fingerprint: bytes = b"request-1") -> AppendResult:
        return await store.append(
            "fp-1",
            [NoteWritten(text=text)],
            NO_STREAM,
            idempotency_key="k",
            fingerprint=fingerprint,
        )

    assert await store.appended("fp-1", "k", fingerprint=b"request-1") is None
    first = await append("at 10:00")
    retry = await append("at 10:05")
    assert retry.replayed
    assert (retry.positions, retry.stream_version) == (first.positions, 1)
    found = await store.appended("fp-1", "k", fingerprint=b"request-1")
    assert found is not None
    assert (found.positions, found.stream_version, found.replayed) == (first.positions, 1, True)
    with pytest.raises(IdempotencyKeyReused):
        await append("x", fingerprint=b"other")
    with pytest.raises(IdempotencyKeyReused):
        await store.appended("fp-1", "k", fingerprint=b"other")
    # The default fingerprint (the events' bytes) is a different thing from a named one.
    with pytest.raises(IdempotencyKeyReused):
        await store.append("fp-1", [NoteWritten(text="at 10:00")], NO_STREAM, idempotency_key="k")
    assert [e.event for e in await store.read_stream("fp-1")] == [NoteWritten(text="at 10:00")]


async def test_store_sessions_never_compile_plans(store: EventStore) -> None:
    """Pool and lane connections run with JIT off (see lane.SESSION_SETUP): a plan whose
    estimate passes jit_above_cost would otherwise be compiled, tens of milliseconds each."""
    assert await store.pool.fetchval("SHOW jit") == "off"
    async with store.pool.acquire() as a, store.pool.acquire() as b:
        assert [await a.fetchval("SHOW jit"), await b.fetchval("SHOW jit")] == ["off", "off"]
    assert await store._lane.fetchval("SHOW jit") == "off"


async def test_pending_check_probes_the_index_in_every_plan(store: EventStore) -> None:
    """``has_hidden`` asks whether anything follows a cursor. Prepared statements soon run a
    generic plan; for an EXISTS over the log that plan was a sequential scan reading the
    whole table whenever nothing followed (51 ms on 200,000 events, once per follower step).
    Both forms of the question must be index probes even in the generic plan."""
    from service.events.sql import PENDING, PENDING_PROJECT

    for batch in range(30):
        await store.append(
            f"pending-{batch}",
            [NoteWritten(text=f"{batch}-{i}") for i in range(100)],
            NO_STREAM,
            Metadata(actor="person-1"),
            project_id=f"p{batch % 3}",
        )
    async with store.pool.acquire() as conn:
        await conn.execute("ANALYZE events")
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        try:
            head = await store.head()
            for sql, types, values, project in [
                (PENDING, "xid8, bigint", f"'{head[0]}', {head[1]}", None),
                (PENDING_PROJECT, "xid8, bigint, text", f"'{head[0]}', {head[1]}, 'p1'", "p1"),
            ]:
                await conn.execute(f"PREPARE pending({types}) AS {sql}")
                plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE pending({values})")
                await conn.execute("DEALLOCATE pending")
                assert "Seq Scan" not in plan, plan
                assert "Index Only Scan" in plan or "Index Scan" in plan, plan
                assert await store.has_hidden(head, project_id=project) is False
        finally:
            await conn.execute("RESET plan_cache_mode")


async def test_has_stream_with_prefix_looks_at_the_start_of_names_only(store: EventStore) -> None:
    """``has_stream_with_prefix`` is true once a stream whose name starts with the prefix has
    an event, and never for the prefix elsewhere in a name or for LIKE wildcards."""
    assert await store.has_stream_with_prefix("person-") is False
    await store.append("xperson-1", [NoteWritten(text="not a person")], NO_STREAM)
    await store.append("person_1", [NoteWritten(text="not a person either")], NO_STREAM)
    assert await store.has_stream_with_prefix("person-") is False
    assert await store.has_stream_with_prefix("person%") is False
    await store.append("person-1", [NoteWritten(text="someone")], NO_STREAM)
    assert await store.has_stream_with_prefix("person-") is True
    assert await store.has_stream_with_prefix("person_") is True
    assert await store.has_stream_with_prefix("project-") is False

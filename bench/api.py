"""The API's request path: POST a to-do and GET a to-do list at 32 concurrent clients, next to
a bare Starlette JSON endpoint and a raw asyncpg single-row commit at the same concurrency.

Run ``python -m bench.api`` (about two minutes) or ``python -m bench.api --quick`` (about 40
seconds). Uses ``DATABASE_URL`` if set, else starts a throwaway embedded PostgreSQL.

In one run, on one PostgreSQL server:

* **Cairn**: ``cairn serve`` in a child process on a fresh, migrated database, with the rate
  limit off (``CAIRN_RATE_LIMIT=0``). Eight members of one project, each with an API token;
  client ``i`` acts as member ``i % 8``. ``POST /v1/todolists/{id}/todos`` spreads the clients
  over eight lists (to-dos are each their own stream; ``--lists 1`` puts everyone on one);
  ``GET /v1/todolists/{id}`` reads eight other lists of ten to-dos each.
* **bare**: a Starlette app with one JSON endpoint, served by uvicorn in its own child process
  with the same settings as ``cairn serve``.
* **raw commit**: 32 asyncpg connections, one ``INSERT`` of one row per transaction
  (autocommit) into a plain table of a second fresh database.

The load comes from this process: a minimal asyncio HTTP/1.1 client, one keep-alive
connection per client, one request in flight per connection. Workloads run in interleaved
rounds after a warm-up; rates are medians of the rounds, latencies are pooled over them. The
CPU each party used is printed too (child server, PostgreSQL's processes, this process), so a
reader can see who was saturated: on two cores the server process, PostgreSQL and the load
generator compete, and nothing is pinned.

Exits 1 when a target is missed: POST >= 0.6 x min(bare, raw commit), GET >= 0.6 x bare.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

from ._common import (
    free_port,
    fresh_database,
    machine_facts,
    median,
    percentile,
    postgres_server,
    server_facts,
    table,
)

CLIENTS = 32
PEOPLE = 8
GET_LISTS = 8
TODOS_PER_GET_LIST = 10
TARGET = 0.6
_ONLY = ("bare", "raw", "post", "get", "read", "commit")
"""``--only`` names of the workloads, in the order ``measure`` lists them."""

_TICK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------ the bare endpoint


def serve_bare(port: int, floor_url: str | None = None) -> None:
    """The bare contender: one JSON endpoint, uvicorn with the settings ``cairn serve`` uses.

    With ``floor_url``, two more endpoints, each the bare one plus the least database work
    any design of that request must do on its own, for the floors printed under the table:
    ``/query`` reads one row by primary key, ``/commit`` inserts one row in its own
    transaction (durably, like an append), each through a pool of the size ``cairn serve``
    uses. No authentication, no decision, no read model, no rendering."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    pool: asyncpg.Pool | None = None
    counter = 0

    async def hello(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "id": "rec_0123456789abcdef0123", "count": 1})

    async def query(request: Request) -> JSONResponse:
        assert pool is not None
        row = await pool.fetchrow("SELECT id, content FROM floor_rows WHERE id = $1", 1)
        return JSONResponse({"status": "ok", "id": row["id"], "content": row["content"]})

    async def commit(request: Request) -> JSONResponse:
        nonlocal counter
        assert pool is not None
        counter += 1
        new_id = await pool.fetchval(
            "INSERT INTO floor_rows (content) VALUES ($1) RETURNING id", f"Bench to-do {counter}"
        )
        return JSONResponse({"status": "ok", "id": new_id}, status_code=201)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal pool
        if floor_url is None:
            yield
            return
        pool = await asyncpg.create_pool(floor_url, min_size=2, max_size=20)
        await pool.execute(
            "CREATE TABLE IF NOT EXISTS floor_rows (id bigserial PRIMARY KEY, content text NOT NULL);"
            "INSERT INTO floor_rows (content) VALUES ('the row the reads fetch')"
        )
        try:
            yield
        finally:
            await pool.close()

    routes = [Route("/json", hello)]
    if floor_url is not None:
        routes += [Route("/query", query), Route("/commit", commit, methods=["POST"])]
    app = Starlette(routes=routes, lifespan=lifespan)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws_per_message_deflate=False,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
    )


# ------------------------------------------------------------------ a small HTTP/1.1 client


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time; responses need a
    Content-Length (Starlette always sends one for these endpoints)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.head_end = -1
        self.total = -1
        self.status = 0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.total < 0:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            self.status = int(head[0][9:12])
            length = next(
                (
                    int(value)
                    for name, _, value in (line.partition(":") for line in head[1:])
                    if name.strip().lower() == "content-length"
                ),
                0,
            )
            self.head_end = end + 4
            self.total = self.head_end + length
        if len(self.buffer) >= self.total:
            body = bytes(self.buffer[self.head_end : self.total])
            del self.buffer[: self.total]
            self.total = -1
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result((self.status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc}"))

    async def request(self, data: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter


async def _connect(port: int) -> _Connection:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(_Connection, "127.0.0.1", port)
    return protocol


def _get(port: int, path: str, token: str | None = None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}\r\n".encode()


def _post(port: int, path: str, token: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


# ------------------------------------------------------------------ CPU accounting


def _proc_stat(pid: int) -> list[str]:
    """Fields of ``/proc/<pid>/stat`` after the command name (state, ppid, ...)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system) used by process ``pid`` so far; 0 if it is gone."""
    try:
        fields = _proc_stat(pid)
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def _children_of(parent: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int(_proc_stat(int(entry.name))[1]) == parent:
                    pids.append(int(entry.name))
    return pids


@dataclass
class Cpu:
    """CPU seconds of the parties: a server process, PostgreSQL (postmaster and its
    children, when it runs on this machine) and this process."""

    server_pid: int | None
    postmaster: int | None

    def sample(self) -> dict[str, float]:
        out = {"client": time.process_time()}
        out["server"] = _cpu_of(self.server_pid) if self.server_pid else 0.0
        if self.postmaster is not None:
            pids = [self.postmaster, *_children_of(self.postmaster)]
            out["pg"] = sum(_cpu_of(p) for p in pids)
            out["pg_pids"] = float(len(pids))
        return out


async def _postmaster_pid(url: str) -> int | None:
    """The postmaster's pid when PostgreSQL runs on this machine (the embedded server)."""
    conn = await asyncpg.connect(url)
    try:
        backend = int(await conn.fetchval("SELECT pg_backend_pid()"))
        try:
            return int(_proc_stat(backend)[1])
        except OSError:
            return None
    finally:
        await conn.close()


# ------------------------------------------------------------------ workloads


@dataclass
class Result:
    """One round of one workload."""

    count: int
    seconds: float
    latencies: list[float]
    cpu: dict[str, float]

    @property
    def rate(self) -> float:
        return self.count / self.seconds


@dataclass
class Workload:
    """A named workload: ``step(client_index)`` does one request and raises on failure."""

    name: str
    step: Callable[[int], Awaitable[None]]
    cpu: Cpu
    results: list[Result] = field(default_factory=list)

    async def run(self, seconds: float, *, keep: bool = True) -> Result:
        deadline = time.perf_counter() + seconds
        latencies: list[list[float]] = [[] for _ in range(CLIENTS)]

        async def loop(index: int) -> None:
            mine = latencies[index]
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                await self.step(index)
                mine.append(time.perf_counter() - started)

        before = self.cpu.sample()
        start = time.perf_counter()
        await asyncio.gather(*(loop(i) for i in range(CLIENTS)))
        elapsed = time.perf_counter() - start
        after = self.cpu.sample()
        cpu = {k: (after[k] - before[k]) / elapsed for k in before if k != "pg_pids"}
        flat = [x for per in latencies for x in per]
        result = Result(len(flat), elapsed, flat, cpu)
        if keep:
            self.results.append(result)
        return result

    def rate(self) -> float:
        return median([r.rate for r in self.results])

    def latency(self, p: float) -> float:
        return percentile([x for r in self.results for x in r.latencies], p) * 1000

    def cpu_share(self, party: str) -> str:
        values = [r.cpu[party] for r in self.results if party in r.cpu]
        return f"{median(values) * 100:.0f}%" if values else "n/a"


class HttpClients:
    """``CLIENTS`` keep-alive connections to one server."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conns: list[_Connection] = []

    async def open(self) -> None:
        self.conns = [await _connect(self.port) for _ in range(CLIENTS)]

    def close(self) -> None:
        for conn in self.conns:
            if conn.transport is not None:
                conn.transport.close()

    async def expect(self, index: int, request: bytes, status: int) -> bytes:
        if self.conns[index].closed:
            # uvicorn closes connections idle for 5 s (while other workloads ran).
            self.conns[index] = await _connect(self.port)
        got, body = await asyncio.wait_for(self.conns[index].request(request), 60)
        if got != status:
            raise RuntimeError(f"expected {status}, got {got}: {body[:300]!r}")
        return body


class RawCommits:
    """32 asyncpg connections, one single-row INSERT (its own transaction) per step."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conns: list[asyncpg.Connection] = []
        self.n = 0

    async def open(self) -> None:
        self.conns = [await asyncpg.connect(self.url) for _ in range(CLIENTS)]
        await self.conns[0].execute(
            "CREATE TABLE todos (id bigserial PRIMARY KEY, list_id text NOT NULL, "
            "content text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
        )

    async def close(self) -> None:
        for conn in self.conns:
            await conn.close()

    async def step(self, index: int) -> None:
        self.n += 1
        await self.conns[index].execute(
            "INSERT INTO todos (list_id, content) VALUES ($1, $2)",
            f"list-{index % 8}",
            f"Bench to-do {self.n}",
        )


# ------------------------------------------------------------------ set-up


@dataclass
class Fixture:
    """What the Cairn workloads use: tokens of the members, lists to post to and to read."""

    tokens: list[str]
    post_lists: list[str]
    get_lists: list[str]


async def _wait_up(
    port: int, path: str, token: str | None, process: subprocess.Popen[bytes]
) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
        for _ in range(600):
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(path)).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not come up")


async def set_up(port: int, admin_token: str, post_lists: int) -> Fixture:
    """A project, ``PEOPLE`` members with tokens, lists to post to and lists to read."""
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {admin_token}"}, timeout=60
    ) as admin:

        async def ok(response: httpx.Response) -> dict[str, object]:
            if response.status_code >= 300:
                raise RuntimeError(
                    f"{response.request.url}: {response.status_code} {response.text}"
                )
            data: dict[str, object] = response.json()
            return data

        project = await ok(await admin.post("/v1/projects", json={"name": "Bench project"}))
        project_id = project["id"]
        tokens = []
        for i in range(PEOPLE):
            person = await ok(
                await admin.post(
                    "/v1/people",
                    json={
                        "name": f"Member {i}",
                        "email": f"member{i}@example.com",
                        "role": "member",
                    },
                )
            )
            await ok(
                await admin.put(
                    f"/v1/projects/{project_id}/people/{person['id']}",
                    json={"project_role": "member"},
                )
            )
            issued = await ok(
                await admin.post(f"/v1/people/{person['id']}/tokens", json={"label": "bench"})
            )
            tokens.append(str(issued["token"]))

        async def new_list(name: str) -> str:
            made = await ok(
                await admin.post(f"/v1/projects/{project_id}/todolists", json={"name": name})
            )
            return str(made["id"])

        posting = [await new_list(f"Posting {i}") for i in range(post_lists)]
        reading = [await new_list(f"Reading {i}") for i in range(GET_LISTS)]
        for list_id in reading:
            for j in range(TODOS_PER_GET_LIST):
                await ok(
                    await admin.post(
                        f"/v1/todolists/{list_id}/todos",
                        json={"content": f"Read me {j}", "notes": "<p>Some notes.</p>"},
                    )
                )
    return Fixture(tokens=tokens, post_lists=posting, get_lists=reading)


@contextlib.contextmanager
def child(args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, *args], env=env)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ------------------------------------------------------------------ the run


async def run(args: argparse.Namespace) -> int:
    from service.bootstrap import create_admin
    from service.database.migrate import migrate_url
    from service.events.store import EventStore

    seconds, rounds, warm = (2.0, 3, 1.0) if args.quick else (5.0, 5, 2.0)
    with postgres_server() as server:
        async with (
            fresh_database(server, "api") as url,
            fresh_database(server, "rawcommit") as raw_url,
        ):
            await migrate_url(url)
            store = await EventStore.open(url, min_size=1, max_size=2)
            try:
                admin = await create_admin(store, "Bench Admin", "bench-admin@example.com")
            finally:
                await store.close()
            postmaster = await _postmaster_pid(url)
            cairn_port, bare_port = free_port(), free_port()
            env = {
                **os.environ,
                "DATABASE_URL": url,
                "CAIRN_RATE_LIMIT": "0",
                "PYTHONUNBUFFERED": "1",
            }
            serve = [
                "-m",
                "service.cli",
                "serve",
                "--port",
                str(cairn_port),
                "--log-level",
                "warning",
            ]
            bare_cmd = ["-m", "bench.api", "--serve-bare", str(bare_port), "--floor-url", raw_url]
            with child(serve, env) as cairn, child(bare_cmd, env) as bare:
                await _wait_up(cairn_port, "/v1/me", admin.token, cairn)
                await _wait_up(bare_port, "/json", None, bare)
                fixture = await set_up(cairn_port, admin.token, args.lists)
                return await measure(
                    args, fixture, cairn, bare, cairn_port, bare_port, raw_url, postmaster,
                    seconds, rounds, warm, url,
                )  # fmt: skip


async def measure(
    args: argparse.Namespace,
    fixture: Fixture,
    cairn: subprocess.Popen[bytes],
    bare: subprocess.Popen[bytes],
    cairn_port: int,
    bare_port: int,
    raw_url: str,
    postmaster: int | None,
    seconds: float,
    rounds: int,
    warm: float,
    url: str,
) -> int:
    cairn_http, bare_http = HttpClients(cairn_port), HttpClients(bare_port)
    raw = RawCommits(raw_url)
    await cairn_http.open()
    await bare_http.open()
    await raw.open()
    tokens = fixture.tokens
    bare_request = _get(bare_port, "/json")
    gets = [
        _get(cairn_port, f"/v1/todolists/{fixture.get_lists[i % GET_LISTS]}", tokens[i % PEOPLE])
        for i in range(CLIENTS)
    ]
    posted = 0

    def post_step(lists: list[str]) -> Callable[[int], Awaitable[None]]:
        async def step(index: int) -> None:
            nonlocal posted
            posted += 1
            body = (
                b'{"content":"Bench to-do %d","notes":"<p>Posted by the benchmark.</p>"}' % posted
            )
            path = f"/v1/todolists/{lists[index % len(lists)]}/todos"
            await cairn_http.expect(
                index, _post(cairn_port, path, tokens[index % PEOPLE], body), 201
            )

        return step

    async def get_step(index: int) -> None:
        await cairn_http.expect(index, gets[index], 200)

    async def bare_step(index: int) -> None:
        await bare_http.expect(index, bare_request, 200)

    floor_read, floor_commit = _get(bare_port, "/query"), _post(bare_port, "/commit", "-", b"{}")

    async def floor_read_step(index: int) -> None:
        await bare_http.expect(index, floor_read, 200)

    async def floor_commit_step(index: int) -> None:
        await bare_http.expect(index, floor_commit, 201)

    workloads = [
        Workload("bare Starlette JSON endpoint", bare_step, Cpu(bare.pid, None)),
        Workload(f"raw asyncpg commit ({CLIENTS} connections)", raw.step, Cpu(None, postmaster)),
        Workload(
            f"POST to-do ({len(fixture.post_lists)} lists)",
            post_step(fixture.post_lists),
            Cpu(cairn.pid, postmaster),
        ),
        Workload("GET to-do list (10 to-dos)", get_step, Cpu(cairn.pid, postmaster)),
        Workload("floor: bare + 1 row read", floor_read_step, Cpu(bare.pid, postmaster)),
        Workload("floor: bare + 1 row commit", floor_commit_step, Cpu(bare.pid, postmaster)),
    ]
    if not args.quick:
        workloads.append(
            Workload(
                "POST to-do (all on 1 list)",
                post_step(fixture.post_lists[:1]),
                Cpu(cairn.pid, postmaster),
            )
        )
    if args.only:
        # Profiling aid: one workload, one long round, no verdict.
        chosen = workloads[_ONLY.index(args.only)]
        try:
            result = await chosen.run(args.only_seconds)
        finally:
            cairn_http.close()
            bare_http.close()
            await raw.close()
        print(f"{chosen.name}: {result.rate:,.0f}/s, cpu {result.cpu}", flush=True)
        return 0
    try:
        for w in workloads:
            await w.run(warm, keep=False)
        for r in range(rounds):
            order = workloads[r % len(workloads) :] + workloads[: r % len(workloads)]
            for w in order:
                result = await w.run(seconds)
                print(f"round {r + 1}: {w.name}: {result.rate:,.0f}/s", flush=True)
    finally:
        cairn_http.close()
        bare_http.close()
        await raw.close()

    bare_w, raw_w, post_w, get_w, read_w, commit_w = workloads[:6]
    rows = [
        [
            w.name,
            f"{w.rate():,.0f}",
            f"{w.latency(50):.1f}",
            f"{w.latency(99):.1f}",
            w.cpu_share("server") if w is not raw_w else "—",
            w.cpu_share("pg") if w is not bare_w else "—",
            w.cpu_share("client"),
        ]
        for w in workloads
    ]
    print()
    print(
        table(["workload", "req/s", "p50 ms", "p99 ms", "server CPU", "PG CPU", "client CPU"], rows)
    )
    floor = min(bare_w.rate(), raw_w.rate())
    post_ratio = post_w.rate() / floor
    get_ratio = get_w.rate() / bare_w.rate()
    checks = [
        ("POST / min(bare, raw commit)", post_ratio),
        ("GET / bare", get_ratio),
    ]
    floors = [
        ("floor: bare + 1 row commit / min(bare, raw commit)", commit_w.rate() / floor),
        ("floor: bare + 1 row read / bare", read_w.rate() / bare_w.rate()),
    ]
    print()
    print(
        table(
            ["ratio", "value", "target", ""],
            [
                [name, f"{value:.2f}", f"≥ {TARGET}", "ok" if value >= TARGET else "MISSED"]
                for name, value in checks
            ]
            + [
                [name, f"{value:.2f}", "—", "(the least any design does)"] for name, value in floors
            ],
        )
    )
    facts = {**machine_facts(), **await server_facts(url), "uvicorn http": _http_impl()}
    print()
    print(", ".join(f"{k}={v}" for k, v in facts.items()))
    print(
        "CPU columns: share of one core over the measured interval (median of rounds); "
        "200% is both cores."
    )
    return 0 if all(value >= TARGET for _, value in checks) else 1


def _http_impl() -> str:
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "httptools"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds of 2 s (default 5 of 5 s)")
    parser.add_argument("--lists", type=int, default=8, help="to-do lists the POSTs spread over")
    parser.add_argument(
        "--only",
        choices=_ONLY,
        help="one workload alone (profiling)",
    )
    parser.add_argument("--only-seconds", type=float, default=30.0, help="its duration")
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--floor-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare, args.floor_url)
        return
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()

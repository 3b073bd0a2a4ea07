"""Real-time hub: delivery latency, fan-out next to a naive broadcast loop, memory per socket.

Run ``python -m bench.realtime`` (about two minutes) or ``python -m bench.realtime --quick``.
Uses ``DATABASE_URL`` if set, else starts a throwaway embedded PostgreSQL.

Servers run in their own processes (``python -m bench.realtime --serve ...``), clients in this
one, so a server's RSS is its own. In one run:

* **(a) latency**: 100 sockets subscribed to a project; messages posted one at a time over
  HTTP; for each, the time from the POST's response to each socket's receipt (an event that
  arrives before the response counts as 0). Targets: p50 ≤ 10 ms, p99 ≤ 50 ms.
* **(b) fan-out**: 1,000 sockets on one instance; one event; the time from the first
  socket's receipt to the last one's (the fan-out itself), next to a naive Starlette app
  whose POST handler loops ``await ws.send_text(frame)`` over its sockets, with a frame of
  the same size. Rounds alternate between the two; medians. Target: Cairn ≤ 1.2 × naive.
  The time from the trigger request to the last receipt is printed too, but not compared:
  Cairn's trigger is a message POST (append, read models, log follower), the naive one a
  bare loop.
* **(c) memory**: server RSS growth over 2,000 idle sockets (authenticated, each subscribed
  to a project), with per-message deflate off (what ``cairn serve`` runs) and on. Target:
  ≤ 50 KiB per socket, compression off.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import msgspec
from websockets.asyncio.client import ClientConnection, connect

from service.database.migrate import migrate_url

from . import _common
from ._common import (
    Process,
    arguments,
    first_admin,
    fresh_database,
    machine_facts,
    median,
    percentile,
    postgres_server,
    serve_cairn,
    server_facts,
    table,
    verdict,
    wait_for_token,
)

LATENCY_P50_MS = 10.0
LATENCY_P99_MS = 50.0
FANOUT_RATIO = 1.2
KIB_PER_SOCKET = 50.0


# ------------------------------------------------------------------ servers (own processes)


def _serve_cairn(port: int, deflate: bool) -> None:
    from service.config import from_env

    settings = from_env(os.environ["DATABASE_URL"], port=port)
    # The same uvicorn settings as `cairn serve`, compression aside.
    serve_cairn(
        port,
        ws_per_message_deflate=deflate,
        ws_ping_interval=settings.ping_interval,
        ws_ping_timeout=settings.ping_timeout,
    )


def _serve_naive(port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket

    sockets: set[WebSocket] = set()

    async def stream(websocket: WebSocket) -> None:
        await websocket.accept()
        sockets.add(websocket)
        try:
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass
        finally:
            sockets.discard(websocket)

    async def broadcast(request: Request) -> PlainTextResponse:
        text = (await request.body()).decode()
        # The naive loop: one task awaits every send in turn.
        for websocket in list(sockets):
            await websocket.send_text(text)
        return PlainTextResponse(str(len(sockets)))

    async def health(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[
            WebSocketRoute("/ws", stream),
            Route("/broadcast", broadcast, methods=["POST"]),
            Route("/v1/health", health),
        ]
    )
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws_per_message_deflate=False,
        backlog=4096,
    )


def server_process(
    kind: str, database_url: str, *, deflate: bool = False
) -> contextlib.AbstractAsyncContextManager[Process]:
    """A server of ``kind`` (``cairn`` or ``naive``) in a process of its own."""
    extra = ("--deflate",) if deflate else ()
    return _common.server_process("bench.realtime", kind, database_url, *extra)


# ------------------------------------------------------------------ clients (this process)


class _Probe(msgspec.Struct):
    type: str
    recording: str | None = None


_probe = msgspec.json.Decoder(_Probe)


@dataclass
class Fleet:
    """Many WebSocket clients; each records when it received which recording's event."""

    sockets: list[ClientConnection] = field(default_factory=list)
    readers: list[asyncio.Task[None]] = field(default_factory=list)
    received: dict[str, list[float]] = field(default_factory=dict)
    waiters: dict[str, tuple[int, asyncio.Event]] = field(default_factory=dict)
    last_size: int = 0

    async def open(
        self,
        url: str,
        count: int,
        headers: dict[str, str],
        hello: str | None,
        *,
        deflate: bool = False,
    ) -> None:
        gate = asyncio.Semaphore(64)

        async def one() -> None:
            async with gate:
                conn = await connect(
                    url,
                    additional_headers=headers,
                    compression="deflate" if deflate else None,
                    max_size=None,
                    open_timeout=60,
                    ping_interval=None,
                )
                if hello is not None:
                    await conn.send(hello)
                    answer = json.loads(await conn.recv())
                    assert answer["type"] == "subscribed", answer
                self.sockets.append(conn)
                self.readers.append(asyncio.get_running_loop().create_task(self._read(conn)))

        await asyncio.gather(*(one() for _ in range(count)))

    async def _read(self, conn: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            async for message in conn:
                now = time.perf_counter()
                self.last_size = len(message)
                probe = _probe.decode(message)
                if probe.recording is None:
                    continue
                times = self.received.setdefault(probe.recording, [])
                times.append(now)
                waiter = self.waiters.get(probe.recording)
                if waiter is not None and len(times) >= waiter[0]:
                    waiter[1].set()

    async def wait_for(self, key: str, count: int) -> list[float]:
        times = self.received.get(key, [])
        if len(times) < count:
            done = asyncio.Event()
            self.waiters[key] = (count, done)
            async with asyncio.timeout(60):
                await done.wait()
            del self.waiters[key]
        return self.received.pop(key)

    async def close(self) -> None:
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*(c.close() for c in self.sockets), return_exceptions=True)
        self.sockets.clear()
        self.readers.clear()


@dataclass
class Cairn:
    """The HTTP side of one Cairn server, as its first admin."""

    client: httpx.AsyncClient
    token: str
    ws_url: str

    async def project(self) -> str:
        response = await self.client.post("/v1/projects", json={"name": "Bench"})
        response.raise_for_status()
        return str(response.json()["id"])

    async def post(self, project: str, n: int) -> tuple[str, float, float]:
        """Post a message: (its id, when the request was sent, when the response came)."""
        body = {"subject": f"Bench message {n}", "body": "<p>" + "lorem ipsum " * 20 + "</p>"}
        sent = time.perf_counter()
        response = await self.client.post(f"/v1/projects/{project}/messages", json=body)
        response.raise_for_status()
        return str(response.json()["id"]), sent, time.perf_counter()

    async def stats(self) -> dict[str, int]:
        return dict((await self.client.get("/v1/realtime/stats")).json())


@contextlib.asynccontextmanager
async def cairn_client(process: Process, token: str) -> AsyncIterator[Cairn]:
    async with httpx.AsyncClient(
        base_url=process.base, headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as client:
        await wait_for_token(client)
        yield Cairn(client, token, process.base.replace("http", "ws", 1) + "/v1/stream")


def _subscribe(project: str) -> str:
    return json.dumps({"type": "subscribe", "project_id": project})


# ------------------------------------------------------------------ (a) latency


async def latency(cairn: Cairn, posts: int) -> dict[str, float]:
    project = await cairn.project()
    fleet = Fleet()
    headers = {"Authorization": f"Bearer {cairn.token}"}
    await fleet.open(cairn.ws_url, 100, headers, _subscribe(project))
    try:
        for n in range(10):  # warm-up
            rec, _, _ = await cairn.post(project, n)
            await fleet.wait_for(rec, 100)
        samples: list[float] = []
        from_request: list[float] = []
        posting: list[float] = []
        early = 0
        for n in range(posts):
            rec, sent, answered = await cairn.post(project, n)
            posting.append((answered - sent) * 1000)
            for at in await fleet.wait_for(rec, 100):
                early += at < answered
                samples.append(max(0.0, at - answered) * 1000)
                from_request.append((at - sent) * 1000)
            await asyncio.sleep(0.01)
    finally:
        await fleet.close()
    return {
        "p50": percentile(samples, 50),
        "p99": percentile(samples, 99),
        "max": max(samples),
        "early": early / len(samples),
        "request_p50": percentile(from_request, 50),
        "request_p99": percentile(from_request, 99),
        "post_p50": percentile(posting, 50),
    }


# ------------------------------------------------------------------ (b) fan-out


async def fanout(cairn: Cairn, naive: Process, rounds: int) -> dict[str, float]:
    project = await cairn.project()
    headers = {"Authorization": f"Bearer {cairn.token}"}
    ours, theirs = Fleet(), Fleet()
    await ours.open(cairn.ws_url, 1000, headers, _subscribe(project))
    await theirs.open(naive.base.replace("http", "ws", 1) + "/ws", 1000, {}, None)
    timings: dict[str, list[float]] = {
        "cairn": [],
        "naive": [],
        "cairn_spread": [],
        "naive_spread": [],
    }
    try:
        async with httpx.AsyncClient(base_url=naive.base, timeout=60) as naive_client:
            # One real event frame, so that the naive loop sends the same bytes per socket.
            rec, _, _ = await cairn.post(project, -1)
            await ours.wait_for(rec, 1000)
            size = ours.last_size

            async def cairn_round(n: int) -> None:
                started = time.perf_counter()
                rec, _, _ = await cairn.post(project, n)
                times = await ours.wait_for(rec, 1000)
                timings["cairn"].append((max(times) - started) * 1000)
                timings["cairn_spread"].append((max(times) - min(times)) * 1000)

            async def naive_round(n: int) -> None:
                key = f"rec_naive_{n}"
                text = json.dumps({"type": "event", "recording": key, "pad": ""})
                text = text.replace('"pad": ""', '"pad": "' + "x" * max(0, size - len(text)) + '"')
                started = time.perf_counter()
                await naive_client.post("/broadcast", content=text)
                times = await theirs.wait_for(key, 1000)
                timings["naive"].append((max(times) - started) * 1000)
                timings["naive_spread"].append((max(times) - min(times)) * 1000)

            await cairn_round(0)  # warm-up
            await naive_round(0)
            for n in range(1, rounds + 1):
                first, second = (cairn_round, naive_round) if n % 2 else (naive_round, cairn_round)
                await first(n)
                await asyncio.sleep(0.2)
                await second(n)
                await asyncio.sleep(0.2)
    finally:
        await ours.close()
        await theirs.close()
    result = {k: median(v) for k, v in timings.items()}
    result["ratio"] = result["cairn_spread"] / result["naive_spread"]
    return result


# ------------------------------------------------------------------ (c) memory


async def memory(database_url: str, token: str, deflate: bool, count: int) -> dict[str, float]:
    async with (
        server_process("cairn", database_url, deflate=deflate) as process,
        cairn_client(process, token) as cairn,
    ):
        project = await cairn.project()
        headers = {"Authorization": f"Bearer {token}"}
        warm = Fleet()  # load every lazily imported module and warm the allocator
        await warm.open(cairn.ws_url, 50, headers, _subscribe(project), deflate=deflate)
        await warm.close()
        await asyncio.sleep(0.5)
        before = process.rss
        fleet = Fleet()
        await fleet.open(cairn.ws_url, count, headers, _subscribe(project), deflate=deflate)
        try:
            stats = await cairn.stats()
            assert stats["connections"] >= count, stats
            # An event through every socket, so that each has sent (and read) a frame.
            rec, _, _ = await cairn.post(project, 0)
            await fleet.wait_for(rec, count)
            await asyncio.sleep(0.5)
            after = process.rss
        finally:
            await fleet.close()
    return {
        "kib": (after - before) / count / 1024,
        "before_mib": before / 2**20,
        "after_mib": after / 2**20,
    }


# ------------------------------------------------------------------ main


async def _main(args: argparse.Namespace) -> int:
    posts = args.posts or (60 if args.quick else 300)
    rounds = args.rounds or (3 if args.quick else 7)
    count = 2000
    started = time.perf_counter()
    with postgres_server() as server:
        facts = {**machine_facts(), **await server_facts(server.admin_url)}
        print(
            f"bench.realtime: {posts} posts to 100 sockets, {rounds} fan-out rounds, {count} idle sockets"
        )
        print(", ".join(f"{k}={v}" for k, v in facts.items()))
        async with fresh_database(server, "rt") as url:
            await migrate_url(url)
            token = await first_admin(url, "Bench Admin", "bench@example.com")
            async with (
                server_process("cairn", url) as process,
                server_process("naive", url) as naive,
                cairn_client(process, token) as cairn,
            ):
                lat = await latency(cairn, posts)
                fan = await fanout(cairn, naive, rounds)
            mem_off = await memory(url, token, False, count)
            mem_on = await memory(url, token, True, count)
    missed = []
    if lat["p50"] > LATENCY_P50_MS:
        missed.append(f"latency p50 {lat['p50']:.1f} ms > {LATENCY_P50_MS:g} ms")
    if lat["p99"] > LATENCY_P99_MS:
        missed.append(f"latency p99 {lat['p99']:.1f} ms > {LATENCY_P99_MS:g} ms")
    if fan["ratio"] > FANOUT_RATIO:
        missed.append(f"fan-out {fan['ratio']:.2f} x naive > {FANOUT_RATIO:g} x")
    if mem_off["kib"] > KIB_PER_SOCKET:
        missed.append(f"memory {mem_off['kib']:.1f} KiB per socket > {KIB_PER_SOCKET:g} KiB")

    def ok(value: float, target: float) -> str:
        return "ok" if value <= target else "MISSED"

    rows = [
        ["(a) POST response → receipt, 100 sockets, p50", f"{lat['p50']:.1f} ms", f"≤ {LATENCY_P50_MS:g} ms", ok(lat["p50"], LATENCY_P50_MS)],
        ["(a) POST response → receipt, 100 sockets, p99", f"{lat['p99']:.1f} ms", f"≤ {LATENCY_P99_MS:g} ms", ok(lat["p99"], LATENCY_P99_MS)],
        ["(a) POST request → receipt, p50 / p99", f"{lat['request_p50']:.1f} / {lat['request_p99']:.1f} ms", "—", ""],
        ["(a) POST request → response, p50", f"{lat['post_p50']:.1f} ms", "—", ""],
        ["(b) 1,000 sockets, first → last receipt: Cairn", f"{fan['cairn_spread']:.1f} ms", "—", ""],
        ["(b) 1,000 sockets, first → last receipt: naive", f"{fan['naive_spread']:.1f} ms", "—", ""],
        ["(b) fan-out Cairn / naive", f"{fan['ratio']:.2f}", f"≤ {FANOUT_RATIO:g}", ok(fan["ratio"], FANOUT_RATIO)],
        ["(b) trigger → last receipt: Cairn / naive", f"{fan['cairn']:.1f} / {fan['naive']:.1f} ms", "—", ""],
        ["(c) RSS per idle socket, deflate off", f"{mem_off['kib']:.1f} KiB", f"≤ {KIB_PER_SOCKET:g} KiB", ok(mem_off["kib"], KIB_PER_SOCKET)],
        ["(c) RSS per idle socket, deflate on", f"{mem_on['kib']:.1f} KiB", "—", ""],
    ]  # fmt: skip
    print()
    print(table(["measure", "value", "target", ""], rows))
    print(
        f"\n(a) {lat['early'] * 100:.0f} % of receipts came before the POST's response (counted as 0)."
        f"\n(c) server RSS {mem_off['before_mib']:.0f} → {mem_off['after_mib']:.0f} MiB (off), "
        f"{mem_on['before_mib']:.0f} → {mem_on['after_mib']:.0f} MiB (on)."
        f"\ntotal {time.perf_counter() - started:.0f} s"
    )
    return verdict(missed)


def main() -> None:
    parser = arguments("bench.realtime", __doc__, "short run (~1 min)")
    parser.add_argument("--posts", type=int, help="messages posted for (a)")
    parser.add_argument("--rounds", type=int, help="fan-out rounds per contender for (b)")
    parser.add_argument("--serve", choices=["cairn", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--deflate", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "cairn":
        _serve_cairn(args.port, args.deflate)
    elif args.serve == "naive":
        _serve_naive(args.port)
    else:
        gc.collect()
        sys.exit(asyncio.run(_main(args)))


if __name__ == "__main__":
    main()

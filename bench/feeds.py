"""Feeds: full 50-entry feed responses and 304 answers, next to a bare Starlette endpoint.

Run ``python -m bench.feeds`` (about a minute) or ``python -m bench.feeds --quick``. Uses
``DATABASE_URL`` if set, else starts a throwaway embedded PostgreSQL. Exits 1 when a target
is missed.

In one run, servers in their own processes (uvicorn, one worker each, as ``cairn serve``
runs), clients in this one:

* **bare**: a Starlette app whose one route answers a fixed 2-byte body;
* **full**: ``GET /feeds/projects/{id}.atom?token=...`` on a project with 120 activity
  items: the full path (feed-token auth, visibility, stamp, count, 50 rows, render);
* **304**: the same request with ``If-None-Match`` of the current ETag.

Both are steady-state polls: the instance remembers answers while the read models stand
still (``service/feeds/cache.py``), so a repeated 200 is sent from the rendered bytes and a
304 needs no query. Two more rows, for information (no target), come from a second server
whose caches forget everything: **full, uncached** renders every response (auth,
visibility, stamp, count, 50 rows, feedgen) and **304, uncached** authenticates, scopes and
reads the stamp every time.

The load comes from plain asyncio HTTP/1.1 keep-alive connections (``--connections``, 16 by
default): a minimal client, so that the client's own cost does not flatten the ratios.
Rounds alternate the three contenders; the table shows medians. Targets: full ≥ 0.3 × bare,
304 ≥ 0.7 × bare.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time

import httpx

from service.database.migrate import migrate_url

from ._common import (
    arguments,
    first_admin,
    fresh_database,
    machine_facts,
    median,
    postgres_server,
    serve_cairn,
    server_facts,
    server_process,
    table,
    wait_for_token,
)

FULL_RATIO = 0.3
NOT_MODIFIED_RATIO = 0.7
ITEMS = 120

# ------------------------------------------------------------------ servers (own processes)


def _serve_cairn(port: int, *, cold: bool = False) -> None:
    from service.http import app

    if cold:
        # Informational contenders: nothing remembered between requests, so every 200
        # renders and every 304 authenticates, scopes and reads the stamp.
        class Forgetful(app.FeedCache):
            def __init__(self) -> None:
                super().__init__()
                self.answers.limit = 0
                self.bodies.limit = 0

        app.FeedCache = Forgetful  # type: ignore[misc]

    serve_cairn(port, access_log=False)


def _serve_bare(port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/v1/health", ok), Route("/bare", ok)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# ------------------------------------------------------------------ the load


async def _connection(port: int, request: bytes, expect: int, deadline: float) -> int:
    """Send ``request`` over one keep-alive connection until ``deadline``; count answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    done = 0
    try:
        while time.perf_counter() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            if status != expect:
                raise RuntimeError(f"expected {expect}, got {head.decode(errors='replace')}")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            done += 1
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return done


async def rate(port: int, request: bytes, expect: int, seconds: float, connections: int) -> float:
    """Responses per second over ``connections`` keep-alive connections for ``seconds``."""
    start = time.perf_counter()
    deadline = start + seconds
    counts = await asyncio.gather(
        *(_connection(port, request, expect, deadline) for _ in range(connections))
    )
    return sum(counts) / (time.perf_counter() - start)


def _get(port: int, path: str, *extra: str) -> bytes:
    # The Host header makes the feed's links, so it is part of the ETag: send httpx's.
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", *extra, "", ""]
    return "\r\n".join(lines).encode()


async def _prepare(base: str, database_url: str) -> tuple[str, str]:
    """A project with :data:`ITEMS` activity items; returns (feed path with token, ETag)."""
    admin_token = await first_admin(database_url, "Ada Admin", "ada@example.com")
    headers = {"Authorization": f"Bearer {admin_token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
        await wait_for_token(client)
        project = (await client.post("/v1/projects", json={"name": "Bench"})).json()["id"]
        todolist = (
            await client.post(f"/v1/projects/{project}/todolists", json={"name": "Launch"})
        ).json()["id"]
        for n in range(ITEMS - 2):
            body = {"content": f"Task {n}: check the “feeds” <script>x</script> — 東京"}
            response = await client.post(f"/v1/todolists/{todolist}/todos", json=body)
            response.raise_for_status()
        token = (await client.post("/v1/me/feed_token")).json()["token"]
        path = f"/feeds/projects/{project}.atom?token={token}"
        feed = await client.get(path, headers={"Authorization": ""})
        feed.raise_for_status()
        entries = feed.text.count("<entry>")
        if entries != 50:
            raise RuntimeError(f"the feed has {entries} entries, not 50")
        return path, feed.headers["etag"]


async def _etag(base: str, path: str) -> str:
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        response = await client.get(path)
        response.raise_for_status()
        return response.headers["etag"]


async def main(args: argparse.Namespace) -> int:
    with postgres_server() as server:
        facts = {**machine_facts(), **await server_facts(server.admin_url)}
        async with fresh_database(server, "feeds") as url:
            await migrate_url(url)
            async with (
                server_process("bench.feeds", "cairn", url) as cairn,
                server_process("bench.feeds", "cairn-cold", url) as cold,
                server_process("bench.feeds", "bare", url) as bare,
            ):
                path, etag = await _prepare(cairn.base, url)
                # The Host header is part of the ETag: the cold server's differs by its port.
                cold_etag = await _etag(cold.base, path)
                contenders = {
                    "bare": (bare.port, _get(bare.port, "/bare"), 200),
                    "full": (cairn.port, _get(cairn.port, path), 200),
                    "304": (cairn.port, _get(cairn.port, path, f"If-None-Match: {etag}"), 304),
                    "full, uncached": (cold.port, _get(cold.port, path), 200),
                    "304, uncached": (
                        cold.port,
                        _get(cold.port, path, f"If-None-Match: {cold_etag}"),
                        304,
                    ),
                }
                for port, request, expect in contenders.values():  # warm-up
                    await rate(port, request, expect, 0.5, args.connections)
                rates: dict[str, list[float]] = {name: [] for name in contenders}
                for round_ in range(args.rounds):
                    names = list(contenders)
                    order = names[round_ % len(names) :] + names[: round_ % len(names)]
                    for name in order:
                        port, request, expect = contenders[name]
                        rates[name].append(
                            await rate(port, request, expect, args.seconds, args.connections)
                        )
    medians = {name: median(values) for name, values in rates.items()}
    ratio_full = medians["full"] / medians["bare"]
    ratio_304 = medians["304"] / medians["bare"]
    print(", ".join(f"{k}={v}" for k, v in facts.items()))
    print(
        f"{args.rounds} rounds x {args.seconds:g} s, {args.connections} connections, "
        f"feed of 50 entries (project with {ITEMS} items)\n"
    )
    rows = [
        ["bare Starlette", f"{medians['bare']:,.0f}", "1.00", "", ""],
        [
            "full feed (200)",
            f"{medians['full']:,.0f}",
            f"{ratio_full:.2f}",
            f"≥ {FULL_RATIO}",
            "ok" if ratio_full >= FULL_RATIO else "MISS",
        ],
        [
            "304 (If-None-Match)",
            f"{medians['304']:,.0f}",
            f"{ratio_304:.2f}",
            f"≥ {NOT_MODIFIED_RATIO}",
            "ok" if ratio_304 >= NOT_MODIFIED_RATIO else "MISS",
        ],
    ]
    for name in ("full, uncached", "304, uncached"):
        rows.append(
            [name, f"{medians[name]:,.0f}", f"{medians[name] / medians['bare']:.2f}", "", ""]
        )
    print(table(["contender", "req/s (median)", "× bare", "target", ""], rows))
    return 0 if ratio_full >= FULL_RATIO and ratio_304 >= NOT_MODIFIED_RATIO else 1


def _args() -> argparse.Namespace:
    parser = arguments("bench.feeds", __doc__, "3 rounds of 1 s")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--serve", choices=["cairn", "cairn-cold", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 3, 1.0
    return args


if __name__ == "__main__":
    options = _args()
    if options.serve in ("cairn", "cairn-cold"):
        _serve_cairn(options.port, cold=options.serve == "cairn-cold")
    elif options.serve == "bare":
        _serve_bare(options.port)
    else:
        sys.exit(asyncio.run(main(options)))

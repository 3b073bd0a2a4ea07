"""The real-time hub beyond one happy process: two ``cairn serve`` instances on one database,
PostgreSQL dropping every connection, peers that stop answering pings, and shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from urllib.parse import urlsplit

import asyncpg
import httpx
from websockets.frames import Close

from service.domain.access import Viewer
from service.domain.context import Context
from service.domain.messages import PostMessage, decide_post_message
from service.domain.projects import fold_project
from service.errors import DatabaseUnavailable
from service.events.base import Metadata
from service.events.store import NO_STREAM, EventStore
from service.events.streams import project_stream, recording_stream
from service.realtime.protocol import CLOSE_SHUTDOWN

from .support.postgres import with_database
from .support.realtime import (
    GUARD,
    RawClient,
    World,
    close_code,
    events,
    frame,
    log_positions,
    realtime_server,
    subscribe,
    ws,
)
from .support.servers import free_port, start_server
from .support.waiting import eventually

# ------------------------------------------------------------------ two instances


@contextmanager
def cairn_serve(database_url: str) -> Iterator[tuple[str, str]]:
    """A ``cairn serve`` process on ``database_url``: (HTTP base URL, WebSocket URL)."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "CAIRN_POLL_INTERVAL": "1.0"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "service.cli",
            "serve",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/v1/stream"
    finally:
        process.terminate()
        process.wait(timeout=GUARD)


async def ready(base_url: str) -> None:
    """Wait until the server at ``base_url`` answers /v1/health."""
    async with httpx.AsyncClient(base_url=base_url) as client:

        async def healthy() -> None:
            assert (await client.get("/v1/health")).status_code == 200, f"{base_url} did not start"

        await eventually(
            healthy, timeout=GUARD, interval=0.05, retry_on=(AssertionError, httpx.TransportError)
        )


async def test_an_event_appended_through_one_instance_reaches_subscribers_of_another(
    database_url: str,
) -> None:
    """Two real server processes on one database: a message posted to A reaches B's socket."""
    with cairn_serve(database_url) as (a_url, _), cairn_serve(database_url) as (b_url, b_ws):
        await asyncio.gather(ready(a_url), ready(b_url))
        async with World.on(a_url, database_url) as world:
            project = await world.project()
            async with ws(b_ws, world.admin_token) as conn:
                await subscribe(conn, project)
                posted = [await world.post(project, f"via A {i}") for i in range(3)]
                got = await events(conn, 3)
        assert [f["recording"] for f in got] == posted
        assert [f["position"] for f in got] == (await log_positions(database_url, project))[-3:]


# ------------------------------------------------------------------ PostgreSQL restarts


async def terminate_backends(admin_url: str, database: str) -> int:
    """Kill every server process on ``database`` (as a PostgreSQL restart would)."""
    conn = await asyncpg.connect(admin_url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                database,
            )
        )
    finally:
        await conn.close()


async def test_subscribers_see_no_gap_across_dropped_database_connections(
    database_url: str,
) -> None:
    """Every connection to PostgreSQL is killed (three times) while events are appended:
    the hub reconnects, and the subscriber gets every event once, in log order."""
    database = urlsplit(database_url).path.lstrip("/")
    admin_url = with_database(database_url, "postgres")
    async with realtime_server(database_url, poll_interval=0.2) as rt:
        url, world = rt.server.ws_url, rt.world
        project = await world.project()
        start = (await log_positions(database_url, project))[-1]
        store = await EventStore.open(database_url, max_size=4)
        try:
            project_state = fold_project(
                e.event for e in await store.read_stream(project_stream(project))
            )
            assert project_state is not None
            viewer = Viewer(person_id=world.admin_id, role="admin")

            async def post(i: int) -> None:
                recording_id = f"rec_pg_{i}_{uuid.uuid4().hex[:6]}"
                decided = decide_post_message(
                    project_state,
                    PostMessage(recording_id=recording_id, subject=f"m{i}", body="<p>x</p>"),
                    Context(actor=viewer, now=datetime.now(UTC)),
                )
                # Retried with the same key until the store is back, as a client would.
                await eventually(
                    lambda: store.append(
                        recording_stream(recording_id),
                        decided,
                        NO_STREAM,
                        Metadata(actor=world.admin_id),
                        idempotency_key=recording_id,
                        project_id=project,
                    ),
                    timeout=GUARD,
                    interval=0.05,
                    retry_on=(DatabaseUnavailable, asyncpg.PostgresConnectionError, OSError),
                )

            async with ws(url, world.admin_token) as conn:
                await subscribe(conn, project)
                for round_ in range(3):
                    await asyncio.gather(*(post(round_ * 40 + i) for i in range(40)))
                    assert await terminate_backends(admin_url, database) > 0
                await asyncio.gather(*(post(1000 + i) for i in range(20)))
                log = await log_positions(database_url, project)
                expected = log[log.index(start) + 1 :]
                assert len(expected) == 140
                got = await events(conn, len(expected))
                assert [f["position"] for f in got] == expected
        finally:
            await store.close()


# ------------------------------------------------------------------ heartbeats, shutdown


async def test_peers_that_stop_answering_pings_are_dropped(database_url: str) -> None:
    """With a short heartbeat, a peer that never answers pings is closed (1011) and
    forgotten, while a peer that answers stays connected."""
    async with (
        realtime_server(database_url, ping_interval=0.2, ping_timeout=0.3) as rt,
        ws(rt.server.ws_url, rt.world.admin_token) as healthy,
    ):
        url, world = rt.server.ws_url, rt.world
        silent = RawClient(url, world.admin_token)
        await silent.open()
        try:
            frames = await silent.read_frames()
        finally:
            silent.close()
        opcodes = [f.opcode.name for f in frames]
        assert "PING" in opcodes
        assert opcodes[-1] == "CLOSE"
        assert Close.parse(frames[-1].data).code == 1011
        # The healthy peer has answered every ping meanwhile and is still served.
        await healthy.send(json.dumps({"type": "unsubscribe", "project_id": "x"}))
        assert (await frame(healthy))["code"] == "not_subscribed"

        async def one_connection() -> None:
            assert (await world.stats())["connections"] == 1

        await eventually(one_connection, timeout=GUARD, interval=0.05)


async def test_shutdown_closes_sockets_with_1012(database_url: str) -> None:
    """Stopping the server closes every WebSocket with 1012 (service restart)."""
    server = await start_server(database_url)
    stopped = False
    try:
        async with World.on(server.base_url, database_url) as world:
            project = await world.project()
            async with ws(server.ws_url, world.admin_token) as conn:
                await subscribe(conn, project)
                code, _ = await asyncio.gather(close_code(conn), server.stop())
                stopped = True
                assert code == CLOSE_SHUTDOWN
    finally:
        if not stopped:
            await server.stop()

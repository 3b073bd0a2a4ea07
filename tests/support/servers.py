"""Cairn served by a real uvicorn on a free port of 127.0.0.1, in the test's event loop.

One way to start a server for every test that needs one (the ``live_server`` fixture, a
second instance on the same database, the real-time and feed tests), configured as
``cairn serve`` configures it, with settings overrides.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import uvicorn
from starlette.types import ASGIApp

from service.commands.caller import utc_now
from service.config import from_env
from service.domain.calendar import Clock
from service.http.app import create_app
from service.http.server import protocol
from service.outbound import Resolver
from service.realtime.endpoint import MAX_READ

from .waiting import eventually

STARTUP_TIMEOUT = 60.0
"""Only there to turn a start-up that hangs into a failure."""


class FixedClock:
    """A clock that says what it is told (``now``), for tests that pin the instant: the
    server's "today" and the times its commands record."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A Cairn server running in this event loop on ``database_url``."""

    database_url: str
    base_url: str
    ws_url: str
    uvicorn: uvicorn.Server
    task: asyncio.Task[None]

    async def stop(self) -> None:
        """Stop as on SIGTERM (WebSockets close with 1012, the app shuts down) and wait
        until uvicorn has returned. Stopping a stopped server does nothing."""
        self.uvicorn.should_exit = True
        await self.task


async def start_server(
    database_url: str,
    *,
    log_level: str = "warning",
    clock: Clock = utc_now,
    resolver: Resolver | None = None,
    **settings: Any,
) -> Server:
    """Start Cairn on uvicorn on a free port; return once it listens.

    Args:
        database_url: the (migrated) database to serve.
        log_level: uvicorn's and Cairn's access log's; ``"info"`` to have the access log.
        clock: what tells the server "now" (see :class:`FixedClock`).
        resolver: how its outbound requests resolve host names (see
            ``tests/support/outbound.py``); None: the system's.
        settings: overrides of :class:`service.config.Settings`, as ``from_env`` takes them
            (``rate_limit=1.0``, ``ping_interval=0.2``...); uvicorn gets its WebSocket
            heartbeat from them, as under ``cairn serve``.

    Raises:
        Whatever uvicorn raised if it ended during start-up; ``RuntimeError`` if it ended
        without an error.
    """
    port = free_port()
    configured = from_env(database_url, port=port, **settings)
    # As `cairn serve` runs uvicorn (service/cli.py): its protocol (the deadlines, the
    # per-client cap, the drain), Cairn's access log instead of uvicorn's, the shutdown's
    # bound, per-message deflate off included. Not its logging configuration: that would
    # take the root logger from pytest; the access log follows uvicorn's level instead.
    logging.getLogger("cairn.access").setLevel(log_level.upper())
    config = uvicorn.Config(
        create_app(configured, clock=clock, resolver=resolver),
        host="127.0.0.1",
        port=port,
        http=protocol(configured),
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=configured.shutdown_timeout,
        ws_per_message_deflate=False,
        ws_max_size=MAX_READ,
        ws_ping_interval=configured.ping_interval,
        ws_ping_timeout=configured.ping_timeout,
    )
    server, task = await _run(config)
    host = f"127.0.0.1:{port}"
    return Server(database_url, f"http://{host}", f"ws://{host}/v1/stream", server, task)


async def _run(config: uvicorn.Config) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    """uvicorn serving ``config`` in this event loop, once it listens, and its task."""
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())

    def listening() -> None:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn stopped during start-up")
        assert server.started, "uvicorn has not started yet"

    try:
        # uvicorn offers no start-up event: poll its flag.
        await eventually(listening, timeout=STARTUP_TIMEOUT)
    except BaseException:
        task.cancel()
        raise
    return server, task


@asynccontextmanager
async def serving(database_url: str, **options: Any) -> AsyncIterator[Server]:
    """A server started as :func:`start_server` does, stopped when the block ends."""
    server = await start_server(database_url, **options)
    try:
        yield server
    finally:
        await server.stop()


@asynccontextmanager
async def serving_other(app: ASGIApp, **options: Any) -> AsyncIterator[str]:
    """Another ASGI app than Cairn (one with no lifespan: a page of another origin, say) on
    a free port of 127.0.0.1 for as long as the block runs; its base URL. ``options`` go to
    ``uvicorn.Config`` (``ssl_certfile=``...: the URL is then ``https``)."""
    port = free_port()
    server, task = await _run(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", **options
        )
    )
    scheme = "https" if options.get("ssl_certfile") else "http"
    try:
        yield f"{scheme}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def another_instance(database_url: str, token: str) -> AsyncIterator[httpx.AsyncClient]:
    """A second Cairn instance (a real uvicorn) on the same database, for as long as the
    block runs, and an httpx client sending ``token`` to it."""
    async with (
        serving(database_url) as server,
        httpx.AsyncClient(
            base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}
        ) as client,
    ):
        yield client


@contextmanager
def access_log() -> Iterator[list[str]]:
    """The lines Cairn's access log (``cairn.access``) writes while the block runs; the
    server must have been started with ``log_level="info"``."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    keep = Keep()
    logger = logging.getLogger("cairn.access")
    logger.addHandler(keep)
    try:
        yield lines
    finally:
        logger.removeHandler(keep)


@contextmanager
def error_log() -> Iterator[list[logging.LogRecord]]:
    """The records at ERROR or above that this process logs while the block runs: Cairn's
    own (an unmapped error, "unhandled error on ..."), uvicorn's and Starlette's (an
    exception no handler took: "Exception in ASGI application").

    uvicorn configures its loggers when a server is made (replacing their handlers, and
    keeping ``uvicorn`` from propagating), so enter this after :func:`start_server`.
    """
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record not in records:
                records.append(record)

    keep = Keep(logging.ERROR)
    loggers = [logging.getLogger(), logging.getLogger("uvicorn")]
    for logger in loggers:
        logger.addHandler(keep)
    try:
        yield records
    finally:
        for logger in loggers:
            logger.removeHandler(keep)

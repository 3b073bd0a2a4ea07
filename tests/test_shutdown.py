"""SIGTERM under load: ``cairn serve`` stops taking connections, finishes what it has, closes
WebSockets with 1012, stops its followers and exits 0 within ``CAIRN_SHUTDOWN_TIMEOUT``.

How each request of the writers may end, decided beforehand:

* **whole answer**: a complete response, 2xx (the write is acknowledged) or 503 (it may or
  may not have happened: retried with its key). One saying ``Connection: close`` ends the
  connection: the writer opens another for its next request.
* **refused**: opening a new connection fails. Nothing was sent; the server is gone.

Anything else fails the test: the connection closed or reset *after* a request was sent,
whether before any byte of the answer (the client cannot tell whether it was served) or in
the middle of it (a truncated answer). A writer here opens a connection only at the start
and after a ``Connection: close``, which the server says only once it has stopped listening,
so its connects are refused, never caught in the listening socket's queue as it closes (a
connection caught there is reset after its handshake: docs/OPERATIONS.md, Shutdown).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import h11
import httpx
import pytest

from service.events.store import EventStore
from service.projections import all_projections
from service.projections.engine import ProjectionEngine

from .support.api import add_admin, bearer, known_token
from .support.cli import cairn_serve, child_env
from .support.projections import rebuilt_differences
from .support.realtime import close_code, subscribe, ws
from .support.servers import free_port

WRITERS = 16
LOAD_BEFORE_SIGTERM = 2.0
SHUTDOWN_TIMEOUT = 20.0
GUARD = 30.0
"""Only there to turn a hang into a failure."""

pytestmark = pytest.mark.slow


class Cut(Exception):
    """A request was sent and its answer did not arrive whole: ``before answer`` (not a
    byte of it) or ``mid-answer``."""


@dataclass
class Tally:
    acknowledged: dict[str, str] = field(default_factory=dict)
    """Content of each acknowledged to-do, by its id."""
    outcomes: Counter[str] = field(default_factory=Counter)
    cuts: list[str] = field(default_factory=list)


class Connection:
    """One HTTP/1.1 keep-alive connection, parsed with h11, that knows how far each exchange
    got."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(our_role=h11.CLIENT)

    @classmethod
    async def open(cls, port: int) -> Connection:
        """Raises: ConnectionRefusedError: nothing listens."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def exchange(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, bytes, bool]:
        """Send one request and read its whole answer: status, body, and whether the
        connection ends with it.

        Raises:
            Cut: the connection closed or reset after the request was sent, before its
                answer was whole.
        """
        data = self.h11.send(
            h11.Request(
                method=method,
                target=target,
                headers=[("Host", "cairn"), ("Content-Length", str(len(body))), *headers],
            )
        )
        data += self.h11.send(h11.Data(data=body)) + self.h11.send(h11.EndOfMessage())
        status, answer, began = 0, b"", False
        try:
            self.writer.write(data)
            await self.writer.drain()
            while True:
                event = self.h11.next_event()
                if event is h11.NEED_DATA:
                    chunk = await self.reader.read(65536)
                    began = began or bool(chunk)
                    self.h11.receive_data(chunk)
                elif isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    answer += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    raise Cut("mid-answer" if began else "before answer")
        except (ConnectionError, h11.RemoteProtocolError) as exc:
            raise Cut("mid-answer" if began else "before answer") from exc
        closes = self.h11.our_state is h11.MUST_CLOSE or self.h11.their_state is h11.MUST_CLOSE
        if not closes:
            self.h11.start_next_cycle()
        return status, answer, closes

    def close(self) -> None:
        self.writer.close()


async def _writer(n: int, port: int, token: str, list_id: str, tally: Tally) -> None:
    """Post to-dos, each with its own Idempotency-Key (a 503 is retried with it), on one
    kept connection at a time, until a new connection is refused."""
    headers = [
        ("Authorization", f"Bearer {token}"),
        ("Content-Type", "application/json"),
    ]
    conn: Connection | None = None
    count = 0
    key, content = "", ""
    try:
        while True:
            if not key:
                count += 1
                key, content = uuid.uuid4().hex, f"w{n}-{count}"
            if conn is None:
                try:
                    conn = await Connection.open(port)
                except ConnectionRefusedError:
                    tally.outcomes["refused"] += 1
                    return
            try:
                status, body, closes = await conn.exchange(
                    "POST",
                    f"/v1/todolists/{list_id}/todos",
                    [*headers, ("Idempotency-Key", key)],
                    json.dumps({"content": content}).encode(),
                )
            except Cut as cut:
                tally.cuts.append(f"writer {n}, {content}: {cut}")
                return
            tally.outcomes[str(status)] += 1
            assert status in (201, 503), body
            if status == 201:
                tally.acknowledged[json.loads(body)["id"]] = content
                key = ""
            if closes:
                tally.outcomes["connection: close"] += 1
                conn.close()
                conn = None
    finally:
        if conn is not None:
            conn.close()


async def test_sigterm_under_sixteen_writers_finishes_every_request_and_exits_0(
    database_url: str,
) -> None:
    """SIGTERM to `cairn serve` under 16 writers on kept connections: every request gets a
    whole answer or its new connection is refused (none is cut), every acknowledged to-do
    is in the log exactly once, a WebSocket gets 1012, the read models equal a rebuild, and
    the process exits 0 within CAIRN_SHUTDOWN_TIMEOUT."""
    admin = await add_admin(database_url)
    port = free_port()
    env = {
        **child_env(database_url),
        "CAIRN_RATE_LIMIT": "0",
        "CAIRN_SHUTDOWN_TIMEOUT": str(SHUTDOWN_TIMEOUT),
    }
    tally = Tally()
    async with cairn_serve(port, "--log-format", "json", env=env) as serve:
        async with httpx.AsyncClient(
            base_url=serve.base_url, headers=bearer(admin.token), timeout=GUARD
        ) as client:
            await known_token(client, timeout=GUARD)
            project = (await client.post("/v1/projects", json={"name": "Drain"})).json()["id"]
            made = await client.post(f"/v1/projects/{project}/todolists", json={"name": "Load"})
            list_id = made.json()["id"]
        async with ws(f"ws://127.0.0.1:{port}/v1/stream", admin.token) as watcher:
            await subscribe(watcher, project)
            writers = [
                asyncio.create_task(_writer(n, port, admin.token, list_id, tally))
                for n in range(WRITERS)
            ]
            await asyncio.sleep(LOAD_BEFORE_SIGTERM)
            assert tally.acknowledged, "no write was acknowledged before SIGTERM"
            before = len(tally.acknowledged)
            sent = time.monotonic()
            serve.process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(SHUTDOWN_TIMEOUT + 5):
                code = await serve.process.wait()
            took = time.monotonic() - sent
            closed_with = await close_code(watcher)
            async with asyncio.timeout(GUARD):
                await asyncio.gather(*writers)
    assert code == 0, "\n".join(serve.logged[-20:])
    assert took < SHUTDOWN_TIMEOUT
    assert closed_with == 1012
    assert tally.cuts == []
    assert tally.outcomes["refused"] == WRITERS
    assert tally.outcomes["connection: close"] >= 1, "SIGTERM found no request in flight"

    store = await EventStore.open(database_url, min_size=1, max_size=4)
    try:
        rows = await store.pool.fetch(
            "SELECT stream_id, data->>'content' AS content FROM events "
            "WHERE event_type = 'TodoAdded'"
        )
        added = [(r["stream_id"].removeprefix("recording-"), r["content"]) for r in rows]
        ids = [recording for recording, _ in added]
        assert len(ids) == len(set(ids))
        assert len({c for _, c in added}) == len(added), "a write was appended twice"
        logged = dict(added)
        assert {i: logged.get(i) for i in tally.acknowledged} == tally.acknowledged
        assert await rebuilt_differences(store, ProjectionEngine(store, all_projections())) == {}
    finally:
        await store.close()
    figures = {
        "acknowledged": len(tally.acknowledged),
        "acknowledged after SIGTERM": len(tally.acknowledged) - before,
        "outcomes": dict(tally.outcomes),
        "exit after SIGTERM (s)": round(took, 2),
    }
    print(figures, file=sys.stderr)

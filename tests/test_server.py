"""The server's protocol (service/http/server.py): a request must arrive within its deadlines,
one address holds a bounded number of connections, malformed HTTP gets a 4xx while the
server keeps serving, and a stopping server drains its connections. Clients here are raw sockets that do exactly what they are told."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import httpx
import pytest

from .support.api import Api
from .support.servers import Server, serving
from .support.waiting import eventually

# Only there to turn a hang into a failure.
GUARD = 30.0
STALLED = 1000
HEADER_TIMEOUT = 2.0
PARTIAL = b"GET /v1/health HTTP/1.1\r\nHost: cairn\r\nX-Never-Ending: "
"""A request cut in the middle of its headers."""


class Raw:
    """A TCP connection to a server, from ``local`` (an address of the loopback)."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, opened_at: float
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.opened_at = opened_at
        """When it began to connect (the server may see it before the connect returns)."""
        self.closed_at: float | None = None
        """When :meth:`until_closed` saw the server close it."""

    @classmethod
    async def open(cls, server: Server, data: bytes = b"", *, local: str = "127.0.0.1") -> Raw:
        """Connect from ``local`` and send ``data``."""
        url = urlsplit(server.base_url)
        opened_at = time.monotonic()
        reader, writer = await asyncio.open_connection(
            url.hostname, url.port, local_addr=(local, 0), limit=2**20
        )
        raw = cls(reader, writer, opened_at)
        if data:
            await raw.send(data)
        return raw

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def until_closed(self) -> bytes:
        """Everything the server sends until it closes the connection."""
        got = b""
        async with asyncio.timeout(GUARD):
            try:
                while chunk := await self.reader.read(65536):
                    got += chunk
            except ConnectionResetError:
                pass
        self.closed_at = time.monotonic()
        return got

    @property
    def lived(self) -> float:
        """Seconds from connecting to the server's close."""
        assert self.closed_at is not None
        return self.closed_at - self.opened_at

    async def response_head(self) -> bytes:
        """The status line and headers of the next response."""
        async with asyncio.timeout(GUARD):
            return await self.reader.readuntil(b"\r\n\r\n")

    def close(self) -> None:
        self.writer.close()


def _status(head: bytes) -> int:
    return int(head.split(b" ", 2)[1])


@asynccontextmanager
async def _client(server: Server, local: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.AsyncHTTPTransport(local_address=local)
    async with httpx.AsyncClient(
        base_url=server.base_url, transport=transport, timeout=GUARD
    ) as client:
        yield client


async def _answers(server: Server, local: str = "127.0.0.1", times: int = 3) -> float:
    """A normal client from ``local`` gets ``times`` answers; the slowest one's seconds."""
    slowest = 0.0
    async with _client(server, local) as client:
        for _ in range(times):
            started = time.monotonic()
            health = await client.get("/v1/health")
            slowest = max(slowest, time.monotonic() - started)
            assert health.status_code == 200, health.text
    return slowest


async def test_stalled_requests_leave_others_served_and_are_closed_at_the_header_deadline(
    database_url: str,
) -> None:
    """A thousand connections that never finish their headers do not keep a normal client
    from answers, and each is closed with a 408 once the header deadline has passed."""
    async with serving(
        database_url, header_timeout=HEADER_TIMEOUT, max_connections_per_client=0
    ) as server:
        stalled = await asyncio.gather(*(Raw.open(server, PARTIAL) for _ in range(STALLED)))
        try:
            sent = time.monotonic()
            slowest = await _answers(server)
            assert slowest < 1.0
            assert time.monotonic() - sent < HEADER_TIMEOUT, "the check came too late to count"
            closed = await asyncio.gather(*(raw.until_closed() for raw in stalled))
        finally:
            for raw in stalled:
                raw.close()
        assert all(_status(got) == 408 for got in closed)
        lived = sorted(raw.lived for raw in stalled)
        assert HEADER_TIMEOUT <= lived[0] <= lived[-1] < HEADER_TIMEOUT + 10.0
        await _answers(server)


async def test_connections_beyond_the_per_client_cap_are_closed_at_once(
    database_url: str,
) -> None:
    """An address holding as many connections as the cap has its next ones closed at once,
    while other addresses are served and the held ones still work; below the cap again, it
    is served again."""
    cap = 20
    async with serving(database_url, max_connections_per_client=cap) as server:
        held = [await Raw.open(server, PARTIAL) for _ in range(cap)]
        try:
            refused = [await Raw.open(server, PARTIAL) for _ in range(5)]
            assert [await r.until_closed() for r in refused] == [b""] * len(refused)
            await _answers(server, local="127.0.0.2")
            with pytest.raises(httpx.TransportError):
                await _answers(server, times=1)
            for raw in held[:2]:
                await raw.send(b"1\r\n\r\n")
                assert _status(await raw.response_head()) == 200
        finally:
            for raw in held:
                raw.close()
        await _answers(server)


DEADLINE = 1.0


@pytest.mark.parametrize(
    "server_settings", [{"header_timeout": DEADLINE, "body_timeout": DEADLINE}], ids=["1s"]
)
@pytest.mark.parametrize("part", ["headers", "headers-after-keep-alive", "body"])
async def test_a_request_that_does_not_arrive_in_time_gets_408_and_is_closed(
    api: Api, server_settings: dict[str, object], part: str
) -> None:
    """A request whose headers (on a new or a kept-alive connection) or body stop coming is
    answered 408 and its connection closed after the deadline, not before."""
    raw = await Raw.open(api.server)
    try:
        if part == "headers-after-keep-alive":
            await raw.send(b"GET /v1/health HTTP/1.1\r\nHost: cairn\r\n\r\n")
            assert _status(await raw.response_head()) == 200
        started = time.monotonic()
        if part == "body":
            await raw.send(
                b"POST /v1/projects HTTP/1.1\r\nHost: cairn\r\n"
                + f"Authorization: Bearer {api.admin_token}\r\n".encode()
                + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
            )
        else:
            await raw.send(PARTIAL)
        got = await raw.until_closed()
        took = time.monotonic() - started
    finally:
        raw.close()
    assert _status(got[got.rfind(b"HTTP/1.1 ") :]) == 408
    assert DEADLINE <= took < DEADLINE + 5.0


MALFORMED = {
    "invalid-utf8-path": b"GET /v1/\xff\xfehealth HTTP/1.1\r\nHost: cairn\r\n\r\n",
    # Well-formed HTTP: decoded with replacement characters, an unknown path (404 problem).
    "percent-encoded-invalid-utf8-path": b"GET /v1/%FF%FEhealth HTTP/1.1\r\nHost: cairn\r\n"
    b"Connection: close\r\n\r\n",
    "huge-header": b"GET /v1/health HTTP/1.1\r\nHost: cairn\r\nX-Big: "
    + b"a" * 1_048_576
    + b"\r\n\r\n",
    "bad-content-length": b"POST /v1/projects HTTP/1.1\r\nHost: cairn\r\n"
    b"Content-Type: application/json\r\nContent-Length: abc\r\n\r\n{}",
}


@pytest.mark.parametrize("request_", MALFORMED)
async def test_malformed_http_gets_a_4xx_and_the_server_keeps_serving(
    live_server: Server, request_: str
) -> None:
    """Invalid UTF-8 in the path (raw or percent-encoded), a 1 MB header or a bad
    Content-Length are answered with a 4xx (the server's own text/plain 400, or a 404 problem
    for a path that decodes), and other clients go on being served."""
    raw = await Raw.open(live_server)
    try:
        writing = asyncio.ensure_future(raw.send(MALFORMED[request_]))
        got = await raw.until_closed()
        # The server may close before taking a huge request whole: the rest is refused.
        await asyncio.gather(writing, return_exceptions=True)
    finally:
        raw.close()
    assert 400 <= _status(got) < 500, got[:200]
    expected = "application/problem+json" if request_.startswith("percent") else "text/plain"
    assert f"content-type: {expected}".encode() in got.lower()
    await _answers(live_server)


# ------------------------------------------------------------------ draining on shutdown


async def _refused(server: Server) -> None:
    """The server no longer takes connections: its shutdown has begun (uvicorn closes the
    listening socket, then asks each connection to end, in one step). A connection caught
    in the listening socket's queue as it closes is reset rather than refused."""
    url = urlsplit(server.base_url)
    try:
        _, writer = await asyncio.open_connection(url.hostname, url.port)
    except (ConnectionRefusedError, ConnectionResetError):
        return
    writer.close()
    raise AssertionError("the server still takes connections")


def _answer(got: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
    """Status, headers and body of one whole response (its body as long as it says)."""
    head, _, body = got.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = dict(line.lower().split(b": ", 1) for line in lines[1:])
    assert len(body) == int(headers[b"content-length"]), got
    return _status(lines[0]), headers, body


async def test_a_connection_idle_at_shutdown_gets_its_next_request_answered_then_closed(
    api: Api,
) -> None:
    """A kept-alive connection between requests when the server begins to stop is not closed
    under a request its client may be sending: that request is answered, whole, with
    ``Connection: close``, and then the connection closes."""
    server = api.server
    request = b"GET /v1/health HTTP/1.1\r\nHost: cairn\r\n\r\n"
    raw = await Raw.open(server, request)
    try:
        head = await raw.response_head()
        assert _status(head) == 200
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await raw.reader.readexactly(length)
        server.uvicorn.should_exit = True
        await eventually(lambda: _refused(server), timeout=GUARD)
        await raw.send(request)
        status, headers, body = _answer(await raw.until_closed())
    finally:
        raw.close()
    assert (status, headers[b"connection"]) == (200, b"close")
    assert b'"status":"ok"' in body


async def test_a_request_in_flight_at_shutdown_is_answered_with_connection_close(
    api: Api,
) -> None:
    """A request the app is serving when the server begins to stop gets its whole answer,
    saying ``Connection: close`` (so that its client sends nothing more on it), and the
    connection then closes."""
    server = api.server
    body = b'{"name": "Drained"}'
    raw = await Raw.open(
        server,
        b"POST /v1/projects HTTP/1.1\r\nHost: cairn\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {api.admin_token}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body[:5],
    )
    try:

        def serving_it() -> None:  # uvicorn runs the app once the headers are in
            assert server.uvicorn.server_state.tasks

        await eventually(serving_it, timeout=GUARD)
        server.uvicorn.should_exit = True
        await eventually(lambda: _refused(server), timeout=GUARD)
        await raw.send(body[5:])
        status, headers, answer = _answer(await raw.until_closed())
    finally:
        raw.close()
    assert (status, headers[b"connection"]) == (201, b"close"), answer


@pytest.mark.parametrize(
    "server_settings",
    [{"body_timeout": DEADLINE, "body_min_rate": 1000, "rate_limit": 0}],
    ids=["1s-1000Bps"],
)
@pytest.mark.parametrize("steady", [True, False], ids=["steady", "trickle"])
async def test_a_body_arriving_at_the_minimum_rate_outlives_its_deadline(
    api: Api, server_settings: dict[str, object], steady: bool
) -> None:
    """An upload whose body takes three deadlines to arrive is taken whole while each period
    brings at least CAIRN_BODY_MIN_RATE bytes a second; a trickle below it is cut with 408
    at the end of its first period."""
    piece, pause, pieces = (1000, 0.25, 14) if steady else (10, 0.25, 14)
    raw = await Raw.open(api.server)
    started = time.monotonic()
    try:
        await raw.send(
            b"POST /v1/attachments?name=slow.bin HTTP/1.1\r\nHost: cairn\r\n"
            + f"Authorization: Bearer {api.admin_token}\r\n".encode()
            + b"Content-Type: application/octet-stream\r\n"
            + f"Content-Length: {piece * pieces}\r\n\r\n".encode()
        )

        async def trickle() -> None:
            for _ in range(pieces):
                await raw.send(b"x" * piece)
                await asyncio.sleep(pause)

        sending = asyncio.ensure_future(trickle())
        if steady:
            await sending
            got = await raw.response_head()
        else:
            got = await raw.until_closed()
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
        took = time.monotonic() - started
    finally:
        raw.close()
    if steady:
        assert _status(got) == 201, got[:300]
        assert took > 3 * DEADLINE
    else:
        assert _status(got[got.rfind(b"HTTP/1.1 ") :]) == 408
        assert DEADLINE <= took < 2 * DEADLINE + 1.0

"""The HTTP/1.1 protocol Cairn is served with: uvicorn's h11 protocol, with deadlines and a cap.

uvicorn runs the app only once a request's headers are complete, so nothing in the app (no
ASGI middleware either) sees a client that opens connections and never finishes a request,
and stock uvicorn holds such a connection for ever. This protocol bounds them:

* **Header deadline** (``CAIRN_HEADER_TIMEOUT``): the request line and headers must be
  complete within it, counted from the connection's opening, or on a kept-alive connection
  from the first byte of the next request. (An idle kept-alive connection is closed after
  uvicorn's ``timeout_keep_alive``, 5 s.)
* **Body deadline** (``CAIRN_BODY_TIMEOUT``): the whole body within it of the headers' end.
  A total, not a gap between reads: a client trickling a byte now and then is cut too. A body
  still arriving at its deadline gets another period, and another, as long as each period
  brought at least ``CAIRN_BODY_MIN_RATE`` bytes a second (a 100 MiB upload on a slow link
  is not cut; a trickle is, at the end of its period).
* Past either, the client gets a ``408`` (``text/plain``, ``Connection: close``) unless it
  sent nothing yet or its answer has begun, and the connection is closed. While the app
  works on a received request, no deadline runs.
* **Per-client cap** (``CAIRN_MAX_CONNECTIONS_PER_CLIENT``): HTTP connections open at once
  from one address; one more is closed at once, before anything is read from it. A
  connection upgraded to a WebSocket leaves the count (its heartbeat bounds it). Behind a
  reverse proxy every client has the proxy's address: raise the cap or turn it off (0) and
  let the proxy limit clients (docs/DEPLOYMENT.md).
* **Draining** (SIGTERM; uvicorn has closed the listening socket, so new connections are
  refused): a request in flight is answered, with ``Connection: close`` if its answer has
  not begun, and the connection closes after it. A connection between requests is *not*
  closed at once as uvicorn would: its client may be sending its next request at that very
  instant, and would see the connection close after sending it, not knowing whether it was
  served. Its next request is answered, with ``Connection: close``; one that sends none is
  closed by the keep-alive timeout (or the header deadline) as always, so a drain adds no
  close that keep-alive does not make anyway. uvicorn waits for every connection to close,
  up to ``CAIRN_SHUTDOWN_TIMEOUT``, before the app's shutdown.

``cairn serve`` and the tests' servers both run uvicorn with ``http=protocol(settings)``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

import h11
from uvicorn.protocols.http.flow_control import CLOSE_HEADER
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..config import Settings

_log = logging.getLogger(__name__)

_TOO_SLOW: Final = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 15\r\n"
    b"connection: close\r\n"
    b"\r\n"
    b"Request Timeout"
)


@dataclass
class Limits:
    """The deadlines and the cap of one server, and its open connections per address."""

    header_timeout: float
    body_timeout: float
    per_client: int
    body_min_rate: int = 0
    """Bytes per second a body must keep up, period by period, to outlive its deadline."""
    """0: no cap."""
    open: Counter[str] = field(default_factory=Counter)
    refusing: set[str] = field(default_factory=set)
    """Addresses at the cap that were refused a connection (logged once until below it)."""


def protocol(settings: Settings) -> type[H11Protocol]:
    """The protocol class to give uvicorn (``http=``) for a server with ``settings``.

    Each call makes a class with limits of its own: connections are counted per server.
    """

    class Protocol(DeadlineProtocol):
        limits = limits_of(settings)

    return Protocol


def limits_of(settings: Settings) -> Limits:
    """Fresh limits (nothing counted yet) of a server with ``settings``."""
    return Limits(
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
        per_client=settings.max_connections_per_client,
        body_min_rate=settings.body_min_rate,
    )


class DeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with the deadlines and the cap of :attr:`limits` (see the
    module); made by :func:`protocol`."""

    limits: ClassVar[Limits]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting_for: str | None = None
        self._counted: str | None = None
        self._upgraded = False
        self._draining = False
        self._body_bytes = 0
        """Bytes received of the current body's current period."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        address = self.client[0] if self.client else None
        limits = self.limits
        if address is not None and limits.per_client:
            if limits.open[address] >= limits.per_client:
                if address not in limits.refusing:
                    limits.refusing.add(address)
                    _log.warning(
                        "%s holds %d connections (CAIRN_MAX_CONNECTIONS_PER_CLIENT): "
                        "closing its new ones until it holds fewer",
                        address,
                        limits.per_client,
                    )
                transport.close()
                return
            limits.open[address] += 1
            self._counted = address
        self._expect("headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_clock()
        self._uncount()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._waiting_for == "body":
            self._body_bytes += len(data)
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        self._stop_clock()
        super().on_response_complete()
        # A pipelined request may have begun already; else the next request's clock starts
        # with its first byte (until then, uvicorn's keep-alive timeout applies).
        if self.conn.their_state is not h11.IDLE or self.conn.trailing_data[0]:
            self._watch()

    def handle_events(self) -> None:
        super().handle_events()
        if self._draining:
            self._last_answer()

    def shutdown(self) -> None:
        """uvicorn asks the connection to end (SIGTERM): drain it (see the module)."""
        self._draining = True
        self._last_answer()

    def _last_answer(self) -> None:
        """Make the answer to the request being served the connection's last, if that
        answer has not begun (once begun, it cannot say so: the next request's will)."""
        cycle = self.cycle
        if cycle is None or cycle.response_started or not cycle.keep_alive:
            return
        cycle.keep_alive = False
        cycle.default_headers = [*cycle.default_headers, CLOSE_HEADER]

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._upgraded = True
        self._stop_clock()
        self._uncount()
        super().handle_websocket_upgrade(event)

    def _watch(self) -> None:
        """Run the clock that fits where the current request stands."""
        if self._upgraded or self.transport.is_closing():
            self._stop_clock()
            return
        state = self.conn.their_state
        if state is h11.IDLE:
            self._expect("headers")
        elif state is h11.SEND_BODY:
            self._expect("body")
        else:
            # Received whole (the app has it), or the connection is ending.
            self._stop_clock()

    def _expect(self, part: str) -> None:
        if self._waiting_for == part:
            return
        self._stop_clock()
        limits = self.limits
        timeout = limits.header_timeout if part == "headers" else limits.body_timeout
        self._waiting_for = part
        self._body_bytes = 0
        self._deadline = self.loop.call_later(timeout, self._expired)

    def _stop_clock(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._waiting_for = None

    def _expired(self) -> None:
        part, self._waiting_for, self._deadline = self._waiting_for, None, None
        if self.transport.is_closing():
            return
        limits = self.limits
        if (
            part == "body"
            and limits.body_min_rate
            and self._body_bytes >= limits.body_min_rate * limits.body_timeout
        ):
            # Still coming at a fair rate: another period (see the module).
            self._expect("body")
            return
        _log.info(
            "%s: request %s not received in time; closing the connection",
            self.client[0] if self.client else "a client",
            part,
        )
        if part == "body":
            tell = self.cycle is None or not self.cycle.response_started
        else:
            # A connection opened and left silent sent no request to answer.
            tell = bool(self.conn.trailing_data[0])
        if tell:
            self.transport.write(_TOO_SLOW)
        self.transport.close()

    def _uncount(self) -> None:
        address, self._counted = self._counted, None
        if address is None:
            return
        limits = self.limits
        limits.open[address] -= 1
        if limits.open[address] <= 0:
            del limits.open[address]
        if limits.open[address] < limits.per_client:
            limits.refusing.discard(address)


class WorkerProtocol(DeadlineProtocol):
    """The protocol of each worker process of ``cairn serve --workers N``.

    uvicorn hands its protocol class to the worker processes it spawns by name, so the class
    of :func:`protocol` (made in a function) cannot be it. Its limits are set in each worker
    when the app is made from the command's settings (``app_from_env``), before the first
    connection: each process counts its own connections.
    """

    limits: ClassVar[Limits] = limits_of(Settings(database_url=""))

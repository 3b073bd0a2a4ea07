"""One WebSocket's side of the hub: a bounded send buffer, its writer, and closing.

The hub never awaits a socket. It hands frames to :meth:`Connection.push`, which only
appends to this connection's buffer; a writer task (started when the buffer stops being
empty, gone when it is empty again, so idle connections cost no task) sends them in order.
A client that reads too slowly fills its own buffer and nobody else's: past the limits
(frames or bytes) the connection is closed with 4008 and the buffer is dropped.

A frame is handed to the WebSocket layer only when that layer can take it (ASGI ``send``
waits while the transport is paused), so besides this buffer a slow client holds at most
the transport's high-water mark plus one frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..domain.access import Viewer
from ..metrics import WEBSOCKET_SLOW_DROPPED
from .counters import Counters
from .protocol import CLOSE_SLOW, CLOSE_UNAUTHORIZED, Outgoing
from .subscriptions import Subscription

_log = logging.getLogger(__name__)

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]
Receive = Callable[[], Awaitable[Message]]


@dataclass(frozen=True)
class Limits:
    """Per-connection send buffer limits, and how long a close may wait for the peer."""

    messages: int = 1000
    bytes: int = 1_048_576
    close_timeout: float = 5.0


class Connection:
    """A socket's buffer and writer. Created by the stream endpoint, driven by the hub.

    Args:
        send: the ASGI ``send`` of an accepted WebSocket.
        viewer: who is connected (kept current by the hub).
        token_hash: the stored hash of the API token the socket authenticated with (the
            connection closes when that token is revoked).
        scope: the handshake's ASGI scope (its host and ``Accept-Language`` tell how the
            socket's notifications are written).
    """

    def __init__(
        self,
        send: Send,
        viewer: Viewer,
        token_hash: str,
        limits: Limits,
        counters: Counters,
        scope: Mapping[str, Any] | None = None,
    ) -> None:
        self.viewer = viewer
        self.scope: Mapping[str, Any] = scope or {}
        self.token_hash = token_hash
        self.subscriptions: dict[str, Subscription] = {}
        """Held subscriptions by name (a project id or ``"all"``); managed by the hub."""
        self.notifications = False
        """Whether the socket follows its person's notifications (managed by the hub)."""
        self._send = send
        self._limits = limits
        self._counters = counters
        self._queue: deque[tuple[Outgoing, bool]] = deque()
        self._queued_bytes = 0
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self._room: asyncio.Event | None = None
        self.close_code: int | None = None
        """The code this side closed with, once it did."""
        self.finished = asyncio.Event()
        """Set when the connection is over: the peer left or the close was sent (or gave up)."""
        self._expiry: asyncio.TimerHandle | None = None

    def expire_at(self, when: datetime, clock: Callable[[], datetime]) -> None:
        """Close with 4401 at ``when`` on ``clock`` (the server's): the token the socket
        opened with (an OAuth access token) stops working then. One timer; when it fires
        early by ``clock`` (a clock not following the loop's), it is set again."""
        if self.closing:
            return
        remaining = (when - clock()).total_seconds()
        if remaining <= 0:
            self.close(CLOSE_UNAUTHORIZED, "the token expired")
            return
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_later(remaining, self.expire_at, when, clock)

    def stop_expiry(self) -> None:
        """Forget the timer of :meth:`expire_at` (the connection is over)."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None

    @property
    def closing(self) -> bool:
        """Whether the connection is closed or closing: pushes are ignored."""
        return self.close_code is not None or self.finished.is_set()

    def push(self, frame: Outgoing, *, event: bool = False) -> None:
        """Queue ``frame`` for sending, in order; never blocks.

        ``event`` counts it as an event sent. Past the buffer limits the connection is
        closed with 4008 instead (and the frame dropped).
        """
        if self.closing:
            return
        if (
            len(self._queue) >= self._limits.messages
            or self._queued_bytes + frame.size > self._limits.bytes
        ):
            self._counters.slow_dropped += 1
            WEBSOCKET_SLOW_DROPPED.inc()
            self.close(CLOSE_SLOW, "send buffer overflow: reconnect with since")
            return
        if self._writer is None and not self._queue:
            self._send_eagerly(frame, event)
            return
        self._queue.append((frame, event))
        self._queued_bytes += frame.size
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write())

    def _send_eagerly(self, frame: Outgoing, event: bool) -> None:
        # An idle connection's send nearly always completes without suspending (the
        # transport is writable): run it right here instead of in a new task, which a fan-out
        # to every socket would pay for each of them. What Python 3.12's eager tasks do.
        sending = self._send({"type": "websocket.send", "text": frame.text})
        blocker: Any = None
        if isinstance(sending, Coroutine):
            try:
                blocker = sending.send(None)
            except StopIteration:
                if event:
                    self._counters.events_sent += 1
                return
            except Exception as exc:
                _log.debug("send failed (%r); ending the connection", exc)
                self.finished.set()
                return
        else:  # not a coroutine: nothing to step, a task awaits it
            sending = asyncio.ensure_future(sending)
        # The transport is paused: a writer task finishes this send, then the queue.
        self._queue.append((frame, event))
        self._queued_bytes += frame.size
        self._writer = asyncio.get_running_loop().create_task(self._write(sending, blocker))

    async def room(self) -> None:
        """Wait until the buffer is at most half full (for producers that can wait: replay)."""
        while not self.closing and (
            len(self._queue) * 2 > self._limits.messages
            or self._queued_bytes * 2 > self._limits.bytes
        ):
            if self._room is None:
                self._room = asyncio.Event()
            room = self._room
            # The close path sets it too, so a closing connection never strands a waiter.
            await room.wait()

    def free(self) -> int:
        """How many more frames fit before the buffer is half full."""
        return max(0, self._limits.messages // 2 - len(self._queue))

    async def _write(self, first: Awaitable[None] | None = None, blocker: Any = None) -> None:
        """Send the queue in order; ``first`` is the head's send if already started (a
        coroutine suspended on ``blocker``, or a future)."""
        try:
            if first is not None:
                await (_resume(first, blocker) if isinstance(first, Coroutine) else first)
                self._sent()
            while self._queue:
                frame, _ = self._queue[0]
                await self._send({"type": "websocket.send", "text": frame.text})
                self._sent()
        except Exception as exc:  # the peer went away under us
            _log.debug("send failed (%r); ending the connection", exc)
            self.finished.set()
        finally:
            self._writer = None

    def _sent(self) -> None:
        frame, event = self._queue.popleft()
        self._queued_bytes -= frame.size
        if event:
            self._counters.events_sent += 1
        room = self._room
        if (
            room is not None
            and len(self._queue) * 2 <= self._limits.messages
            and self._queued_bytes * 2 <= self._limits.bytes
        ):
            self._room = None
            room.set()

    def close(self, code: int, reason: str = "") -> None:
        """Close the socket with ``code``, dropping whatever is still buffered (idempotent).

        A peer that does not take the close frame within the limits' ``close_timeout`` is
        given up on: :attr:`finished` is set anyway and the server drops the socket.
        """
        if self.closing:
            return
        self.close_code = code
        self.stop_expiry()
        self._queue.clear()
        self._queued_bytes = 0
        if self._room is not None:
            self._room.set()
            self._room = None
        writer, self._writer = self._writer, None
        if writer is not None:
            # Safe at any await of the ASGI send: it only waits for the transport to be
            # writable, and writes a frame whole after that.
            writer.cancel()
        self._closer = asyncio.get_running_loop().create_task(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        try:
            async with asyncio.timeout(self._limits.close_timeout):
                await self._send({"type": "websocket.close", "code": code, "reason": reason})
        except (TimeoutError, Exception) as exc:
            _log.debug("close %s not sent (%r)", code, exc)
        finally:
            self.finished.set()

    async def serve(self, receive: Receive, on_text: Callable[[str], Awaitable[None]]) -> None:
        """Read the peer's frames into ``on_text`` (one at a time, in order) until the
        connection is over; then stop writing. Returns when :attr:`finished` is set."""

        async def read() -> None:
            try:
                while True:
                    message = await receive()
                    if message["type"] == "websocket.disconnect":
                        break
                    text = message.get("text")
                    if text is None:
                        raw = message.get("bytes") or b""
                        text = raw.decode(errors="replace")
                    await on_text(text)
            except Exception as exc:
                _log.debug("receive failed (%r); ending the connection", exc)
            finally:
                self.finished.set()

        reader = asyncio.get_running_loop().create_task(read())
        try:
            await self.finished.wait()
        finally:
            reader.cancel()
            for task in (self._writer, self._closer):
                if task is not None and not task.done():
                    task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


async def _resume(coro: Coroutine[Any, Any, None], blocker: Any) -> None:
    """Run ``coro`` to its end inside the current task, after it was stepped once outside any
    task and suspended on ``blocker`` (an asyncio future): what a task does with the futures
    its coroutine yields. Exceptions and cancellation are passed into ``coro``."""
    try:
        while True:
            # A task clears this flag on every future its coroutine yields; so must we.
            blocker._asyncio_future_blocking = False
            try:
                await blocker
            except BaseException as exc:
                blocker = coro.throw(exc)
            else:
                blocker = coro.send(None)
    except StopIteration:
        return

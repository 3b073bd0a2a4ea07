"""Waking readers of the log when something was appended: LISTEN/NOTIFY, outside appends.

Two halves, both per process:

* :class:`Notifier` sends ``NOTIFY cairn_events`` *after* appends commit, in its own tiny
  transaction, coalescing bursts: while one NOTIFY is in flight, further appends only set a
  flag, so a busy process sends about one NOTIFY per round trip instead of one per append.
  NOTIFY is kept out of the append transaction on purpose: a transaction that notifies
  takes a server-wide lock until its commit ends, which would serialise every append.
* :class:`Listener` keeps one dedicated connection LISTENing (not a pooled one: the pool
  runs ``UNLISTEN *`` on release) and bumps a generation counter on every notification and
  on every reconnect. A reconnect counts as a wake-up because notifications sent while the
  connection was down are lost for good; readers then re-read the log.

Neither is needed for correctness: readers also poll. They only make live reads fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg

_log = logging.getLogger(__name__)

CHANNEL = "cairn_events"
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.OperatorInterventionError,
)


class Notifier:
    """Sends coalesced NOTIFYs after appends. Call :meth:`poke` after each commit."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def poke(self) -> None:
        """Ask for a NOTIFY soon; never blocks and never fails the caller."""
        self._wanted.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="cairn-notify")

    async def _run(self) -> None:
        while self._wanted.is_set():
            self._wanted.clear()
            try:
                await self._pool.execute("SELECT pg_notify($1, '')", CHANNEL)
            except TRANSIENT_ERRORS as exc:
                # Lost wake-ups only delay readers until their next poll.
                _log.debug("NOTIFY failed (%s); readers will poll", exc)
                return
            except asyncpg.InterfaceError:
                return

    async def close(self) -> None:
        """Wait for a NOTIFY in flight, then stop."""
        task, self._task = self._task, None
        if task is not None:
            with contextlib.suppress(Exception):
                await task


def _setter(event: asyncio.Event) -> Any:
    return lambda *_args: event.set()


class Listener:
    """One LISTEN connection per process, shared by every reader in it."""

    def __init__(self, dsn: str, *, reconnect_delay: float = 0.2) -> None:
        self._dsn = dsn
        self._reconnect_delay = reconnect_delay
        self._generation = 0
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.connected = asyncio.Event()

    @property
    def generation(self) -> int:
        """Increases on every wake-up; readers compare it before and after reading."""
        return self._generation

    def start(self) -> None:
        """Start listening in the background (idempotent)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="cairn-listen")

    async def wait(self, seen: int, within: float) -> None:
        """Return once the generation moved past ``seen``, or after ``within`` seconds."""
        if self._generation != seen:
            return
        async with self._changed:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self._generation != seen), within
                )

    async def _bump(self) -> None:
        async with self._changed:
            self._generation += 1
            self._changed.notify_all()

    def _on_notify(self, *_args: Any) -> None:
        asyncio.get_running_loop().create_task(self._bump())

    async def _run(self) -> None:
        while not self._closing:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn)
                lost = asyncio.Event()
                conn.add_termination_listener(_setter(lost))
                await conn.add_listener(CHANNEL, self._on_notify)
                self.connected.set()
                # Anything appended while we were not listening is only found by reading.
                await self._bump()
                while not lost.is_set():
                    # A silent network drop would not fire the termination listener:
                    # probe now and then.
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(lost.wait(), 5.0)
                    if not lost.is_set():
                        await conn.execute("SELECT 1", timeout=5.0)
            except asyncio.CancelledError:
                raise
            except TRANSIENT_ERRORS as exc:
                _log.debug("LISTEN connection lost (%s); reconnecting", exc)
            finally:
                self.connected.clear()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.terminate()
            if not self._closing:
                await asyncio.sleep(self._reconnect_delay)

    async def close(self) -> None:
        """Stop listening and close the connection."""
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

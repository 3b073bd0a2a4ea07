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
  connection was down are lost for good; readers then re-read the log. The store also
  calls :meth:`Listener.wake` itself after each append, so readers in the appending process
  do not wait for the NOTIFY round trip (nor need LISTEN to work at all).

Neither is needed for correctness: readers also poll. They only make live reads fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg

from ..errors import DatabaseUnavailable

_log = logging.getLogger(__name__)

CHANNEL = "cairn_events"
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    # What the store's pool and lane raise for all of the below (see pool.py).
    DatabaseUnavailable,
    OSError,
    asyncio.TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.OperatorInterventionError,
    # Raised by the pool when the server shuts down while a connection is being reset on
    # release ("cannot switch to state 15; another operation is in progress"): the
    # connection is gone and the pool replaces it. Seen in the PostgreSQL restart test.
    asyncpg.InternalClientError,
)
"""Errors that mean PostgreSQL could not be reached or the connection was lost."""


class Notifier:
    """Sends coalesced NOTIFYs after appends. Call :meth:`poke` after each commit."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        attempts: int = 4,
        min_gap: float = 0.002,
        max_gap: float = 0.025,
        sender: str = "",
    ) -> None:
        self._pool = pool
        self._sender = sender
        self._attempts = attempts
        self._min_gap = min_gap
        self._max_gap = max(max_gap, min_gap)
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def poke(self) -> None:
        """Ask for a NOTIFY soon; never blocks and never fails the caller."""
        self._wanted.set()
        if (self._task is None or self._task.done()) and not self._closing:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="cairn-notify")

    async def _run(self) -> None:
        failures = 0
        gap = self._min_gap
        while self._wanted.is_set() and not self._closing:
            self._wanted.clear()
            try:
                await self._pool.execute("SELECT pg_notify($1, $2)", CHANNEL, self._sender)
                failures = 0
                # At most one NOTIFY per gap: every NOTIFY commit takes the server-wide notify
                # lock and wakes every listening process, so a steady stream of appends must
                # not become a steady stream of NOTIFYs. Appends during the gap are covered by
                # the next one (other processes' readers learn of them at most a gap later;
                # this process's readers are woken directly). The gap starts at ``min_gap``
                # and doubles while appends keep coming, up to ``max_gap``: a busy writer
                # then sends ~40 NOTIFYs/s instead of ~500 (measured: ~8 % of append
                # throughput at 16 writers), and a quiet one still wakes others in ~2 ms.
                await asyncio.sleep(gap)
                gap = min(gap * 2, self._max_gap)
            except TRANSIENT_ERRORS as exc:
                failures += 1
                if failures >= self._attempts:
                    # A lost wake-up only delays other processes' readers until their next
                    # poll (or their listener's reconnect, if the server went away).
                    _log.debug("NOTIFY failed (%s); readers will poll", exc)
                    return
                # Typically a pooled connection the server dropped (restart, terminated
                # backend): the pool replaces it, so the next attempt usually goes through.
                # Giving up at once would leave other processes' readers asleep until their
                # poll with a commit they have not seen.
                self._wanted.set()
                await asyncio.sleep(0.05 * failures)

    async def close(self) -> None:
        """Wait for a NOTIFY in flight, then stop."""
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            with contextlib.suppress(Exception):
                await task


def _setter(event: asyncio.Event) -> Any:
    return lambda *_args: event.set()


class Listener:
    """One LISTEN connection per process, shared by every reader in it.

    Readers take :attr:`generation` before they read the log and then :meth:`wait` with it:
    a wake-up that arrives while they read is therefore never lost.
    """

    def __init__(
        self,
        dsn: str,
        *,
        reconnect_delay: float = 0.2,
        sender: str = "",
        timeout: float | None = None,
    ) -> None:
        self._dsn = dsn
        # Opening the connection is bounded (asyncpg's default: 60 s): a hung server must
        # not stall the reconnects.
        self._connect_timeout = 60.0 if timeout is None else timeout
        self._reconnect_delay = reconnect_delay
        self._generation = 0
        self._sender = sender
        self._remote = 0
        # Set and dropped on every wake-up; made only when a reader waits, so waking
        # costs nothing while nobody is waiting (appends wake on every commit).
        self._moved: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.connected = asyncio.Event()

    @property
    def generation(self) -> int:
        """Increases on every wake-up; readers compare it before and after reading."""
        return self._generation

    @property
    def remote_generation(self) -> int:
        """Increases on every NOTIFY sent by another process (its payload names the sender)
        and on every (re)connect: commits of others, as far as this process can know."""
        return self._remote

    def start(self) -> None:
        """Start listening in the background (idempotent)."""
        if self._task is None and not self._closing:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="cairn-listen")

    def wake(self) -> None:
        """Wake every waiting reader now: something may have been appended.

        Synchronous and cheap, so that appends in this process can wake this process's
        readers directly, without waiting for their own NOTIFY to come back.
        """
        self._generation += 1
        moved, self._moved = self._moved, None
        if moved is not None:
            moved.set()

    async def wait(self, seen: int, within: float) -> None:
        """Return once the generation moved past ``seen``, or after ``within`` seconds."""
        if self._generation != seen:
            return
        if self._moved is None:
            self._moved = asyncio.Event()
        moved = self._moved
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the
        # cancellation of the waiting task when the wake-up lands at the same moment,
        # and a cancelled subscriber must stop.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await moved.wait()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload != self._sender or not payload:
            self._remote += 1
        self.wake()

    async def _run(self) -> None:
        delay = self._reconnect_delay
        while not self._closing:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn, timeout=self._connect_timeout)
                lost = asyncio.Event()
                conn.add_termination_listener(_setter(lost))
                await conn.add_listener(CHANNEL, self._on_notify)
                self.connected.set()
                delay = self._reconnect_delay
                # Anything appended while we were not listening is only found by reading.
                self._remote += 1
                self.wake()
                while not lost.is_set():
                    # A silent network drop would not fire the termination listener:
                    # probe now and then.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(5.0):
                            await lost.wait()
                    if not lost.is_set():
                        await conn.execute("SELECT 1", timeout=5.0)
            except asyncio.CancelledError:
                raise
            except TRANSIENT_ERRORS as exc:
                _log.debug("LISTEN connection lost (%s); reconnecting", exc)
            except Exception as exc:
                # Not a network error (database not created yet, too many clients, a
                # password being rotated...). The listener only speeds readers up, so it
                # must never die: readers would silently fall back to polling for good.
                _log.warning("LISTEN connection failed (%r); retrying in %.1f s", exc, delay)
                delay = min(delay * 2, 5.0)
            finally:
                self.connected.clear()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.terminate()
            if not self._closing:
                await asyncio.sleep(delay)

    async def close(self) -> None:
        """Stop listening, close the connection and wake every waiting reader."""
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.wake()

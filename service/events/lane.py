"""A fast lane of connections for the store's one-statement operations (appends, page reads).

Why not the asyncpg pool for these: each pooled call pays for ``acquire`` and for a
``release`` that runs in a shielded task, about 35 µs of client CPU on this machine, which
was a third of an append's client cost (measured by ``bench/append.py`` at 16 writers).
These calls are single autocommit statements, so a connection needs no reset between uses:
a LIFO of idle connections and a queue of waiters is all it takes. Transactions, LISTEN and
everything else stay on the pool.

A connection that fails or whose call is cancelled is dropped (its state is unknown), and a
waiter is told to open a new one, so a PostgreSQL restart costs each caller one error: a
:class:`~service.errors.DatabaseUnavailable`, as from the pool (see pool.py). With a
``timeout``, opening a connection, a statement and the wait for a free connection are each
bounded by it.

Measured as a pool of its own (``cairn_db_pool_*``, ``pool="lane"``): the wait for a
connection, the connections open and in use.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import Any, Final

import asyncpg

from ..metrics import PoolMeter
from .pool import translated, unavailable

SESSION_SETUP: Final = "SET jit = off"
"""What every connection of the store (pool and lane) runs once, when it is opened.

JIT compilation off: PostgreSQL compiles a plan whose estimated cost passes
``jit_above_cost`` (100,000), and a compile costs tens of milliseconds, which none of the
store's, the read models' or the API's statements (index look-ups, pages, small batches)
ever earns back. Worse, a read model that turns sequential scans off (``enable_seqscan``:
its look-ups must stay index look-ups on tables without statistics) gives every plan with a
scan of a temporary table an estimate of 10^10, so each such statement was compiled:
70-115 ms for an UPDATE of 30 rows on PostgreSQL 15 built with LLVM (Debian's packages),
where it takes 0.7 ms without. Set per session, not as a connection parameter, so that
connection poolers which refuse unknown start-up parameters still accept the connection."""


async def prepare_session(conn: asyncpg.Connection) -> None:
    """Run :data:`SESSION_SETUP` on a new connection."""
    await conn.execute(SESSION_SETUP)


class Lane:
    """At most ``size`` dedicated connections to ``dsn``, opened on demand.

    Args:
        dsn: connection string.
        size: most connections open at once; callers beyond that wait their turn.
        timeout: seconds, for a connection to open, a statement, a turn (None: unbounded).
    """

    def __init__(self, dsn: str, size: int, *, timeout: float | None = None) -> None:
        if size < 1:
            raise ValueError("a lane needs at least one connection")
        self._dsn = dsn
        self._size = size
        self._timeout = timeout
        self._bounds = {} if timeout is None else {"timeout": timeout, "command_timeout": timeout}
        self._open = 0
        self._idle: list[asyncpg.Connection] = []
        self._waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self._closed = False
        self._meter = PoolMeter("lane", size)

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        """Run one statement in its own (implicit) transaction and return its rows.

        Raises:
            DatabaseUnavailable: PostgreSQL cannot be reached, the connection was lost, a
                wait ran out, or the lane is closed.
            asyncpg errors as the statement raises them otherwise.
        """
        began = time.perf_counter()
        try:
            conn = await self._acquire()
        except Exception as exc:
            if unavailable(exc, closed=True):
                raise translated(exc) from exc
            raise
        self._meter.acquired(time.perf_counter() - began)
        self._meter.resized(self._open)
        try:
            rows: list[asyncpg.Record] = await conn.fetch(query, *args)
        except asyncpg.PostgresError as exc:
            # The server refused the statement; the connection is fine and idle again
            # (unless it was lost: then it is dropped).
            self._release(conn)
            if unavailable(exc, closed=conn.is_closed()):
                raise translated(exc) from exc
            raise
        except BaseException as exc:
            closed = conn.is_closed()
            self._drop(conn)
            if isinstance(exc, Exception) and unavailable(exc, closed=closed):
                raise translated(exc) from exc
            raise
        finally:
            self._meter.released()
            self._meter.resized(self._open)
        self._release(conn)
        return rows

    async def fetchval(self, query: str, *args: Any) -> Any:
        """The first column of the first row of one statement (None without rows)."""
        rows = await self.fetch(query, *args)
        return rows[0][0] if rows else None

    async def _acquire(self) -> asyncpg.Connection:
        while True:
            if self._closed:
                raise asyncpg.InterfaceError("the store's connection lane is closed")
            while self._idle:
                conn = self._idle.pop()
                if not conn.is_closed():
                    return conn
                self._open -= 1
            if self._open < self._size:
                self._open += 1
                try:
                    conn = await asyncpg.connect(self._dsn, **self._bounds)
                    try:
                        await prepare_session(conn)
                    except BaseException:
                        conn.terminate()
                        raise
                    return conn
                except BaseException:
                    self._open -= 1
                    self._wake()
                    raise
            waiter: asyncio.Future[asyncpg.Connection | None] = (
                asyncio.get_running_loop().create_future()
            )
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout(self._timeout):
                    conn_or_none = await waiter
            except (asyncio.CancelledError, TimeoutError):
                # Cancelled, or out of time (a cancellation too, raised as TimeoutError):
                # a connection handed over at that very moment goes to the next waiter.
                if waiter.done() and not waiter.cancelled():
                    handed = waiter.result()
                    if handed is not None:
                        self._release(handed)
                    else:
                        self._wake()
                else:
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(waiter)
                raise
            if conn_or_none is not None:
                return conn_or_none
            # A connection was dropped: there is room to open one; go round again.

    def _release(self, conn: asyncpg.Connection) -> None:
        if self._closed or conn.is_closed():
            self._drop(conn)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    def _drop(self, conn: asyncpg.Connection) -> None:
        self._open -= 1
        conn.terminate()
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def close(self) -> None:
        """Close the idle connections; busy ones close when their call ends."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            self._open -= 1
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
        self._meter.close()

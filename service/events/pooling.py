"""The store's connection pool: asyncpg's, measured (``cairn_db_pool_*``, ``pool="main"``).

Everything that reaches PostgreSQL through the store's pool (the store, the read models, the
read side, the HTTP layer's own table) acquires through :meth:`MeteredPool._acquire`, which
``pool.acquire()`` and ``pool.fetch()`` and friends all use: the wait is timed there, and the
connections in use counted there and in :meth:`MeteredPool.release`. Open connections are
counted as asyncpg opens them and as they close (a termination listener: it also hears of a
connection the server ended while idle).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from ..metrics import PoolMeter


class MeteredPool(asyncpg.Pool):  # type: ignore[misc]  # asyncpg has no type information
    """An asyncpg pool reporting its size, its connections in use and the waits for one.

    Open it with ``await`` (as ``asyncpg.create_pool``'s result), close it as any pool.

    Args:
        dsn: connection string.
        min_size, max_size: as asyncpg's.
        init: run on each new connection.
        reset: run on each release (asyncpg's ``reset``).
        connect: further arguments of each connection (``timeout``, ``command_timeout``).
    """

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int,
        max_size: int,
        init: Callable[[asyncpg.Connection], Awaitable[None]],
        reset: Callable[[asyncpg.Connection], Awaitable[None]],
        **connect: Any,
    ) -> None:
        # asyncpg.create_pool's defaults; create_pool itself cannot make a subclass.
        super().__init__(
            dsn,
            min_size=min_size,
            max_size=max_size,
            max_queries=50_000,
            max_inactive_connection_lifetime=300.0,
            setup=None,
            init=init,
            reset=reset,
            loop=None,
            connection_class=asyncpg.Connection,
            record_class=asyncpg.Record,
            **connect,
        )
        self._meter = PoolMeter("main", max_size)

    async def _async__init__(self) -> Any:
        try:
            return await super()._async__init__()
        except BaseException:
            # asyncpg closes a pool that failed to open; so does the meter.
            self._meter.close()
            raise

    async def _get_new_connection(self) -> Any:
        connection = await super()._get_new_connection()
        meter = self._meter
        meter.resized(meter.size + 1)
        connection.add_termination_listener(lambda _: meter.resized(meter.size - 1))
        return connection

    async def _acquire(self, timeout: float | None) -> Any:  # noqa: ASYNC109 - asyncpg's
        began = time.perf_counter()
        connection = await super()._acquire(timeout)
        self._meter.acquired(time.perf_counter() - began)
        return connection

    async def release(
        self,
        connection: Any,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - asyncpg's signature
    ) -> None:
        """Give back a connection of :meth:`acquire` (see asyncpg's ``Pool.release``)."""
        # Counted before: whatever asyncpg does with it now, its holder has let go of it.
        self._meter.released()
        await super().release(connection, timeout=timeout)

    async def close(self) -> None:
        """Close every connection once released (see asyncpg's ``Pool.close``)."""
        try:
            await super().close()
        finally:
            self._meter.close()

    def terminate(self) -> None:
        """Close every connection at once (see asyncpg's ``Pool.terminate``)."""
        try:
            super().terminate()
        finally:
            self._meter.close()

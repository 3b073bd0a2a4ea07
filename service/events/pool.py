"""The store's connection pool: asyncpg's, with bounded waits and an outage translated.

Everything that reaches PostgreSQL through the store's pool (the store itself, the read
models, the read side, the HTTP layer's own table) goes through :meth:`Pool.acquire`, which
``pool.fetch`` and friends use too. That makes it the one place where a database that cannot
be reached, or a connection lost on the way, becomes
:class:`~service.errors.DatabaseUnavailable` (raised from the asyncpg error): the HTTP layer
answers it with 503, the background loops retry. What PostgreSQL answers about a statement
(a constraint, a syntax error) and a caller's own mistakes pass through untouched.

With ``timeout``, no wait is unbounded: opening a connection (asyncpg's ``timeout``), each
statement (``command_timeout``) and the wait for a free connection (``acquire``) give up
after it. A connection that met an outage is dropped, not reset: its state is unknown, and
resetting it would wait on the lost server again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Generator
from types import TracebackType
from typing import Any, Final

import asyncpg
from asyncpg.pool import PoolAcquireContext

from ..errors import DatabaseUnavailable
from .pooling import MeteredPool

_OUTAGES: Final[tuple[type[BaseException], ...]] = (
    # Refused, reset, unreachable, and every timeout (TimeoutError is an OSError).
    OSError,
    # 08xxx, including a connection lost in the middle of a statement.
    asyncpg.PostgresConnectionError,
    # Shutting down, crashed, starting up or recovering: 57P01, 57P02, 57P03.
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    # "sorry, too many clients already" (53300): there, but it cannot take us now.
    asyncpg.TooManyConnectionsError,
)

_CLOSED_OUTAGES: Final[tuple[type[BaseException], ...]] = (
    asyncpg.InterfaceError,
    # "cannot switch to state 15; another operation is in progress": the server went away
    # while a connection was being reset on release.
    asyncpg.InternalClientError,
)
"""Errors that mean an outage only when the connection (or pool) is closed: asyncpg also
raises them for a caller's mistakes (bad arguments, one connection used twice at once)."""


def unavailable(exc: BaseException, *, closed: bool) -> bool:
    """Whether ``exc`` means that PostgreSQL cannot be reached or the connection was lost.

    Args:
        closed: whether the connection it came from (or the pool) is closed by now.
    """
    if isinstance(exc, (DatabaseUnavailable, *_OUTAGES)):
        return True
    return closed and isinstance(exc, _CLOSED_OUTAGES)


def translated(exc: BaseException) -> DatabaseUnavailable:
    """The :class:`DatabaseUnavailable` to raise from ``exc`` (an outage by :func:`unavailable`).

    Its message names the kind of error, never the server's address.
    """
    if isinstance(exc, DatabaseUnavailable):
        return exc
    return DatabaseUnavailable(f"the database is unavailable ({type(exc).__name__})")


class Pool(MeteredPool):
    """An asyncpg pool whose waits are bounded by ``timeout`` (None: asyncpg's defaults) and
    whose connection errors are :class:`DatabaseUnavailable`, measured as
    :class:`~.pooling.MeteredPool` is. Open it with ``await``.

    Args:
        dsn: connection string.
        min_size, max_size: as asyncpg's.
        timeout: seconds, for a connection to open, a statement, a free connection.
        init: run on each new connection.
        reset: run on each release (asyncpg's ``reset``).
    """

    __slots__ = ("_wait",)

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int,
        max_size: int,
        timeout: float | None,
        init: Callable[[asyncpg.Connection], Awaitable[None]],
        reset: Callable[[asyncpg.Connection], Awaitable[None]],
    ) -> None:
        bounds = {} if timeout is None else {"timeout": timeout, "command_timeout": timeout}
        super().__init__(
            dsn, min_size=min_size, max_size=max_size, init=init, reset=reset, **bounds
        )
        self._wait = timeout

    def acquire(self, *, timeout: float | None = None) -> _Acquire:
        """A connection, within ``timeout`` (default: the pool's); use with ``async with``.

        Raises:
            DatabaseUnavailable: none could be had in time, or the one had was lost while the
                block used it.
        """
        return _Acquire(self, self._wait if timeout is None else timeout)


class _Acquire(PoolAcquireContext):  # type: ignore[misc]
    """asyncpg's acquire context, translating an outage on the way in, in the block and out."""

    async def __aenter__(self) -> Any:
        try:
            return await super().__aenter__()
        except Exception as exc:
            if unavailable(exc, closed=self.pool.is_closing()):
                raise translated(exc) from exc
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection = self.connection
        lost = exc is not None and unavailable(exc, closed=_closed(connection))
        if lost and connection is not None:
            # Dropped: a reset would first wait for the cancellation of a timed-out
            # statement, on a server that may never answer it. (Let go of already when
            # asyncpg saw it close.)
            with contextlib.suppress(asyncpg.InterfaceError):
                connection.terminate()
        try:
            await super().__aexit__(exc_type, exc, tb)
        except Exception as failed:
            if lost:
                assert exc is not None
                raise translated(exc) from exc
            if exc is None and unavailable(failed, closed=True):
                raise translated(failed) from failed
            raise
        if lost and not isinstance(exc, DatabaseUnavailable):
            assert exc is not None
            raise translated(exc) from exc

    def __await__(self) -> Generator[Any, None, Any]:
        self.done = True
        return self._acquired().__await__()

    async def _acquired(self) -> Any:
        # Without ``async with`` (the caller releases it): only the way in is translated.
        try:
            return await self.pool._acquire(self.timeout)
        except Exception as exc:
            if unavailable(exc, closed=self.pool.is_closing()):
                raise translated(exc) from exc
            raise


def _closed(connection: Any) -> bool:
    if connection is None:
        return True
    try:
        return bool(connection.is_closed())
    except asyncpg.InterfaceError:
        # Let go of already: asyncpg releases a connection it saw close.
        return True

"""The event store: the one place that talks to the ``events`` table.

Appends go through the ``cairn_append`` SQL function (one round trip; expected version,
idempotency key and hash chain are all checked inside it). Reads of the global log are
gap-free: see :meth:`EventStore.read_all`.

:class:`EventStore` is one class made of one module per concern: ``appends.py`` (writing),
``reading.py`` (streams, pages of the log and their read-ahead), ``following.py`` (live
readers); ``sql.py`` holds their statements and ``rows.py`` decodes the rows they return.
This module opens and closes the store's connections.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg

from ..errors import DatabaseUnavailable
from .appends import ANY, NO_STREAM, AppendResult, Appends
from .following import Following
from .lane import Lane, prepare_session
from .pooling import MeteredPool
from .reading import START, Cursor
from .wakeup import TRANSIENT_ERRORS, Listener, Notifier

__all__ = ["ANY", "NO_STREAM", "START", "AppendResult", "Cursor", "EventStore"]


class EventStore(Appends, Following):
    """Append to and read from the event log.

    Args:
        pool: an asyncpg pool on a migrated database.
        dsn: the same database's connection string, for the dedicated LISTEN connection
            (and the fast lane).
        poll_interval: how often live readers re-read without a wake-up (fallback).
        lane_size: dedicated connections for appends and page reads (0: use the pool).
    """

    def __init__(
        self, pool: asyncpg.Pool, dsn: str, *, poll_interval: float = 1.0, lane_size: int = 0
    ) -> None:
        self.pool = pool
        self._dsn = dsn
        # Appends and page reads are single statements: with ``lane_size`` they take a fast
        # lane of dedicated connections instead of the pool (see lane.py for the why).
        self._lane: Lane | asyncpg.Pool = Lane(dsn, lane_size) if lane_size > 0 else pool
        self.poll_interval = poll_interval
        # Names this process in its NOTIFYs, so that it can tell others' commits from its own.
        sender = uuid.uuid4().hex
        self._notifier = Notifier(pool, sender=sender)
        self._listener = Listener(dsn, sender=sender)
        self.wakeups = self._listener
        """Wake-ups of this process's log readers (generation counter; see wakeup.py)."""
        self._closed = False
        self._cursors: dict[int, Cursor] = {}
        # Pages read ahead for readers walking the log (see read_after), oldest first.
        self._ahead: dict[tuple[Cursor, int, str | None], asyncio.Task[list[asyncpg.Record]]] = {}

    @classmethod
    async def open(
        cls, dsn: str, *, min_size: int = 2, max_size: int = 10, **kw: Any
    ) -> EventStore:
        """Open a pool on ``dsn`` and return a store using it (close with :meth:`close`).

        Raises:
            DatabaseUnavailable: PostgreSQL cannot be reached.
        """
        pool = MeteredPool(
            dsn, min_size=min_size, max_size=max_size, reset=_keep_session, init=prepare_session
        )
        try:
            await pool
        except TRANSIENT_ERRORS as exc:
            raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc
        kw.setdefault("lane_size", max_size)
        return cls(pool, dsn, **kw)

    async def close(self) -> None:
        """Stop the wake-up machinery and close the pool; live subscriptions then end."""
        # Set first: readers that fail on the closing pool must stop, not retry forever
        # (asyncpg reports a closed pool as an InterfaceError, which looks transient).
        self._closed = True
        ahead, self._ahead = list(self._ahead.values()), {}
        for task in ahead:
            task.cancel()
        await asyncio.gather(*ahead, return_exceptions=True)
        await self._notifier.close()
        await self._listener.close()
        if self._lane is not self.pool:
            await self._lane.close()
        await self.pool.close()


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Pool reset on release: nothing beyond asyncpg's own rollback of an open transaction.

    asyncpg's default reset sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL`` on every release: one more round trip per append and per read. The store's
    connections never take session advisory locks, cursors, LISTENs or settings (LISTEN has
    its own connection), and code given a pooled connection must not either.
    """

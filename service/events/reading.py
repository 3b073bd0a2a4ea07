"""Reading the log: streams, pages in log order after a cursor (read ahead), the horizon.

Part of :class:`~service.events.store.EventStore`. Reads of the global log are gap-free:
see :meth:`Reading.read_all`.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Final

import asyncpg

from ..errors import UnknownPosition
from .base import RecordedEvent
from .lane import Lane
from .rows import decode_rows
from .sql import (
    COLUMNS,
    DATA_VALUES,
    PENDING,
    PENDING_PROJECT,
    READ_AFTER,
    READ_AFTER_PROJECT,
    STREAM_VERSION,
    STREAM_WITH_PREFIX,
)

Cursor = tuple[int, int]
"""A place in log order: ``(tx_id, position)`` of the last event read."""
START: Final[Cursor] = (0, 0)

_CURSOR_CACHE: Final = 256
_READ_AHEAD_PAGES: Final = 4
_DECODE_SLICE: Final = 200


class Reading:
    """The store's reads: a base of :class:`~service.events.store.EventStore`, which opens
    the connections and sets up the state named here."""

    pool: asyncpg.Pool
    _lane: Lane | asyncpg.Pool
    _closed: bool
    _cursors: dict[int, Cursor]
    _ahead: dict[tuple[Cursor, int, str | None], asyncio.Task[list[asyncpg.Record]]]

    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version: the number of events in it (0 if none)."""
        return int(await self.pool.fetchval(STREAM_VERSION, stream_id))

    async def has_stream_with_prefix(self, prefix: str) -> bool:
        """Whether the log holds a committed event of a stream whose name starts with
        ``prefix`` (taken literally), e.g. ``"person-"``: is anybody in it yet.

        Not for hot paths: without a match it reads the whole log (see ``STREAM_WITH_PREFIX``
        in ``sql.py``).
        """
        return await self.pool.fetchval(STREAM_WITH_PREFIX, prefix) is not None

    async def values_in_data(self, key: str) -> set[str]:
        """Every string that any committed event's data holds under ``key``, at any depth
        (``"sha256"``: the files events name). Reads the whole log: for rare chores
        (``cairn blobs gc``), never a request.

        Raises:
            ValueError: ``key`` is not an identifier.
        """
        if not key.isidentifier() or not key.isascii():
            raise ValueError(f"not an identifier: {key!r}")
        rows = await self.pool.fetch(DATA_VALUES.format(key=key))
        return {row[0] for row in rows}

    async def read_stream(
        self, stream_id: str, *, from_version: int = 1, limit: int | None = None
    ) -> list[RecordedEvent]:
        """The events of one stream from ``from_version`` on, in stream order."""
        rows = await self.pool.fetch(
            f"SELECT {COLUMNS} FROM events WHERE stream_id = $1 AND stream_version >= $2 "
            "ORDER BY stream_version LIMIT $3",
            stream_id,
            from_version,
            limit,
        )
        return decode_rows(rows)

    async def cursor_of(self, position: int) -> Cursor:
        """The log-order cursor of the event at ``position`` (``START`` for 0).

        Raises:
            UnknownPosition: no event has that position.
        """
        if position == 0:
            return START
        tx_id = await self._lane.fetchval("SELECT tx_id FROM events WHERE position = $1", position)
        if tx_id is None:
            raise UnknownPosition(position)
        return (int(tx_id), position)

    async def read_all(
        self,
        after: int = 0,
        limit: int = 1000,
        *,
        project_id: str | None = None,
        read_ahead: bool = True,
    ) -> list[RecordedEvent]:
        """Up to ``limit`` events of the global log after position ``after``, in log order.

        Log order is ``(tx_id, position)``; only events of transactions below the current
        snapshot's xmin are returned, so an event committed late is never skipped: it is
        returned later, in its place after what was returned before. Pass the last returned
        event's position as ``after`` to continue. ``read_ahead``: see :meth:`read_after`.

        Raises:
            UnknownPosition: ``after`` is not a position in the log.
        """
        cursor = self._cursors.get(after)
        if cursor is None:
            cursor = await self.cursor_of(after)
        return await self.read_after(cursor, limit, project_id=project_id, read_ahead=read_ahead)

    async def read_after(
        self,
        cursor: Cursor,
        limit: int = 1000,
        *,
        project_id: str | None = None,
        read_ahead: bool = False,
    ) -> list[RecordedEvent]:
        """Like :meth:`read_all`, from a log-order cursor (no position look-up).

        With ``read_ahead``, for readers that walk the log page after page with one page
        size (a scan, a rebuild, a catch-up), a full page starts a read-ahead of the next
        one on another connection, so that the reader finds it fetched while it was busy
        with this one. A read-ahead page is used only if it came back full: every
        transaction below the horizon it was read under had finished, and a full page holds
        only such rows, so a fresh read would return exactly the same rows. A short one may
        predate commits the caller expects to see, so it is read again.
        """
        key = (cursor, limit, project_id)
        rows: list[asyncpg.Record] | None = None
        ahead = self._ahead.pop(key, None)
        if ahead is not None:
            try:
                rows = await ahead
            except Exception:  # the page is simply read again below
                rows = None
            if rows is not None and len(rows) != limit:
                rows = None
        if rows is None:
            rows = await self._fetch_page(cursor, limit, project_id)
        if not rows:
            return []
        last: Cursor = (rows[-1][1], rows[-1][0])
        # Events never change, so a position's cursor can be remembered for good: a reader
        # continuing from the last event returned skips the look-up.
        self._cursors[last[1]] = last
        if len(self._cursors) > _CURSOR_CACHE:
            del self._cursors[next(iter(self._cursors))]
        if len(rows) < limit or self._closed or not read_ahead:
            return decode_rows(rows)
        # Ask for the next page before decoding this one, and decode in slices, letting the
        # event loop take in the next page's rows in between: PostgreSQL stops sending when
        # the socket's buffer (~200 kB) is full, so without the breaks it would sit idle
        # while this page decodes (measured: a third of a scan's time spent waiting).
        self._read_ahead((last, limit, project_id))
        events: list[RecordedEvent] = []
        for start in range(0, len(rows), _DECODE_SLICE):
            if start:
                await asyncio.sleep(0)
            events += decode_rows(
                rows[start : start + _DECODE_SLICE], events[-1] if events else None
            )
        return events

    async def _fetch_page(
        self, cursor: Cursor, limit: int, project_id: str | None
    ) -> list[asyncpg.Record]:
        if project_id is None:
            return await self._lane.fetch(READ_AFTER, cursor[0], cursor[1], limit)
        return await self._lane.fetch(READ_AFTER_PROJECT, cursor[0], cursor[1], limit, project_id)

    def _read_ahead(self, key: tuple[Cursor, int, str | None]) -> None:
        if key in self._ahead:
            return
        while len(self._ahead) >= _READ_AHEAD_PAGES:
            # The oldest read-ahead nobody came back for: forgotten, not cancelled (the lane
            # would drop its connection), it ends on its own.
            del self._ahead[next(iter(self._ahead))]
        task = asyncio.get_running_loop().create_task(self._fetch_page(*key))
        task.add_done_callback(_consume_failure)
        self._ahead[key] = task

    async def head(self) -> Cursor:
        """The cursor of the last event a gap-free reader could read now."""
        row = await self.pool.fetchrow(
            "SELECT tx_id, position FROM events WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot()) "
            "ORDER BY tx_id DESC, position DESC LIMIT 1"
        )
        return START if row is None else (int(row["tx_id"]), int(row["position"]))

    async def has_hidden(self, cursor: Cursor, *, project_id: str | None = None) -> bool:
        """Whether committed events after ``cursor`` exist that a read may not have returned.

        True while events wait behind the read horizon (an older transaction is open) and
        for events that became readable since the caller's last read: either way a live
        reader should read again soon. Call it after a page shorter than asked for.
        """
        if project_id is None:
            value = await self._lane.fetchval(PENDING, cursor[0], cursor[1])
        else:
            value = await self._lane.fetchval(PENDING_PROJECT, cursor[0], cursor[1], project_id)
        return value is not None

    async def backlog(self, cursor: Cursor) -> tuple[int, datetime | None]:
        """How many events come after ``cursor`` in log order, and the time of the oldest of
        them (committed ones, whatever the horizon): a reader's lag."""
        row = await self.pool.fetchrow(
            "SELECT count(*) AS n, min(recorded_at) AS oldest FROM events "
            "WHERE (tx_id, position) > ($1::xid8, $2::bigint)",
            cursor[0],
            cursor[1],
        )
        assert row is not None
        return int(row["n"]), row["oldest"]

    async def count_until(self, cursor: Cursor) -> tuple[int, int]:
        """(events in the log, events up to and including ``cursor`` in log order)."""
        row = await self.pool.fetchrow(
            "SELECT count(*) AS total, "
            "count(*) FILTER (WHERE (tx_id, position) <= ($1::xid8, $2::bigint)) AS covered "
            "FROM events",
            cursor[0],
            cursor[1],
        )
        assert row is not None
        return int(row["total"]), int(row["covered"])

    async def recorded_at(self, position: int) -> datetime | None:
        """When the event at ``position`` was recorded (None if there is none)."""
        value = await self.pool.fetchval(
            "SELECT recorded_at FROM events WHERE position = $1", position
        )
        return value if isinstance(value, datetime) else None

    @staticmethod
    def log_relation(until: Cursor) -> str:
        """The events up to ``until`` (inclusive) as a parenthesised SQL relation with the
        columns of the events table, under the gap-free rule: only rows of transactions
        below the snapshot's xmin, in a range closed by a cursor from :meth:`head`, so every
        row in it has committed and no later commit can land inside it. For set-based
        rebuilds of read models, which must not name the events table themselves."""
        tx_id, position = int(until[0]), int(until[1])
        return (
            "(SELECT * FROM events "
            f"WHERE (tx_id, position) <= ('{tx_id}'::xid8, {position}::bigint) "
            "AND tx_id < pg_snapshot_xmin(pg_current_snapshot()))"
        )


def _consume_failure(task: asyncio.Task[Any]) -> None:
    # A read-ahead that failed or was never collected must not log "exception never
    # retrieved": its reader reads the page again and meets the error itself, if any.
    if not task.cancelled():
        task.exception()

"""The event store: the one place that talks to the ``events`` table.

Appends go through the ``cairn_append`` SQL function (one round trip; expected version,
idempotency key and hash chain are all checked inside it). Reads of the global log are
gap-free: see :meth:`EventStore.read_all`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import asyncpg
import msgspec

from ..errors import (
    DatabaseUnavailable,
    EventDecodeError,
    IdempotencyKeyReused,
    ImmutableLog,
    UnknownPosition,
    WrongExpectedVersion,
)
from .base import (
    Event,
    Metadata,
    RecordedEvent,
    any_event_decoder,
    current_decoders,
    decode_event,
    decode_metadata,
    encode_data,
    encode_metadata,
    type_name,
)
from .lane import Lane, prepare_session
from .wakeup import TRANSIENT_ERRORS, Listener, Notifier

_log = logging.getLogger(__name__)

ANY: Final = -1
"""Expected version: append whatever the stream's version is."""
NO_STREAM: Final = 0
"""Expected version: the stream must not exist yet."""

Cursor = tuple[int, int]
"""A place in log order: ``(tx_id, position)`` of the last event read."""
START: Final[Cursor] = (0, 0)

_COLUMNS = (
    "position, tx_id, stream_id, stream_version, project_id, event_type, schema_version, "
    "data, metadata, recorded_at, hash"
)
# The horizon: every transaction with a smaller id has finished, so nothing can commit
# "behind" a row we return. Rows of later transactions wait until the horizon passes them:
# late, never lost, and never a timeout that skips anything.
#
# Pages of the log send an event's metadata and time only when they differ from the row
# before (NULL otherwise; both columns are NOT NULL, so NULL cannot mean anything else).
# The events of one append share both, and every event of a transaction has the same
# recorded_at (now() is the transaction's start), so a batch-heavy log costs the client
# about 0.8 us less per event to receive and decode.
#
# Nor do they send the event type: the data carries it as its tag, so the client decodes
# each row with a decoder for any type and names the type from the class (one column, and
# one string per row, fewer to build and free).
_SHARED_COLUMNS = """position, tx_id, stream_id, stream_version, project_id, NULL::text, schema_version,
    data, CASE WHEN metadata = lag(metadata) OVER w THEN NULL ELSE metadata END,
    CASE WHEN tx_id = lag(tx_id) OVER w THEN NULL ELSE recorded_at END, hash"""


def _read_after_sql(where: str) -> str:
    """A page of the log after cursor ($1, $2), at most $3 rows, below the horizon, with
    the shared columns sent once (see above); ``where`` narrows the rows further."""
    return f"""
SELECT {_SHARED_COLUMNS} FROM (
    SELECT {_COLUMNS} FROM events
    WHERE {where}(tx_id, position) > ($1::xid8, $2::bigint)
      AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
    ORDER BY tx_id, position
    LIMIT $3
) page
WINDOW w AS (ORDER BY tx_id, position)
ORDER BY tx_id, position
"""


_READ_AFTER = _read_after_sql("")
_READ_AFTER_PROJECT = _read_after_sql("project_id = $4 AND ")
# A live reader's page: the readable rows after the cursor plus, in the same statement and
# so under the same snapshot, at most one committed row the horizon still hides (``ready``
# false). Two separate statements would race: if the transaction holding the horizon
# ended between them, the second would find nothing hidden and the reader would sleep a
# whole poll interval with readable rows waiting (a rollback sends no wake-up).
# The hidden row is looked for after the cursor or the horizon, whichever is later, as one
# row comparison: written as "(tx_id, position) > cursor AND tx_id >= horizon", the index
# scan would start at the cursor and walk the whole backlog on every page of a catch-up.
_HORIZON = "pg_snapshot_xmin(pg_current_snapshot())"
_HIDDEN_START = f"""(
    CASE WHEN $1::xid8 >= {_HORIZON} THEN $1::xid8 ELSE {_HORIZON} END,
    CASE WHEN $1::xid8 >= {_HORIZON} THEN $2::bigint ELSE 0 END
)"""
_PAGE = f"""
SELECT * FROM (
    (SELECT {_COLUMNS}, true AS ready FROM events
     WHERE (tx_id, position) > ($1::xid8, $2::bigint) AND tx_id < {_HORIZON}
     ORDER BY tx_id, position
     LIMIT $3)
    UNION ALL
    (SELECT {_COLUMNS}, false FROM events
     WHERE (tx_id, position) > {_HIDDEN_START}
     ORDER BY tx_id, position
     LIMIT 1)
) page
ORDER BY tx_id, position
"""
_PAGE_PROJECT = f"""
SELECT * FROM (
    (SELECT {_COLUMNS}, true AS ready FROM events
     WHERE project_id = $4
       AND (tx_id, position) > ($1::xid8, $2::bigint) AND tx_id < {_HORIZON}
     ORDER BY tx_id, position
     LIMIT $3)
    UNION ALL
    (SELECT {_COLUMNS}, false FROM events
     WHERE project_id = $4 AND (tx_id, position) > {_HIDDEN_START}
     ORDER BY tx_id, position
     LIMIT 1)
) page
ORDER BY tx_id, position
"""
# Anything committed after a cursor, readable or not. Asked after a separate read, it must
# not look at the horizon: the horizon may have moved past hidden rows in between, and
# those rows are then readable, not hidden, yet unread.
#
# Written as "the first such row" and not as EXISTS: a prepared EXISTS soon gets a generic
# plan, and PostgreSQL's generic plan for it is a sequential scan (it expects a third of the
# table to match and stop early), which reads the whole log when nothing is pending: 51 ms
# per call on 200,000 events. Ordered by the index with LIMIT 1, every plan is one probe.
_PENDING = """
SELECT 1 FROM events WHERE (tx_id, position) > ($1::xid8, $2::bigint)
ORDER BY tx_id, position LIMIT 1
"""
_PENDING_PROJECT = """
SELECT 1 FROM events WHERE project_id = $3 AND (tx_id, position) > ($1::xid8, $2::bigint)
ORDER BY project_id, tx_id, position LIMIT 1
"""


class AppendResult(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What an append wrote (or, for a retried idempotency key, had written)."""

    positions: list[int]
    stream_version: int
    tx_id: int
    replayed: bool

    @property
    def cursor(self) -> Cursor:
        """Log-order place of the last event appended."""
        return (self.tx_id, self.positions[-1]) if self.positions else START


_events_encoder = msgspec.json.Encoder()


class _Item(msgspec.Struct, array_like=False):
    type: str
    schema_version: int
    data: msgspec.Raw


class EventStore:
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
        try:
            pool = await asyncpg.create_pool(
                dsn, min_size=min_size, max_size=max_size, reset=_keep_session, init=prepare_session
            )
        except TRANSIENT_ERRORS as exc:
            raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc
        assert pool is not None
        kw.setdefault("lane_size", max_size)
        return cls(pool, dsn, **kw)

    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

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

    # ---------------------------------------------------------------- writing

    async def append(
        self,
        stream_id: str,
        events: Sequence[Event],
        expected_version: int,
        metadata: Metadata | None = None,
        idempotency_key: str | None = None,
        *,
        project_id: str | None = None,
        connection: asyncpg.Connection | None = None,
        fingerprint: bytes | None = None,
    ) -> AppendResult:
        """Append ``events`` to ``stream_id`` atomically: all of them or none.

        Args:
            expected_version: :data:`ANY`, :data:`NO_STREAM`, or the exact version the
                stream must be at (the number of events in it).
            metadata: stored with every event (actor, correlation id, ...).
            idempotency_key: a retry with the same key returns the first append's result,
                appending nothing, even when the two race.
            project_id: the project the stream belongs to, if any.
            connection: run inside the caller's transaction on this connection (the caller
                then owns commit and rollback, and must call :meth:`committed` after commit).
                After an error the transaction may or may not be aborted already (a wrong
                expected version of a single event inserts nothing and aborts nothing):
                roll it back.
            fingerprint: what makes a retry under ``idempotency_key`` "the same append"; by
                default the events' bytes. A caller whose retries decide again, and so may
                stamp new times into the events, names the request instead.

        Raises:
            WrongExpectedVersion: the stream is not at ``expected_version``; nothing written.
            IdempotencyKeyReused: the key was used for a different append.
            DatabaseUnavailable: PostgreSQL could not be reached; the append may or may not
                have happened (retry with the same idempotency key to find out).
        """
        if not events:
            raise ValueError("append needs at least one event")
        if expected_version < ANY:
            raise ValueError(
                f"expected_version must be ANY, NO_STREAM or >= 1, not {expected_version}"
            )
        metadata = metadata or Metadata()
        if idempotency_key is None and len(events) == 1:
            return await self._append_one(
                stream_id, events[0], expected_version, metadata, project_id, connection
            )
        if idempotency_key is not None and metadata.idempotency_key != idempotency_key:
            metadata = msgspec.structs.replace(metadata, idempotency_key=idempotency_key)
        items = [
            _Item(
                type=type_name(type(e)),
                schema_version=e.schema_version,
                data=msgspec.Raw(encode_data(e)),
            )
            for e in events
        ]
        payload = _events_encoder.encode(items)
        digest = None
        if idempotency_key is not None:
            digest = _fingerprint(stream_id, project_id, payload, fingerprint)
        args = (
            stream_id,
            expected_version,
            project_id,
            payload.decode(),
            encode_metadata(metadata).decode(),
            idempotency_key,
            digest,
        )
        rows = await self._run_append(_APPEND, args, stream_id, expected_version, connection)
        result = AppendResult(
            positions=[r["out_position"] for r in rows],
            stream_version=rows[-1]["out_stream_version"] if rows else 0,
            tx_id=rows[-1]["out_tx_id"] if rows else 0,
            replayed=bool(rows) and rows[0]["out_replayed"],
        )
        if connection is None and not result.replayed:
            self.committed()
        return result

    async def _append_one(
        self,
        stream_id: str,
        event: Event,
        expected_version: int,
        metadata: Metadata,
        project_id: str | None,
        connection: asyncpg.Connection | None,
    ) -> AppendResult:
        """The common case, one event and no idempotency key: one plain SQL statement.

        Same rows and hash bytes as ``cairn_append`` (tested), at about two thirds of its
        server cost: no PL/pgSQL call, no set-returning function.
        """
        args = (
            stream_id,
            expected_version,
            project_id,
            type_name(type(event)),
            event.schema_version,
            encode_data(event).decode(),
            encode_metadata(metadata).decode(),
        )
        statement = _APPEND_ONE if expected_version == ANY else _APPEND_EXACT
        rows = await self._run_append(statement, args, stream_id, expected_version, connection)
        if not rows:
            # The statement inserts nothing when the stream is not at the expected version.
            actual = await self._version_seen(stream_id, connection)
            raise WrongExpectedVersion(stream_id, expected_version, actual)
        row = rows[0]
        result = AppendResult(
            positions=[row[0]], stream_version=row[2], tx_id=row[1], replayed=False
        )
        if connection is None:
            self.committed()
        return result

    async def _run_append(
        self,
        statement: str,
        args: tuple[Any, ...],
        stream_id: str,
        expected_version: int,
        connection: asyncpg.Connection | None,
    ) -> list[asyncpg.Record]:
        """Run an append statement and translate its errors into the store's."""
        while True:
            try:
                if connection is not None:
                    rows: list[asyncpg.Record] = await connection.fetch(statement, *args)
                    return rows
                return await self._lane.fetch(statement, *args)
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name != "events_stream_version_key":
                    raise
                # A concurrent writer took the version we computed. With ANY that is no
                # conflict: try again on top of it (only possible outside a caller's tx).
                if expected_version == ANY and connection is None:
                    continue
                # The violation aborted any transaction of the caller's: ask the pool.
                actual = await self.stream_version(stream_id)
                raise WrongExpectedVersion(stream_id, expected_version, actual) from exc
            except asyncpg.PostgresError as exc:
                translated = _translate(exc, stream_id, expected_version)
                if translated is None:
                    raise
                raise translated from exc
            except TRANSIENT_ERRORS as exc:
                raise DatabaseUnavailable(f"append to {stream_id!r} failed: {exc}") from exc

    async def _version_seen(self, stream_id: str, connection: asyncpg.Connection | None) -> int:
        if connection is None:
            return await self.stream_version(stream_id)
        # Inside the caller's transaction (which may be aborted by now: ask the pool).
        try:
            return int(await connection.fetchval(_STREAM_VERSION, stream_id))
        except asyncpg.PostgresError:
            return await self.stream_version(stream_id)

    async def appended(
        self,
        stream_id: str,
        idempotency_key: str,
        *,
        project_id: str | None = None,
        fingerprint: bytes,
    ) -> AppendResult | None:
        """The append made earlier under ``idempotency_key``, if it committed (else None).

        For callers that decide again on a retry (which may then refuse, the change being
        there already) and want to learn first whether there is anything to decide.
        ``fingerprint`` must be the one given to :meth:`append`.

        Raises:
            IdempotencyKeyReused: the key was used for a different append.
        """
        rows = await self.pool.fetch(_APPENDED, idempotency_key)
        if not rows or rows[0]["position"] is None:
            return None
        if bytes(rows[0]["fingerprint"]) != _fingerprint(stream_id, project_id, b"", fingerprint):
            raise IdempotencyKeyReused(idempotency_key)
        return AppendResult(
            positions=[r["position"] for r in rows],
            stream_version=rows[-1]["stream_version"],
            tx_id=rows[-1]["tx_id"],
            replayed=True,
        )

    def committed(self) -> None:
        """Tell live readers that a transaction holding appends has committed."""
        # Readers in this process directly, the others through a coalesced NOTIFY.
        self._listener.wake()
        self._notifier.poke()

    # ---------------------------------------------------------------- reading

    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version: the number of events in it (0 if none)."""
        return int(await self.pool.fetchval(_STREAM_VERSION, stream_id))

    async def read_stream(
        self, stream_id: str, *, from_version: int = 1, limit: int | None = None
    ) -> list[RecordedEvent]:
        """The events of one stream from ``from_version`` on, in stream order."""
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM events WHERE stream_id = $1 AND stream_version >= $2 "
            "ORDER BY stream_version LIMIT $3",
            stream_id,
            from_version,
            limit,
        )
        return _decode_rows(rows)

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
            return _decode_rows(rows)
        # Ask for the next page before decoding this one, and decode in slices, letting the
        # event loop take in the next page's rows in between: PostgreSQL stops sending when
        # the socket's buffer (~200 kB) is full, so without the breaks it would sit idle
        # while this page decodes (measured: a third of a scan's time spent waiting).
        self._read_ahead((last, limit, project_id))
        events: list[RecordedEvent] = []
        for start in range(0, len(rows), _DECODE_SLICE):
            if start:
                await asyncio.sleep(0)
            events += _decode_rows(
                rows[start : start + _DECODE_SLICE], events[-1] if events else None
            )
        return events

    async def _fetch_page(
        self, cursor: Cursor, limit: int, project_id: str | None
    ) -> list[asyncpg.Record]:
        if project_id is None:
            return await self._lane.fetch(_READ_AFTER, cursor[0], cursor[1], limit)
        return await self._lane.fetch(_READ_AFTER_PROJECT, cursor[0], cursor[1], limit, project_id)

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
            value = await self._lane.fetchval(_PENDING, cursor[0], cursor[1])
        else:
            value = await self._lane.fetchval(_PENDING_PROJECT, cursor[0], cursor[1], project_id)
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

    async def subscribe(
        self, after: int = 0, *, project_id: str | None = None, batch: int = 500
    ) -> AsyncIterator[RecordedEvent]:
        """Every event after position ``after``: catch up, then follow live, until closed.

        Never skips an event that commits late and never yields one twice. Survives
        PostgreSQL restarts: it waits, reconnects and resumes from the last event yielded.
        Ends when the store is closed.

        Raises:
            UnknownPosition: ``after`` is not a position in the log.
        """
        cursor = await self._retrying(lambda: self.cursor_of(after))
        if cursor is None:
            return
        async for event in self.follow(cursor, project_id=project_id, batch=batch):
            yield event

    async def follow(
        self, cursor: Cursor, *, project_id: str | None = None, batch: int = 500
    ) -> AsyncIterator[RecordedEvent]:
        """Like :meth:`subscribe`, from a log-order cursor."""
        self._listener.start()
        backoff = _FIRST_BACKOFF
        while not self._closed:
            # Taken before reading: a wake-up for a commit this read misses moves it.
            seen = self._listener.generation
            try:
                if project_id is None:
                    rows = await self._lane.fetch(_PAGE, cursor[0], cursor[1], batch)
                else:
                    rows = await self._lane.fetch(
                        _PAGE_PROJECT, cursor[0], cursor[1], batch, project_id
                    )
            except TRANSIENT_ERRORS as exc:
                if self.closed():
                    return
                _log.info("log reader lost PostgreSQL (%s); retrying", exc)
                await asyncio.sleep(_RETRY_DELAY)
                continue
            ready = [r for r in rows if r["ready"]]
            for event in _decode_rows(ready):
                cursor = event.cursor
                yield event
            if len(ready) == batch:
                continue
            if len(ready) < len(rows):
                # Committed events wait behind an open transaction, which may yet end by
                # a rollback (no wake-up at all): look again soon.
                await self._listener.wait(seen, backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
            else:
                backoff = _FIRST_BACKOFF
                await self._listener.wait(seen, self.poll_interval)

    async def _retrying(self, fn: Any) -> Any:
        """``await fn()``, retried while PostgreSQL is unreachable; None once closed."""
        while not self._closed:
            try:
                return await fn()
            except TRANSIENT_ERRORS as exc:
                if self.closed():
                    break
                _log.info("PostgreSQL unavailable (%s); retrying", exc)
                await asyncio.sleep(_RETRY_DELAY)
        return None


_CURSOR_CACHE: Final = 256
_READ_AHEAD_PAGES: Final = 4
_DECODE_SLICE: Final = 200
_EPOCH: Final = datetime.fromtimestamp(0, UTC)
_FIRST_BACKOFF: Final = 0.002
_MAX_BACKOFF: Final = 0.05
_RETRY_DELAY: Final = 0.2
# One event, no idempotency key: cairn_append's single-event branch as one statement.
# It inserts nothing when the stream is not at $2 (>= 0); a writer racing for the same
# version fails on events_stream_version_key. The hash is the same chain link
# cairn_append computes: sha256(previous link || cairn_event_canonical(...)).
_APPEND_ONE = """
WITH prev AS (
    SELECT stream_version, hash FROM events WHERE stream_id = $1
    ORDER BY stream_version DESC LIMIT 1
), cur AS (
    SELECT coalesce((SELECT stream_version FROM prev), 0) AS v,
           coalesce((SELECT hash FROM prev), '\\x'::bytea) AS h
)
INSERT INTO events (stream_id, stream_version, project_id, event_type, schema_version,
                    data, metadata, recorded_at, hash)
SELECT $1, cur.v + 1, $3, $4, $5, $6::jsonb, $7::jsonb, now(),
       sha256(cur.h || cairn_event_canonical(
           $1, cur.v + 1, $3, $4, $5, $6::jsonb, $7::jsonb, now()))
FROM cur
WHERE $2::bigint < 0 OR cur.v = $2::bigint
RETURNING position, tx_id, stream_version
"""
# The same for an exact expected version (or NO_STREAM): the previous link is looked up by
# its version, a plain index probe, which costs the server ~6 % less than the CTE above.
# No row to build on (the stream is below $2) inserts nothing; a stream beyond $2 fails on
# events_stream_version_key.
_APPEND_EXACT = """
INSERT INTO events (stream_id, stream_version, project_id, event_type, schema_version,
                    data, metadata, recorded_at, hash)
SELECT $1, prev.v + 1, $3, $4, $5, $6::jsonb, $7::jsonb, now(),
       sha256(prev.h || cairn_event_canonical(
           $1, prev.v + 1, $3, $4, $5, $6::jsonb, $7::jsonb, now()))
FROM (
    SELECT stream_version AS v, hash AS h FROM events
    WHERE stream_id = $1 AND stream_version = $2::bigint
    UNION ALL
    SELECT 0, '\\x'::bytea WHERE $2::bigint = 0
) prev
RETURNING position, tx_id, stream_version
"""
# The append made earlier under an idempotency key, if it committed (see appended()).
_APPENDED = """
SELECT k.fingerprint, e.position, e.tx_id, e.stream_version
FROM append_keys k LEFT JOIN events e ON e.position = ANY (k.positions)
WHERE k.key = $1
ORDER BY e.position
"""
_STREAM_VERSION = "SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = $1"
_APPEND = "SELECT out_position, out_tx_id, out_stream_version, out_replayed FROM cairn_append($1, $2, $3, $4::jsonb, $5::jsonb, $6, $7)"


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Pool reset on release: nothing beyond asyncpg's own rollback of an open transaction.

    asyncpg's default reset sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL`` on every release: one more round trip per append and per read. The store's
    connections never take session advisory locks, cursors, LISTENs or settings (LISTEN has
    its own connection), and code given a pooled connection must not either.
    """


def _fingerprint(
    stream_id: str, project_id: str | None, payload: bytes, given: bytes | None
) -> bytes:
    """What identifies an append under an idempotency key (see :meth:`EventStore.append`)."""
    digest = hashlib.sha256(stream_id.encode())
    digest.update(b"\x00" + str(project_id).encode() + b"\x00")
    if given is None:
        digest.update(payload)
    else:
        digest.update(b"\x00given\x00" + given)
    return digest.digest()


def _stored_type(data: str) -> str:
    """The type tag inside stored event ``data`` (for data the any-type decoder refused)."""
    try:
        tag = msgspec.json.decode(data).get("type")
    except (msgspec.DecodeError, AttributeError):
        tag = None
    if not isinstance(tag, str):
        raise EventDecodeError(f"stored event data without a type tag: {data[:80]!r}")
    return tag


def _consume_failure(task: asyncio.Task[Any]) -> None:
    # A read-ahead that failed or was never collected must not log "exception never
    # retrieved": its reader reads the page again and meets the error itself, if any.
    if not task.cancelled():
        task.exception()


def _decode_rows(
    rows: Sequence[asyncpg.Record], before: RecordedEvent | None = None
) -> list[RecordedEvent]:
    # Most of a scan's client cost, so written for speed: each event straight through its
    # type's own decoder (old schema versions and failures go the long way, which upcasts
    # or names the culprit), the metadata of an append (shared by its events) decoded once:
    # a NULL metadata or recorded_at means "the same as the row before" (see
    # _SHARED_COLUMNS), which is ``before`` for the first row when a page is decoded in
    # slices.
    decoders = current_decoders()
    any_type, names = any_event_decoder()
    meta = before.metadata if before is not None else Metadata()
    last_meta: str | None = None  # queries without _SHARED_COLUMNS repeat it row by row
    recorded_at: datetime = before.recorded_at if before is not None else _EPOCH
    out: list[RecordedEvent] = []
    append = out.append
    for r in rows:
        name = r[5]
        event: Event
        if name is None:
            # A page without the type column (see _SHARED_COLUMNS).
            try:
                event = any_type.decode(r[7])
                name = names[type(event)]
            except msgspec.ValidationError:
                name = _stored_type(r[7])
                event = decode_event(name, r[6], r[7])
            else:
                if type(event).schema_version != r[6]:
                    event = decode_event(name, r[6], r[7])
        else:
            entry = decoders.get(name)
            if entry is not None and entry[0] == r[6]:
                try:
                    event = entry[1].decode(r[7])
                except msgspec.ValidationError:
                    event = decode_event(name, r[6], r[7])
            else:
                event = decode_event(name, r[6], r[7])
        raw_meta = r[8]
        if raw_meta is not None and raw_meta != last_meta:
            meta = decode_metadata(raw_meta)
            last_meta = raw_meta
        if r[9] is not None:
            recorded_at = r[9]
        append(
            RecordedEvent(r[0], r[1], r[2], r[3], r[4], name, r[6], event, meta, recorded_at, r[10])
        )
    return out


def _translate(exc: asyncpg.PostgresError, stream_id: str, expected: int) -> Exception | None:
    code = getattr(exc, "sqlstate", None)
    if code == "CA001":
        actual = int(getattr(exc, "detail", None) or 0)
        return WrongExpectedVersion(stream_id, expected, actual)
    if code == "CA002":
        return IdempotencyKeyReused(str(getattr(exc, "detail", "")))
    if code == "CA003":
        return ImmutableLog(str(exc))
    return None

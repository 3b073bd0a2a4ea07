"""A delivery reader: follows the log from a checkpoint of its own (table
``delivery_checkpoints``), one batch at a time, across instances.

Like a projection's follower (:mod:`service.projections.engine`), each step takes the
reader's advisory lock (another instance holding it is doing the work), reads the checkpoint
in a second statement, hands the batch to the handler inside the transaction and moves the
checkpoint there: what a batch causes in the database (an outbox row, a notice appended to
the log) commits with the checkpoint or not at all. Unlike a projection it is never rebuilt
and **starts at the head** the first time it runs: a reader enabled on an existing log (or an
imported one) delivers nothing of history; rebuilding read models delivers nothing.

The lock is ``pg_try_advisory_xact_lock``, never a row lock: a waiter on a row lock holds a
transaction id, which would hold back every log reader's horizon.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

import asyncpg

from ..events.base import RecordedEvent
from ..events.store import Cursor, EventStore
from ..events.wakeup import TRANSIENT_ERRORS

_log = logging.getLogger(__name__)

LOCK_SPACE: Final = 0x444C5652  # "DLVR": advisory lock namespace (first key)

_LOCK: Final = "SELECT pg_try_advisory_xact_lock($1, $2)"
_PLACE: Final = "SELECT tx_id, position FROM delivery_checkpoints WHERE name = $1"
_START: Final = (
    "INSERT INTO delivery_checkpoints (name, tx_id, position) VALUES ($1, $2, $3) "
    "ON CONFLICT (name) DO NOTHING"
)
_MOVE: Final = (
    "UPDATE delivery_checkpoints SET tx_id = $2, position = $3, "
    "delivered = delivered + $4, updated_at = now() WHERE name = $1"
)

Handler = Callable[[asyncpg.Connection, Sequence[RecordedEvent]], Awaitable[None]]
"""Called with the step's connection, inside its transaction, and the batch's events (those
of the reader's stream prefixes, in log order; never empty)."""
Before = Callable[[Sequence[RecordedEvent]], Awaitable[None]]
"""Called before the step's transaction opens, with the same events: where a handler must
wait for something (the read models to apply the batch) without holding a transaction."""


def lock_key(name: str) -> int:
    """The second key of reader ``name``'s advisory lock."""
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


@dataclass
class DeliveryReader:
    """Reader ``name`` of the log, handing batches of the events of ``stream_prefixes``
    (None: every event) to ``handle``.

    Args:
        store: the event store (its pool runs the steps).
        name: the checkpoint's name (``[a-z][a-z0-9_]*``).
        handle: see :data:`Handler`. An exception rolls the step back: the batch is handed
            again (after a pause), nothing of it lost, nothing of it recorded twice.
        before: see :data:`Before` (optional).
        stream_prefixes: the streams whose events the handler wants (the checkpoint moves
            over the others).
        batch: events read per step.
    """

    store: EventStore
    name: str
    handle: Handler
    before: Before | None = None
    stream_prefixes: tuple[str, ...] | None = None
    batch: int = 200

    def __post_init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._cursor: Cursor | None = None

    async def start_at_head(self) -> Cursor:
        """Create the checkpoint at the head of the log unless it exists; the checkpoint."""
        head = await self.store.head()
        await self.store.pool.execute(_START, self.name, head[0], head[1])
        return await self.place()

    async def place(self) -> Cursor:
        """Where the reader stands (the checkpoint)."""
        row = await self.store.pool.fetchrow(_PLACE, self.name)
        if row is None:
            raise LookupError(f"delivery reader {self.name} has no checkpoint")
        return (int(row["tx_id"]), int(row["position"]))

    async def step(self) -> int:
        """Hand the next batch over and move the checkpoint; the number of events read (the
        handler may have been given fewer: those of its streams), -1 when another instance
        holds the reader's lock."""
        store = self.store
        async with store.pool.acquire() as conn:
            row = await conn.fetchrow(_PLACE, self.name)
            if row is None:
                self._cursor = await self.start_at_head()
                return 0
            self._cursor = (int(row["tx_id"]), int(row["position"]))
            events = await store.read_after(self._cursor, self.batch)
            if not events:
                return 0
            mine = self._mine(events)
            if mine and self.before is not None:
                await self.before(mine)
            async with conn.transaction():
                if not await conn.fetchval(_LOCK, LOCK_SPACE, lock_key(self.name)):
                    return -1
                # Read again under the lock (a second statement: the first's snapshot
                # predates the lock): another instance may have moved it since.
                again = await conn.fetchrow(_PLACE, self.name)
                if (int(again["tx_id"]), int(again["position"])) != (
                    int(row["tx_id"]),
                    int(row["position"]),
                ):
                    return 0
                if mine:
                    await self.handle(conn, mine)
                last = events[-1]
                await conn.execute(_MOVE, self.name, last.tx_id, last.position, len(mine))
        if mine:
            store.committed()  # the handler may have appended: wake the log's readers
        self._cursor = last.cursor
        return len(events)

    def _mine(self, events: Sequence[RecordedEvent]) -> list[RecordedEvent]:
        prefixes = self.stream_prefixes
        if prefixes is None:
            return list(events)
        return [e for e in events if e.stream_id.startswith(prefixes)]

    # ----------------------------------------------------------- running

    def start(self) -> None:
        """Follow the log in a task until :meth:`stop`."""
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"delivery-{self.name}"
        )

    async def stop(self) -> None:
        """Stop following (a step in flight is rolled back or committed whole)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run(self) -> None:
        wakeups = self.store.wakeups
        wakeups.start()
        backoff = 0.002
        while True:
            seen = wakeups.generation
            try:
                read = await self.step()
            except TRANSIENT_ERRORS as exc:
                _log.info("delivery %s lost PostgreSQL (%s); retrying", self.name, exc)
                await asyncio.sleep(0.2)
                continue
            except Exception:
                # A bug must not spin: log it and retry slowly. The checkpoint did not move.
                _log.exception("delivery %s failed; retrying in 1 s", self.name)
                await asyncio.sleep(1.0)
                continue
            if read == self.batch:
                continue
            if read < 0:
                await wakeups.wait(seen, 0.05)  # another instance is doing the work
                continue
            cursor = self._cursor
            try:
                hidden = cursor is not None and await self.store.has_hidden(cursor)
            except TRANSIENT_ERRORS:
                hidden = True
            if hidden:
                # Committed events wait behind an open transaction: look again soon.
                await wakeups.wait(seen, backoff)
                backoff = min(backoff * 2, 0.05)
            else:
                backoff = 0.002
                await wakeups.wait(seen, self.store.poll_interval)

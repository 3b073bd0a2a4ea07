"""The projection engine: read models that follow the log, rebuildable at any time.

Each projection is named and versioned. Its tables live in a schema of their own per
*generation* (``p_<name>_<generation>``) and are read through views of the same names in
``public``. That gives three properties:

* **Exactly-once effect.** A batch of events and the projection's checkpoint are written in
  one transaction; a crash loses both or neither.
* **Rebuild without downtime.** ``rebuild`` fills generation N+1 from position 0 while N keeps
  serving, then, holding the projection's lock so the live follower pauses, applies the last
  events and swaps the views in one transaction.
* **Several instances.** Every instance runs followers; a transaction-level advisory lock per
  projection makes one of them apply a batch at a time. ``pg_try_advisory_xact_lock`` is used,
  not ``SELECT ... FOR UPDATE``: a waiter on a row lock holds a transaction id, which would hold
  back the log's read horizon for every reader.

This module runs the followers, waits for them (read-your-writes) and reports them;
rebuild.py builds and swaps generations, projection.py says what a projection is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from ..events.base import RecordedEvent
from ..events.store import START, Cursor, EventStore
from ..events.wakeup import TRANSIENT_ERRORS
from .projection import LOCK_SPACE, Projection, UnknownProjection, lock_key, relevant
from .rebuild import Rebuilding

__all__ = ["Projection", "ProjectionEngine", "ProjectionStatus", "UnknownProjection"]

_log = logging.getLogger(__name__)

_SETUP_KEY = 0
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")


@dataclass(frozen=True)
class ProjectionStatus:
    """Where a projection stands."""

    name: str
    version: int
    generation: int
    position: int
    events_applied: int
    lag_events: int
    lag_seconds: float


# A follower's step, in two statements: the second must see what the lock's previous
# holder committed, so it cannot be the statement that takes the lock (a statement reads
# under a snapshot taken when it starts, before the lock is granted: read together, another
# instance's batch committed meanwhile would be applied twice). The first also sets the
# commit not to wait for the WAL flush, the second the generation's search_path.
_STEP_LOCK = """
SELECT pg_try_advisory_xact_lock($1, $2) AS locked,
       set_config('synchronous_commit', 'off', true) AS sync
"""
_STEP_PLACE = """
SELECT generation, tx_id, position,
       set_config('search_path', 'p_' || name || '_' || generation || ', public', true) AS path
FROM projections WHERE name = $1
"""


class ProjectionEngine(Rebuilding):
    """Runs projections over an :class:`EventStore`.

    Args:
        store: the event store (its pool is used for read-model writes too).
        projections: every read model of the app.
        batch: events per transaction when following the log.
        rebuild_batch: events per transaction when rebuilding (larger: fewer round trips).
        bulk: let rebuilds use the projections' set-based ``bulk_fill`` where they have one
            (False: always event by event, e.g. to watch a slow fill).
    """

    def __init__(
        self,
        store: EventStore,
        projections: Sequence[Projection],
        *,
        batch: int = 500,
        rebuild_batch: int = 2000,
        bulk: bool = True,
    ) -> None:
        for p in projections:
            if not _NAME.match(p.name):
                raise ValueError(f"bad projection name {p.name!r}")
        self.store = store
        self.projections = {p.name: p for p in projections}
        self.batch = batch
        self.rebuild_batch = rebuild_batch
        self.bulk = bulk
        self._generation: dict[str, int] = {}
        self._progress: dict[str, Cursor] = {}
        self._changed = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self._refreshed = 0.0

    # ----------------------------------------------------------- lifecycle

    async def prepare(self) -> None:
        """Create missing projections and rebuild those whose version changed (blocking).

        Serialised across instances by a session advisory lock, so two instances starting
        together do not both rebuild.
        """
        async with self.store.pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1, $2)", LOCK_SPACE, _SETUP_KEY)
            try:
                for projection in self.projections.values():
                    row = await conn.fetchrow(
                        "SELECT version, generation, tx_id, position FROM projections WHERE name = $1",
                        projection.name,
                    )
                    if row is None:
                        await self._install(conn, projection)
                    elif row["version"] != projection.version:
                        _log.warning(
                            "projection %s: version %s -> %s, rebuilding",
                            projection.name,
                            row["version"],
                            projection.version,
                        )
                        await self._rebuild([projection], conn=conn)
                    else:
                        self._generation[projection.name] = row["generation"]
                        self._progress[projection.name] = (int(row["tx_id"]), row["position"])
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1, $2)", LOCK_SPACE, _SETUP_KEY)

    def start(self) -> None:
        """Start one follower task per projection (call after :meth:`prepare`)."""
        loop = asyncio.get_running_loop()
        for name in self.projections:
            self._tasks.append(loop.create_task(self._follow(name), name=f"projection-{name}"))

    async def stop(self) -> None:
        """Stop the followers (a batch in flight is rolled back or committed whole)."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # ----------------------------------------------------------- following

    async def _follow(self, name: str) -> None:
        wakeups = self.store.wakeups
        wakeups.start()
        backoff = 0.002
        while True:
            seen = wakeups.generation
            try:
                applied = await self.step(name)
                if applied == self.batch:
                    continue
                hidden = applied >= 0 and await self.store.has_hidden(self._progress[name])
            except TRANSIENT_ERRORS as exc:
                _log.info("projection %s lost PostgreSQL (%s); retrying", name, exc)
                # Its commits do not wait for the WAL flush (see step): a PostgreSQL that
                # crashed may have lost the last of them with their checkpoint, and this
                # process's idea of where the projection stands would be ahead of what the
                # database holds; read-your-writes would then answer from rows not there
                # yet. Forget it: waiters read the checkpoint from the database again.
                self._progress.pop(name, None)
                await asyncio.sleep(0.2)
                continue
            except Exception:
                # A bug in a projection must not spin: log it and retry slowly. The
                # checkpoint did not move, so nothing is lost.
                _log.exception("projection %s failed; retrying in 1 s", name)
                await asyncio.sleep(1.0)
                continue
            if applied < 0:
                # Another instance holds the lock: it is doing the work.
                await wakeups.wait(seen, 0.05)
            elif hidden:
                await wakeups.wait(seen, backoff)
                backoff = min(backoff * 2, 0.05)
            else:
                backoff = 0.002
                await wakeups.wait(seen, self.store.poll_interval)

    async def step(self, name: str) -> int:
        """Apply the next batch of ``name``; return the number of events applied, or -1 if
        another process holds the projection's lock."""
        projection = self.projections[name]
        async with self.store.pool.acquire() as conn, conn.transaction():
            # The projection's lock, then its place (see _STEP_LOCK). The commit need not
            # wait for the WAL flush: a read model is disposable and its checkpoint is in
            # the same transaction, so a commit lost in a crash is lost with its checkpoint
            # and simply applied again.
            if not await conn.fetchval(_STEP_LOCK, LOCK_SPACE, lock_key(name)):
                return -1
            row = await conn.fetchrow(_STEP_PLACE, name)
            cursor: Cursor = (int(row["tx_id"]), row["position"])
            events = await self.store.read_after(cursor, self.batch, read_ahead=True)
            if events:
                await self._apply(conn, projection, events)
        await self._advance(name, events[-1].cursor if events else cursor, row["generation"])
        return len(events)

    async def _apply(
        self,
        conn: asyncpg.Connection,
        projection: Projection,
        events: Sequence[RecordedEvent],
    ) -> None:
        """Apply ``events`` and move the checkpoint, in the caller's transaction (whose
        search_path is the live generation's schema already: see _STEP_PLACE)."""
        mine = relevant(projection, events)
        if mine:
            await projection.apply(conn, mine)
        last = events[-1]
        await conn.execute(
            "UPDATE public.projections SET tx_id = $2, position = $3, "
            "events_applied = events_applied + $4, "
            "last_event_at = $5, updated_at = now() WHERE name = $1",
            projection.name,
            last.tx_id,
            last.position,
            len(events),
            last.recorded_at,
        )

    async def _advance(self, name: str, cursor: Cursor, generation: int) -> None:
        async with self._changed:
            self._generation[name] = generation
            if cursor > self._progress.get(name, START):
                self._progress[name] = cursor
            self._changed.notify_all()

    # ----------------------------------------------------------- read-your-writes

    async def wait_for(
        self, cursor: Cursor, within: float, names: Sequence[str] | None = None
    ) -> bool:
        """Wait until the projections (all, or ``names``) have applied the event at ``cursor``.

        Returns False if that did not happen ``within`` seconds (the write stands; the
        read models are only late).
        """
        wanted = list(names) if names is not None else list(self.projections)
        deadline = time.monotonic() + within

        def done() -> bool:
            return all(self._progress.get(n, START) >= cursor for n in wanted)

        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            async with self._changed:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._changed.wait_for(done), min(remaining, 0.05))
            if not done() and time.monotonic() - self._refreshed > 0.05:
                # Another instance may be the one applying: read the checkpoints.
                await self.refresh()
        return True

    def reading(self, streams: Sequence[str]) -> list[str]:
        """The projections that read events of any of ``streams`` (by their
        ``stream_prefixes``; a projection without them reads every stream)."""
        names = []
        for name, projection in self.projections.items():
            prefixes: tuple[str, ...] | None = getattr(projection, "stream_prefixes", None)
            if prefixes is None or any(s.startswith(prefixes) for s in streams):
                names.append(name)
        return names

    async def refresh(self) -> None:
        """Re-read every checkpoint from the database."""
        self._refreshed = time.monotonic()
        rows = await self.store.pool.fetch(
            "SELECT name, generation, tx_id, position FROM projections"
        )
        for row in rows:
            if row["name"] in self.projections:
                await self._advance(
                    row["name"], (int(row["tx_id"]), row["position"]), row["generation"]
                )

    # ----------------------------------------------------------- status

    async def status(self) -> list[ProjectionStatus]:
        """Every registered projection's version, generation, position and lag."""
        result = []
        for name, projection in self.projections.items():
            row = await self.store.pool.fetchrow(
                "SELECT version, generation, tx_id, position, events_applied FROM projections "
                "WHERE name = $1",
                name,
            )
            if row is None:
                result.append(ProjectionStatus(name, projection.version, 0, 0, 0, -1, 0.0))
                continue
            lag_events, oldest = await self.store.backlog((int(row["tx_id"]), row["position"]))
            seconds = 0.0
            if oldest is not None:
                seconds = max(0.0, (datetime.now(UTC) - oldest).total_seconds())
            result.append(
                ProjectionStatus(
                    name=name,
                    version=row["version"],
                    generation=row["generation"],
                    position=row["position"],
                    events_applied=row["events_applied"],
                    lag_events=lag_events,
                    lag_seconds=seconds,
                )
            )
        return result

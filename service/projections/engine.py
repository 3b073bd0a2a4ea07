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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import asyncpg

from ..errors import CairnError
from ..events.base import RecordedEvent
from ..events.store import START, Cursor, EventStore
from ..events.wakeup import TRANSIENT_ERRORS

_log = logging.getLogger(__name__)

_LOCK_SPACE = 0x50524F4A  # "PROJ": advisory lock namespace (first key)
_SETUP_KEY = 0
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")


class Projection(Protocol):
    """A read model. Implementations must be deterministic: the same events in the same
    order give the same rows, however they are split into batches (rebuild equality)."""

    name: str
    """Lower-case identifier; also names the schema of each generation."""
    version: int
    """Bump to rebuild on the next start (changed tables or logic)."""
    tables: Sequence[str]
    """Table names exposed as views in ``public`` (must be unique across projections)."""

    # Optional: ``stream_prefixes: tuple[str, ...]``. When a projection has it, ``apply`` is
    # given only the events of streams starting with one of them (still in log order), and
    # is not called for a batch with none; the checkpoint moves on regardless. It spares
    # every projection a Python loop over events it ignores, which dominates rebuilds.
    #
    # Optional: ``bulk_fill(conn, log) -> bool`` (see bulk.py). When a projection has it, a
    # rebuild fills the new generation with it in SQL up to a cursor fixed first, then
    # applies the rest with ``apply``.

    def ddl(self) -> str:
        """CREATE statements for the tables, with unqualified names (run with the search
        path set to the generation's schema)."""
        ...

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        """Apply ``events`` (in log order) inside the caller's transaction; the search path
        is the generation's schema, so unqualified names reach this projection's tables.
        The transaction belongs to this projection alone: ``SET LOCAL`` settings may stay."""
        ...


class UnknownProjection(CairnError):
    """Raised when a command names a projection that is not registered."""


class _Declined(Exception):
    """A bulk fill declined the log: roll its transaction back."""


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


def _lock_key(name: str) -> int:
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def _relevant(projection: Projection, events: Sequence[RecordedEvent]) -> Sequence[RecordedEvent]:
    """The events ``projection`` wants: those of its ``stream_prefixes``, if it declares any."""
    prefixes: tuple[str, ...] | None = getattr(projection, "stream_prefixes", None)
    if prefixes is None:
        return events
    return [e for e in events if e.stream_id.startswith(prefixes)]


async def _apply_in(
    conn: asyncpg.Connection,
    projection: Projection,
    generation: int,
    events: Sequence[RecordedEvent],
) -> None:
    """Apply the events ``projection`` reads to its tables of ``generation`` (in the caller's
    transaction, which belongs to this projection alone)."""
    mine = _relevant(projection, events)
    if mine:
        await conn.execute(
            f"SET LOCAL search_path = {_schema(projection.name, generation)}, public"
        )
        await projection.apply(conn, mine)
        await conn.execute("SET LOCAL search_path = public")


def _schema(name: str, generation: int) -> str:
    return f"p_{name}_{generation}"


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


class ProjectionEngine:
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
            await conn.execute("SELECT pg_advisory_lock($1, $2)", _LOCK_SPACE, _SETUP_KEY)
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
                await conn.execute("SELECT pg_advisory_unlock($1, $2)", _LOCK_SPACE, _SETUP_KEY)

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
            if not await conn.fetchval(_STEP_LOCK, _LOCK_SPACE, _lock_key(name)):
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
        mine = _relevant(projection, events)
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

    # ----------------------------------------------------------- install / rebuild

    async def _install(self, conn: asyncpg.Connection, projection: Projection) -> None:
        async with conn.transaction():
            await self._create_generation(conn, projection, 1)
            await self._swap_views(conn, projection, 1)
            await conn.execute(
                "INSERT INTO projections (name, version, generation) VALUES ($1, $2, 1)",
                projection.name,
                projection.version,
            )
        self._generation[projection.name] = 1
        self._progress[projection.name] = START

    async def _create_generation(
        self, conn: asyncpg.Connection, projection: Projection, generation: int
    ) -> None:
        schema = _schema(projection.name, generation)
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.execute(f"CREATE SCHEMA {schema}")
        await conn.execute(f"SET LOCAL search_path = {schema}, public")
        await conn.execute(projection.ddl())
        await conn.execute("SET LOCAL search_path = public")

    async def _swap_views(
        self, conn: asyncpg.Connection, projection: Projection, generation: int
    ) -> None:
        schema = _schema(projection.name, generation)
        for table in projection.tables:
            await conn.execute(f"DROP VIEW IF EXISTS public.{table}")
            await conn.execute(f"CREATE VIEW public.{table} AS SELECT * FROM {schema}.{table}")

    async def rebuild(self, name: str, progress: Callable[[int, int], None] | None = None) -> None:
        """Rebuild ``name`` from position 0 into a new generation and swap it in.

        The current generation keeps serving (and following) until the swap. ``progress``
        is called with (events applied, events in the log) after each batch.

        Raises:
            UnknownProjection: no projection has that name.
        """
        await self.rebuild_many([name], progress)

    async def rebuild_many(
        self, names: Sequence[str], progress: Callable[[int, int], None] | None = None
    ) -> None:
        """Rebuild several projections from one read of the log, then swap each in.

        Same effect as :meth:`rebuild` for each name, but the log is read and decoded once
        for all of them (``cairn projections rebuild --all``). ``progress`` counts events
        of the log, not events times projections.

        Raises:
            UnknownProjection: a name is not registered.
        """
        for name in names:
            if name not in self.projections:
                raise UnknownProjection(f"no projection is named {name!r}")
        async with self.store.pool.acquire() as conn:
            await self._rebuild([self.projections[n] for n in names], conn=conn, progress=progress)

    async def build_shadow(
        self,
        name: str,
        *,
        until: Cursor | None = None,
        batch: int | None = None,
        bulk_until: Cursor | None = None,
    ) -> str:
        """Fill a fresh, unlisted generation of ``name`` up to ``until`` (default: the log's
        head) and return its schema, without swapping it in or touching the checkpoint.

        Event by event in batches of ``batch``, or, with ``bulk_until`` (not after
        ``until``), with the projection's ``bulk_fill`` up to ``bulk_until`` and event by
        event from there. For checks (rebuild equality) and benchmarks; drop it with
        :meth:`drop_shadow`.

        Raises:
            UnknownProjection: no projection has that name.
            ValueError: ``bulk_until`` is given and the projection has no ``bulk_fill``, or
                it declined this log.
        """
        if name not in self.projections:
            raise UnknownProjection(f"no projection is named {name!r}")
        projection = self.projections[name]
        async with self.store.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT generation FROM projections WHERE name = $1", projection.name
            )
            # Far above any generation a rebuild would take next, so the two never meet,
            # and above other shadows, so several can be compared.
            taken = await conn.fetchval(
                "SELECT max(substring(nspname FROM '[0-9]+$')::int) FROM pg_namespace "
                "WHERE nspname ~ ('^p_' || $1 || '_[0-9]+$')",
                projection.name,
            )
            shadow = max((row["generation"] if row is not None else 0) + 1000, (taken or 0) + 1)
            async with conn.transaction():
                await self._create_generation(conn, projection, shadow)
            target = until if until is not None else await self.store.head()
            start = START
            if bulk_until is not None:
                if not await self._bulk(projection, shadow, bulk_until):
                    await conn.execute(f"DROP SCHEMA {_schema(projection.name, shadow)} CASCADE")
                    raise ValueError(f"projection {name!r} has no bulk fill or declined this log")
                start = bulk_until
            await self._fill(
                conn, [projection], {projection.name: shadow}, start=start, until=target,
                batch=batch,
            )  # fmt: skip
        return _schema(projection.name, shadow)

    async def drop_shadow(self, schema: str) -> None:
        """Drop a generation made by :meth:`build_shadow`."""
        if not re.fullmatch(r"p_[a-z][a-z0-9_]*_[0-9]+", schema):
            raise ValueError(f"not a generation schema: {schema!r}")
        await self.store.pool.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

    async def _fill(
        self,
        conn: asyncpg.Connection,
        projections: Sequence[Projection],
        generations: dict[str, int],
        *,
        start: Cursor = START,
        until: Cursor | None = None,
        batch: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        total: int = 0,
    ) -> tuple[Cursor, int]:
        """Apply the log after ``start`` to new generations, batch by batch, until a batch
        comes back short (or ``until`` is reached). Returns the cursor and count applied.

        The next batch is read while the current one is applied: reading and decoding the
        log costs about as much as applying it, and they use different connections.
        """
        size = batch or self.rebuild_batch
        cursor: Cursor = start
        applied = 0

        async def read(after: Cursor) -> list[RecordedEvent]:
            events = await self.store.read_after(after, size, read_ahead=True)
            if until is not None:
                events = [e for e in events if e.cursor <= until]
            return events

        # One connection per projection, so that one's database work overlaps the others'
        # Python work (and the next read).
        extra = [await self.store.pool.acquire() for _ in projections[1:]]
        conns = [conn, *extra]
        pending = asyncio.ensure_future(read(cursor))
        try:
            while True:
                events = await pending
                full = len(events) == size
                if full:
                    pending = asyncio.ensure_future(read(events[-1].cursor))
                if not full and until is None:
                    # The tail is applied under the projections' locks (see _rebuild).
                    break
                if events:
                    await asyncio.gather(
                        *(
                            self._apply_shadow(c, p, generations[p.name], events)
                            for c, p in zip(conns, projections, strict=True)
                        )
                    )
                    cursor = events[-1].cursor
                    applied += len(events)
                    if progress is not None:
                        progress(applied, max(total, applied))
                if not full:
                    break
        finally:
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending
            for c in extra:
                await self.store.pool.release(c)
        return cursor, applied

    async def _apply_shadow(
        self,
        conn: asyncpg.Connection,
        projection: Projection,
        generation: int,
        events: Sequence[RecordedEvent],
    ) -> None:
        mine = _relevant(projection, events)
        if not mine:
            return
        async with conn.transaction():
            # A generation being built is thrown away if anything fails, so its commits
            # need not wait for the disk.
            await conn.execute("SET LOCAL synchronous_commit = off")
            await conn.execute(
                f"SET LOCAL search_path = {_schema(projection.name, generation)}, public"
            )
            await projection.apply(conn, mine)

    async def _bulk(self, projection: Projection, generation: int, until: Cursor) -> bool:
        """Fill ``generation`` of ``projection`` with its ``bulk_fill`` up to ``until``, on a
        connection of its own; False (nothing kept) if it declined."""
        fill = getattr(projection, "bulk_fill", None)
        if fill is None:
            return False
        async with self.store.pool.acquire() as conn:
            try:
                async with conn.transaction():
                    # As in _apply_shadow: a generation being built is thrown away on failure.
                    await conn.execute("SET LOCAL synchronous_commit = off")
                    await conn.execute(
                        f"SET LOCAL search_path = {_schema(projection.name, generation)}, public"
                    )
                    if not await fill(conn, self.store.log_relation(until)):
                        raise _Declined
            except _Declined:
                _log.warning("projection %s: bulk fill declined; event by event", projection.name)
                return False
        return True

    async def _rebuild(
        self,
        projections: Sequence[Projection],
        *,
        conn: asyncpg.Connection,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        old: dict[str, int] = {}
        new: dict[str, int] = {}
        for projection in projections:
            row = await conn.fetchrow(
                "SELECT generation FROM projections WHERE name = $1", projection.name
            )
            old[projection.name] = row["generation"] if row is not None else 0
            new[projection.name] = old[projection.name] + 1
            async with conn.transaction():
                await self._create_generation(conn, projection, new[projection.name])
        # Everything up to a cursor fixed now is filled in bulk or event by event (those
        # without a bulk fill, from one shared read of the log); the rest is applied
        # under each projection's lock at the swap.
        until = await self.store.head()
        total, covered = await self.store.count_until(until)
        bulk = [p for p in projections if self.bulk and hasattr(p, "bulk_fill")]
        rest = [p for p in projections if p not in bulk]

        async def fill_bulk() -> list[Projection]:
            # Each on its own connection: the database works on several at once while this
            # process routes (and fills the others).
            done = await asyncio.gather(*(self._bulk(p, new[p.name], until) for p in bulk))
            if progress is not None and any(done):
                progress(covered, max(total, covered))
            return [p for p, ok in zip(bulk, done, strict=True) if not ok]

        async def fill_rest(which: Sequence[Projection]) -> None:
            if which:
                await self._fill(conn, which, new, until=until, progress=progress, total=total)

        declined, _ = await asyncio.gather(fill_bulk(), fill_rest(rest))
        if declined:
            # A declined bulk fill rolled back: its generation is empty, fill it the slow way.
            await fill_rest(declined)
        for projection in projections:
            end, done = await self._swap(
                conn, projection, old[projection.name], new[projection.name], until, covered
            )
            if progress is not None:
                progress(done, max(total, done))
            await self._advance(projection.name, end, new[projection.name])

    async def _swap(
        self,
        conn: asyncpg.Connection,
        projection: Projection,
        old: int,
        new: int,
        cursor: Cursor,
        applied: int,
    ) -> tuple[Cursor, int]:
        """Apply the tail after ``cursor`` to generation ``new`` and swap it in."""
        async with conn.transaction():
            # Pause the live follower (it takes the same lock per batch), apply the tail,
            # then swap: readers see the old generation or the new one, never a mix.
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, $2)", _LOCK_SPACE, _lock_key(projection.name)
            )
            last: RecordedEvent | None = None
            while True:
                events = await self.store.read_after(cursor, self.batch)
                if not events:
                    break
                await _apply_in(conn, projection, new, events)
                cursor = events[-1].cursor
                last = events[-1]
                applied += len(events)
            await self._swap_views(conn, projection, new)
            if not old:
                await conn.execute(
                    "INSERT INTO projections (name, version, generation) VALUES ($1, $2, $3)",
                    projection.name,
                    projection.version,
                    new,
                )
            if last is None and cursor != START:
                last_at = await self.store.recorded_at(cursor[1])
            else:
                last_at = last.recorded_at if last is not None else None
            await conn.execute(
                "UPDATE projections SET version = $2, generation = $3, tx_id = $4, position = $5, "
                "events_applied = $6, last_event_at = $7, updated_at = now() "
                "WHERE name = $1",
                projection.name,
                projection.version,
                new,
                cursor[0],
                cursor[1],
                applied,
                last_at,
            )
            if old:
                await conn.execute(f"DROP SCHEMA IF EXISTS {_schema(projection.name, old)} CASCADE")
        return cursor, applied

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

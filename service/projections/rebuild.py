"""Rebuilding projections: new generations filled from the log, swapped in atomically.

Part of :class:`~service.projections.engine.ProjectionEngine`. A rebuild creates generation
N+1 of each projection, fills it up to a cursor fixed first (in bulk with the projection's
``bulk_fill`` where it has one, else event by event from one shared read of the log), then,
holding the projection's lock so the live follower pauses, applies the last events and swaps
the views in one transaction. Shadow generations (:meth:`Rebuilding.build_shadow`) are
filled the same way but never swapped in, for checks and benchmarks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Sequence

import asyncpg

from ..events.base import RecordedEvent
from ..events.store import START, Cursor, EventStore
from .projection import LOCK_SPACE, Projection, UnknownProjection, lock_key, relevant, schema_name

_log = logging.getLogger(__name__)


class _Declined(Exception):
    """A bulk fill declined the log: roll its transaction back."""


async def _apply_in(
    conn: asyncpg.Connection,
    projection: Projection,
    generation: int,
    events: Sequence[RecordedEvent],
) -> None:
    """Apply the events ``projection`` reads to its tables of ``generation`` (in the caller's
    transaction, which belongs to this projection alone)."""
    mine = relevant(projection, events)
    if mine:
        await conn.execute(
            f"SET LOCAL search_path = {schema_name(projection.name, generation)}, public"
        )
        await projection.apply(conn, mine)
        await conn.execute("SET LOCAL search_path = public")


class Rebuilding:
    """Installs and rebuilds projections: a base of
    :class:`~service.projections.engine.ProjectionEngine`, which holds the settings and the
    state named here."""

    store: EventStore
    projections: dict[str, Projection]
    batch: int
    rebuild_batch: int
    bulk: bool
    _generation: dict[str, int]
    _progress: dict[str, Cursor]
    _advance: Callable[[str, Cursor, int], Awaitable[None]]
    """Notes where a projection now stands (see ``ProjectionEngine._advance``)."""

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
        schema = schema_name(projection.name, generation)
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.execute(f"CREATE SCHEMA {schema}")
        await conn.execute(f"SET LOCAL search_path = {schema}, public")
        await conn.execute(projection.ddl())
        await conn.execute("SET LOCAL search_path = public")

    async def _swap_views(
        self, conn: asyncpg.Connection, projection: Projection, generation: int
    ) -> None:
        schema = schema_name(projection.name, generation)
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
                    await conn.execute(
                        f"DROP SCHEMA {schema_name(projection.name, shadow)} CASCADE"
                    )
                    raise ValueError(f"projection {name!r} has no bulk fill or declined this log")
                start = bulk_until
            await self._fill(
                conn, [projection], {projection.name: shadow}, start=start, until=target,
                batch=batch,
            )  # fmt: skip
        return schema_name(projection.name, shadow)

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
        mine = relevant(projection, events)
        if not mine:
            return
        async with conn.transaction():
            # A generation being built is thrown away if anything fails, so its commits
            # need not wait for the disk.
            await conn.execute("SET LOCAL synchronous_commit = off")
            await conn.execute(
                f"SET LOCAL search_path = {schema_name(projection.name, generation)}, public"
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
                        f"SET LOCAL search_path = {schema_name(projection.name, generation)}, public"
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
                "SELECT pg_advisory_xact_lock($1, $2)", LOCK_SPACE, lock_key(projection.name)
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
                await conn.execute(
                    f"DROP SCHEMA IF EXISTS {schema_name(projection.name, old)} CASCADE"
                )
        return cursor, applied

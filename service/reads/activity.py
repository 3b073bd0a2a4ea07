"""Activity streams as the ``activity`` read model holds them (tables ``activity`` and
``activity_counts``), filtered for a viewer's :class:`~.visibility.Scope`.

Pages run newest first, paged by ``seq`` (stable while items are added) in either direction
from a cursor. Every row passes the scope's SQL filter and is asked once more of the access
rule (:meth:`~.visibility.Scope.may_see`); the page's bounds come from every row the filter
let through, so that a row refused by the rule never shifts the next page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

import asyncpg

from .visibility import STAFF_VISIBLE, Scope, named

_ITEM_COLUMNS: Final = (
    "a.seq, a.position, a.project_id, a.recording_id, a.recording_kind, a.parent_id, "
    "a.person_id, a.kind, a.as_type, a.actor_id, a.at, a.excerpt, a.changes"
)

TARGET_TYPES: Final = ("message", "comment", "todolist", "todo", "milestone", "project")
"""What an activity can be about: a recording kind, or ``project`` for project-level items."""


@dataclass(frozen=True)
class Filter:
    """Which activity to keep: any of ``kinds`` (none: all), about ``target_type``
    (:data:`TARGET_TYPES`), done by ``actor_id``, at or after ``since``, before ``until``."""

    kinds: tuple[str, ...] = ()
    target_type: str | None = None
    actor_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class Page:
    """A page of activity, newest first.

    ``rows``: what the viewer may see (:func:`~.visibility.named` rows). ``newest`` and
    ``oldest``: the ``seq`` bounds of every row the page covers (before the per-row check;
    None for an empty page). ``newer``/``older``: whether there is more on either side.
    ``total``: how many items the whole filtered stream holds.
    """

    rows: list[asyncpg.Record]
    newest: int | None
    oldest: int | None
    newer: bool
    older: bool
    total: int


async def recent(
    conn: asyncpg.Connection | asyncpg.Pool, scope: Scope, limit: int
) -> list[asyncpg.Record]:
    """The newest ``limit`` items ``scope``'s viewer may see, newest first (read on
    ``conn``, e.g. inside another view's snapshot)."""
    where, args, joins = scope.where()
    inner = (
        f"SELECT {_ITEM_COLUMNS} FROM activity a {joins}WHERE {where} "
        f"ORDER BY a.seq DESC LIMIT ${len(args) + 1}"
    )
    rows = await conn.fetch(named(inner, "DESC"), *args, limit)
    return [row for row in rows if scope.may_see(row)]


@dataclass
class _Query:
    """The WHERE clause of a page (visibility and filters) and its arguments."""

    args: list[Any]
    joins: str
    where: list[str]
    counts: list[str] | None = field(default=None)
    """The same filters on ``activity_counts``, while they allow (see :meth:`count`)."""

    @classmethod
    def of(cls, scope: Scope, wanted: Filter) -> _Query:
        # Only a client's view needs the targets' visibility: the join is skipped for
        # everyone else (scope.where()).
        visible, args, joins = scope.where()
        query = cls(args, joins, [visible], None if scope.clients_only else [STAFF_VISIBLE])
        if wanted.kinds:
            query._both(f"a.kind = ANY(${query._arg(list(wanted.kinds))}::text[])")
        if wanted.target_type == "project":
            query._both("a.recording_id IS NULL", "a.recording_kind = ''")
        elif wanted.target_type is not None:
            query._both(f"a.recording_kind = ${query._arg(wanted.target_type)}")
        if wanted.actor_id is not None:
            query._both(f"a.actor_id = ${query._arg(wanted.actor_id)}")
        if wanted.since is not None:
            query.where.append(f"a.at >= ${query._arg(wanted.since)}")
            query.counts = None
        if wanted.until is not None:
            query.where.append(f"a.at < ${query._arg(wanted.until)}")
            query.counts = None
        return query

    def _both(self, clause: str, on_counts: str | None = None) -> None:
        self.where.append(clause)
        if self.counts is not None:
            self.counts.append(on_counts or clause)

    def _arg(self, value: Any) -> int:
        self.args.append(value)
        return len(self.args)

    def select(self, extra: str, order: str, limit: int) -> tuple[str, list[Any]]:
        """The page query: visible, filtered items beyond ``extra``, named."""
        args = [*self.args, limit]
        inner = (
            f"SELECT {_ITEM_COLUMNS} FROM activity a {self.joins}"
            f"WHERE {' AND '.join([*self.where, extra])} "
            f"ORDER BY a.seq {order} LIMIT ${len(args)}"
        )
        return named(inner, order), args

    def exists(self, extra: str) -> str:
        return (
            f"SELECT EXISTS (SELECT 1 FROM activity a {self.joins}"
            f"WHERE {' AND '.join([*self.where, extra])})"
        )

    def count(self) -> str:
        """The total: summed from activity_counts when the filters allow (no time range, no
        client's view), else counted."""
        if self.counts is not None:
            return (
                "SELECT coalesce(sum(n), 0) FROM activity_counts a "
                f"WHERE {' AND '.join(self.counts)}"
            )
        return f"SELECT count(*) FROM activity a {self.joins}WHERE {' AND '.join(self.where)}"


async def page(
    pool: asyncpg.Pool,
    scope: Scope,
    wanted: Filter,
    *,
    direction: Literal["next", "prev"],
    at: int | None,
    limit: int,
) -> Page:
    """The page of ``scope``'s stream kept by ``wanted``: with ``direction`` ``next``, the
    ``limit`` items older than ``seq`` ``at`` (None: the newest); with ``prev``, the
    ``limit`` items just newer than ``at``."""
    query = _Query.of(scope, wanted)
    n = len(query.args) + 2  # the cursor's placeholder, after the page query's limit
    if direction == "prev":
        # Newer items than the cursor: the ones just above it, shown newest first.
        sql, args = query.select(f"a.seq > ${n}", "ASC", limit + 1)
        rows = list(reversed(await pool.fetch(sql, *args, at)))
        newer = len(rows) > limit
        rows = rows[1:] if newer else rows
        older = await _exists(
            pool, query, "<", rows[-1]["seq"] if rows else (None if at is None else at + 1)
        )
    else:
        bound = f"a.seq < ${n}" if at is not None else f"${n}::bigint IS NULL"
        sql, args = query.select(bound, "DESC", limit + 1)
        rows = list(await pool.fetch(sql, *args, at))
        older = len(rows) > limit
        rows = rows[:limit]
        # The first page has nothing newer; a later one has what the pages before it had.
        newer = at is not None and await _exists(
            pool, query, ">", rows[0]["seq"] if rows else at - 1
        )
    total = int(await pool.fetchval(query.count(), *query.args))
    return Page(
        rows=[row for row in rows if scope.may_see(row)],
        newest=rows[0]["seq"] if rows else None,
        oldest=rows[-1]["seq"] if rows else None,
        newer=newer,
        older=older,
        total=total,
    )


async def _exists(pool: asyncpg.Pool, query: _Query, op: str, seq: int | None) -> bool:
    if seq is None:
        return False
    sql = query.exists(f"a.seq {op} ${len(query.args) + 1}")
    return bool(await pool.fetchval(sql, *query.args, seq))

"""Cross-project reports as the ``recordings`` read model holds them: a person's open
assignments, and open to-dos and milestones by due date, across every project a viewer
sees (active projects and active items only; in a project seen as a client, only what
clients see).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import asyncpg

from ..domain.access import Viewer
from .access import visible_projects
from .rows import Page
from .visibility import split_projects

# The items the caller may see: $1 projects seen whole, $2 projects seen as a client.
_DUE_FROM = """
FROM recordings r
JOIN projects p ON p.project_id = r.project_id
LEFT JOIN recordings l ON l.recording_id = r.parent_id AND r.kind = 'todo'
WHERE r.kind IN ('todo', 'milestone') AND NOT r.completed AND r.effective_status = 'active'
  AND p.status = 'active'
  AND (r.project_id = ANY($1::text[]) OR (r.project_id = ANY($2::text[]) AND r.visible_to_clients))
"""
_DUE_COLUMNS = """
SELECT r.recording_id, r.kind, r.title, r.status, r.visible_to_clients, r.starts_on, r.due_on,
       r.completed, r.assignee_ids, r.responsible_id, r.project_id, p.name AS project_name,
       l.recording_id AS list_id, l.title AS list_name
"""


async def assignments(pool: asyncpg.Pool, viewer: Viewer) -> list[asyncpg.Record]:
    """Every open to-do assigned to ``viewer`` in the projects they see, by project name,
    then due date (none last), list and position."""
    full, clients = split_projects(viewer, await visible_projects(pool, viewer))
    rows: list[asyncpg.Record] = await pool.fetch(
        _DUE_COLUMNS + _DUE_FROM + " AND r.kind = 'todo' AND r.assignee_ids @> ARRAY[$3::text]"
        " ORDER BY p.name, r.project_id, r.due_on NULLS LAST, l.seq, r.position",
        full,
        clients,
        viewer.person_id,
    )
    return rows


async def overdue(
    pool: asyncpg.Pool, viewer: Viewer, today: date, *, after: tuple[date, str] | None, limit: int
) -> Page:
    """Open items due before ``today``, oldest due date first."""
    return await _due(pool, viewer, "r.due_on < $3", [today], after, limit)


async def upcoming(
    pool: asyncpg.Pool,
    viewer: Viewer,
    first: date,
    last: date,
    *,
    after: tuple[date, str] | None,
    limit: int,
) -> Page:
    """Open items due from ``first`` through ``last`` (both included), soonest first."""
    return await _due(pool, viewer, "r.due_on BETWEEN $3 AND $4", [first, last], after, limit)


def due_cursor(row: asyncpg.Record) -> list[Any]:
    """The sort key of a row of :func:`overdue` or :func:`upcoming`, as a cursor carries it."""
    return [row["due_on"], row["recording_id"]]


async def _due(
    pool: asyncpg.Pool,
    viewer: Viewer,
    condition: str,
    args: Sequence[Any],
    after: tuple[date, str] | None,
    limit: int,
) -> Page:
    full, clients = split_projects(viewer, await visible_projects(pool, viewer))
    where = _DUE_FROM + " AND " + condition
    total = await pool.fetchval("SELECT count(*) " + where, full, clients, *args)
    page_args: list[Any] = [full, clients, *args]
    if after is not None:
        n = len(page_args)
        where += f" AND (r.due_on, r.recording_id) > (${n + 1}::date, ${n + 2}::text)"
        page_args += [after[0], after[1]]
    rows = await pool.fetch(
        _DUE_COLUMNS + where + f" ORDER BY r.due_on, r.recording_id LIMIT {limit + 1}",
        *page_args,
    )
    return Page(rows, total)

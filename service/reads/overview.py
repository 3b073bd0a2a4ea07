"""A project's overview as the read models hold it: its people (``directory``), to-do
counts, list progress, latest messages and milestones (``recordings``), and its latest
activity (``activity``), all read in one snapshot so that they agree with each other.

Only active items count: archived and trashed recordings, and to-dos of archived or trashed
lists, are left out (the read model's ``effective_status``). A viewer who sees only what
clients see gets counts and lists of client-visible items alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

import asyncpg

from ..domain.calendar import Today
from . import activity
from .visibility import Scope

SOON_DAYS: Final = 14
"""Milestones due within this many days from today are "due soon"."""
LATEST_MESSAGES: Final = 5
RECENT_ACTIVITY: Final = 20

# $1 project, $2 whether only client-visible items count.
_SEEN = "r.project_id = $1 AND r.effective_status = 'active' AND (NOT $2 OR r.visible_to_clients)"
_PEOPLE = """
SELECT m.person_id, m.project_role, p.name, p.title, p.company
FROM project_members m JOIN people p USING (person_id)
WHERE m.project_id = $1 ORDER BY p.name, m.person_id
"""
_COUNTS = f"""
SELECT count(*) FILTER (WHERE NOT r.completed) AS open,
       count(*) FILTER (WHERE NOT r.completed AND r.due_on < $3) AS overdue,
       count(*) FILTER (WHERE r.completed AND r.completed_at >= $4) AS completed_this_week
FROM recordings r WHERE r.kind = 'todo' AND {_SEEN}
"""
_PROGRESS = f"""
SELECT r.recording_id, r.title,
       count(t.recording_id) FILTER (WHERE t.completed) AS completed,
       count(t.recording_id) AS total
FROM recordings r
LEFT JOIN recordings t ON t.parent_id = r.recording_id AND t.kind = 'todo'
     AND t.effective_status = 'active'
WHERE r.kind = 'todolist' AND {_SEEN}
GROUP BY r.recording_id, r.title, r.seq ORDER BY r.seq
"""
_MESSAGES = f"""
SELECT r.recording_id, r.title, r.category, r.creator_id, p.name AS creator_name, r.created_at,
       r.comments_count
FROM recordings r LEFT JOIN people p ON p.person_id = r.creator_id
WHERE r.kind = 'message' AND {_SEEN}
ORDER BY r.created_at DESC, r.seq DESC LIMIT {LATEST_MESSAGES}
"""
_MILESTONES = f"""
SELECT r.recording_id, r.title, r.due_on, r.responsible_id, p.name AS responsible_name
FROM recordings r LEFT JOIN people p ON p.person_id = r.responsible_id
WHERE r.kind = 'milestone' AND NOT r.completed AND {_SEEN} AND r.due_on BETWEEN $3 AND $4
ORDER BY r.due_on, r.seq
"""


@dataclass(frozen=True)
class Rows:
    """What an overview is made of, as read: the project's name and the rows of each part."""

    name: str
    people: list[asyncpg.Record]
    counts: asyncpg.Record
    progress: list[asyncpg.Record]
    messages: list[asyncpg.Record]
    due_soon: list[asyncpg.Record]
    late: list[asyncpg.Record]
    activity: list[asyncpg.Record]


async def overview(pool: asyncpg.Pool, scope: Scope, project_id: str, day: Today) -> Rows:
    """The overview of ``project_id`` as ``scope``'s viewer may see it, as of ``day`` (the
    viewer's today in their zone: "late": open and due before it; "due soon": due from it
    through :data:`SOON_DAYS` later; "this week": since its week's start, Monday 00:00 in
    that zone)."""
    today = day.date
    clients_only = bool(scope.clients_only)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        # One snapshot for every part, so the counts and lists agree with each other.
        name: str = await conn.fetchval(
            "SELECT name FROM projects WHERE project_id = $1", project_id
        )
        people = await conn.fetch(_PEOPLE, project_id)
        counts = await conn.fetchrow(_COUNTS, project_id, clients_only, today, day.week_start)
        progress = await conn.fetch(_PROGRESS, project_id, clients_only)
        messages = await conn.fetch(_MESSAGES, project_id, clients_only)
        soon = await conn.fetch(
            _MILESTONES, project_id, clients_only, today, today + timedelta(days=SOON_DAYS)
        )
        late = await conn.fetch(
            _MILESTONES, project_id, clients_only, date.min, today - timedelta(days=1)
        )
        recent = await activity.recent(conn, scope, RECENT_ACTIVITY)
    assert counts is not None
    return Rows(name, people, counts, progress, messages, soon, late, recent)

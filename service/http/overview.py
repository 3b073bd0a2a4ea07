"""The project overview: ``GET /v1/projects/{id}/overview``.

One page of what matters in a project: its people, to-do counts, progress per to-do list, the
latest messages, milestones due soon and late ones, and the latest activity. Read from the
directory, recordings and activity read models.

**Who sees what.** A caller who sees the project sees its overview; a caller who sees only
what clients see (the shared rule, :func:`~service.reads.visibility.client_view`) gets an
overview built from client-visible items alone, counts included, so it never hints at hidden
items. The latest activity is the project's activity stream as the caller would read it
(:func:`service.http.activity.recent`, :mod:`service.reads.visibility`), with the project's
people as the people a client may be told about.

**What counts.** Only active items: archived and trashed recordings, and to-dos of archived or
trashed lists, are left out (the read model's ``effective_status``). "Today" is the current
date in UTC; "this week" starts on Monday 00:00 UTC; "due soon" means due from today through
today + 14 days; "late" means open and due before today.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

import msgspec

from ..events.projects import ProjectRole
from ..reads.visibility import project_scope
from .activity import ActivityEntry, recent
from .api import Api, Ctx, Reply
from .envelope import PATHS, PersonRef, api_url, recording_app_url, recording_url
from .reports import ProjectRef, project_ref, today_utc

api = Api()

SOON_DAYS: Final = 14
"""Milestones due within this many days from today are "due soon"."""
LATEST_MESSAGES: Final = 5
RECENT_ACTIVITY: Final = 20


class OverviewPerson(msgspec.Struct, frozen=True, kw_only=True):
    """Someone on the project."""

    id: str
    name: str
    title: str | None
    company: str | None
    project_role: ProjectRole
    url: str


class TodoCounts(msgspec.Struct, frozen=True, kw_only=True):
    """Open to-dos, open ones due before today, and those completed since Monday (UTC)."""

    open: int
    overdue: int
    completed_this_week: int


class ListProgress(msgspec.Struct, frozen=True, kw_only=True):
    """How far a to-do list is: ``completed`` of ``total`` active to-dos."""

    id: str
    name: str
    completed: int
    total: int
    url: str


class MessageSummary(msgspec.Struct, frozen=True, kw_only=True):
    """A message, for the overview."""

    id: str
    subject: str
    category: str | None
    creator: PersonRef | None
    created_at: datetime
    comments_count: int
    url: str
    app_url: str


class MilestoneSummary(msgspec.Struct, frozen=True, kw_only=True):
    """An open milestone, for the overview."""

    id: str
    title: str
    due_on: date
    responsible: PersonRef | None
    url: str
    app_url: str


class RecordingRef(msgspec.Struct, frozen=True, kw_only=True):
    """A short reference to a recording."""

    id: str
    type: str
    url: str


class ActivitySummary(msgspec.Struct, frozen=True, kw_only=True):
    """One activity item: a machine ``kind``, a human ``sentence`` (names and titles as
    they are now), who, about what, when, and a short excerpt."""

    kind: str
    sentence: str
    actor: PersonRef | None
    recording: RecordingRef | None
    at: datetime
    excerpt: str | None


class Overview(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /v1/projects/{id}/overview``. ``activity`` is newest first."""

    project: ProjectRef
    today: date
    week_starts_on: date
    people: list[OverviewPerson]
    todos: TodoCounts
    todolists: list[ListProgress]
    latest_messages: list[MessageSummary]
    milestones_due_soon: list[MilestoneSummary]
    late_milestones: list[MilestoneSummary]
    activity: list[ActivitySummary]


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


@api.get(
    "/v1/projects/{project_id}/overview",
    summary="People, to-do counts, list progress, latest messages, milestones and activity",
    response=Overview,
    tags=["overview"],
)
async def project_overview(ctx: Ctx) -> Reply:
    """The overview of a project the caller sees (404 otherwise), filtered for the caller."""
    project_id = ctx.path("project_id")
    pool = ctx.store.pool
    scope = await project_scope(pool, ctx.me, project_id)
    clients_only = bool(scope.clients_only)
    today = today_utc()
    monday = today - timedelta(days=today.weekday())
    week_start = datetime.combine(monday, time(), tzinfo=UTC)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        # One snapshot for every part, so the counts and lists agree with each other.
        name = await conn.fetchval("SELECT name FROM projects WHERE project_id = $1", project_id)
        people = await conn.fetch(_PEOPLE, project_id)
        counts = await conn.fetchrow(_COUNTS, project_id, clients_only, today, week_start)
        progress = await conn.fetch(_PROGRESS, project_id, clients_only)
        messages = await conn.fetch(_MESSAGES, project_id, clients_only)
        soon = await conn.fetch(
            _MILESTONES, project_id, clients_only, today, today + timedelta(days=SOON_DAYS)
        )
        late = await conn.fetch(
            _MILESTONES, project_id, clients_only, date.min, today - timedelta(days=1)
        )
        activity = await recent(conn, ctx, scope, RECENT_ACTIVITY)
    assert counts is not None
    return Reply(
        Overview(
            project=project_ref(ctx, project_id, name),
            today=today,
            week_starts_on=monday,
            people=[
                OverviewPerson(
                    id=r["person_id"],
                    name=r["name"],
                    title=r["title"],
                    company=r["company"],
                    project_role=r["project_role"],
                    url=api_url(ctx, f"/v1/people/{r['person_id']}"),
                )
                for r in people
            ],
            todos=TodoCounts(
                open=counts["open"],
                overdue=counts["overdue"],
                completed_this_week=counts["completed_this_week"],
            ),
            todolists=[
                ListProgress(
                    id=r["recording_id"],
                    name=r["title"],
                    completed=r["completed"],
                    total=r["total"],
                    url=recording_url(ctx, "todolist", r["recording_id"]),
                )
                for r in progress
            ],
            latest_messages=[
                MessageSummary(
                    id=r["recording_id"],
                    subject=r["title"],
                    category=r["category"],
                    creator=None
                    if r["creator_name"] is None
                    else PersonRef(id=r["creator_id"], name=r["creator_name"]),
                    created_at=r["created_at"],
                    comments_count=r["comments_count"],
                    url=recording_url(ctx, "message", r["recording_id"]),
                    app_url=recording_app_url(ctx, "message", r["recording_id"], project_id),
                )
                for r in messages
            ],
            milestones_due_soon=[_milestone(ctx, r, project_id) for r in soon],
            late_milestones=[_milestone(ctx, r, project_id) for r in late],
            activity=[_activity(e) for e in activity],
        )
    )


def _milestone(ctx: Ctx, row: Any, project_id: str) -> MilestoneSummary:
    responsible = None
    if row["responsible_name"] is not None:
        responsible = PersonRef(id=row["responsible_id"], name=row["responsible_name"])
    return MilestoneSummary(
        id=row["recording_id"],
        title=row["title"],
        due_on=row["due_on"],
        responsible=responsible,
        url=recording_url(ctx, "milestone", row["recording_id"]),
        app_url=recording_app_url(ctx, "milestone", row["recording_id"], project_id),
    )


def _activity(entry: ActivityEntry) -> ActivitySummary:
    actor = None if entry.actor.id is None else PersonRef(id=entry.actor.id, name=entry.actor.name)
    target = entry.target
    recording = None
    if target.type in PATHS:
        recording = RecordingRef(id=target.id, type=target.type, url=target.url)
    return ActivitySummary(
        kind=entry.kind,
        sentence=entry.sentence,
        actor=actor,
        recording=recording,
        at=entry.at,
        excerpt=entry.excerpt,
    )

"""The project overview: ``GET /v1/projects/{id}/overview``.

One page of what matters in a project: its people, to-do counts, progress per to-do list, the
latest messages, milestones due soon and late ones, and the latest activity. Read from the
directory, recordings and activity read models.

**Who sees what.** A caller who sees the project sees its overview; a caller who sees only
what clients see (the shared rule, :func:`~service.reads.visibility.client_view`) gets an
overview built from client-visible items alone, counts included, so it never hints at hidden
items. The latest activity is the project's activity stream as the caller would read it
(:func:`service.reads.activity.recent`, :mod:`service.reads.visibility`), with the project's
people as the people a client may be told about.

**Language.** The sentences, and the name Cairn gives a person the caller may not be told
about, are in the language ``Accept-Language`` prefers (``Content-Language`` says which).

**What counts.** Only active items: archived and trashed recordings, and to-dos of archived or
trashed lists, are left out (the read model's ``effective_status``). "Today" is the caller's:
the current date in their time zone, or in the default zone (``CAIRN_TIME_ZONE``) if they
chose none; "this week" starts on Monday 00:00 in that zone; "due soon" means due from today
through today + 14 days; "late" means open and due before today.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import msgspec

from ..domain.context import Timestamp
from ..domain.i18n import Locale
from ..domain.redaction import Sight
from ..events.projects import ProjectRole
from ..reads import overview
from ..reads.visibility import project_scope
from .activity import ActivityEntry, entries
from .api import Api, Ctx, Reply
from .envelope import (
    PATHS,
    PersonRef,
    api_url,
    avatar_url,
    base_url,
    person_ref,
    recording_app_url,
    recording_url,
)
from .reports import ProjectRef, project_ref

api = Api()


class OverviewPerson(msgspec.Struct, frozen=True, kw_only=True):
    """Someone on the project."""

    id: str
    name: str
    title: str | None
    company: str | None
    project_role: ProjectRole
    url: str
    avatar_url: str


class TodoCounts(msgspec.Struct, frozen=True, kw_only=True):
    """Open to-dos, open ones due before today, and those completed since Monday 00:00 (both
    in the caller's time zone)."""

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
    created_at: Timestamp
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
    at: Timestamp
    excerpt: str | None


class Overview(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /v1/projects/{id}/overview``. ``today`` and ``week_starts_on`` (a Monday) are
    the caller's, in their time zone. ``activity`` is newest first."""

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


@api.get(
    "/v1/projects/{project_id}/overview",
    summary="People, to-do counts, list progress, latest messages, milestones and activity",
    response=Overview,
    tags=["overview"],
)
async def project_overview(ctx: Ctx) -> Reply:
    """The overview of a project the caller sees (404 otherwise), filtered for the caller."""
    project_id = ctx.path("project_id")
    scope = await project_scope(ctx.store.pool, ctx.me, project_id)
    locale = await ctx.locale()
    today = await ctx.today()
    found = await overview.overview(ctx.store.pool, scope, project_id, today)
    people, counts, progress, messages = found.people, found.counts, found.progress, found.messages
    sight = Sight(people=scope.people)
    return Reply(
        Overview(
            project=project_ref(ctx, project_id, found.name),
            today=today.date,
            week_starts_on=today.week_starts_on,
            people=[
                OverviewPerson(
                    id=r["person_id"],
                    name=r["name"],
                    title=r["title"],
                    company=r["company"],
                    project_role=r["project_role"],
                    url=api_url(ctx, f"/v1/people/{r['person_id']}"),
                    avatar_url=avatar_url(base_url(ctx), r["person_id"]),
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
                    else person_ref(
                        sight, r["creator_id"], r["creator_name"], locale, base=base_url(ctx)
                    ),
                    created_at=r["created_at"],
                    comments_count=r["comments_count"],
                    url=recording_url(ctx, "message", r["recording_id"]),
                    app_url=recording_app_url(ctx, "message", r["recording_id"], project_id),
                )
                for r in messages
            ],
            milestones_due_soon=[
                _milestone(ctx, r, project_id, sight, locale) for r in found.due_soon
            ],
            late_milestones=[_milestone(ctx, r, project_id, sight, locale) for r in found.late],
            activity=[
                _activity(e, base_url(ctx)) for e in await entries(ctx, scope, found.activity)
            ],
        ),
        headers=await ctx.language_headers(),
    )


def _milestone(
    ctx: Ctx, row: Any, project_id: str, sight: Sight, locale: Locale
) -> MilestoneSummary:
    responsible = None
    if row["responsible_name"] is not None:
        responsible = person_ref(
            sight, row["responsible_id"], row["responsible_name"], locale, base=base_url(ctx)
        )
    return MilestoneSummary(
        id=row["recording_id"],
        title=row["title"],
        due_on=row["due_on"],
        responsible=responsible,
        url=recording_url(ctx, "milestone", row["recording_id"]),
        app_url=recording_app_url(ctx, "milestone", row["recording_id"], project_id),
    )


def _activity(entry: ActivityEntry, base: str) -> ActivitySummary:
    actor = None
    if entry.actor.id is not None:
        actor = PersonRef(
            id=entry.actor.id, name=entry.actor.name, avatar_url=avatar_url(base, entry.actor.id)
        )
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

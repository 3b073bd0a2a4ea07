"""Cross-project reports: ``/v1/my/assignments``, ``/v1/reports/overdue``, ``/v1/reports/upcoming``.

Read from the recordings and directory read models, over every project the caller can see
(:func:`~service.reads.access.visible_projects`). In a project where the caller sees only what
is visible to clients (the shared rule, :func:`~service.reads.visibility.client_view`), only such
items are reported.

What counts: open (not completed) to-dos and milestones that are active, in an active list
(the read model's ``effective_status``), in an active project. Archived and trashed items,
to-dos of archived or trashed lists, and the items of archived (read-only) or trashed projects
are left out: nothing there can be done. "Today" is the caller's: the current date in their
time zone, or the default zone (``CAIRN_TIME_ZONE``) if they chose none (:meth:`~service.http.context.Ctx.today`).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Final, Literal

import asyncpg
import msgspec

from ..domain import redaction
from ..domain.redaction import Sight
from ..reads import reports
from ..reads.access import people_known_to
from ..reads.rows import Page, columns
from .api import Api, Ctx, Reply
from .envelope import api_url, recording_app_url, recording_url
from .paging import cursor, page_headers
from .params import PAGING, Param, RecordingIdText

api = Api()

_TAGS = ["reports"]


class ProjectRef(msgspec.Struct, frozen=True, kw_only=True):
    """A short reference to a project."""

    id: str
    name: str
    url: str


class TodolistRef(msgspec.Struct, frozen=True, kw_only=True):
    """A short reference to a to-do list."""

    id: str
    name: str
    url: str


class DueItem(msgspec.Struct, frozen=True, kw_only=True):
    """An open to-do or milestone with its dates. ``todolist`` is a to-do's list (None for a
    milestone); ``assignee_ids`` are a to-do's, ``responsible_id`` a milestone's (null, in
    their place, for someone the caller may not be told about: docs/ACCESS.md, "Redaction")."""

    id: str
    type: Literal["todo", "milestone"]
    title: str
    status: str
    visible_to_clients: bool
    starts_on: date | None
    due_on: date | None
    completed: bool
    assignee_ids: list[str | None]
    responsible_id: str | None
    project: ProjectRef
    todolist: TodolistRef | None
    url: str
    app_url: str


class ProjectAssignments(msgspec.Struct, frozen=True, kw_only=True):
    """The caller's open to-dos in one project, by due date (undated last)."""

    project: ProjectRef
    todos: list[DueItem]


class Assignments(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /v1/my/assignments``: open to-dos assigned to the caller, grouped by project
    (projects by name). ``today`` is the date the report was made on, in the caller's time
    zone."""

    today: date
    total: int
    overdue: int
    projects: list[ProjectAssignments]


def project_ref(ctx: Ctx, project_id: str, name: str) -> ProjectRef:
    """A :class:`ProjectRef`."""
    return ProjectRef(id=project_id, name=name, url=api_url(ctx, f"/v1/projects/{project_id}"))


_DUE_ITEM: Final = ("title", "status", "visible_to_clients", "starts_on", "due_on", "completed")
"""The columns of a due item's row that :class:`DueItem` shows as they are."""


def due_item(ctx: Ctx, row: asyncpg.Record, sight: Sight) -> DueItem:
    """A :class:`DueItem` from a row of :mod:`service.reads.reports`, the people it names
    as the viewer of ``sight`` may be told them (:mod:`service.domain.redaction`)."""
    kind = row["kind"]
    recording_id = row["recording_id"]
    todolist = None
    if row["list_id"] is not None:
        todolist = TodolistRef(
            id=row["list_id"],
            name=row["list_name"],
            url=recording_url(ctx, "todolist", row["list_id"]),
        )
    return DueItem(
        **columns(row, *_DUE_ITEM, id="recording_id", type="kind"),
        assignee_ids=redaction.people(sight, row["assignee_ids"]),
        responsible_id=redaction.person(sight, row["responsible_id"]),
        project=project_ref(ctx, row["project_id"], row["project_name"]),
        todolist=todolist,
        url=recording_url(ctx, kind, recording_id),
        app_url=recording_app_url(ctx, kind, recording_id, row["project_id"]),
    )


@api.get(
    "/v1/my/assignments",
    summary="Open to-dos assigned to the caller, grouped by project, with due dates",
    response=Assignments,
    tags=_TAGS,
)
async def my_assignments(ctx: Ctx) -> Reply:
    """Every open to-do assigned to the caller in the projects they see (not paged: one
    person's open assignments are a bounded, working set)."""
    rows = await reports.assignments(ctx.store.pool, ctx.me)
    sight = Sight(people=await people_known_to(ctx.store.pool, ctx.me))
    today = (await ctx.today()).date
    groups: dict[str, ProjectAssignments] = {}
    for row in rows:
        item = due_item(ctx, row, sight)
        group = groups.get(item.project.id)
        if group is None:
            group = groups[item.project.id] = ProjectAssignments(project=item.project, todos=[])
        group.todos.append(item)
    overdue = sum(1 for r in rows if r["due_on"] is not None and r["due_on"] < today)
    return Reply(
        Assignments(today=today, total=len(rows), overdue=overdue, projects=list(groups.values()))
    )


@api.get(
    "/v1/reports/overdue",
    summary=(
        "Open to-dos and milestones due before today (in your time zone), across every "
        "project you see"
    ),
    response=list[DueItem],
    query=PAGING,
    tags=_TAGS,
)
async def overdue(ctx: Ctx) -> Reply:
    """Oldest due date first; paged by cursor with ``X-Total-Count``."""
    limit = ctx.limit()
    today = (await ctx.today()).date
    found = await reports.overdue(ctx.store.pool, ctx.me, today, after=_after(ctx), limit=limit)
    return await _due_page(ctx, found, limit)


@api.get(
    "/v1/reports/upcoming",
    summary=(
        "Open to-dos and milestones due from today (in your time zone) to today + days, "
        "across projects"
    ),
    response=list[DueItem],
    query={
        "days": Param(
            "how many days ahead, 1-365 (default 14)", Annotated[int, msgspec.Meta(ge=1, le=365)]
        ),
        **PAGING,
    },
    tags=_TAGS,
)
async def upcoming(ctx: Ctx) -> Reply:
    """Items due from today through today + ``days`` (both included), soonest first; paged
    by cursor with ``X-Total-Count``."""
    days: int = ctx.param("days", 14)
    today = (await ctx.today()).date
    limit = ctx.limit()
    found = await reports.upcoming(
        ctx.store.pool, ctx.me, today, today + timedelta(days=days), after=_after(ctx), limit=limit
    )
    return await _due_page(ctx, found, limit)


def _after(ctx: Ctx) -> tuple[date, str] | None:
    after: tuple[date, str] | None = cursor(ctx, tuple[date, RecordingIdText])
    return after


async def _due_page(ctx: Ctx, found: Page, limit: int) -> Reply:
    sight = Sight(people=await people_known_to(ctx.store.pool, ctx.me))
    items = [due_item(ctx, row, sight) for row in found.rows[:limit]]
    headers = page_headers(ctx, found.rows, limit, found.total, reports.due_cursor)
    return Reply(items, headers=headers)

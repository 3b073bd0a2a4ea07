"""Projects and their memberships over HTTP: ``/v1/projects`` and ``/v1/projects/{id}/people``.

Writes load the project from its stream and go through :mod:`service.domain.projects` and
:mod:`service.domain.memberships` (which raise NotFound for a project the caller may not see,
Forbidden for what they may not do, Conflict for writes to an archived or trashed project);
reads come from the directory read model, filtered by :mod:`service.domain.access`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Final

import asyncpg
import msgspec
from starlette.responses import Response

from ..commands.execute import append_new, execute, load
from ..domain import text
from ..domain.access import Action, ProjectFacts, check
from ..domain.context import Context, Timestamp
from ..domain.mail_addresses import project_local_part
from ..domain.memberships import RemoveMember, SetMember, decide_remove_member, decide_set_member
from ..domain.people import fold_person
from ..domain.projects import (
    DEFAULT_ALERT_HOURS,
    MAX_ALERT_HOURS,
    MIN_ALERT_HOURS,
    ArchiveProject,
    CreateProject,
    EditProject,
    ProjectState,
    RestoreProject,
    TrashProject,
    UnarchiveProject,
    decide_archive_project,
    decide_create_project,
    decide_edit_project,
    decide_restore_project,
    decide_trash_project,
    decide_unarchive_project,
    fold_project,
    project_facts,
)
from ..domain.redaction import Sight, known_people
from ..domain.search import CONFIGURATIONS, Locale, locale_of
from ..errors import CairnError, NotFound
from ..events.base import Event
from ..events.people import PersonRole
from ..events.projects import ProjectRole, ProjectStatus
from ..events.store import AppendResult
from ..events.streams import person_stream, project_stream
from ..reads import directory
from ..reads.access import people_known_to, visible_project, visible_projects
from ..reads.mail_keys import MailKeyCache
from ..reads.rows import columns
from .api import Api, Ctx, Reply
from .envelope import PersonRef, api_url, avatar_url, base_url, person_ref
from .paging import page_headers, seq_after
from .params import PAGING, STATUS

api = Api()

_TAGS = ["projects"]
_UNSET = msgspec.UNSET
_Unset = msgspec.UnsetType

AlertHours = Annotated[int, msgspec.Meta(ge=MIN_ALERT_HOURS, le=MAX_ALERT_HOURS)]
"""A project's ``alert_hours``: an hour to 30 days."""


# ------------------------------------------------------------------ representations


class Project(msgspec.Struct, frozen=True, kw_only=True):
    """A project as the API shows it; ``project_role`` is the caller's (null: an admin who
    is not on the project). ``language`` is the language its items are searched in;
    ``alert_hours``, how long before a milestone's or to-do's due date ends it is "due
    soon"."""

    id: str
    name: str
    description: str | None
    clients_enabled: bool
    language: Locale
    alert_hours: int
    status: ProjectStatus
    created_at: Timestamp
    updated_at: Timestamp
    creator: PersonRef | None
    url: str
    app_url: str
    project_role: ProjectRole | None
    email_address: str | None = None
    """Where mail is forwarded to post it as a message (``project+…@CAIRN_MAIL_DOMAIN``);
    shown by ``GET /v1/projects/{id}`` to whoever may post in the project, else null (and
    null while mail is off)."""


class NewProject(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /v1/projects``; the creator becomes its owner. ``language`` (what its
    items are searched in) defaults to the instance's, ``CAIRN_LOCALE``."""

    name: text.Line
    description: text.OptionalHtml | None = None
    clients_enabled: bool = False
    language: Locale | _Unset = _UNSET
    alert_hours: AlertHours = DEFAULT_ALERT_HOURS
    """How long (hours) before a due date ends its "due soon" alerts fire."""


class ProjectPatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Body of ``PATCH /v1/projects/{id}``: omitted fields stay, ``null`` clears description."""

    name: text.Line | _Unset = _UNSET
    description: text.OptionalHtml | _Unset | None = _UNSET
    clients_enabled: bool | _Unset = _UNSET
    language: Locale | _Unset = _UNSET
    """Changing it indexes the project's items again in the new language."""
    alert_hours: AlertHours | _Unset = _UNSET
    """Applies to alerts not raised yet."""


class ProjectMember(msgspec.Struct, frozen=True, kw_only=True):
    """A person on a project, with their role there; ``url`` is the person's."""

    id: str
    name: str
    email: str
    role: PersonRole
    company: str | None
    title: str | None
    active: bool
    project_role: ProjectRole
    added_at: Timestamp
    url: str
    avatar_url: str


class Membership(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Body of ``PUT /v1/projects/{id}/people/{person_id}``."""

    project_role: ProjectRole


# ------------------------------------------------------------------ helpers


def _existing(project: ProjectState | None) -> ProjectState:
    if project is None:
        raise NotFound("there is no such project")
    return project


_PROJECT: Final = (
    "name",
    "description",
    "clients_enabled",
    "alert_hours",
    "status",
    "created_at",
    "updated_at",
)
"""The columns of a project's row that :class:`Project` shows as they are."""


def _project(ctx: Ctx, row: asyncpg.Record, role: ProjectRole | None, sight: Sight) -> Project:
    project_id = row["project_id"]
    creator = None
    if row["creator_id"] is not None:
        creator = person_ref(sight, row["creator_id"], row["creator_name"], base=base_url(ctx))
    return Project(
        **columns(row, *_PROJECT, id="project_id"),
        language=locale_of(row["language"]),
        creator=creator,
        url=api_url(ctx, f"/v1/projects/{project_id}"),
        app_url=ctx.settings.app_url.format(type="project", id=project_id, project_id=project_id),
        project_role=role,
    )


_MAIL_KEYS: Final = MailKeyCache()


def _may_post(ctx: Ctx, facts: ProjectFacts) -> bool:
    try:
        check(ctx.me, Action.CREATE_RECORDING, facts)
    except CairnError:
        return False
    return True


async def _shown(ctx: Ctx, project_id: str, *, status: int = 200) -> Reply:
    """The project as the caller sees it, with its version (and ``Location`` when ``status``
    is 201); 404 when they may not (or there is none)."""
    facts = await visible_project(ctx.store.pool, ctx.me, project_id)
    row = await directory.project(ctx.store.pool, project_id)
    if row is None:  # pragma: no cover - the facts came from the same row
        raise NotFound("there is no such project")
    sight = Sight(people=await people_known_to(ctx.store.pool, ctx.me))
    out = _project(ctx, row, facts.members.get(ctx.me.person_id), sight)
    domain = ctx.settings.mail_domain
    if domain and _may_post(ctx, facts):
        keys = await _MAIL_KEYS.get(ctx.store.pool)
        out = msgspec.structs.replace(
            out, email_address=f"{project_local_part(keys, project_id)}@{domain}"
        )
    headers = {"Location": out.url} if status == 201 else {}
    return Reply(out, status, headers, version=row["version"])


# ------------------------------------------------------------------ projects


@api.post(
    "/v1/projects",
    summary="Create a project (admins and members); the creator becomes its owner",
    response=Project,
    status=201,
    tags=_TAGS,
)
async def create_project(ctx: Ctx, body: NewProject) -> Reply:
    project_id = ctx.new_id("prj")
    locale = ctx.settings.locale if body.language is _UNSET else body.language
    cmd = CreateProject(
        project_id=project_id,
        name=body.name,
        description=body.description,
        clients_enabled=body.clients_enabled,
        language=CONFIGURATIONS[locale],
        alert_hours=body.alert_hours,
    )
    events = decide_create_project(cmd, ctx.caller.context())
    await append_new(ctx.caller, [(project_stream(project_id), events, project_id)])
    return await _shown(ctx, project_id, status=201)


@api.get(
    "/v1/projects",
    summary="Projects the caller may see, by status (default active)",
    response=list[Project],
    query={"status": STATUS, **PAGING},
    tags=_TAGS,
)
async def list_projects(ctx: Ctx) -> Reply:
    status = ctx.param("status", "active")
    limit = ctx.limit()
    after = seq_after(ctx)
    visible = await visible_projects(ctx.store.pool, ctx.me)
    ids = [pid for pid, facts in visible.items() if facts.status == status]
    rows = await directory.projects(ctx.store.pool, ids, after=after, limit=limit)
    me = ctx.me.person_id
    sight = Sight(people=known_people(ctx.me, visible.values()))
    body = [_project(ctx, r, visible[r["project_id"]].members.get(me), sight) for r in rows[:limit]]
    return Reply(body, headers=page_headers(ctx, rows, limit, len(ids)))


@api.get("/v1/projects/{project_id}", summary="One project", response=Project, tags=_TAGS)
async def get_project(ctx: Ctx) -> Reply:
    return await _shown(ctx, ctx.path("project_id"))


@api.patch(
    "/v1/projects/{project_id}",
    summary="Edit a project's settings (owners and admins; merge: omitted fields stay)",
    response=Project,
    tags=_TAGS,
)
async def edit_project(ctx: Ctx, body: ProjectPatch) -> Reply:
    fields = msgspec.structs.asdict(body)
    if body.language is not _UNSET:
        fields["language"] = CONFIGURATIONS[body.language]
    cmd = EditProject(**fields)
    c = ctx.caller.context()
    return await _change(ctx, lambda project: decide_edit_project(project, cmd, c))


async def _execute(
    ctx: Ctx, project_id: str, decide: Callable[[ProjectState | None], list[Event]]
) -> tuple[ProjectState | None, AppendResult | None]:
    """:func:`execute` on the project's stream, folded through this process's fold cache."""
    return await execute(
        ctx.caller,
        project_stream(project_id),
        fold_project,
        decide,
        project_id=project_id,
        states=ctx.services.project_states,
    )


async def _change(ctx: Ctx, decide: Callable[[ProjectState], list[Event]]) -> Reply:
    project_id = ctx.path("project_id")
    await _execute(ctx, project_id, lambda state: decide(_existing(state)))
    return await _shown(ctx, project_id)


def _status_route(
    path: str, summary: str, decide: Callable[[ProjectState, Context], list[Event]]
) -> None:
    async def handler(ctx: Ctx) -> Reply:
        c = ctx.caller.context()
        return await _change(ctx, lambda project: decide(project, c))

    handler.__name__ = path.rsplit("/", 1)[-1] + "_project"
    api.post(f"/v1/projects/{{project_id}}/{path}", summary=summary, response=Project, tags=_TAGS)(
        handler
    )


_status_route(
    "archive",
    "Archive a project: it becomes read-only (writes answer 409)",
    lambda p, c: decide_archive_project(p, ArchiveProject(), c),
)
_status_route(
    "unarchive",
    "Make an archived project active again",
    lambda p, c: decide_unarchive_project(p, UnarchiveProject(), c),
)
_status_route(
    "trash",
    "Put a project in the trash (it can be restored)",
    lambda p, c: decide_trash_project(p, TrashProject(), c),
)
_status_route(
    "restore",
    "Take a project out of the trash",
    lambda p, c: decide_restore_project(p, RestoreProject(), c),
)


# ------------------------------------------------------------------ memberships


_MEMBER: Final = (
    "name",
    "email",
    "role",
    "company",
    "title",
    "active",
    "project_role",
    "added_at",
)
"""The columns of a membership's row that :class:`ProjectMember` shows as they are."""


def _member(ctx: Ctx, row: asyncpg.Record) -> ProjectMember:
    return ProjectMember(
        **columns(row, *_MEMBER, id="person_id"),
        url=api_url(ctx, f"/v1/people/{row['person_id']}"),
        avatar_url=avatar_url(base_url(ctx), row["person_id"]),
    )


async def _member_of(ctx: Ctx, project_id: str, person_id: str, *, status: int = 200) -> Reply:
    """A membership as the caller sees it, with its project's version."""
    await visible_project(ctx.store.pool, ctx.me, project_id)
    row = await directory.member(ctx.store.pool, project_id, person_id)
    if row is None:
        raise NotFound("the person is not on the project")
    headers = {"Location": api_url(ctx, ctx.request.url.path)} if status == 201 else {}
    return Reply(_member(ctx, row), status, headers, version=row["version"])


@api.get(
    "/v1/projects/{project_id}/people",
    summary="The people on a project, in the order they joined",
    response=list[ProjectMember],
    query=PAGING,
    tags=_TAGS,
)
async def list_members(ctx: Ctx) -> Reply:
    project_id = ctx.path("project_id")
    await visible_project(ctx.store.pool, ctx.me, project_id)
    limit = ctx.limit()
    found = await directory.members(ctx.store.pool, project_id, after=seq_after(ctx), limit=limit)
    body = [_member(ctx, r) for r in found.rows[:limit]]
    return Reply(body, headers=page_headers(ctx, found.rows, limit, found.total))


@api.get(
    "/v1/projects/{project_id}/people/{person_id}",
    summary="One person's membership of a project",
    response=ProjectMember,
    tags=_TAGS,
)
async def get_member(ctx: Ctx) -> Reply:
    return await _member_of(ctx, ctx.path("project_id"), ctx.path("person_id"))


@api.put(
    "/v1/projects/{project_id}/people/{person_id}",
    summary="Put a person on a project or change their project role (owners and admins); "
    "201 when added, 200 otherwise",
    response=ProjectMember,
    also=(201,),
    tags=_TAGS,
)
async def set_member(ctx: Ctx, body: Membership) -> Reply:
    project_id, person_id = ctx.path("project_id"), ctx.path("person_id")
    cmd = SetMember(person_id=person_id, project_role=body.project_role)
    c = ctx.caller.context()
    person = fold_person(
        [e.event for e in (await load(ctx.caller, person_stream(person_id))).events]
    )

    def decide(state: ProjectState | None) -> list[Event]:
        project = _existing(state)
        if person is None:
            # Only someone who may manage the members learns that there is no such person.
            check(ctx.me, Action.MANAGE_MEMBERS, project_facts(project))
            raise NotFound("there is no such person")
        return decide_set_member(project, person, cmd, c)

    state, result = await _execute(ctx, project_id, decide)
    added = result is not None and person_id not in _existing(state).members
    return await _member_of(ctx, project_id, person_id, status=201 if added else 200)


@api.delete(
    "/v1/projects/{project_id}/people/{person_id}",
    summary="Take a person off a project (owners and admins)",
    status=204,
    tags=_TAGS,
)
async def remove_member(ctx: Ctx) -> Response:
    project_id, person_id = ctx.path("project_id"), ctx.path("person_id")
    cmd = RemoveMember(person_id=person_id)
    c = ctx.caller.context()
    await _execute(ctx, project_id, lambda state: decide_remove_member(_existing(state), cmd, c))
    return Response(status_code=204)

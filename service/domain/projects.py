"""Projects: their state (memberships included), settings and status.

Stream ``project-<id>`` (:func:`~service.events.streams.project_stream`). Status rules for every write in a project,
its recordings included (:func:`require_writable`): an archived project is read-only until
unarchived, a trashed one can only be restored. Owners and admins manage settings, members
and status; whoever creates a project becomes its first owner. Membership commands are in
:mod:`service.domain.memberships`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import msgspec

from ..errors import Conflict, InconsistentStream, InvalidCommand
from ..events.base import Event
from ..events.projects import (
    ProjectArchived,
    ProjectCreated,
    ProjectEdited,
    ProjectLanguage,
    ProjectMemberAdded,
    ProjectMemberRemoved,
    ProjectMemberRoleChanged,
    ProjectRestored,
    ProjectRole,
    ProjectStatus,
    ProjectTrashed,
    ProjectUnarchived,
)
from . import text
from .access import AccountAction, Action, ProjectFacts, check, check_account
from .context import Context
from .edits import apply_changes, diff, not_null, patch_of

UNSET = msgspec.UNSET
_Unset = msgspec.UnsetType

DEFAULT_ALERT_HOURS: Final = 48
"""How long (hours) before a due date ends its "due soon" alerts fire, unless the project
says otherwise (``alert_hours``)."""
MIN_ALERT_HOURS: Final = 1
MAX_ALERT_HOURS: Final = 720
"""The bounds of a project's ``alert_hours`` (an hour to 30 days)."""


class ProjectState(msgspec.Struct, frozen=True, kw_only=True):
    """A project folded from its stream up to stream version ``version``."""

    project_id: str
    name: str
    description: str | None
    clients_enabled: bool
    language: ProjectLanguage = "english"
    alert_hours: int = 48
    status: ProjectStatus = "active"
    members: dict[str, ProjectRole] = {}
    unassignable: frozenset[str] = frozenset()
    """Members who are service accounts not made assignable (see ``require_members``)."""
    version: int = 0


class CreateProject(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Create a project; ``project_id`` is made by the caller. ``description`` is HTML;
    ``language`` is what its documents are indexed in (the HTTP layer gives the instance's
    default, ``CAIRN_LOCALE``, when the request names none)."""

    project_id: str
    name: str
    description: str | None = None
    clients_enabled: bool = False
    language: ProjectLanguage = "english"
    alert_hours: int = DEFAULT_ALERT_HOURS


class EditProject(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Merge-patch a project's settings; ``description`` may be cleared with ``None``."""

    name: str | _Unset = UNSET
    description: str | _Unset | None = UNSET
    clients_enabled: bool | _Unset = UNSET
    language: ProjectLanguage | _Unset = UNSET
    alert_hours: int | _Unset = UNSET


class ArchiveProject(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Make an active project read-only."""


class UnarchiveProject(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Make an archived project active again."""


class TrashProject(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Put an active project in the trash."""


class RestoreProject(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Take a trashed project out of the trash (it becomes active)."""


def project_facts(project: ProjectState) -> ProjectFacts:
    """What the access rules need to know about ``project``."""
    return ProjectFacts(
        project_id=project.project_id,
        status=project.status,
        clients_enabled=project.clients_enabled,
        members=project.members,
    )


def require_writable(project: ProjectState) -> None:
    """Refuse writes to a project that is not active (recordings included).

    Raises:
        Conflict: the project is archived (read-only) or trashed.
    """
    if project.status == "archived":
        raise Conflict("the project is archived, so it is read-only; unarchive it first")
    if project.status == "trashed":
        raise Conflict("the project is in the trash; restore it first")


_STATUS_AFTER: dict[type[Event], ProjectStatus] = {
    ProjectArchived: "archived",
    ProjectUnarchived: "active",
    ProjectTrashed: "trashed",
    ProjectRestored: "active",
}


def evolve_project(state: ProjectState | None, event: Event) -> ProjectState:
    """``state`` after ``event`` (``None`` before ``ProjectCreated``); version goes up by one.

    Raises:
        InconsistentStream: an event before ``ProjectCreated``, or a second ``ProjectCreated``.
    """
    if isinstance(event, ProjectCreated):
        if state is not None:
            raise InconsistentStream(f"project {state.project_id} is created twice")
        return ProjectState(
            project_id=event.project_id,
            name=event.name,
            description=event.description,
            clients_enabled=event.clients_enabled,
            language=event.language,
            alert_hours=event.alert_hours,
            version=1,
        )
    if state is None:
        raise InconsistentStream(f"{type(event).__name__} before ProjectCreated")
    state = msgspec.structs.replace(state, version=state.version + 1)
    match event:
        case ProjectEdited(changes=changes):
            return apply_changes(state, changes)
        case ProjectMemberAdded(person_id=person_id, project_role=role, assignable=assignable):
            unassignable = state.unassignable if assignable else state.unassignable | {person_id}
            return msgspec.structs.replace(
                state, members={**state.members, person_id: role}, unassignable=unassignable
            )
        case ProjectMemberRoleChanged(person_id=person_id, after=role):
            return msgspec.structs.replace(state, members={**state.members, person_id: role})
        case ProjectMemberRemoved(person_id=person_id):
            members = {p: r for p, r in state.members.items() if p != person_id}
            return msgspec.structs.replace(
                state, members=members, unassignable=state.unassignable - {person_id}
            )
    status = _STATUS_AFTER.get(type(event))
    # Events this code does not know (written by newer code) change nothing it knows about.
    return state if status is None else msgspec.structs.replace(state, status=status)


def fold_project(events: Iterable[Event]) -> ProjectState | None:
    """The state of a project's stream, from its first event; ``None`` for an empty stream."""
    state: ProjectState | None = None
    for event in events:
        state = evolve_project(state, event)
    return state


def decide_create_project(cmd: CreateProject, ctx: Context) -> list[Event]:
    """Admins and members create projects: ``[ProjectCreated, ProjectMemberAdded(owner)]``.

    Raises:
        Forbidden: the actor is a client.
        InvalidCommand: a bad name or description.
    """
    check_account(ctx.actor, AccountAction.CREATE_PROJECT)
    return [
        ProjectCreated(
            project_id=cmd.project_id,
            name=text.line("name", cmd.name),
            description=text.optional_html("description", cmd.description),
            clients_enabled=cmd.clients_enabled,
            language=cmd.language,
            alert_hours=alert_hours(cmd.alert_hours),
        ),
        ProjectMemberAdded(person_id=ctx.actor.person_id, project_role="owner"),
    ]


def decide_edit_project(project: ProjectState, cmd: EditProject, ctx: Context) -> list[Event]:
    """Owners and admins edit the settings: ``[ProjectEdited]``, or ``[]`` if nothing changes.

    Raises:
        NotFound, Forbidden: see :func:`~service.domain.access.check`.
        Conflict: the project is not active.
        InvalidCommand: a bad value.
    """
    _manage(project, Action.EDIT_PROJECT, ctx)
    require_writable(project)
    updates: dict[str, Any] = {}
    for field, value in patch_of(cmd).items():
        if field == "name":
            updates[field] = text.line(field, not_null(field, value))
        elif field == "description":
            updates[field] = text.optional_html(field, value)
        elif field == "alert_hours":
            updates[field] = alert_hours(not_null(field, value))
        else:
            updates[field] = not_null(field, value)
    changes = diff(project, updates)
    return [ProjectEdited(changes=changes)] if changes else []


def decide_archive_project(project: ProjectState, cmd: ArchiveProject, ctx: Context) -> list[Event]:
    """Owners and admins archive an active project: ``[ProjectArchived]``.

    Raises:
        NotFound, Forbidden: see :func:`~service.domain.access.check`.
        Conflict: the project is not active.
    """
    _manage(project, Action.SET_PROJECT_STATUS, ctx)
    require_writable(project)
    return [ProjectArchived()]


def decide_unarchive_project(
    project: ProjectState, cmd: UnarchiveProject, ctx: Context
) -> list[Event]:
    """Owners and admins unarchive an archived project: ``[ProjectUnarchived]``.

    Raises:
        NotFound, Forbidden: see :func:`~service.domain.access.check`.
        Conflict: the project is not archived.
    """
    _manage(project, Action.SET_PROJECT_STATUS, ctx)
    if project.status != "archived":
        raise Conflict(f"the project is not archived but {project.status}")
    return [ProjectUnarchived()]


def decide_trash_project(project: ProjectState, cmd: TrashProject, ctx: Context) -> list[Event]:
    """Owners and admins trash an active project: ``[ProjectTrashed]``.

    Raises:
        NotFound, Forbidden: see :func:`~service.domain.access.check`.
        Conflict: the project is archived (unarchive it first) or trashed already.
    """
    _manage(project, Action.SET_PROJECT_STATUS, ctx)
    require_writable(project)
    return [ProjectTrashed()]


def decide_restore_project(project: ProjectState, cmd: RestoreProject, ctx: Context) -> list[Event]:
    """Owners and admins restore a trashed project: ``[ProjectRestored]``.

    Raises:
        NotFound, Forbidden: see :func:`~service.domain.access.check`.
        Conflict: the project is not in the trash.
    """
    _manage(project, Action.SET_PROJECT_STATUS, ctx)
    if project.status != "trashed":
        raise Conflict(f"the project is not in the trash but {project.status}")
    return [ProjectRestored()]


def alert_hours(hours: int) -> int:
    """``hours`` if it is a project's ``alert_hours`` (:data:`MIN_ALERT_HOURS` to
    :data:`MAX_ALERT_HOURS`).

    Raises:
        InvalidCommand: any other number.
    """
    if not MIN_ALERT_HOURS <= hours <= MAX_ALERT_HOURS:
        raise InvalidCommand(
            "alert_hours", f"alert_hours must be from {MIN_ALERT_HOURS} to {MAX_ALERT_HOURS}"
        )
    return hours


def _manage(project: ProjectState, action: Action, ctx: Context) -> None:
    check(ctx.actor, action, project_facts(project))

"""Who may see and do what: the one place of authorisation.

HTTP routes, the WebSocket hub, feeds, e-mail and webhooks all ask these functions, over small
facts they build from states or read models (``ProjectFacts``, ``RecordingFacts``). The matrix
in ``docs/ACCESS.md`` is the specification; ``tests/test_access.py`` checks every cell of it.

Two outcomes besides "allowed", always in this order:

* :class:`~service.errors.NotFound` when the viewer may not see the thing: the answer is the
  same as for a thing that does not exist, so it never hints that a hidden item exists;
* :class:`~service.errors.Forbidden` when the viewer sees the thing but may not do this to it.

Status (archived, trashed) never changes who may see or do what; it changes what can be done at
all, which the ``decide`` functions answer with :class:`~service.errors.Conflict`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Final

import msgspec

from ..errors import Forbidden, InsufficientScope, NotFound
from ..events.people import PersonRole
from ..events.projects import ProjectRole, ProjectStatus
from ..events.recordings import RecordingKind, RecordingStatus

INHERITS_VISIBILITY: Final[frozenset[RecordingKind]] = frozenset({"comment", "todo"})
"""Kinds whose client visibility is their parent's (a comment's) or list's (a to-do's)."""


KIND_LABELS: Final[dict[RecordingKind, str]] = {
    "message": "message",
    "comment": "comment",
    "todolist": "to-do list",
    "todo": "to-do",
    "milestone": "milestone",
    "upload": "upload",
    "external_item": "external item",
}
"""How messages to people name each kind."""


def kind_label(kind: RecordingKind | None) -> str:
    """How messages to people name ``kind`` (``recording`` for any)."""
    return KIND_LABELS[kind] if kind is not None else "recording"


class TokenScope(msgspec.Struct, frozen=True, kw_only=True):
    """What a token lets its holder do, within what the holder may do (never beyond it).

    ``write`` False: reading only (every write is refused with :class:`InsufficientScope`).
    ``projects`` a set of project ids: the token sees no other project (they are as absent,
    404) and acts on no account but its holder's own; None: every project its holder sees.
    ``expires_at`` when the token stops working (OAuth access tokens; None: never). A token
    that expires mints no lasting token (:func:`~service.domain.tokens.decide_issue_token`),
    and a WebSocket it opened closes at that instant.
    """

    write: bool = True
    projects: frozenset[str] | None = None
    expires_at: datetime | None = None

    def within(self, other: TokenScope) -> bool:
        """Whether this scope grants nothing ``other`` does not."""
        if self.write and not other.write:
            return False
        if other.projects is None:
            return True
        return self.projects is not None and self.projects <= other.projects


FULL_SCOPE: Final = TokenScope()
"""The holder's full power: read and write, every project (tokens issued before scopes)."""


class Viewer(msgspec.Struct, frozen=True, kw_only=True):
    """The person asking: their id, global role and whether their account is active, and the
    scope of the token they present (:data:`FULL_SCOPE` when no token narrows it)."""

    person_id: str
    role: PersonRole
    active: bool = True
    scope: TokenScope = FULL_SCOPE


SYSTEM: Final = Viewer(person_id="system", role="admin")
"""The actor of commands Cairn issues itself (e.g. ``cairn people create-admin``)."""


class ProjectFacts(msgspec.Struct, frozen=True, kw_only=True):
    """What access rules need to know about a project."""

    project_id: str
    status: ProjectStatus
    clients_enabled: bool
    members: Mapping[str, ProjectRole]


class RecordingFacts(msgspec.Struct, frozen=True, kw_only=True):
    """What access rules need to know about a recording.

    ``visible_to_clients`` is the effective value: the recording's own, or for a comment or
    to-do the one it inherits (see ``service.domain.recordings.recording_facts``).
    """

    recording_id: str
    project_id: str
    kind: RecordingKind
    status: RecordingStatus
    visible_to_clients: bool
    creator_id: str
    assignee_ids: frozenset[str] = frozenset()


class Action(StrEnum):
    """Everything one can do in a project. The first five act on the project itself."""

    VIEW_PROJECT = "view_project"
    EDIT_PROJECT = "edit_project"
    SET_PROJECT_STATUS = "set_project_status"
    MANAGE_MEMBERS = "manage_members"
    CREATE_RECORDING = "create_recording"
    VIEW_RECORDING = "view_recording"
    EDIT_RECORDING = "edit_recording"
    SET_RECORDING_STATUS = "set_recording_status"
    SET_CLIENT_VISIBILITY = "set_client_visibility"
    COMMENT = "comment"
    COMPLETE = "complete"
    SUBSCRIBE = "subscribe"


PROJECT_ACTIONS: Final = frozenset(
    {
        Action.VIEW_PROJECT,
        Action.EDIT_PROJECT,
        Action.SET_PROJECT_STATUS,
        Action.MANAGE_MEMBERS,
        Action.CREATE_RECORDING,
    }
)


class AccountAction(StrEnum):
    """What one can do to people and outside any project."""

    CREATE_PERSON = "create_person"
    CREATE_PROJECT = "create_project"
    EDIT_PERSON = "edit_person"
    CHANGE_ROLE = "change_role"
    DEACTIVATE_PERSON = "deactivate_person"
    MANAGE_TOKENS = "manage_tokens"
    VIEW_TOKENS = "view_tokens"
    """List or read tokens (without secrets): as ``MANAGE_TOKENS``, but a read needs no
    ``write`` scope."""


def hidden_probe(project_id: str) -> RecordingFacts:
    """The least visible recording a project can hold: hidden from clients. Asking
    :func:`can_see_recording` about it tells whether a viewer sees hidden items at all."""
    return RecordingFacts(
        recording_id="",
        project_id=project_id,
        kind="message",
        status="active",
        visible_to_clients=False,
        creator_id="",
    )


def can_see_project(viewer: Viewer, project: ProjectFacts) -> bool:
    """Whether ``viewer`` may know that ``project`` exists.

    Admins see every project; members (and service accounts) the projects they belong to;
    clients only projects with clients enabled where they are members. Deactivated people see
    nothing; a token limited to some projects sees no other.
    """
    if not viewer.active or not in_scope(viewer, project.project_id):
        return False
    if viewer.role == "admin":
        return True
    project_role = project.members.get(viewer.person_id)
    if project_role is None:
        return False
    if _is_client(viewer, project_role):
        return project.clients_enabled
    return True


def can_see_recording(viewer: Viewer, project: ProjectFacts, recording: RecordingFacts) -> bool:
    """Whether ``viewer`` may know that ``recording`` (of ``project``) exists.

    Whoever sees the project sees its recordings, except clients: they see only recordings
    that are (or inherit being) visible to clients.
    """
    if recording.project_id != project.project_id or not can_see_project(viewer, project):
        return False
    if _is_client(viewer, project.members.get(viewer.person_id)):
        return recording.visible_to_clients
    return True


def can_see_person(viewer: Viewer, person_id: str, projects: Iterable[ProjectFacts] = ()) -> bool:
    """Whether ``viewer`` may know that person ``person_id`` exists.

    Admins and members see everyone; clients see themselves and the people of the projects
    they see. ``projects`` are the projects worth checking (e.g. the person's memberships).
    """
    if not viewer.active:
        return False
    if sees_everyone(viewer) or person_id == viewer.person_id:
        return True
    return any(person_id in p.members and can_see_project(viewer, p) for p in projects)


def in_scope(viewer: Viewer, project_id: str) -> bool:
    """Whether the viewer's token reaches project ``project_id`` at all (its holder may still
    not see it)."""
    projects = viewer.scope.projects
    return projects is None or project_id in projects


def require_write(viewer: Viewer) -> None:
    """Refuse any write to a read-only token.

    Raises:
        InsufficientScope: the viewer's token has no ``write`` scope.
    """
    if not viewer.scope.write:
        raise InsufficientScope("this token may only read (scope read)")


def sees_everyone(viewer: Viewer) -> bool:
    """Whether ``viewer`` may know of every person (:func:`can_see_person` for anyone): active
    admins and members."""
    return viewer.active and viewer.role != "client"


def check(
    viewer: Viewer,
    action: Action,
    project: ProjectFacts,
    recording: RecordingFacts | None = None,
) -> None:
    """Allow ``action`` or raise. Project actions take no recording; the others need one.

    Raises:
        NotFound: the viewer may not see the project or the recording (a project outside
            the token's projects included).
        InsufficientScope: the viewer sees it, ``action`` is a write and the token is
            read-only.
        Forbidden: the viewer sees it but may not do ``action``; ``detail`` says why.
        ValueError: ``recording`` given for a project action or missing for another (a bug).
    """
    if (action in PROJECT_ACTIONS) != (recording is None):
        needs = "takes no" if action in PROJECT_ACTIONS else "needs a"
        raise ValueError(f"{action} {needs} recording")
    if not can_see_project(viewer, project):
        raise NotFound("there is no such project")
    if recording is not None and not can_see_recording(viewer, project, recording):
        raise NotFound(f"there is no such {KIND_LABELS[recording.kind]}")
    # After the 404s (a read-only token must not learn more than its holder may see), before
    # the role's rules: a write with a read-only token is refused for its scope.
    if action not in (Action.VIEW_PROJECT, Action.VIEW_RECORDING):
        require_write(viewer)
    standing = _standing(viewer, project)
    if recording is None:
        _check_project(standing, action)
        return
    _check_recording(viewer, standing, action, recording)


def check_account(viewer: Viewer, action: AccountAction, target_id: str | None = None) -> None:
    """Allow an action on person ``target_id`` (or on no one, for the ``CREATE_*`` actions).

    Every one of these is a write: a read-only token may do none. A token limited to some
    projects may act only on its holder's own account (edit it, manage its tokens): people and
    projects are outside any project.

    Raises:
        NotFound: a client acts on someone else (they may do nothing to others, and get no
            hint whether that person exists).
        InsufficientScope: the token is read-only, or limited to projects and the action is
            not on its holder's own account.
        Forbidden: anything else not allowed; ``detail`` says why.
    """
    if not viewer.active:
        raise Forbidden("a deactivated account can do nothing")
    is_self = target_id == viewer.person_id
    if viewer.role == "client" and target_id is not None and not is_self:
        raise NotFound("there is no such person")
    if action is not AccountAction.VIEW_TOKENS:
        require_write(viewer)
    own = is_self and action in (
        AccountAction.EDIT_PERSON,
        AccountAction.MANAGE_TOKENS,
        AccountAction.VIEW_TOKENS,
    )
    if viewer.scope.projects is not None and not own:
        raise InsufficientScope("this token is limited to some projects; this is outside them")
    if action is AccountAction.CREATE_PERSON:
        _require(viewer.role == "admin", "only admins add people")
    elif action is AccountAction.CREATE_PROJECT:
        _require(viewer.role != "client", "clients cannot create projects")
    elif action in (
        AccountAction.EDIT_PERSON,
        AccountAction.MANAGE_TOKENS,
        AccountAction.VIEW_TOKENS,
    ):
        _require(viewer.role == "admin" or is_self, "only admins act on other people")
    else:
        _require(not is_self, f"nobody may {action.value.replace('_', ' ')} themselves")
        _require(viewer.role == "admin", "only admins change roles and deactivate people")


def _is_client(viewer: Viewer, project_role: ProjectRole | None) -> bool:
    # Either role makes a client: the rules keep them in step, and the stricter reading wins.
    return viewer.role == "client" or project_role == "client"


def _standing(viewer: Viewer, project: ProjectFacts) -> str:
    if viewer.role == "admin":
        return "admin"
    project_role = project.members[viewer.person_id]
    return "client" if _is_client(viewer, project_role) else project_role


def _require(allowed: bool, reason: str) -> None:
    if not allowed:
        raise Forbidden(reason)


def _check_project(standing: str, action: Action) -> None:
    if action is Action.VIEW_PROJECT:
        return
    if action is Action.CREATE_RECORDING:
        _require(standing != "client", "clients can only comment and complete their to-dos")
        return
    _require(standing in ("admin", "owner"), "only the project's owners and admins may do this")


def _check_recording(
    viewer: Viewer, standing: str, action: Action, recording: RecordingFacts
) -> None:
    staff = standing != "client"
    own = recording.creator_id == viewer.person_id
    manager = standing in ("admin", "owner")
    if action in (Action.VIEW_RECORDING, Action.COMMENT, Action.SUBSCRIBE):
        return
    if action is Action.EDIT_RECORDING:
        if recording.kind == "comment":
            _require(manager or own, "only its author and the project's owners edit a comment")
        else:
            _require(staff, "clients can only comment and complete their to-dos")
    elif action is Action.SET_RECORDING_STATUS:
        _require(staff, "clients can only comment and complete their to-dos")
        if recording.kind == "comment":
            _require(manager or own, "only its author and the project's owners may do this")
    elif action is Action.SET_CLIENT_VISIBILITY:
        if recording.kind in INHERITS_VISIBILITY:
            source = "its parent" if recording.kind == "comment" else "its to-do list"
            label = KIND_LABELS[recording.kind]
            raise Forbidden(f"a {label} is visible to clients exactly when {source} is")
        _require(staff, "clients cannot change who sees what")
    elif action is Action.COMPLETE:
        if recording.kind not in ("todo", "milestone"):
            raise Forbidden(f"a {KIND_LABELS[recording.kind]} cannot be completed")
        assigned = recording.kind == "todo" and viewer.person_id in recording.assignee_ids
        _require(staff or assigned, "clients may complete only the to-dos assigned to them")
    else:  # pragma: no cover - every Action of a recording is handled above
        raise ValueError(f"{action} is not an action on a recording")

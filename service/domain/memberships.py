"""Project memberships: who is on a project, in which project role.

People with role ``client`` take project role ``client``, and only they do. Owners and admins
manage members; a project keeps at least one owner.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from ..errors import Conflict, InvalidCommand, NotFound
from ..events.base import Event
from ..events.projects import (
    ProjectMemberAdded,
    ProjectMemberRemoved,
    ProjectMemberRoleChanged,
    ProjectRole,
)
from .access import Action, check
from .context import Context
from .people import PersonState
from .projects import ProjectState, project_facts, require_writable


class SetMember(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Put a person on the project with ``project_role``, or change their role there."""

    person_id: str
    project_role: ProjectRole


class RemoveMember(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Take a person off the project."""

    person_id: str


def decide_set_member(
    project: ProjectState, person: PersonState, cmd: SetMember, ctx: Context
) -> list[Event]:
    """Owners and admins put ``person`` on the project or change their project role.

    People with role ``client`` take project role ``client``, and only they do.

    Returns:
        ``[ProjectMemberAdded]``, ``[ProjectMemberRoleChanged]``, or ``[]`` if nothing changes.

    Raises:
        NotFound, Forbidden: see :func:`~service.domain.access.check`.
        Conflict: the project is not active, the person is deactivated, or the last owner
            would be demoted.
        InvalidCommand: ``project_role`` does not fit the person's role, or ``person`` is not
            the person the command names.
    """
    check(ctx.actor, Action.MANAGE_MEMBERS, project_facts(project))
    require_writable(project)
    if person.person_id != cmd.person_id:
        raise InvalidCommand("person_id", "the person does not match the command")
    if (person.role == "client") != (cmd.project_role == "client"):
        wanted = "client" if person.role == "client" else "owner or member"
        raise InvalidCommand("project_role", f"a {person.role} can only be {wanted} of a project")
    before = project.members.get(cmd.person_id)
    if before == cmd.project_role:
        return []
    if before is None:
        if not person.active:
            raise Conflict("a deactivated person cannot join a project")
        return [
            ProjectMemberAdded(
                person_id=cmd.person_id,
                project_role=cmd.project_role,
                assignable=person.assignable,
            )
        ]
    if before == "owner":
        _keep_an_owner(project, cmd.person_id)
    return [
        ProjectMemberRoleChanged(person_id=cmd.person_id, before=before, after=cmd.project_role)
    ]


def decide_remove_member(project: ProjectState, cmd: RemoveMember, ctx: Context) -> list[Event]:
    """Owners and admins take someone off the project: ``[ProjectMemberRemoved]``.

    Raises:
        NotFound: see :func:`~service.domain.access.check`; also when the person is not on
            the project.
        Forbidden: see :func:`~service.domain.access.check`.
        Conflict: the project is not active, or the person is its last owner.
    """
    check(ctx.actor, Action.MANAGE_MEMBERS, project_facts(project))
    require_writable(project)
    if cmd.person_id not in project.members:
        raise NotFound("the person is not on the project")
    _keep_an_owner(project, cmd.person_id)
    return [ProjectMemberRemoved(person_id=cmd.person_id)]


def _keep_an_owner(project: ProjectState, leaving_id: str) -> None:
    owners = [p for p, r in project.members.items() if r == "owner" and p != leaving_id]
    if project.members.get(leaving_id) == "owner" and not owners:
        raise Conflict("a project keeps at least one owner; make someone else owner first")


def first_subscribers(
    project: ProjectState, author_id: str, chosen: Iterable[str] | None, *, visible: bool
) -> tuple[str, ...]:
    """Who a new item's subscribers are: its author, then ``chosen`` (checked as
    :func:`require_members` does, field ``subscriber_ids``), or everyone on the project who
    can see the item (clients only when it is ``visible`` to them) when none are chosen.

    Raises:
        InvalidCommand: someone chosen is not on the project, or is a client who cannot see
            the item.
    """
    if chosen is None:
        others = tuple(p for p, role in project.members.items() if visible or role != "client")
    else:
        others = require_members(project, "subscriber_ids", chosen, clients_allowed=visible)
    return tuple(dict.fromkeys((author_id, *others)))


ASSIGNING = frozenset({"assignee_ids", "responsible_id"})
"""The fields that give someone work: a service account must be ``assignable`` for them."""


def require_members(
    project: ProjectState, field: str, person_ids: Iterable[str], *, clients_allowed: bool
) -> tuple[str, ...]:
    """``person_ids`` without repeats, checked to be on the project.

    Args:
        clients_allowed: whether clients may be among them (only if they can see the item).

    Raises:
        InvalidCommand: someone is not on the project, or is a client who cannot see the
            item, or (for ``assignee_ids`` and ``responsible_id``) is a service account not
            made ``assignable``.
    """
    unique = tuple(dict.fromkeys(person_ids))
    for person_id in unique:
        role = project.members.get(person_id)
        if role is None:
            raise InvalidCommand(field, f"{person_id} is not on the project")
        if field in ASSIGNING and person_id in project.unassignable:
            raise InvalidCommand(field, f"{person_id} is a service account nobody is assigned")
        if role == "client" and not clients_allowed:
            raise InvalidCommand(field, f"{person_id} is a client and cannot see this item")
    return unique

"""Events of projects (stream ``project-<id>``): settings, status and memberships."""

from __future__ import annotations

from typing import Literal

from .base import Event, FieldChange, register

ProjectRole = Literal["owner", "member", "client"]
ProjectStatus = Literal["active", "archived", "trashed"]
ProjectLanguage = Literal["english", "french"]
"""A project's language: the PostgreSQL text-search configuration its documents are indexed
with (the API shows it as ``en``/``fr``: :mod:`service.domain.search`)."""


@register
class ProjectCreated(Event, frozen=True, kw_only=True):
    """A project was created (its creator joins it as owner in a following event).

    ``language`` was appended later: a project created before it is English. So was
    ``alert_hours`` (how long before a due date ends its "due soon" alerts fire): 48 before.
    """

    project_id: str
    name: str
    description: str | None
    clients_enabled: bool
    language: ProjectLanguage = "english"
    alert_hours: int = 48


@register
class ProjectEdited(Event, frozen=True, kw_only=True):
    """Some of a project's name, description, ``clients_enabled``, ``language`` or
    ``alert_hours`` changed."""

    changes: tuple[FieldChange, ...]


@register
class ProjectArchived(Event, frozen=True, kw_only=True):
    """The project became read-only (until unarchived)."""


@register
class ProjectUnarchived(Event, frozen=True, kw_only=True):
    """An archived project became active again."""


@register
class ProjectTrashed(Event, frozen=True, kw_only=True):
    """The project went to the trash (nothing is deleted; it can be restored)."""


@register
class ProjectRestored(Event, frozen=True, kw_only=True):
    """A trashed project became active again."""


@register
class ProjectMemberAdded(Event, frozen=True, kw_only=True):
    """A person joined the project with ``project_role``. ``assignable`` False: a service
    account that may not be given to-dos or milestones (#18)."""

    person_id: str
    project_role: ProjectRole
    assignable: bool = True


@register
class ProjectMemberRoleChanged(Event, frozen=True, kw_only=True):
    """A member's project role changed."""

    person_id: str
    before: ProjectRole
    after: ProjectRole


@register
class ProjectMemberRemoved(Event, frozen=True, kw_only=True):
    """A person left the project (or was removed from it)."""

    person_id: str

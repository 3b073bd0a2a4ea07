"""Milestones: a dated goal with a responsible person; rescheduling is a change of ``due_on``."""

from __future__ import annotations

from datetime import date
from typing import Any

import msgspec

from ..errors import Conflict
from ..events.base import Event
from ..events.recordings import (
    MilestoneCompleted,
    MilestoneCreated,
    MilestoneEdited,
    MilestoneReopened,
    SubscriberAdded,
)
from . import text
from .access import Action, check
from .context import Context
from .edits import diff, not_null, patch_of
from .memberships import require_members
from .projects import ProjectState, project_facts, require_writable
from .recordings import RecordingState, authorize, expect_kind, require_open

UNSET = msgspec.UNSET
_Unset = msgspec.UnsetType


class CreateMilestone(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Set a milestone; ``recording_id`` is made by the caller, ``notes`` is HTML."""

    recording_id: str
    title: str
    due_on: date
    responsible_id: str | None = None
    notes: str | None = None
    visible_to_clients: bool = False


class EditMilestone(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Merge-patch a milestone; ``responsible_id`` and ``notes`` may be cleared with ``None``."""

    title: text.Line | _Unset = UNSET
    due_on: date | _Unset = UNSET
    responsible_id: str | _Unset | None = UNSET
    notes: text.OptionalHtml | _Unset | None = UNSET


class CompleteMilestone(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Complete an open milestone."""


class ReopenMilestone(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Open a completed milestone again."""


def decide_create_milestone(
    project: ProjectState, cmd: CreateMilestone, ctx: Context
) -> list[Event]:
    """Staff set milestones: ``[MilestoneCreated]`` (author and responsible subscribed).

    Raises:
        NotFound, Forbidden: see :func:`~service.domain.access.check`.
        Conflict: the project is not active.
        InvalidCommand: a bad value, or a responsible person not on the project (or a
            client while the milestone is hidden from clients).
    """
    check(ctx.actor, Action.CREATE_RECORDING, project_facts(project))
    require_writable(project)
    responsible = _responsible(project, cmd.responsible_id, visible=cmd.visible_to_clients)
    return [
        MilestoneCreated(
            recording_id=cmd.recording_id,
            project_id=project.project_id,
            creator_id=ctx.actor.person_id,
            at=ctx.now,
            title=text.line("title", cmd.title),
            due_on=cmd.due_on,
            responsible_id=responsible,
            notes=text.optional_html("notes", cmd.notes),
            visible_to_clients=cmd.visible_to_clients,
            subscriber_ids=tuple(dict.fromkeys(p for p in (ctx.actor.person_id, responsible) if p)),
        )
    ]


def decide_edit_milestone(
    project: ProjectState, milestone: RecordingState, cmd: EditMilestone, ctx: Context
) -> list[Event]:
    """Staff edit or reschedule a milestone: ``[MilestoneEdited]`` (then ``SubscriberAdded``
    for a new responsible person), or ``[]`` when nothing changes.

    Raises:
        NotFound: ``milestone`` is not a milestone, or see :func:`~service.domain.access.check`.
        Forbidden: see :func:`~service.domain.access.check`.
        Conflict: the project or the milestone is not active.
        InvalidCommand: as for :func:`decide_create_milestone`.
    """
    expect_kind(milestone, "milestone")
    authorize(Action.EDIT_RECORDING, project, milestone, (), ctx)
    require_open(project, milestone)
    updates: dict[str, Any] = {}
    for field, value in patch_of(cmd).items():
        if field == "title":
            updates[field] = text.line(field, not_null(field, value))
        elif field == "due_on":
            updates[field] = not_null(field, value)
        elif field == "responsible_id":
            visible = milestone.visible_to_clients is True
            updates[field] = _responsible(project, value, visible=visible)
        else:
            updates[field] = text.optional_html(field, value)
    changes = diff(milestone, updates)
    if not changes:
        return []
    events: list[Event] = [MilestoneEdited(at=ctx.now, changes=changes)]
    responsible = updates.get("responsible_id")
    if responsible is not None and responsible not in milestone.subscriber_ids:
        events.append(SubscriberAdded(at=ctx.now, person_id=responsible))
    return events


def decide_complete_milestone(
    project: ProjectState, milestone: RecordingState, cmd: CompleteMilestone, ctx: Context
) -> list[Event]:
    """Staff complete an open milestone: ``[MilestoneCompleted]``.

    Raises:
        NotFound: ``milestone`` is not a milestone, or see :func:`~service.domain.access.check`.
        Forbidden: see :func:`~service.domain.access.check`.
        Conflict: it is completed already, or the project or it is not active.
    """
    expect_kind(milestone, "milestone")
    authorize(Action.COMPLETE, project, milestone, (), ctx)
    require_open(project, milestone)
    if milestone.completed:
        raise Conflict("the milestone is completed already")
    return [MilestoneCompleted(at=ctx.now, completer_id=ctx.actor.person_id)]


def decide_reopen_milestone(
    project: ProjectState, milestone: RecordingState, cmd: ReopenMilestone, ctx: Context
) -> list[Event]:
    """Staff reopen a completed milestone: ``[MilestoneReopened]``.

    Raises:
        NotFound, Forbidden: as for :func:`decide_complete_milestone`.
        Conflict: it is not completed, or the project or it is not active.
    """
    expect_kind(milestone, "milestone")
    authorize(Action.COMPLETE, project, milestone, (), ctx)
    require_open(project, milestone)
    if not milestone.completed:
        raise Conflict("the milestone is not completed")
    return [MilestoneReopened(at=ctx.now)]


def _responsible(project: ProjectState, person_id: str | None, *, visible: bool) -> str | None:
    if person_id is None:
        return None
    return require_members(project, "responsible_id", (person_id,), clients_allowed=visible)[0]

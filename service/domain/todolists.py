"""To-do lists: they own the client visibility their to-dos inherit."""

from __future__ import annotations

from typing import Any

import msgspec

from ..events.base import Event
from ..events.recordings import TodolistCreated, TodolistEdited
from . import text
from .access import Action, check
from .context import Context
from .edits import diff, not_null, patch_of
from .projects import ProjectState, project_facts, require_writable
from .recordings import RecordingState, authorize, expect_kind, require_open

UNSET = msgspec.UNSET
_Unset = msgspec.UnsetType


class CreateTodolist(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Create a to-do list; ``recording_id`` is made by the caller, ``description`` is HTML."""

    recording_id: str
    name: str
    description: str | None = None
    visible_to_clients: bool = False


class EditTodolist(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Merge-patch a to-do list; ``description`` may be cleared with ``None``."""

    name: text.Line | _Unset = UNSET
    description: text.OptionalHtml | _Unset | None = UNSET


def decide_create_todolist(project: ProjectState, cmd: CreateTodolist, ctx: Context) -> list[Event]:
    """Staff create to-do lists: ``[TodolistCreated]`` (the author is subscribed).

    Raises:
        NotFound, Forbidden: see :func:`~service.domain.access.check`.
        Conflict: the project is not active.
        InvalidCommand: a bad name or description.
    """
    check(ctx.actor, Action.CREATE_RECORDING, project_facts(project))
    require_writable(project)
    return [
        TodolistCreated(
            recording_id=cmd.recording_id,
            project_id=project.project_id,
            creator_id=ctx.actor.person_id,
            at=ctx.now,
            name=text.line("name", cmd.name),
            description=text.optional_html("description", cmd.description),
            visible_to_clients=cmd.visible_to_clients,
            subscriber_ids=(ctx.actor.person_id,),
        )
    ]


def decide_edit_todolist(
    project: ProjectState, todolist: RecordingState, cmd: EditTodolist, ctx: Context
) -> list[Event]:
    """Staff edit a to-do list: ``[TodolistEdited]``, or ``[]`` when nothing changes.

    Raises:
        NotFound: ``todolist`` is not a to-do list, or see :func:`~service.domain.access.check`.
        Forbidden: see :func:`~service.domain.access.check`.
        Conflict: the project or the list is not active.
        InvalidCommand: a bad value.
    """
    expect_kind(todolist, "todolist")
    authorize(Action.EDIT_RECORDING, project, todolist, (), ctx)
    require_open(project, todolist)
    updates: dict[str, Any] = {}
    for field, value in patch_of(cmd).items():
        if field == "name":
            updates[field] = text.line(field, not_null(field, value))
        else:
            updates[field] = text.optional_html(field, value)
    changes = diff(todolist, updates)
    return [TodolistEdited(at=ctx.now, changes=changes)] if changes else []

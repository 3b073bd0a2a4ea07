"""To-dos: adding, editing, completing, reordering and moving them between lists.

A to-do's lineage (see :mod:`service.domain.recordings`) is ``(todolist,)``: it is visible to
clients exactly when its list is. Order within a list is not part of a to-do's state: the list's
order is the log order of ``TodoAdded`` (appended at the end) and ``TodoMoved`` (takes a
1-based position) events, which projections keep.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import msgspec

from ..errors import Conflict, InvalidCommand
from ..events.base import Event
from ..events.recordings import (
    SubscriberAdded,
    TodoAdded,
    TodoCompleted,
    TodoEdited,
    TodoMoved,
    TodoReopened,
)
from . import text
from .access import Action, check
from .context import Context
from .edits import diff, not_null, patch_of
from .memberships import require_members
from .projects import ProjectState, project_facts
from .recordings import (
    Lineage,
    RecordingState,
    authorize,
    expect_kind,
    recording_facts,
    require_open,
    require_unassigned_clients,
)

UNSET = msgspec.UNSET
_Unset = msgspec.UnsetType


class AddTodo(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Add a to-do at the end of a list; ``recording_id`` is made by the caller.

    ``content`` is one line of plain text; ``notes`` is HTML.
    """

    recording_id: str
    content: str
    notes: str | None = None
    assignee_ids: tuple[str, ...] = ()
    starts_on: date | None = None
    due_on: date | None = None


class EditTodo(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Merge-patch a to-do; all but ``content`` may be cleared with ``None``."""

    content: text.Content | _Unset = UNSET
    notes: text.OptionalHtml | _Unset | None = UNSET
    assignee_ids: tuple[str, ...] | _Unset | None = UNSET
    starts_on: date | _Unset | None = UNSET
    due_on: date | _Unset | None = UNSET


class CompleteTodo(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Complete an open to-do."""


class ReopenTodo(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Open a completed to-do again."""


class MoveTodo(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Put a to-do at 1-based ``position`` of its list, or of list ``todolist_id``."""

    position: text.Position
    todolist_id: str | None = None


def decide_add_todo(
    project: ProjectState, todolist: RecordingState, cmd: AddTodo, ctx: Context
) -> list[Event]:
    """Staff add to-dos to an active list: ``[TodoAdded]`` (author and assignees subscribed).

    Raises:
        NotFound: ``todolist`` is not a to-do list, or see :func:`~service.domain.access.check`.
        Forbidden: see :func:`~service.domain.access.check`.
        Conflict: the project or the list is not active.
        InvalidCommand: a bad value, dates in the wrong order, or an assignee not on the
            project (or a client while the list is hidden from clients).
    """
    expect_kind(todolist, "todolist")
    authorize(Action.VIEW_RECORDING, project, todolist, (), ctx)
    check(ctx.actor, Action.CREATE_RECORDING, project_facts(project))
    require_open(project, todolist)
    assignees = require_members(
        project,
        "assignee_ids",
        cmd.assignee_ids,
        clients_allowed=todolist.visible_to_clients is True,
    )
    _check_dates(cmd.starts_on, cmd.due_on)
    return [
        TodoAdded(
            recording_id=cmd.recording_id,
            project_id=project.project_id,
            creator_id=ctx.actor.person_id,
            at=ctx.now,
            todolist_id=todolist.recording_id,
            content=text.line("content", cmd.content, max_length=text.MAX_CONTENT),
            notes=text.optional_html("notes", cmd.notes),
            assignee_ids=assignees,
            starts_on=cmd.starts_on,
            due_on=cmd.due_on,
            subscriber_ids=tuple(dict.fromkeys((ctx.actor.person_id, *assignees))),
        )
    ]


def decide_edit_todo(
    project: ProjectState, todo: RecordingState, cmd: EditTodo, ctx: Context, lineage: Lineage
) -> list[Event]:
    """Staff edit a to-do: ``[TodoEdited, SubscriberAdded(new assignee)...]``, or ``[]``.

    Raises:
        NotFound: ``todo`` is not a to-do, or see :func:`~service.domain.access.check`.
        Forbidden: see :func:`~service.domain.access.check`.
        Conflict: the project, the to-do or its list is not active.
        InvalidCommand: as for :func:`decide_add_todo`.
    """
    expect_kind(todo, "todo")
    authorize(Action.EDIT_RECORDING, project, todo, lineage, ctx)
    require_open(project, todo, lineage)
    updates: dict[str, Any] = {}
    for field, value in patch_of(cmd).items():
        if field == "content":
            content = not_null(field, value)
            updates[field] = text.line(field, content, max_length=text.MAX_CONTENT)
        elif field == "notes":
            updates[field] = text.optional_html(field, value)
        elif field == "assignee_ids":
            visible = recording_facts(todo, lineage).visible_to_clients
            updates[field] = require_members(project, field, value or (), clients_allowed=visible)
        else:
            updates[field] = value
    _check_dates(updates.get("starts_on", todo.starts_on), updates.get("due_on", todo.due_on))
    changes = diff(todo, updates)
    if not changes:
        return []
    new = [p for p in updates.get("assignee_ids", ()) if p not in todo.subscriber_ids]
    added = [SubscriberAdded(at=ctx.now, person_id=p) for p in new]
    return [TodoEdited(at=ctx.now, changes=changes), *added]


def decide_complete_todo(
    project: ProjectState, todo: RecordingState, cmd: CompleteTodo, ctx: Context, lineage: Lineage
) -> list[Event]:
    """Staff, and clients assigned to it, complete an open to-do: ``[TodoCompleted]``.

    Raises:
        NotFound: ``todo`` is not a to-do, or see :func:`~service.domain.access.check`.
        Forbidden: see :func:`~service.domain.access.check`.
        Conflict: it is completed already, or the project, it or its list is not active.
    """
    expect_kind(todo, "todo")
    authorize(Action.COMPLETE, project, todo, lineage, ctx)
    require_open(project, todo, lineage)
    if todo.completed:
        raise Conflict("the to-do is completed already")
    return [TodoCompleted(at=ctx.now, completer_id=ctx.actor.person_id)]


def decide_reopen_todo(
    project: ProjectState, todo: RecordingState, cmd: ReopenTodo, ctx: Context, lineage: Lineage
) -> list[Event]:
    """Whoever may complete a to-do reopens it: ``[TodoReopened]``.

    Raises:
        NotFound, Forbidden: as for :func:`decide_complete_todo`.
        Conflict: it is not completed, or the project, it or its list is not active.
    """
    expect_kind(todo, "todo")
    authorize(Action.COMPLETE, project, todo, lineage, ctx)
    require_open(project, todo, lineage)
    if not todo.completed:
        raise Conflict("the to-do is not completed")
    return [TodoReopened(at=ctx.now)]


def decide_move_todo(
    project: ProjectState,
    todo: RecordingState,
    target_list: RecordingState,
    target_list_size: int,
    cmd: MoveTodo,
    ctx: Context,
    lineage: Lineage,
) -> list[Event]:
    """Staff reorder a to-do in its list or move it to another list: ``[TodoMoved]``.

    Args:
        target_list: the list named by ``cmd.todolist_id``, or the to-do's own list.
        target_list_size: how many to-dos the target list's order holds now (counting this
            one when it is its own list); ``cmd.position`` must be in ``1..size`` for its own
            list and ``1..size + 1`` for another.
        lineage: the to-do's current list.

    Raises:
        NotFound: not a to-do or list, the list is in another project, or see
            :func:`~service.domain.access.check`.
        Forbidden: see :func:`~service.domain.access.check`.
        Conflict: the project, the to-do, its list or the target list is not active.
        InvalidCommand: the position is out of range; the target list is hidden from clients
            while a client is assigned (see
            :func:`~service.domain.recordings.require_unassigned_clients`); ``target_list``
            is not the list the command names.
    """
    expect_kind(todo, "todo")
    expect_kind(target_list, "todolist")
    authorize(Action.EDIT_RECORDING, project, todo, lineage, ctx)
    authorize(Action.VIEW_RECORDING, project, target_list, (), ctx)
    require_open(project, todo, lineage)
    require_open(project, target_list)
    if target_list.recording_id != (cmd.todolist_id or todo.todolist_id):
        raise InvalidCommand("todolist_id", "the target list does not match the command")
    same = target_list.recording_id == todo.todolist_id
    last = target_list_size if same else target_list_size + 1
    if not 1 <= cmd.position <= last:
        raise InvalidCommand("position", f"position must be between 1 and {last}")
    if not target_list.visible_to_clients:
        require_unassigned_clients(project, "todolist_id", todo.assignee_ids, "todo")
    assert todo.todolist_id is not None
    return [
        TodoMoved(
            at=ctx.now,
            from_todolist_id=todo.todolist_id,
            to_todolist_id=target_list.recording_id,
            position=cmd.position,
        )
    ]


def _check_dates(starts_on: date | None, due_on: date | None) -> None:
    if starts_on is not None and due_on is not None and due_on < starts_on:
        raise InvalidCommand("due_on", "due_on must not be before starts_on")

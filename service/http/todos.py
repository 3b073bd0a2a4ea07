"""To-do lists and to-dos: create, list, read, edit, complete and reopen, reorder and move.

Positions are 1-based everywhere. A list's order counts every to-do in it, whatever its
status or completion (the order the domain and the ``recordings`` projection keep).
"""

from __future__ import annotations

from datetime import date
from typing import Final, Literal

import msgspec

from ..commands.recordings import change, create, edit_decision, load, load_project
from ..domain import text
from ..domain.context import Context
from ..domain.projects import ProjectState
from ..domain.recordings import Lineage, RecordingState
from ..domain.todolists import CreateTodolist, EditTodolist, decide_create_todolist
from ..domain.todos import (
    AddTodo,
    CompleteTodo,
    EditTodo,
    MoveTodo,
    ReopenTodo,
    decide_add_todo,
    decide_complete_todo,
    decide_move_todo,
    decide_reopen_todo,
)
from ..events.base import Event
from ..reads import recordings
from .api import Api, Ctx, Reply
from .envelope import (
    Todo,
    Todolist,
    page,
    parent_for_list,
    project_for_list,
    show,
    status_filter,
)
from .params import PAGING, STATUS, Param, PersonIdText

api = Api()

TodoFilter = Literal["open", "completed", "all", "archived", "trashed"]
"""The to-dos of a list each ``?status=`` keeps (see :data:`service.reads.recordings.TODO_FILTERS`)."""
_TAGS: Final = ["to-dos"]


class NewTodolist(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A to-do list to create; ``description`` is HTML (sanitised)."""

    name: text.Line
    description: text.OptionalHtml | None = None
    visible_to_clients: bool = False


class NewTodo(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A to-do to add at the end of a list; ``content`` is one line, ``notes`` HTML."""

    content: text.Content
    notes: text.OptionalHtml | None = None
    assignee_ids: list[str] = []
    starts_on: date | None = None
    due_on: date | None = None


# ----------------------------------------------------------------- lists


@api.post(
    "/v1/projects/{project_id}/todolists",
    summary="Create a to-do list",
    response=Todolist,
    status=201,
    tags=_TAGS,
)
async def post_todolist(ctx: Ctx, body: NewTodolist) -> Reply:
    project = await load_project(ctx.caller, ctx.path("project_id"))
    recording_id = ctx.new_id("rec")
    cmd = CreateTodolist(
        recording_id=recording_id,
        name=body.name,
        description=body.description,
        visible_to_clients=body.visible_to_clients,
    )
    events = decide_create_todolist(project, cmd, ctx.caller.context())
    await create(ctx.caller, project.project_id, recording_id, events)
    return await show(ctx, recording_id, status=201)


@api.get(
    "/v1/projects/{project_id}/todolists",
    summary="A project's to-do lists with their progress, oldest first",
    response=list[Todolist],
    query={"status": STATUS, **PAGING},
    tags=_TAGS,
)
async def list_todolists(ctx: Ctx) -> Reply:
    project = await project_for_list(ctx)
    selection = recordings.todolists(project.project_id, status_filter(ctx))
    return await page(ctx, selection, project=project)


@api.get(
    "/v1/todolists/{id}",
    summary="A to-do list with its active to-dos (in order) and its progress",
    response=Todolist,
    tags=_TAGS,
)
async def get_todolist(ctx: Ctx) -> Reply:
    return await show(ctx, ctx.path("id"), kind="todolist", with_todos=True)


@api.patch(
    "/v1/todolists/{id}",
    summary="Merge-patch a to-do list (omitted: unchanged; null clears the description)",
    response=Todolist,
    tags=_TAGS,
)
async def patch_todolist(ctx: Ctx, body: EditTodolist) -> Reply:
    await change(ctx.caller, ctx.path("id"), edit_decision("todolist", body), "todolist")
    return await show(ctx, ctx.path("id"), kind="todolist", with_todos=True)


# ----------------------------------------------------------------- to-dos


@api.post(
    "/v1/todolists/{id}/todos",
    summary="Add a to-do at the end of a list",
    response=Todo,
    status=201,
    tags=_TAGS,
)
async def post_todo(ctx: Ctx, body: NewTodo) -> Reply:
    todolist = await load(ctx.caller, ctx.path("id"), "todolist")
    recording_id = ctx.new_id("rec")
    cmd = AddTodo(
        recording_id=recording_id,
        content=body.content,
        notes=body.notes,
        assignee_ids=tuple(body.assignee_ids),
        starts_on=body.starts_on,
        due_on=body.due_on,
    )
    events = decide_add_todo(todolist.project, todolist.recording, cmd, ctx.caller.context())
    await create(ctx.caller, todolist.project.project_id, recording_id, events)
    return await show(ctx, recording_id, status=201)


@api.get(
    "/v1/todolists/{id}/todos",
    summary="A list's to-dos in order",
    response=list[Todo],
    query={
        "status": Param(
            "open, completed, all (default; active to-dos), archived or trashed", TodoFilter
        ),
        "assignee_id": Param("only the to-dos assigned to this person", PersonIdText),
        **PAGING,
    },
    tags=_TAGS,
)
async def list_todos(ctx: Ctx) -> Reply:
    todolist, project = await parent_for_list(ctx, "todolist")
    status = ctx.param("status", "all")
    selection = recordings.todos(todolist["recording_id"], status, ctx.param("assignee_id"))
    return await page(ctx, selection, project=project)


@api.get("/v1/todos/{id}", summary="A to-do", response=Todo, tags=_TAGS)
async def get_todo(ctx: Ctx) -> Reply:
    return await show(ctx, ctx.path("id"), kind="todo")


@api.patch(
    "/v1/todos/{id}",
    summary="Merge-patch a to-do (omitted: unchanged; null clears all but content)",
    response=Todo,
    tags=_TAGS,
)
async def patch_todo(ctx: Ctx, body: EditTodo) -> Reply:
    await change(ctx.caller, ctx.path("id"), edit_decision("todo", body), "todo")
    return await show(ctx, ctx.path("id"), kind="todo")


def _complete(p: ProjectState, r: RecordingState, lineage: Lineage, c: Context) -> list[Event]:
    return decide_complete_todo(p, r, CompleteTodo(), c, lineage)


def _reopen(p: ProjectState, r: RecordingState, lineage: Lineage, c: Context) -> list[Event]:
    return decide_reopen_todo(p, r, ReopenTodo(), c, lineage)


@api.post(
    "/v1/todos/{id}/completion",
    summary="Complete a to-do (409 if it is completed already)",
    response=Todo,
    tags=_TAGS,
)
async def complete_todo(ctx: Ctx) -> Reply:
    await change(ctx.caller, ctx.path("id"), _complete, "todo")
    return await show(ctx, ctx.path("id"), kind="todo")


@api.delete(
    "/v1/todos/{id}/completion",
    summary="Reopen a completed to-do (409 if it is open)",
    response=Todo,
    tags=_TAGS,
)
async def reopen_todo(ctx: Ctx) -> Reply:
    await change(ctx.caller, ctx.path("id"), _reopen, "todo")
    return await show(ctx, ctx.path("id"), kind="todo")


@api.put(
    "/v1/todos/{id}/position",
    summary="Put a to-do at a 1-based position of its list, or of another list (todolist_id)",
    response=Todo,
    tags=_TAGS,
)
async def put_position(ctx: Ctx, cmd: MoveTodo) -> Reply:
    todo_id = ctx.path("id")
    todo = await load(ctx.caller, todo_id, "todo")
    target_id = cmd.todolist_id or todo.recording.todolist_id
    assert target_id is not None
    if target_id == todo.lineage[0].recording_id:
        target = todo.lineage[0]
    else:
        target = (await load(ctx.caller, target_id, "todolist")).recording
    # The list's size comes from the read model, not from folding every to-do stream of the
    # list: positions are a presentation order, not a rule anything else depends on, and the
    # projection clamps a position into 1..n+1 and renumbers densely, so a size off by a
    # racing add or move gives at worst a to-do one place from where it was asked to go.
    size = await recordings.list_size(ctx.store.pool, target_id)

    def decide(p: ProjectState, r: RecordingState, lineage: Lineage, c: Context) -> list[Event]:
        return decide_move_todo(p, r, target, size, cmd, c, lineage)

    await change(ctx.caller, todo_id, decide, "todo")
    return await show(ctx, todo_id, kind="todo")

"""Routes every recording has (``/v1/recordings/{id}``...), and running commands on recordings.

Writes are decided on states folded from the streams, never on read models: the project's
stream and the recording's, with its lineage (a to-do's list, a comment's parent and, for a
comment on a to-do, that to-do's list). The per-kind route modules (``messages``,
``comments``, ``todos``, ``milestones``) use :func:`create` and :func:`change` from here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import msgspec

from ..domain.comments import EditComment, decide_edit_comment
from ..domain.context import Context
from ..domain.edits import json_value
from ..domain.messages import EditMessage, decide_edit_message
from ..domain.milestones import EditMilestone, decide_edit_milestone
from ..domain.projects import ProjectState
from ..domain.recordings import (
    Lineage,
    RecordingState,
    SetClientVisibility,
    SetRecordingStatus,
    decide_set_client_visibility,
    decide_set_recording_status,
    evolve_recording,
    fold_recording,
    visibility_parent_id,
)
from ..domain.subscriptions import Subscribe, Unsubscribe, decide_subscribe, decide_unsubscribe
from ..domain.todolists import EditTodolist, decide_edit_todolist
from ..domain.todos import EditTodo, decide_edit_todo
from ..errors import CairnError, InconsistentStream, NotFound
from ..events.base import Event, RecordedEvent
from ..events.recordings import (
    MilestoneCompleted,
    MilestoneReopened,
    RecordingKind,
    TodoCompleted,
    TodoMoved,
    TodoReopened,
)
from ..events.streams import project_stream, recording_stream
from .api import Api, Ctx, Reply
from .commands import append_new, context, execute
from .context import decode_cursor, encode_cursor, next_link
from .envelope import PersonRef, Recording, api_url, label, show, visible_row
from .problems import ApiError, FieldError

api = Api()
_TAGS: Final = ["recordings"]

Decision = Callable[[ProjectState, RecordingState, Lineage, Context], list[Event]]
"""A decision on an existing recording: (project, recording, its lineage, context) -> events."""


# ----------------------------------------------------------------- running commands


@dataclass(frozen=True)
class Loaded:
    """A recording, its lineage (nearest first) and its project, folded from their streams."""

    project: ProjectState
    recording: RecordingState
    lineage: list[RecordingState]


class _LineageMoved(CairnError):
    """Raised inside a decision when the recording's lineage changed since it was read."""


async def load_project(ctx: Ctx, project_id: str) -> ProjectState:
    """The project folded from its stream: this process's last fold of it with the events
    since folded on top (see folds.py).

    Raises:
        NotFound: there is no such project.
    """
    _, project = await ctx.project_states.load(ctx.store, project_stream(project_id))
    if project is None:
        raise NotFound("there is no such project")
    return project


async def _fold(ctx: Ctx, recording_id: str) -> RecordingState | None:
    events = await ctx.store.read_stream(recording_stream(recording_id))
    return fold_recording(e.event for e in events)


async def load(ctx: Ctx, recording_id: str, kind: RecordingKind | None = None) -> Loaded:
    """A recording with its lineage and project, from their streams.

    Raises:
        NotFound: there is no such recording (of ``kind``, if given). Whether the caller may
            see it is for the decide functions to say (with the same 404).
    """
    recording = await _fold(ctx, recording_id)
    if recording is None or (kind is not None and recording.kind != kind):
        raise NotFound(f"there is no such {label(kind)}")
    lineage: list[RecordingState] = []
    current = recording
    while (parent_id := visibility_parent_id(current)) is not None:
        parent = await _fold(ctx, parent_id)
        if parent is None:
            raise InconsistentStream(f"{current.recording_id} names a missing parent {parent_id}")
        lineage.append(parent)
        current = parent
    project = await load_project(ctx, recording.project_id)
    return Loaded(project=project, recording=recording, lineage=lineage)


async def change(
    ctx: Ctx, recording_id: str, decide: Decision, kind: RecordingKind | None = None
) -> None:
    """Decide on recording ``recording_id`` and append the outcome (nothing if ``[]``),
    then wait until the read models show it.

    Concurrency: the append expects the recording's stream at the version decided on (see
    :func:`~service.http.commands.execute`). The project and the lineage are read just
    before; a change of them racing this command is not detected, except that a to-do
    moving to another list meanwhile makes the whole command run again on the new lineage
    (deciding with the wrong list could show a to-do to clients by mistake).

    Raises:
        NotFound, Forbidden, Conflict, InvalidCommand: from the decision.
    """
    for _ in range(3):
        if await _attempt(ctx, recording_id, decide, kind):
            return
    raise ApiError(409, "the recording kept moving; try again", slug="version-conflict")


async def _attempt(
    ctx: Ctx, recording_id: str, decide: Decision, kind: RecordingKind | None
) -> bool:
    """One run of :func:`change`; False when the lineage moved under it."""
    loaded = await load(ctx, recording_id, kind)
    parent_id = loaded.lineage[0].recording_id if loaded.lineage else None
    now = context(ctx)

    def decide_on(state: RecordingState | None) -> list[Event]:
        if state is None:
            raise NotFound(f"there is no such {label(kind)}")
        if visibility_parent_id(state) != parent_id:
            raise _LineageMoved(recording_id)
        return decide(loaded.project, state, loaded.lineage, now)

    try:
        await execute(
            ctx,
            recording_stream(recording_id),
            fold_recording,
            decide_on,
            project_id=loaded.project.project_id,
        )
    except _LineageMoved:
        return False
    return True


async def create(ctx: Ctx, project_id: str, recording_id: str, events: list[Event]) -> Reply:
    """Append a new recording's creation ``events`` to its new stream; reply 201 with it.

    The decision was taken on the project (and parent) read just before; the new stream's
    ``NO_STREAM`` expectation guards only the recording itself. A project archived in
    between lets this one creation through, as if it had come a moment earlier.
    """
    await append_new(ctx, [(recording_stream(recording_id), events, project_id)])
    return await show(ctx, recording_id, status=201)


def convert(data: Any, kind: type[Any]) -> Any:
    """``data`` (a decoded JSON object) as ``kind``, or 422 naming the bad field."""
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        message = str(exc)
        where = message.rsplit(" - at `", 1)
        field = where[1].rstrip("`").removeprefix("$.") if len(where) == 2 else "(body)"
        raise ApiError(
            422, message, field_errors=[FieldError(field=field, detail=where[0])]
        ) from None


def edit_decision(kind: str, cmd: Any) -> Decision:
    """The decision editing a recording of ``kind`` with merge-patch ``cmd``."""

    def decide(p: ProjectState, r: RecordingState, lineage: Lineage, c: Context) -> list[Event]:
        if kind == "message":
            return decide_edit_message(p, r, cmd, c)
        if kind == "comment":
            return decide_edit_comment(p, r, cmd, c, lineage)
        if kind == "todolist":
            return decide_edit_todolist(p, r, cmd, c)
        if kind == "todo":
            return decide_edit_todo(p, r, cmd, c, lineage)
        return decide_edit_milestone(p, r, cmd, c)

    return decide


EDITS: Final[dict[str, type[Any]]] = {
    "message": EditMessage,
    "comment": EditComment,
    "todolist": EditTodolist,
    "todo": EditTodo,
    "milestone": EditMilestone,
}
"""The merge-patch body of each kind (the domain's edit commands: they carry no ids)."""


# ----------------------------------------------------------------- generic routes


@api.get(
    "/v1/recordings/{id}",
    summary="Any recording, whatever its kind",
    response=Recording,
    tags=_TAGS,
)
async def get_recording(ctx: Ctx) -> Reply:
    return await show(ctx, ctx.path("id"), with_todos=True)


@api.patch(
    "/v1/recordings/{id}",
    summary="Merge-patch any recording with its kind's fields (omitted: unchanged; null: cleared)",
    body=dict[str, Any],
    response=Recording,
    tags=_TAGS,
)
async def patch_recording(ctx: Ctx) -> Reply:
    recording_id = ctx.path("id")
    row = await visible_row(ctx, recording_id)
    kind = row["kind"]
    cmd = convert(ctx.body, EDITS[kind])
    await change(ctx, recording_id, edit_decision(kind, cmd), kind)
    return await show(ctx, recording_id)


@api.put(
    "/v1/recordings/{id}/status",
    summary="Archive, trash or restore (active) a recording",
    body=SetRecordingStatus,
    response=Recording,
    tags=_TAGS,
)
async def put_status(ctx: Ctx) -> Reply:
    cmd: SetRecordingStatus = ctx.body

    def decide(p: ProjectState, r: RecordingState, lineage: Lineage, c: Context) -> list[Event]:
        return decide_set_recording_status(p, r, cmd, c, lineage)

    await change(ctx, ctx.path("id"), decide)
    return await show(ctx, ctx.path("id"))


@api.put(
    "/v1/recordings/{id}/client_visibility",
    summary="Show a message, to-do list or milestone to clients, or hide it (403 on kinds "
    "that inherit it)",
    body=SetClientVisibility,
    response=Recording,
    tags=_TAGS,
)
async def put_client_visibility(ctx: Ctx) -> Reply:
    cmd: SetClientVisibility = ctx.body

    def decide(p: ProjectState, r: RecordingState, lineage: Lineage, c: Context) -> list[Event]:
        return decide_set_client_visibility(p, r, cmd, c, lineage)

    await change(ctx, ctx.path("id"), decide)
    return await show(ctx, ctx.path("id"))


# ----------------------------------------------------------------- subscriptions


class Subscription(msgspec.Struct, frozen=True, kw_only=True):
    """Whether the caller is subscribed to a recording, and who is."""

    subscribed: bool
    count: int
    subscribers: list[PersonRef]
    url: str


async def _subscription(ctx: Ctx, recording_id: str) -> Reply:
    await visible_row(ctx, recording_id)
    rows = await ctx.store.pool.fetch(
        "SELECT s.person_id, p.name FROM subscriptions s LEFT JOIN people p USING (person_id) "
        "WHERE s.recording_id = $1 ORDER BY p.name, s.person_id",
        recording_id,
    )
    people = [PersonRef(id=r["person_id"], name=r["name"]) for r in rows]
    return Reply(
        Subscription(
            subscribed=any(p.id == ctx.me.person_id for p in people),
            count=len(people),
            subscribers=people,
            url=api_url(ctx, f"/v1/recordings/{recording_id}/subscription"),
        )
    )


@api.get(
    "/v1/recordings/{id}/subscription",
    summary="The caller's subscription to a recording, and its subscribers",
    response=Subscription,
    tags=_TAGS,
)
async def get_subscription(ctx: Ctx) -> Reply:
    return await _subscription(ctx, ctx.path("id"))


@api.post(
    "/v1/recordings/{id}/subscription",
    summary="Subscribe the caller to a recording (idempotent)",
    response=Subscription,
    tags=_TAGS,
)
async def post_subscription(ctx: Ctx) -> Reply:
    def decide(p: ProjectState, r: RecordingState, lineage: Lineage, c: Context) -> list[Event]:
        return decide_subscribe(p, r, Subscribe(), c, lineage)

    await change(ctx, ctx.path("id"), decide)
    return await _subscription(ctx, ctx.path("id"))


@api.delete(
    "/v1/recordings/{id}/subscription",
    summary="Unsubscribe the caller from a recording (idempotent)",
    response=Subscription,
    tags=_TAGS,
)
async def delete_subscription(ctx: Ctx) -> Reply:
    def decide(p: ProjectState, r: RecordingState, lineage: Lineage, c: Context) -> list[Event]:
        return decide_unsubscribe(p, r, Unsubscribe(), c, lineage)

    await change(ctx, ctx.path("id"), decide)
    return await _subscription(ctx, ctx.path("id"))


# ----------------------------------------------------------------- history


class Change(msgspec.Struct, frozen=True, kw_only=True):
    """One field an event changed; values in their JSON form (null before a creation)."""

    field: str
    before: Any
    after: Any


class HistoryEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One event of a recording's stream.

    ``kind`` is the event's name in snake case (``todo_completed``); ``version`` its place in
    the recording's stream, ``position`` its place in the whole log. A move's ``position``
    change has a null ``before``: the place a to-do left is not part of its own stream.
    """

    position: int
    version: int
    kind: str
    actor: PersonRef | None
    at: datetime
    changes: list[Change]


_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
# Creation-event fields that are not the recording's own fields.
_NOT_FIELDS: Final = frozenset({"type", "recording_id", "project_id", "creator_id", "at"})
# State fields never reported as changed: bookkeeping, or named by the event itself.
_QUIET: Final = frozenset({"version", "updated_at"})


def history(events: list[RecordedEvent]) -> list[tuple[RecordedEvent, list[Change]]]:
    """Each event of a recording's stream with the fields it changed, before and after."""
    out = []
    state: RecordingState | None = None
    for recorded in events:
        event = recorded.event
        before = state
        state = evolve_recording(state, event)
        changes: list[Change]
        if before is None:
            changes = [
                Change(field=f, before=None, after=json_value(getattr(event, f)))
                for f in event.__struct_fields__
                if f not in _NOT_FIELDS
            ]
        elif hasattr(event, "changes"):
            changes = [Change(field=c.field, before=c.before, after=c.after) for c in event.changes]
        else:
            changes = [
                Change(field=f, before=json_value(old), after=json_value(new))
                for f in state.__struct_fields__
                if f not in _QUIET and (old := getattr(before, f)) != (new := getattr(state, f))
            ]
            if isinstance(event, TodoCompleted | MilestoneCompleted):
                changes.insert(0, Change(field="completed", before=False, after=True))
            elif isinstance(event, TodoReopened | MilestoneReopened):
                changes.insert(0, Change(field="completed", before=True, after=False))
            elif isinstance(event, TodoMoved):
                changes.append(Change(field="position", before=None, after=event.position))
        out.append((recorded, changes))
    return out


@api.get(
    "/v1/recordings/{id}/events",
    summary="Every event of a recording, oldest first, with actor, time and before/after values",
    response=list[HistoryEvent],
    query={"limit": "page size, 1-100 (default 25)", "cursor": "from a Link header"},
    tags=_TAGS,
)
async def get_history(ctx: Ctx) -> Reply:
    recording_id = ctx.path("id")
    await visible_row(ctx, recording_id)
    limit = ctx.limit()
    raw = ctx.query("cursor")
    after = decode_cursor(raw, int) if raw is not None else 0
    # The whole stream is folded (streams of one item are short): a change's before value
    # needs every event before it.
    events = await ctx.store.read_stream(recording_stream(recording_id))
    names = await ctx.store.pool.fetch(
        "SELECT person_id, name FROM people WHERE person_id = ANY($1::text[])",
        list({e.metadata.actor for e in events if e.metadata.actor}),
    )
    actors = {r["person_id"]: r["name"] for r in names}
    items = [h for h in history(events) if h[0].stream_version > after]
    shown = items[:limit]
    body = [
        HistoryEvent(
            position=recorded.position,
            version=recorded.stream_version,
            kind=_CAMEL.sub("_", recorded.event_type).lower(),
            actor=(
                PersonRef(id=who, name=actors.get(who))
                if (who := recorded.metadata.actor)
                else None
            ),
            at=getattr(recorded.event, "at", recorded.recorded_at),
            changes=changes,
        )
        for recorded, changes in shown
    ]
    cursor = encode_cursor(shown[-1][0].stream_version) if len(items) > limit else None
    headers = {"X-Total-Count": str(len(events)), **next_link(ctx.request, cursor)}
    return Reply(body, headers=headers)

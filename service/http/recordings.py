"""Routes every recording has (``/v1/recordings/{id}``...): read, merge-patch, status,
client visibility, subscription and history. Commands run through
:mod:`service.commands.recordings`, like the per-kind route modules' (``messages``,
``comments``, ``todos``, ``milestones``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from ..commands.recordings import EDITS, change, edit_decision
from ..domain import redaction
from ..domain.context import Context, Timestamp
from ..domain.edits import json_value
from ..domain.projects import ProjectState
from ..domain.recordings import (
    Lineage,
    RecordingState,
    SetClientVisibility,
    SetRecordingStatus,
    decide_set_client_visibility,
    decide_set_recording_status,
    evolve_recording,
)
from ..domain.redaction import Mentions, Sight, mentions, merged
from ..domain.subscriptions import Subscribe, Unsubscribe, decide_subscribe, decide_unsubscribe
from ..events.base import Event, FieldChange, RecordedEvent
from ..events.recordings import (
    MilestoneCompleted,
    MilestoneReopened,
    TodoCompleted,
    TodoMoved,
    TodoReopened,
    UploadVersionAdded,
)
from ..events.streams import recording_stream
from ..reads import directory, recordings
from ..reads.access import sight_of
from .api import Api, Ctx, Reply
from .bodies import convert
from .envelope import PersonRef, Recording, api_url, base_url, person_ref, show, visible_row
from .paging import Seq, decode_cursor, encode_cursor, next_link
from .params import PAGING

api = Api()
_TAGS: Final = ["recordings"]

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
    response=Recording,
    body_schema=tuple(EDITS.values()),
    tags=_TAGS,
)
async def patch_recording(ctx: Ctx, body: dict[str, Any]) -> Reply:
    recording_id = ctx.path("id")
    row = await visible_row(ctx, recording_id)
    kind = row["kind"]
    cmd = convert(body, EDITS[kind])
    await change(ctx.caller, recording_id, edit_decision(kind, cmd), kind)
    return await show(ctx, recording_id)


@api.put(
    "/v1/recordings/{id}/status",
    summary="Archive, trash or restore (active) a recording",
    response=Recording,
    tags=_TAGS,
)
async def put_status(ctx: Ctx, cmd: SetRecordingStatus) -> Reply:

    def decide(p: ProjectState, r: RecordingState, lineage: Lineage, c: Context) -> list[Event]:
        return decide_set_recording_status(p, r, cmd, c, lineage)

    await change(ctx.caller, ctx.path("id"), decide)
    return await show(ctx, ctx.path("id"))


@api.put(
    "/v1/recordings/{id}/client_visibility",
    summary="Show a message, to-do list or milestone to clients, or hide it (403 on kinds "
    "that inherit it; 422 hiding what a client is assigned to)",
    response=Recording,
    tags=_TAGS,
)
async def put_client_visibility(ctx: Ctx, cmd: SetClientVisibility) -> Reply:
    # Who is assigned to a list's to-dos comes from the read model, not from folding every
    # to-do stream of the list: an assignment racing this command may slip past the check,
    # as it may when both are decided on folded streams (they are different streams).
    assigned: set[str] = set()
    if not cmd.visible_to_clients:
        assigned = await recordings.assigned_under(ctx.store.pool, ctx.path("id"))

    def decide(p: ProjectState, r: RecordingState, lineage: Lineage, c: Context) -> list[Event]:
        return decide_set_client_visibility(p, r, cmd, c, lineage, assigned)

    await change(ctx.caller, ctx.path("id"), decide)
    return await show(ctx, ctx.path("id"))


# ----------------------------------------------------------------- subscriptions


class Subscription(msgspec.Struct, frozen=True, kw_only=True):
    """Whether the caller is subscribed to a recording, and who is."""

    subscribed: bool
    count: int
    subscribers: list[PersonRef]
    url: str


async def _subscription(ctx: Ctx, recording_id: str) -> Reply:
    row = await visible_row(ctx, recording_id)
    pool = ctx.store.pool
    subscribed = await recordings.subscribers(pool, recording_id)
    sight = await sight_of(pool, ctx.me, recordings.viewer_facts(ctx.me, row), Mentions())
    base = base_url(ctx)
    people = [person_ref(sight, person_id, name, base=base) for person_id, name in subscribed]
    return Reply(
        Subscription(
            subscribed=any(p.id == ctx.me.person_id for p in people),
            count=len(people),
            subscribers=people,
            url=api_url(ctx, f"/v1/recordings/{recording_id}/subscription"),
        ),
        version=row["version"],
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

    await change(ctx.caller, ctx.path("id"), decide)
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

    await change(ctx.caller, ctx.path("id"), decide)
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
    at: Timestamp
    changes: list[Change]


_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
# Creation-event fields that are not the recording's own fields.
_NOT_FIELDS: Final = frozenset({"type", "recording_id", "project_id", "creator_id", "at"})
# State fields never reported as changed: bookkeeping, or named by the event itself.
# An upload's versions: its new version is reported as the file before and after.
_QUIET: Final = frozenset({"version", "updated_at", "versions"})


def history(events: list[RecordedEvent]) -> list[tuple[RecordedEvent, list[FieldChange]]]:
    """Each event of a recording's stream with the fields it changed, before and after."""
    out = []
    state: RecordingState | None = None
    for recorded in events:
        event = recorded.event
        before = state
        state = evolve_recording(state, event)
        changes: list[FieldChange]
        if before is None:
            changes = [
                FieldChange(field=f, before=None, after=json_value(getattr(event, f)))
                for f in event.__struct_fields__
                # Attachments are stored only when there are some: none is not news.
                if f not in _NOT_FIELDS and (f != "attachments" or getattr(event, f))
            ]
        elif hasattr(event, "changes"):
            changes = list(event.changes)
        else:
            changes = [
                FieldChange(field=f, before=json_value(old), after=json_value(new))
                for f in state.__struct_fields__
                if f not in _QUIET and (old := getattr(before, f)) != (new := getattr(state, f))
            ]
            if isinstance(event, TodoCompleted | MilestoneCompleted):
                changes.insert(0, FieldChange(field="completed", before=False, after=True))
            elif isinstance(event, TodoReopened | MilestoneReopened):
                changes.insert(0, FieldChange(field="completed", before=True, after=False))
            elif isinstance(event, UploadVersionAdded) and before.file != state.file:
                old, new = json_value(before.file), json_value(state.file)
                changes.insert(0, FieldChange(field="file", before=old, after=new))
            elif isinstance(event, TodoMoved):
                changes.append(FieldChange(field="position", before=None, after=event.position))
        out.append((recorded, changes))
    return out


@api.get(
    "/v1/recordings/{id}/events",
    summary="Every event of a recording, oldest first, with actor, time and before/after values",
    response=list[HistoryEvent],
    query=PAGING,
    tags=_TAGS,
)
async def get_history(ctx: Ctx) -> Reply:
    recording_id = ctx.path("id")
    row = await visible_row(ctx, recording_id)
    limit = ctx.limit()
    raw = ctx.param("cursor")
    after = decode_cursor(raw, Seq) if raw is not None else 0
    # The whole stream is folded (streams of one item are short): a change's before value
    # needs every event before it.
    events = await ctx.store.read_stream(recording_stream(recording_id))
    pool = ctx.store.pool
    sight = await sight_of(
        pool,
        ctx.me,
        recordings.viewer_facts(ctx.me, row),
        merged(mentions(e.event, e.metadata.actor) for e in events),
    )
    actors = await directory.names(
        pool, list({e.metadata.actor for e in events if e.metadata.actor})
    )
    told = [
        (recorded, redaction.changes(sight, changes))
        for recorded, changes in history(events)
        if not redaction.about_hidden_person(sight, recorded.event)
    ]
    items = [h for h in told if h[0].stream_version > after]
    shown = items[:limit]
    body = [
        HistoryEvent(
            position=recorded.position,
            version=recorded.stream_version,
            kind=_CAMEL.sub("_", recorded.event_type).lower(),
            actor=_actor(sight, recorded.metadata.actor, actors, base_url(ctx)),
            at=getattr(recorded.event, "at", recorded.recorded_at),
            changes=[Change(field=c.field, before=c.before, after=c.after) for c in changes],
        )
        for recorded, changes in shown
    ]
    cursor = encode_cursor(shown[-1][0].stream_version) if len(items) > limit else None
    headers = {"X-Total-Count": str(len(told)), **next_link(ctx.request, cursor)}
    return Reply(body, headers=headers)


def _actor(sight: Sight, who: str | None, names: Mapping[str, str], base: str) -> PersonRef | None:
    return person_ref(sight, who, names.get(who), base=base) if who else None

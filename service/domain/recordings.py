"""Recordings: the state every kind shares, its fold, and status and client visibility.

One stream per recording, ``recording-<id>`` (:func:`~service.events.streams.recording_stream`). The state is one flat
struct for all kinds (message, comment, to-do list, to-do, milestone, upload); fields a kind does not
use stay at their defaults. Subscriptions are in :mod:`service.domain.subscriptions`.

**Lineage.** Comments and to-dos inherit client visibility (and the effect of being archived
or trashed) from the recordings above them: a to-do from its list, a comment from its parent
(and, for a comment on a to-do, from that to-do's list). Functions acting on an existing
recording take ``lineage``: those recordings, nearest first. Build it by following
:func:`visibility_parent_id` until it gives ``None``; it is checked by :func:`recording_facts`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import date, datetime

import msgspec

from ..errors import Conflict, InconsistentStream, InvalidCommand, NotFound
from ..events.alerts import MilestoneDueSoon, MilestoneOverdue, TodoDueSoon, TodoOverdue
from ..events.base import Event
from ..events.recordings import (
    ClientVisibilityChanged,
    CommentAdded,
    CommentEdited,
    ExternalItemPosted,
    MessageEdited,
    MessagePosted,
    MilestoneCompleted,
    MilestoneCreated,
    MilestoneEdited,
    MilestoneReopened,
    RecordingKind,
    RecordingStatus,
    RecordingStatusChanged,
    StoredFile,
    SubscriberAdded,
    SubscriberRemoved,
    TodoAdded,
    TodoCompleted,
    TodoEdited,
    TodolistCreated,
    TodolistEdited,
    TodoMoved,
    TodoReopened,
    UploadCreated,
    UploadEdited,
    UploadVersionAdded,
)
from .access import INHERITS_VISIBILITY, KIND_LABELS, Action, RecordingFacts, check
from .context import Context
from .edits import apply_changes
from .projects import ProjectState, project_facts, require_writable

Lineage = Sequence["RecordingState"]
"""The recordings a recording inherits from, nearest first (see the module docstring)."""


class UploadVersion(msgspec.Struct, frozen=True, kw_only=True):
    """One version of an upload's file: its number (1, 2, ...), who added it and when."""

    n: int
    file: StoredFile
    creator_id: str
    created_at: datetime


class RecordingState(msgspec.Struct, frozen=True, kw_only=True):
    """A recording folded from its stream up to stream version ``version``.

    ``visible_to_clients`` is the recording's own setting; for kinds that inherit it
    (comment, to-do) it is ``None``: see :func:`recording_facts` for the effective value.
    """

    recording_id: str
    project_id: str
    kind: RecordingKind
    creator_id: str
    created_at: datetime
    updated_at: datetime
    status: RecordingStatus = "active"
    visible_to_clients: bool | None = None
    subscriber_ids: tuple[str, ...] = ()
    version: int = 0
    # message
    subject: str | None = None
    body: str | None = None
    category: str | None = None
    # comment
    parent_id: str | None = None
    parent_kind: RecordingKind | None = None
    # message, comment
    attachments: tuple[StoredFile, ...] = ()
    # comment, to-do
    content: str | None = None
    # to-do list, upload
    name: str | None = None
    description: str | None = None
    # upload: every version, oldest first (the last is the current file)
    folder: str | None = None
    versions: tuple[UploadVersion, ...] = ()
    # to-do
    todolist_id: str | None = None
    assignee_ids: tuple[str, ...] = ()
    starts_on: date | None = None
    # to-do, milestone
    notes: str | None = None
    due_on: date | None = None
    completed_at: datetime | None = None
    completer_id: str | None = None
    # milestone
    title: str | None = None
    responsible_id: str | None = None
    # external item: its feed, address and publication time (title: ``title``, summary:
    # ``body``)
    feed_id: str | None = None
    link: str | None = None
    published_at: datetime | None = None
    # to-do, milestone: the due date each alert was last raised for (service.domain.alerts)
    due_soon_alerted_on: date | None = None
    overdue_alerted_on: date | None = None

    @property
    def completed(self) -> bool:
        """Whether a to-do or milestone is completed."""
        return self.completed_at is not None

    @property
    def file(self) -> StoredFile | None:
        """An upload's current file (its last version's); None for other kinds."""
        return self.versions[-1].file if self.versions else None


class SetRecordingStatus(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Archive, trash or restore (``"active"``) a recording of any kind."""

    status: RecordingStatus


class SetClientVisibility(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Show a message, to-do list or milestone to clients, or hide it from them."""

    visible_to_clients: bool


def visibility_parent_id(recording: RecordingState) -> str | None:
    """The recording ``recording`` inherits visibility from: a to-do's list, a comment's parent."""
    if recording.kind == "todo":
        return recording.todolist_id
    if recording.kind == "comment":
        return recording.parent_id
    return None


def recording_facts(recording: RecordingState, lineage: Lineage = ()) -> RecordingFacts:
    """What the access rules need to know about ``recording``, visibility resolved.

    Raises:
        ValueError: ``lineage`` is not the chain :func:`visibility_parent_id` names (a bug).
    """
    return RecordingFacts(
        recording_id=recording.recording_id,
        project_id=recording.project_id,
        kind=recording.kind,
        status=recording.status,
        visible_to_clients=_source(recording, lineage).visible_to_clients is True,
        creator_id=recording.creator_id,
        assignee_ids=frozenset(recording.assignee_ids),
    )


def expect_kind(recording: RecordingState, kind: RecordingKind) -> None:
    """Make sure a recording found by id is of the kind the route names.

    Raises:
        NotFound: it is of another kind (``/v1/todos/{id}`` given a message's id).
    """
    if recording.kind != kind:
        raise NotFound(f"there is no such {KIND_LABELS[kind]}")


def require_open(project: ProjectState, recording: RecordingState, lineage: Lineage = ()) -> None:
    """Refuse content writes unless the project, the recording and its lineage are active.

    Raises:
        Conflict: any of them is archived or trashed.
    """
    require_writable(project)
    for item in (recording, *lineage):
        if item.status != "active":
            what = "it" if item is recording else f"its {KIND_LABELS[item.kind]}"
            raise Conflict(f"{what} is {item.status}: restore {what} first")


def authorize(
    action: Action,
    project: ProjectState,
    recording: RecordingState,
    lineage: Lineage,
    ctx: Context,
) -> None:
    """:func:`~service.domain.access.check` for ``action`` on ``recording``.

    Raises:
        NotFound, Forbidden: see :func:`~service.domain.access.check`.
    """
    check(ctx.actor, action, project_facts(project), recording_facts(recording, lineage))


def evolve_recording(state: RecordingState | None, event: Event) -> RecordingState:
    """``state`` after ``event`` (``None`` before the creation event); version goes up by one.

    Raises:
        InconsistentStream: an event before the creation event, or a second creation event.
    """
    if isinstance(event, _CREATED):
        if state is not None:
            raise InconsistentStream(f"recording {state.recording_id} is created twice")
        return _created(event)
    if state is None:
        raise InconsistentStream(f"{type(event).__name__} before the recording was created")
    state = msgspec.structs.replace(state, version=state.version + 1)
    replace = msgspec.structs.replace
    match event:
        case (
            MessageEdited() | CommentEdited() | TodolistEdited() | TodoEdited() | MilestoneEdited()
            | UploadEdited()
        ):  # fmt: skip
            return replace(apply_changes(state, event.changes), updated_at=event.at)
        case TodoCompleted(at=at, completer_id=who) | MilestoneCompleted(at=at, completer_id=who):
            return replace(state, completed_at=at, completer_id=who, updated_at=at)
        case TodoReopened(at=at) | MilestoneReopened(at=at):
            return replace(state, completed_at=None, completer_id=None, updated_at=at)
        case UploadVersionAdded(at=at, adder_id=who, n=n, file=file):
            version = UploadVersion(n=n, file=file, creator_id=who, created_at=at)
            return replace(
                state, versions=(*state.versions, version), name=file.name, updated_at=at
            )
        case TodoMoved(at=at, to_todolist_id=to_id):
            return replace(state, todolist_id=to_id, updated_at=at)
        case RecordingStatusChanged(at=at, after=after):
            return replace(state, status=after, updated_at=at)
        case ClientVisibilityChanged(at=at, after=after):
            return replace(state, visible_to_clients=after, updated_at=at)
        case SubscriberAdded(person_id=person_id) if person_id not in state.subscriber_ids:
            return replace(state, subscriber_ids=(*state.subscriber_ids, person_id))
        case SubscriberRemoved(person_id=person_id):
            kept = tuple(p for p in state.subscriber_ids if p != person_id)
            return replace(state, subscriber_ids=kept)
        # Alerts are Cairn's, not an edit: they leave updated_at as it was.
        case MilestoneDueSoon(due_on=due_on) | TodoDueSoon(due_on=due_on):
            return replace(state, due_soon_alerted_on=due_on)
        case MilestoneOverdue(due_on=due_on) | TodoOverdue(due_on=due_on):
            return replace(state, overdue_alerted_on=due_on)
    # Events this code does not know (written by newer code) change nothing it knows about.
    return state


def fold_recording(events: Iterable[Event]) -> RecordingState | None:
    """The state of a recording's stream, from its first event; ``None`` for an empty stream."""
    state: RecordingState | None = None
    for event in events:
        state = evolve_recording(state, event)
    return state


def decide_set_recording_status(
    project: ProjectState,
    recording: RecordingState,
    cmd: SetRecordingStatus,
    ctx: Context,
    lineage: Lineage = (),
) -> list[Event]:
    """Archive, trash or restore a recording: ``[RecordingStatusChanged]``, ``[]`` if unchanged.

    Raises:
        NotFound, Forbidden: see :func:`~service.domain.access.check`.
        Conflict: the project is not active.
    """
    authorize(Action.SET_RECORDING_STATUS, project, recording, lineage, ctx)
    require_writable(project)
    if cmd.status == recording.status:
        return []
    return [RecordingStatusChanged(at=ctx.now, before=recording.status, after=cmd.status)]


def decide_set_client_visibility(
    project: ProjectState,
    recording: RecordingState,
    cmd: SetClientVisibility,
    ctx: Context,
    lineage: Lineage = (),
    assignees: Collection[str] = (),
) -> list[Event]:
    """Show a recording to clients or hide it: ``[ClientVisibilityChanged]``, ``[]`` if unchanged.

    A client is assigned only to what they see (see :func:`require_unassigned_clients`): a
    recording is not hidden while a client is its responsible person (a milestone's) or is
    assigned to a to-do under it (a list's: ``assignees``, the people assigned to its
    to-dos, whatever their status, which the caller reads).

    Raises:
        NotFound: see :func:`~service.domain.access.check`.
        Forbidden: see :func:`~service.domain.access.check`; also for a comment or to-do,
            whose visibility follows its parent or list (``detail`` says which).
        Conflict: the project or the recording is not active.
        InvalidCommand: hiding it would hide it from a client assigned to it.
    """
    authorize(Action.SET_CLIENT_VISIBILITY, project, recording, lineage, ctx)
    require_open(project, recording, lineage)
    before = recording.visible_to_clients is True
    if cmd.visible_to_clients == before:
        return []
    if not cmd.visible_to_clients:
        people = (*assignees, *((recording.responsible_id,) if recording.responsible_id else ()))
        require_unassigned_clients(project, "visible_to_clients", people, recording.kind)
    return [ClientVisibilityChanged(at=ctx.now, before=before, after=cmd.visible_to_clients)]


def require_unassigned_clients(
    project: ProjectState, field: str, person_ids: Iterable[str], kind: RecordingKind
) -> None:
    """Refuse to hide from clients something a client is assigned to: **a client is
    assigned only to what they see.** Assigning a client to a to-do of a hidden list (or
    making them responsible for a hidden milestone), moving a to-do a client is assigned to
    into a hidden list, and hiding a list or milestone a client is assigned to are all
    refused alike, so a client's assignments never silently lose an item.

    Args:
        field: the command's field to name in the refusal.
        person_ids: the people assigned to what would be hidden.
        kind: what would be hidden (its list, for a to-do), to name it.

    Raises:
        InvalidCommand: a client is among ``person_ids``.
    """
    clients = sorted({p for p in person_ids if project.members.get(p) == "client"})
    if clients:
        raise InvalidCommand(
            field,
            f"a client ({', '.join(clients)}) is assigned to this {KIND_LABELS[kind]}: it "
            "cannot be hidden from clients until they are unassigned",
        )


_CREATED = (
    MessagePosted,
    CommentAdded,
    TodolistCreated,
    TodoAdded,
    MilestoneCreated,
    UploadCreated,
    ExternalItemPosted,
)
_KIND: dict[type[Event], RecordingKind] = {
    ExternalItemPosted: "external_item",
    UploadCreated: "upload",
    MessagePosted: "message",
    CommentAdded: "comment",
    TodolistCreated: "todolist",
    TodoAdded: "todo",
    MilestoneCreated: "milestone",
}
# Fields of a creation event that are not recording fields of the same name.
_NOT_STATE = {"type", "recording_id", "project_id", "creator_id", "at"}
_NOT_ITEM_STATE = {"feed_title", "summary", "entry_key"}


def _created(event: Event) -> RecordingState:
    assert isinstance(event, _CREATED)
    fields = {
        name: getattr(event, name) for name in event.__struct_fields__ if name not in _NOT_STATE
    }
    if isinstance(event, UploadCreated):
        file = fields.pop("file")
        first = UploadVersion(n=1, file=file, creator_id=event.creator_id, created_at=event.at)
        fields.update(name=file.name, versions=(first,))
    if isinstance(event, ExternalItemPosted):
        fields = {k: v for k, v in fields.items() if k not in _NOT_ITEM_STATE}
        fields["body"] = event.summary
    return RecordingState(
        recording_id=event.recording_id,
        project_id=event.project_id,
        kind=_KIND[type(event)],
        creator_id=event.creator_id,
        created_at=event.at,
        updated_at=event.at,
        version=1,
        **fields,
    )


def _source(recording: RecordingState, lineage: Lineage) -> RecordingState:
    """The recording whose own ``visible_to_clients`` applies to ``recording``."""
    current = recording
    for ancestor in lineage:
        if ancestor.recording_id != visibility_parent_id(current):
            raise ValueError(f"lineage of {recording.recording_id} is not its chain of parents")
        current = ancestor
    if current.kind in INHERITS_VISIBILITY:
        raise ValueError(f"lineage of {recording.recording_id} is incomplete")
    return current

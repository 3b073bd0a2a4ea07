"""Time travel: a project's to-do lists, to-dos, milestones and messages as they were at a
point of the log, by replaying the project's own slice of it.

Pure: the caller reads the events (the project's slice, in log order, up to the point asked
for) and hands them to :class:`Replay`; :func:`snapshot_of` turns the result into the JSON
state a viewer may see. Each recording is folded with the same ``evolve_recording`` the write
side uses, and the project with ``evolve_project``, so a snapshot can never disagree with what
the commands decided at the time.

**Order of to-dos.** It is not part of a to-do's state (see :mod:`service.domain.todos`): a
list's order is the log order of ``TodoAdded`` (at the end) and ``TodoMoved`` (takes a 1-based
position, clamped to the list) events. Trashed and archived to-dos keep their place in that
order, exactly as in the recordings read model; ``position`` is 1-based over the whole order.

**Visibility.** A client sees an item of the past when clients could see it then (its own or
inherited ``visible_to_clients`` at that point) *and* can see it now (``hidden_now``): hiding an
item from clients hides its history too. Staff see everything of a project they see now. The
people an item names (creator, assignees, completer, responsible person) are redacted as on
every channel (:mod:`.redaction`): ``null`` for someone the viewer may not be told about now.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import date, datetime
from typing import Any

import msgspec

from ..events.base import RecordedEvent
from ..events.recordings import TodoAdded, TodoMoved
from ..events.streams import is_project_stream, recording_id_of
from .access import ProjectFacts, RecordingFacts, Viewer, can_see_recording, hidden_probe
from .context import Timestamp
from .projects import ProjectState, evolve_project
from .recordings import RecordingState, evolve_recording, recording_facts, visibility_parent_id
from .redaction import EVERYTHING, Sight, people, person


class SnapshotItem(msgspec.Struct, frozen=True, kw_only=True):
    """What every recording of a snapshot has (its kind's fields follow). A person the
    viewer may not be told about is ``null`` wherever an item names them."""

    id: str
    type: str
    status: str
    visible_to_clients: bool
    created_at: Timestamp
    updated_at: Timestamp
    creator_id: str | None


class SnapshotTodo(SnapshotItem, frozen=True, kw_only=True):
    """A to-do as it was. ``visible_to_clients`` is the effective value (its list's)."""

    todolist_id: str
    position: int
    content: str
    notes: str | None
    assignee_ids: list[str | None]
    starts_on: date | None
    due_on: date | None
    completed: bool
    completed_at: Timestamp | None
    completer_id: str | None


class SnapshotTodolist(SnapshotItem, frozen=True, kw_only=True):
    """A to-do list as it was, with the to-dos the viewer may see in position order."""

    name: str
    description: str | None
    completed_count: int
    todos_count: int
    todos: list[SnapshotTodo]


class SnapshotMilestone(SnapshotItem, frozen=True, kw_only=True):
    """A milestone as it was."""

    title: str
    due_on: date | None
    responsible_id: str | None
    notes: str | None
    completed: bool
    completed_at: Timestamp | None
    completer_id: str | None


class SnapshotMessage(SnapshotItem, frozen=True, kw_only=True):
    """A message as it was."""

    subject: str
    body: str | None
    category: str | None


class ProjectSummary(msgspec.Struct, frozen=True, kw_only=True):
    """The project itself as it was."""

    id: str
    name: str
    description: str | None
    status: str
    clients_enabled: bool


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """A project's content at log ``position``: every event of the project up to and
    including the event at ``position`` in log order (0: before the first event).

    ``last_event_position`` and ``last_event_at`` name the last event of the project replayed
    (None when there was none). ``project`` is None when
    the project did not exist yet at that point. Lists are in creation (log) order; ``todos``
    holds every to-do of ``todolists`` in list order, then position order.
    """

    project_id: str
    position: int
    last_event_position: int | None
    last_event_at: Timestamp | None
    events_replayed: int
    project: ProjectSummary | None
    todolists: list[SnapshotTodolist]
    todos: list[SnapshotTodo]
    milestones: list[SnapshotMilestone]
    messages: list[SnapshotMessage]


class Replay:
    """The state of one project's slice of the log, built by :meth:`apply` event by event.

    Mutable on purpose: a replay may run through many thousands of events, and copying a
    frozen dict of every recording per event would make it quadratic. Each recording's
    state itself is still the immutable ``RecordingState`` of the write side.
    """

    def __init__(self, project_id: str) -> None:
        self.project_id = project_id
        self.project: ProjectState | None = None
        self.recordings: dict[str, RecordingState] = {}
        self.orders: dict[str, list[str]] = {}
        self.position: int | None = None
        self.at: datetime | None = None
        self.count = 0

    def apply(self, recorded: RecordedEvent) -> None:
        """Fold one event of the project's slice (events must come in log order).

        Raises:
            InconsistentStream: the event does not fit its stream (a damaged log).
        """
        self.position = recorded.position
        self.at = recorded.recorded_at
        self.count += 1
        stream = recorded.stream_id
        event = recorded.event
        if is_project_stream(stream):
            self.project = evolve_project(self.project, event)
            return
        recording_id = recording_id_of(stream)
        if recording_id is None:
            return
        self.recordings[recording_id] = evolve_recording(self.recordings.get(recording_id), event)
        match event:
            case TodoAdded(todolist_id=list_id):
                self.orders.setdefault(list_id, []).append(recording_id)
            case TodoMoved(from_todolist_id=source, to_todolist_id=target, position=position):
                old = self.orders.setdefault(source, [])
                if recording_id in old:
                    old.remove(recording_id)
                new = self.orders.setdefault(target, [])
                new.insert(max(0, min(position - 1, len(new))), recording_id)

    def extend(self, events: Iterable[RecordedEvent]) -> None:
        """:meth:`apply` each of ``events``."""
        for recorded in events:
            self.apply(recorded)

    def facts(self, recording: RecordingState) -> RecordingFacts:
        """Access facts of ``recording`` as it was (visibility resolved through its lineage)."""
        lineage: list[RecordingState] = []
        parent_id = visibility_parent_id(recording)
        while parent_id is not None and parent_id in self.recordings:
            parent = self.recordings[parent_id]
            lineage.append(parent)
            parent_id = visibility_parent_id(parent)
        if parent_id is not None:
            # A parent outside this slice cannot happen in a consistent log; keep the item
            # from clients rather than guess.
            return RecordingFacts(
                recording_id=recording.recording_id,
                project_id=recording.project_id,
                kind=recording.kind,
                status=recording.status,
                visible_to_clients=False,
                creator_id=recording.creator_id,
                assignee_ids=frozenset(recording.assignee_ids),
            )
        return recording_facts(recording, lineage)


def snapshot_of(
    replay: Replay,
    position: int,
    viewer: Viewer,
    project: ProjectFacts,
    hidden_now: Collection[str] = (),
    sight: Sight = EVERYTHING,
) -> Snapshot:
    """The JSON state of ``replay`` that ``viewer`` may see.

    Args:
        position: the point of the log ``replay`` was taken to (reported as is).
        project: the project's facts *now* (the viewer must be able to see the project now;
            the caller checks that and answers 404 otherwise).
        hidden_now: ids of recordings clients may not see now (ignored for staff).
        sight: what ``viewer`` may be told about now (:mod:`.redaction`: the people the
            items name).
    """

    # ``can_see_recording`` with the facts of the time answers "could a client see it
    # then"; a client also needs to see it now. Staff see everything either way.
    staff = can_see_recording(viewer, project, hidden_probe(project.project_id))

    def visible(recording: RecordingState) -> bool:
        if not can_see_recording(viewer, project, replay.facts(recording)):
            return False
        return staff or recording.recording_id not in hidden_now

    recordings = replay.recordings
    todolists: list[SnapshotTodolist] = []
    all_todos: list[SnapshotTodo] = []
    milestones: list[SnapshotMilestone] = []
    messages: list[SnapshotMessage] = []
    for recording in recordings.values():
        if not visible(recording):
            continue
        if recording.kind == "todolist":
            order = replay.orders.get(recording.recording_id, [])
            todos = [
                _todo(recordings[todo_id], recording.recording_id, index, replay, sight)
                for index, todo_id in enumerate(order, start=1)
                if visible(recordings[todo_id])
            ]
            todolists.append(_todolist(recording, todos, replay, sight))
            all_todos.extend(todos)
        elif recording.kind == "milestone":
            milestones.append(_milestone(recording, replay, sight))
        elif recording.kind == "message":
            messages.append(_message(recording, replay, sight))
    state = replay.project
    return Snapshot(
        project_id=replay.project_id,
        position=position,
        last_event_position=replay.position,
        last_event_at=replay.at,
        events_replayed=replay.count,
        project=None
        if state is None
        else ProjectSummary(
            id=state.project_id,
            name=state.name,
            description=state.description,
            status=state.status,
            clients_enabled=state.clients_enabled,
        ),
        todolists=todolists,
        todos=all_todos,
        milestones=milestones,
        messages=messages,
    )


def _common(recording: RecordingState, replay: Replay, sight: Sight) -> dict[str, Any]:
    """The :class:`SnapshotItem` fields of ``recording``."""
    return {
        "id": recording.recording_id,
        "type": recording.kind,
        "status": recording.status,
        "visible_to_clients": replay.facts(recording).visible_to_clients,
        "created_at": recording.created_at,
        "updated_at": recording.updated_at,
        "creator_id": person(sight, recording.creator_id),
    }


def _todo(
    todo: RecordingState, list_id: str, position: int, replay: Replay, sight: Sight
) -> SnapshotTodo:
    return SnapshotTodo(
        **_common(todo, replay, sight),
        todolist_id=list_id,
        position=position,
        content=todo.content or "",
        notes=todo.notes,
        assignee_ids=people(sight, todo.assignee_ids),
        starts_on=todo.starts_on,
        due_on=todo.due_on,
        completed=todo.completed,
        completed_at=todo.completed_at,
        completer_id=person(sight, todo.completer_id),
    )


def _todolist(
    todolist: RecordingState, todos: list[SnapshotTodo], replay: Replay, sight: Sight
) -> SnapshotTodolist:
    active = [t for t in todos if t.status == "active"]
    return SnapshotTodolist(
        **_common(todolist, replay, sight),
        name=todolist.name or "",
        description=todolist.description,
        completed_count=sum(1 for t in active if t.completed),
        todos_count=len(active),
        todos=todos,
    )


def _milestone(milestone: RecordingState, replay: Replay, sight: Sight) -> SnapshotMilestone:
    return SnapshotMilestone(
        **_common(milestone, replay, sight),
        title=milestone.title or "",
        due_on=milestone.due_on,
        responsible_id=person(sight, milestone.responsible_id),
        notes=milestone.notes,
        completed=milestone.completed,
        completed_at=milestone.completed_at,
        completer_id=person(sight, milestone.completer_id),
    )


def _message(message: RecordingState, replay: Replay, sight: Sight) -> SnapshotMessage:
    return SnapshotMessage(
        **_common(message, replay, sight),
        subject=message.subject or "",
        body=message.body,
        category=message.category,
    )

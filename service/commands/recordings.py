"""Running commands on recordings: loading a recording with its lineage and project from
their streams, deciding, appending.

Writes are decided on states folded from the streams, never on read models: the project's
stream and the recording's, with its lineage (a to-do's list, a comment's parent and, for a
comment on a to-do, that to-do's list).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ..blobs.store import FileRef
from ..domain.access import kind_label
from ..domain.comments import EditComment, decide_edit_comment
from ..domain.context import Context
from ..domain.messages import EditMessage, decide_edit_message
from ..domain.milestones import EditMilestone, decide_edit_milestone
from ..domain.projects import ProjectState, fold_project
from ..domain.recordings import (
    Lineage,
    RecordingState,
    fold_recording,
    visibility_parent_id,
)
from ..domain.todolists import EditTodolist, decide_edit_todolist
from ..domain.todos import EditTodo, decide_edit_todo
from ..domain.uploads import EditUpload, decide_edit_upload
from ..errors import CairnError, Contended, InconsistentStream, NotFound
from ..events.base import Event
from ..events.recordings import RecordingKind
from ..events.streams import project_stream, recording_stream
from .caller import Caller
from .execute import append_new, execute

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


async def load_project(caller: Caller, project_id: str) -> ProjectState:
    """The project folded from its stream: this process's last fold of it with the events
    since folded on top (see folds.py).

    Raises:
        NotFound: there is no such project.
    """
    states = caller.services.project_states
    stream = project_stream(project_id)
    if states is not None:
        _, project = await states.load(caller.store, stream)
    else:
        project = fold_project(e.event for e in await caller.store.read_stream(stream))
    if project is None:
        raise NotFound("there is no such project")
    return project


async def _fold(caller: Caller, recording_id: str) -> RecordingState | None:
    events = await caller.store.read_stream(recording_stream(recording_id))
    return fold_recording(e.event for e in events)


async def load(caller: Caller, recording_id: str, kind: RecordingKind | None = None) -> Loaded:
    """A recording with its lineage and project, from their streams.

    Raises:
        NotFound: there is no such recording (of ``kind``, if given). Whether the caller may
            see it is for the decide functions to say (with the same 404).
    """
    recording = await _fold(caller, recording_id)
    if recording is None or (kind is not None and recording.kind != kind):
        raise NotFound(f"there is no such {kind_label(kind)}")
    lineage: list[RecordingState] = []
    current = recording
    while (parent_id := visibility_parent_id(current)) is not None:
        parent = await _fold(caller, parent_id)
        if parent is None:
            raise InconsistentStream(f"{current.recording_id} names a missing parent {parent_id}")
        lineage.append(parent)
        current = parent
    project = await load_project(caller, recording.project_id)
    return Loaded(project=project, recording=recording, lineage=lineage)


async def change(
    caller: Caller, recording_id: str, decide: Decision, kind: RecordingKind | None = None
) -> None:
    """Decide on recording ``recording_id`` and append the outcome (nothing if ``[]``),
    then wait until the read models show it.

    Concurrency: the append expects the recording's stream at the version decided on (see
    :func:`~service.commands.execute.execute`). The project and the lineage are read just
    before; a change of them racing this command is not detected, except that a to-do
    moving to another list meanwhile makes the whole command run again on the new lineage
    (deciding with the wrong list could show a to-do to clients by mistake).

    Raises:
        NotFound, Forbidden, Conflict, InvalidCommand: from the decision.
        Contended: the lineage moved under the command three times running.
    """
    for _ in range(3):
        if await _attempt(caller, recording_id, decide, kind):
            return
    raise Contended("the recording kept moving; try again")


async def _attempt(
    caller: Caller, recording_id: str, decide: Decision, kind: RecordingKind | None
) -> bool:
    """One run of :func:`change`; False when the lineage moved under it."""
    loaded = await load(caller, recording_id, kind)
    parent_id = loaded.lineage[0].recording_id if loaded.lineage else None
    now = caller.context()

    def decide_on(state: RecordingState | None) -> list[Event]:
        if state is None:
            raise NotFound(f"there is no such {kind_label(kind)}")
        if visibility_parent_id(state) != parent_id:
            raise _LineageMoved(recording_id)
        return decide(loaded.project, state, loaded.lineage, now)

    try:
        await execute(
            caller,
            recording_stream(recording_id),
            fold_recording,
            decide_on,
            project_id=loaded.project.project_id,
        )
    except _LineageMoved:
        return False
    return True


async def create(caller: Caller, project_id: str, recording_id: str, events: list[Event]) -> None:
    """Append a new recording's creation ``events`` to its new stream, then wait until the
    read models show it.

    The decision was taken on the project (and parent) read just before; the new stream's
    ``NO_STREAM`` expectation guards only the recording itself. A project archived in
    between lets this one creation through, as if it had come a moment earlier.
    """
    await append_new(caller, [(recording_stream(recording_id), events, project_id)])


def edit_decision(kind: str, cmd: Any, attachments: Sequence[FileRef] | None = None) -> Decision:
    """The decision editing a recording of ``kind`` with merge-patch ``cmd``;
    ``attachments`` (messages and comments; None: unchanged) replaces its files."""

    def decide(p: ProjectState, r: RecordingState, lineage: Lineage, c: Context) -> list[Event]:
        if kind == "message":
            return decide_edit_message(p, r, cmd, c, attachments)
        if kind == "comment":
            return decide_edit_comment(p, r, cmd, c, lineage, attachments)
        if kind == "todolist":
            return decide_edit_todolist(p, r, cmd, c)
        if kind == "todo":
            return decide_edit_todo(p, r, cmd, c, lineage)
        if kind == "upload":
            return decide_edit_upload(p, r, cmd, c)
        return decide_edit_milestone(p, r, cmd, c)

    return decide


EDITS: Final[dict[str, type[Any]]] = {
    "message": EditMessage,
    "comment": EditComment,
    "todolist": EditTodolist,
    "todo": EditTodo,
    "milestone": EditMilestone,
    "upload": EditUpload,
}
"""The merge-patch body of each kind (the domain's edit commands: they carry no ids)."""

"""An event judged once for the whole instance: the event, the facts the shared access rules
need (read by the hub), and the rules' answer per viewer. Pure: no I/O.

The hub reads the facts once per event (or per replayed page) after the read models have
applied it, so an event is never judged on stale facts; :class:`~.subscriptions.Subscriptions`
then asks :meth:`Judged.told` for each person subscribed: nothing, the event redacted for
them (:mod:`service.domain.redaction`: the same rule as every other channel), or that it hid
a recording (or the whole project) from them.

**Stale screens.** An event that takes something away from a viewer who sees only what
clients see reaches them as one frame saying so, in its place in the log
(:data:`~.protocol.RECORDING_HIDDEN`, :data:`~.protocol.PROJECT_HIDDEN`): a recording hidden
from clients, a to-do moved from a list they see into one they do not, and (for ``all``
subscriptions) a project they were removed from or that stopped admitting clients. Status
never hides anything (docs/ACCESS.md), so trashing or archiving is an ordinary event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

import msgspec

from ..domain import redaction
from ..domain.access import (
    ProjectFacts,
    RecordingFacts,
    Viewer,
    can_see_project,
    can_see_recording,
    hidden_probe,
)
from ..domain.activity import KnownRecording, recorded_activity
from ..domain.redaction import Mentions, Sight, mentions, people_seen
from ..events.base import RecordedEvent
from ..events.projects import (
    ProjectEdited,
    ProjectMemberAdded,
    ProjectMemberRemoved,
    ProjectMemberRoleChanged,
)
from ..events.recordings import ClientVisibilityChanged, TodoMoved
from .protocol import (
    PROJECT_HIDDEN,
    RECORDING_HIDDEN,
    EventFrame,
    event_frame,
    hidden_frame,
    kind_of,
    recording_of,
)


def may_follow(viewer: Viewer, project: ProjectFacts | None) -> bool:
    """Whether ``viewer`` may follow the project of these facts (None: no such project)."""
    return project is not None and can_see_project(viewer, project)


@dataclass(frozen=True, slots=True)
class Told:
    """What one viewer is told of an event; equal for viewers sent the very same frame.

    ``kind`` ``event``: the event, with ``hidden`` (recordings it names the viewer may not
    see) left out and ``strangers`` (people it names the viewer may not be told about)
    replaced; otherwise a frame saying a recording, or the project, is hidden from them.
    """

    kind: Literal["event", "recording_hidden", "project_hidden"]
    hidden: frozenset[str] = frozenset()
    strangers: frozenset[str] = frozenset()


_MEMBERSHIPS: Final = (ProjectMemberAdded, ProjectMemberRoleChanged, ProjectMemberRemoved)

WHOLE: Final = Told("event")
"""The event as stored: what staff (and clients, when it names nothing hidden) are told."""
_RECORDING_HIDDEN: Final = Told(RECORDING_HIDDEN)
_PROJECT_HIDDEN: Final = Told(PROJECT_HIDDEN)


@dataclass(frozen=True, slots=True)
class Judged:
    """An event and the facts the access rules need to judge it (judged once per event).

    ``named``: the recordings and people the event names (its actor too); ``recordings``:
    the facts of those recordings the read model holds; ``people``: for each person named
    who is not on the event's project, the facts of the projects they are on.
    """

    event: RecordedEvent
    project: ProjectFacts | None
    recording_id: str | None
    recording: RecordingFacts | None
    kind: str
    named: Mentions = field(default_factory=Mentions)
    recordings: Mapping[str, RecordingFacts] = field(default_factory=dict)
    people: Mapping[str, Sequence[ProjectFacts]] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        event: RecordedEvent,
        project: ProjectFacts | None,
        recordings: Mapping[str, tuple[RecordingFacts, KnownRecording]],
        people: Mapping[str, Sequence[ProjectFacts]] | None = None,
    ) -> Judged:
        """``event`` (of a project) with its project's facts (None: no such project), its
        recording's and those of the recordings it names, looked up in ``recordings`` (by
        id, as the read model has them), and the projects of the people it names who are not
        on its project (``people``; missing: on none). Its ``kind`` is the activity's
        (``todo_assigned``…), else its type in snake case."""
        recording_id = recording_of(event)
        found = recordings.get(recording_id) if recording_id is not None else None
        item = recorded_activity(event, None if found is None else found[1])
        named = mentions(event.event, event.metadata.actor)
        return cls(
            event=event,
            project=project,
            recording_id=recording_id,
            recording=None if found is None else found[0],
            kind=item.kind if item is not None else kind_of(event.event_type),
            named=named,
            recordings={r: recordings[r][0] for r in named.recordings if r in recordings},
            people=people or {},
        )

    def visible_to(self, viewer: Viewer) -> bool:
        """Whether ``viewer`` may see the event."""
        if self.project is None:
            return False
        if self.recording is not None:
            return can_see_recording(viewer, self.project, self.recording)
        if self.recording_id is not None:
            # Not in the read model (a broken projection): only those who see recordings
            # hidden from clients may see it.
            return can_see_recording(viewer, self.project, hidden_probe(self.project.project_id))
        return can_see_project(viewer, self.project)

    def told(self, viewer: Viewer) -> Told | None:
        """What ``viewer`` is told of the event (see :class:`Told`), or None: nothing."""
        if self.project is None:
            return None
        if not can_see_project(viewer, self.project):
            return _PROJECT_HIDDEN if self._took_project(viewer, self.project) else None
        if self._hides_recording(viewer, self.project):
            return _RECORDING_HIDDEN
        if not self.visible_to(viewer) or self._about_someone_gone(viewer, self.project):
            return None
        sight = self._sight(viewer, self.project)
        if redaction.about_hidden_person(sight, self.event.event):
            return None
        hidden = frozenset(r for r in self.named.recordings if not sight.shows_recording(r))
        strangers = frozenset(p for p in self.named.people if not sight.shows_person(p))
        return Told("event", hidden, strangers) if hidden or strangers else WHOLE

    def frame(self, told: Told = WHOLE) -> EventFrame:
        """The frame of what a viewer is ``told`` (the same for every viewer told that)."""
        if told.kind != "event":
            recording = self.recording_id if told.kind == RECORDING_HIDDEN else None
            return hidden_frame(self.event, told.kind, recording)
        if told == WHOLE:
            return event_frame(self.event, self.kind)
        sight = Sight(
            recordings=self.named.recordings - told.hidden,
            people=self.named.people - told.strangers,
        )
        data = redaction.event_data(sight, self.event.event)
        return event_frame(
            self.event,
            self.kind,
            actor=redaction.person(sight, self.event.metadata.actor),
            data=msgspec.json.encode(data),
        )

    def _sight(self, viewer: Viewer, project: ProjectFacts) -> Sight:
        people = people_seen(
            viewer, ((p, self.people.get(p, (project,))) for p in self.named.people)
        )
        return redaction.sight(viewer, project, recordings=self.recordings.values(), people=people)

    def _hides_recording(self, viewer: Viewer, project: ProjectFacts) -> bool:
        """Whether the event takes its recording away from ``viewer`` (who sees the
        project): shown to clients, then hidden; or a to-do moved out of a list they see
        into one they do not."""
        if can_see_recording(viewer, project, hidden_probe(project.project_id)):
            return False
        event = self.event.event
        if isinstance(event, ClientVisibilityChanged):
            return event.before and not event.after
        if isinstance(event, TodoMoved):
            source = self.recordings.get(event.from_todolist_id)
            target = self.recordings.get(event.to_todolist_id)
            sees = can_see_recording
            return (
                source is not None
                and sees(viewer, project, source)
                and (target is None or not sees(viewer, project, target))
            )
        return False

    def _about_someone_gone(self, viewer: Viewer, project: ProjectFacts) -> bool:
        """Whether the event is a membership change of someone no longer on the project,
        for a viewer who sees what clients see: as in the activity streams
        (docs/ACCESS.md), clients hear of memberships only while the person is on the
        project, so never of a removal."""
        event = self.event.event
        return (
            isinstance(event, _MEMBERSHIPS)
            and event.person_id not in project.members
            and not can_see_recording(viewer, project, hidden_probe(project.project_id))
        )

    def _took_project(self, viewer: Viewer, after: ProjectFacts) -> bool:
        """Whether the event (of the project's stream) took the project away from
        ``viewer``, who may not see it now: they were removed from it, or it stopped
        admitting clients."""
        event = self.event.event
        if isinstance(event, ProjectMemberRemoved) and event.person_id == viewer.person_id:
            # People with role client are clients of every project they are on, and only
            # they are (service.domain.memberships): their role there before removal.
            role = "client" if viewer.role == "client" else "member"
            before = msgspec.structs.replace(
                after, members={**after.members, event.person_id: role}
            )
        elif isinstance(event, ProjectEdited) and any(
            c.field == "clients_enabled" and c.before is True for c in event.changes
        ):
            before = msgspec.structs.replace(after, clients_enabled=True)
        else:
            return False
        return can_see_project(viewer, before)

"""An event judged once for the whole instance: the event, the facts the shared access rules
need (read by the hub), and the rules' answer per viewer. Pure: no I/O.

The hub reads the facts once per event (or per replayed page) after the read models have
applied it, so an event is never judged on stale facts; :class:`~.subscriptions.Subscriptions`
then asks :meth:`Judged.visible_to` for each person subscribed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..domain.access import (
    ProjectFacts,
    RecordingFacts,
    Viewer,
    can_see_project,
    can_see_recording,
    hidden_probe,
)
from ..domain.activity import KnownRecording, recorded_activity
from ..events.base import RecordedEvent
from .protocol import EventFrame, event_frame, kind_of, recording_of


def may_follow(viewer: Viewer, project: ProjectFacts | None) -> bool:
    """Whether ``viewer`` may follow the project of these facts (None: no such project)."""
    return project is not None and can_see_project(viewer, project)


@dataclass(frozen=True, slots=True)
class Judged:
    """An event and the facts the access rules need to judge it (judged once per event)."""

    event: RecordedEvent
    project: ProjectFacts | None
    recording_id: str | None
    recording: RecordingFacts | None
    kind: str

    @classmethod
    def of(
        cls,
        event: RecordedEvent,
        project: ProjectFacts | None,
        recordings: Mapping[str, tuple[RecordingFacts, KnownRecording]],
    ) -> Judged:
        """``event`` (of a project) with its project's facts (None: no such project) and its
        recording's, looked up in ``recordings`` (by id, as the read model has them). Its
        ``kind`` is the activity's (``todo_assigned``…), else its type in snake case."""
        recording_id = recording_of(event)
        found = recordings.get(recording_id) if recording_id is not None else None
        item = recorded_activity(event, None if found is None else found[1])
        return cls(
            event=event,
            project=project,
            recording_id=recording_id,
            recording=None if found is None else found[0],
            kind=item.kind if item is not None else kind_of(event.event_type),
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

    def frame(self) -> EventFrame:
        """The event's frame (the same for every subscriber)."""
        return event_frame(self.event, self.kind)

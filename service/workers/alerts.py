"""The alert scheduler: every ``CAIRN_ALERT_INTERVAL`` seconds, raise the milestone and to-do
alerts that are owed (rules: :mod:`service.domain.alerts`).

A tick reads the candidates from the read side (:func:`service.reads.alerts.candidates`: one
index range scan), keeps those the rules say are owed something now by what the read models
show (no fold for the others), then, for each, folds the recording's stream (and its
project's, and a to-do's list) and decides again on the fold, appending through
:func:`service.commands.execute.execute` as :data:`~service.domain.access.SYSTEM` with the
version it folded.

**Exactly once, several instances.** Every instance runs a scheduler; nothing is locked.
Two instances deciding on the same version both try to append with that expected version:
one wins, the other's append fails (``WrongExpectedVersion``), ``execute`` folds again, finds
the alert raised for this due date and appends nothing. Read models that lag only cost a
fold (the candidate is read again next tick, and decided on the log). No transaction is held
open while deciding: the reads, the folds and the append are separate statements.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from ..commands.caller import Caller
from ..commands.execute import execute
from ..domain.access import SYSTEM
from ..domain.alerts import HORIZON, concerned, decide_alerts, earliest_due_at, owed_now
from ..domain.calendar import zone
from ..domain.projects import ProjectState, fold_project
from ..domain.recordings import RecordingState, fold_recording
from ..errors import CairnError
from ..events.base import Event, Metadata
from ..events.streams import project_stream, recording_stream
from ..reads import alerts, directory
from .ticking import Ticking

_log = logging.getLogger(__name__)


class AlertScheduler(Ticking):
    """Raises owed alerts every ``interval`` seconds until stopped.

    Args:
        services: the process's services: store, read models to wait for, clock, default
            time zone.
        interval: seconds between ticks.
    """

    name = "alerts"

    async def tick(self) -> int:
        """Raise every alert owed now; the number appended."""
        services = self.services
        now = services.clock()
        candidates = await alerts.candidates(services.store.pool, (now + HORIZON).date())
        raised = 0
        for candidate in candidates:
            zones = self._zones(candidate.zones)
            which = owed_now(
                candidate.due_on,
                earliest_due_at(candidate.due_on, zones),
                candidate.alert_hours,
                now,
                due_soon_alerted_on=candidate.due_soon_alerted_on,
                overdue_alerted_on=candidate.overdue_alerted_on,
            )
            if which is None:
                continue
            self._metrics.attempted()
            try:
                raised += await self.raise_owed(candidate.recording_id, candidate.project_id, now)
            except CairnError as exc:
                # Another instance kept appending to the stream (execute retried), or the
                # recording changed under us: the next tick decides again.
                self._metrics.failed()
                _log.info("alerts: %s not decided now (%s)", candidate.recording_id, exc)
        return raised

    async def raise_owed(self, recording_id: str, project_id: str, now: dt.datetime) -> int:
        """Fold ``recording_id`` and append the alert it is owed at ``now``, if any; 1 when
        one was appended (by this call)."""
        services = self.services
        store = services.store
        stream = recording_stream(recording_id)
        recording = fold_recording(e.event for e in await store.read_stream(stream))
        if recording is None:
            return 0
        project = await self._project(project_id)
        if project is None:
            return 0
        lineage: tuple[RecordingState, ...] = ()
        if recording.kind == "todo" and recording.todolist_id is not None:
            todolist = fold_recording(
                e.event for e in await store.read_stream(recording_stream(recording.todolist_id))
            )
            lineage = (todolist,) if todolist is not None else ()
        people = concerned(recording)
        zones = self._zones([await directory.time_zone(store.pool, p) for p in people])

        def decide(state: RecordingState | None) -> list[Event]:
            # The zones are those of the people the first fold named: if a new fold names
            # others (reassigned meanwhile), decide next tick with theirs.
            if state is None or concerned(state) != people:
                return []
            return decide_alerts(project, state, zones, now, lineage)

        meta = Metadata(actor=SYSTEM.person_id, request_id=f"alerts-{uuid.uuid4().hex[:12]}")
        caller = Caller(services=services, actor=SYSTEM, metadata=meta)
        _, result = await execute(caller, stream, fold_recording, decide, project_id=project_id)
        return 0 if result is None else 1

    async def _project(self, project_id: str) -> ProjectState | None:
        services = self.services
        stream = project_stream(project_id)
        if services.project_states is not None:
            return (await services.project_states.load(services.store, stream))[1]
        return fold_project(e.event for e in await services.store.read_stream(stream))

    def _zones(self, chosen: Sequence[str | None]) -> list[ZoneInfo]:
        """The zones of people who chose ``chosen`` (the default zone for none chosen, or
        for nobody)."""
        default = self.services.time_zone
        return [zone(c, default) for c in chosen] or [zone(None, default)]

"""Time travel: a project as it was at a point of the log, for a viewer (``GET
/v1/projects/{id}/snapshot``, ``cairn replay``).

The project's to-do lists, to-dos, milestones and messages as they were, rebuilt by replaying
the project's own slice of the log (:mod:`service.domain.snapshot`); no read model is involved,
so a snapshot is as true as the log. ``cairn replay`` prints the same JSON (:func:`replay_json`).

* ``?position=N``: every event of the project up to and including the event at position ``N``
  in log order. Log order is ``(tx_id, position)``, so this may leave out an event with a
  smaller position that committed later, and include one with a larger position. ``N`` may be
  the position of any event of the log (404 if there is none, or if it is not readable yet);
  ``0`` is the empty state before the first event.
* ``?at=T``: every event of the project recorded at or before ``T`` (``recorded_at``, the
  appending transaction's start). It is answered as ``?position=`` of the last such event in
  log order, so the state is always a prefix of the log; when transactions race, that prefix
  can also hold an event recorded a moment after ``T`` that committed before one recorded
  earlier. ``position`` in the answer says which prefix it is.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from ..domain.access import SYSTEM, ProjectFacts, Viewer
from ..domain.projects import project_facts
from ..domain.redaction import Sight
from ..domain.snapshot import Replay, Snapshot, snapshot_of
from ..errors import NotFound, UnknownPosition
from ..events.base import RecordedEvent
from ..events.store import START, Cursor, EventStore
from ..reads.access import people_known_to
from ..reads.visibility import client_view

_PAGE = 1000
_MAX_POSITION = 2**63 - 1  # positions are bigint
_encoder = msgspec.json.Encoder()


async def build_snapshot(
    store: EventStore,
    viewer: Viewer,
    facts: ProjectFacts | None,
    project_id: str,
    *,
    position: int | None = None,
    at: datetime | None = None,
) -> Snapshot:
    """The snapshot of ``project_id`` at ``position`` or ``at`` (exactly one), for ``viewer``.

    Args:
        facts: the project's facts now (the caller has checked the viewer sees it); None to
            take them from the replay itself (for admins, e.g. ``cairn replay``).

    Raises:
        UnknownPosition: no readable event has that position.
        NotFound: ``facts`` is None and the log holds nothing of the project.
    """
    if (position is None) == (at is None):
        raise ValueError("give exactly one of position and at")
    if position is not None:
        if position > _MAX_POSITION:
            raise UnknownPosition(position)
        until = await store.cursor_of(position)
        if until > await store.head():
            # Committed but behind the read horizon: an older transaction may still add
            # events before it in log order, so the prefix is not settled yet.
            raise UnknownPosition(position)
        events = await _read_until(store, project_id, until)
        later: list[RecordedEvent] = []
    else:
        assert at is not None
        everything = await _read_until(store, project_id, None)
        cut = 0
        for index, recorded in enumerate(everything):
            if recorded.recorded_at <= at:
                cut = index + 1
        events, later = everything[:cut], everything[cut:]
        position = events[-1].position if events else 0
    replay = Replay(project_id)
    replay.extend(events)
    if facts is None:
        facts = await _facts_from_log(store, project_id, replay)
    hidden_now: set[str] = set()
    if client_view(viewer, facts):
        hidden_now = await _hidden_now(store, project_id, replay, events, later, at is None)
    sight = Sight(people=await people_known_to(store.pool, viewer))
    return snapshot_of(replay, position, viewer, facts, hidden_now, sight)


async def replay_json(store: EventStore, project_id: str, until_position: int) -> bytes:
    """The JSON of ``GET /v1/projects/{project_id}/snapshot?position=N`` as an admin sees it
    (``cairn replay``).

    Raises:
        UnknownPosition: no readable event has that position.
        NotFound: the log holds no event of the project.
    """
    snapshot = await build_snapshot(store, SYSTEM, None, project_id, position=until_position)
    return _encoder.encode(snapshot)


async def _read_until(
    store: EventStore, project_id: str, until: Cursor | None, after: Cursor = START
) -> list[RecordedEvent]:
    """The project's events in log order after ``after``, up to and including ``until``
    (None: all)."""
    events: list[RecordedEvent] = []
    cursor = after
    while True:
        page = await store.read_after(cursor, _PAGE, project_id=project_id)
        for recorded in page:
            if until is not None and recorded.cursor > until:
                return events
            events.append(recorded)
        if len(page) < _PAGE:
            return events
        cursor = page[-1].cursor


async def _facts_from_log(store: EventStore, project_id: str, replay: Replay) -> ProjectFacts:
    if replay.project is not None:
        return project_facts(replay.project)
    if not await store.read_after(START, 1, project_id=project_id):
        raise NotFound("there is no such project")
    # The project exists, but not yet at this point of the log.
    return ProjectFacts(project_id=project_id, status="active", clients_enabled=False, members={})


async def _hidden_now(
    store: EventStore,
    project_id: str,
    replay: Replay,
    events: list[RecordedEvent],
    later: list[RecordedEvent],
    read_more: bool,
) -> set[str]:
    """Ids of the recordings of ``replay`` that clients may not see now."""
    now = Replay(project_id)
    now.extend(events)
    if read_more:
        later = await _read_until(store, project_id, None, events[-1].cursor if events else START)
    now.extend(later)
    return {
        recording_id
        for recording_id in replay.recordings
        if not now.facts(now.recordings[recording_id]).visible_to_clients
    }

"""The notice worker: who is told of each event of a recording, recorded in the log.

A :class:`~service.workers.reader.DeliveryReader` named ``notices`` over ``recording-``
streams. Before each batch it waits until the read models it decides on (directory and
recordings) have applied the batch's last event, so the facts are no older than the events;
then, inside the step's transaction, it asks the pure rule
(:func:`service.domain.notices.notice_of`) about each event and appends one
:class:`~service.events.notices.PeopleNotified` to ``notice-<position>`` (expected
``NO_STREAM``) per event that tells anyone anything. The append commits with the
checkpoint or not at all; and should two instances ever hand the same event over, the
second append to the same ``notice-`` stream fails and rolls its step back: one notice per
event, whatever happens.

It starts at the head of the log (the delivery reader's rule): history is never told.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

import asyncpg

from ..domain.access import SYSTEM
from ..domain.notices import may_tell, notice_of
from ..events.base import Metadata, RecordedEvent
from ..events.notices import PeopleNotified
from ..events.store import NO_STREAM, EventStore
from ..events.streams import RECORDING, notice_stream, recording_id_of
from ..projections.engine import ProjectionEngine
from ..reads.inbox import notice_facts
from .reader import DeliveryReader

_log = logging.getLogger(__name__)

NAME: Final = "notices"
"""The checkpoint's name."""
_SETTLING: Final = ("directory", "recordings")
"""The read models the decisions read."""


class Notices:
    """The notice worker of one instance (one instance at a time does the work).

    Args:
        store: the event store.
        engine: the projection engine (to wait for the read models).
        settle_timeout: how long one wait for the read models lasts before a warning is
            logged (the worker then waits again: it never decides on stale facts).
    """

    def __init__(
        self, store: EventStore, engine: ProjectionEngine, *, settle_timeout: float = 5.0
    ) -> None:
        self.store = store
        self.engine = engine
        self._settle_timeout = settle_timeout
        self.reader = DeliveryReader(
            store,
            NAME,
            self._handle,
            before=self._settle,
            stream_prefixes=(RECORDING,),
        )

    def start(self) -> None:
        """Follow the log until :meth:`stop`."""
        self.reader.start()

    async def stop(self) -> None:
        """Stop following (a step in flight commits or rolls back whole)."""
        await self.reader.stop()

    async def _settle(self, events: Sequence[RecordedEvent]) -> None:
        telling = _telling(events)
        if not telling:
            return  # nothing in the batch tells anyone: no facts to wait for
        names = [n for n in _SETTLING if n in self.engine.projections]
        while not await self.engine.wait_for(telling[-1].cursor, self._settle_timeout, names):
            _log.warning("read models are late; the notice worker waits for them")

    async def _handle(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        telling = _telling(events)
        if not telling:
            return
        ids = {rid for e in telling if (rid := recording_id_of(e.stream_id)) is not None}
        facts = await notice_facts(self.store.pool, ids)
        for recorded in telling:
            recording_id = recording_id_of(recorded.stream_id)
            if recording_id is None or recording_id not in facts:
                continue
            actor = recorded.metadata.actor
            notice = notice_of(recorded.event, recording_id, actor, facts[recording_id])
            if notice is None:
                continue
            project = facts[recording_id].project
            assert project is not None  # notice_of tells nobody of a project it lacks
            told = PeopleNotified(
                source_position=recorded.position,
                source_event_id=recorded.hash.hex(),
                source_type=recorded.event_type,
                kind=notice.kind,
                project_id=project.project_id,
                recording_id=notice.recording_id,
                thread_id=notice.thread_id,
                actor_id=None if actor in (None, SYSTEM.person_id) else actor,
                at=recorded.recorded_at,
                recipient_ids=notice.recipient_ids,
            )
            meta = Metadata(
                actor=SYSTEM.person_id,
                causation_id=str(recorded.position),
                correlation_id=recorded.metadata.correlation_id,
            )
            await self.store.append(
                notice_stream(recorded.position),
                [told],
                NO_STREAM,
                meta,
                project_id=None,
                connection=conn,
            )


def _telling(events: Sequence[RecordedEvent]) -> list[RecordedEvent]:
    """The events of a batch that may tell anyone anything (:func:`may_tell`)."""
    return [e for e in events if may_tell(e.event)]

"""The webhook planner: a :class:`~service.workers.reader.DeliveryReader` named ``webhooks``
that turns each event into one delivery per endpoint wanting it (table
``webhook_deliveries``, :mod:`service.reads.webhook_deliveries`), in the transaction that
moves its checkpoint: planned exactly once, across restarts and instances. No network I/O
happens here (the sender, :mod:`.webhook_sender`, sends after commit).

For each event of a project it finds the active endpoints (:func:`~service.reads.webhooks.
active_endpoints`) created before it (``created_position``), of its project (or
account-wide) and wanting its kind, judges it for each endpoint's audience and builds the
payload redacted for it (:mod:`service.domain.webhook_payload`). Before each batch it waits
until the read models it reads (directory, recordings, webhooks) have applied the batch, so
that an endpoint created just before an event is found, and facts are no older than events.

Like every delivery reader it starts at the head of the log: history is never delivered, a
rebuild or an import sends nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Final

import asyncpg

from ..commands.caller import Services
from ..domain import webhook_payload as wp
from ..domain.access import RecordingFacts
from ..domain.redaction import CAIRN_ID, mentions
from ..domain.webhooks import known_kinds
from ..events.base import RecordedEvent
from ..events.streams import recording_id_of
from ..reads import directory
from ..reads.access import projects_facts, recording_facts
from ..reads.recordings import rows_by_id
from ..reads.webhook_deliveries import Planned, plan
from ..reads.webhooks import Endpoint, active_endpoints
from .reader import DeliveryReader

_log = logging.getLogger(__name__)

NAME: Final = "webhooks"
"""The delivery reader's (and checkpoint's) name."""
_SETTLING: Final = ("directory", "recordings", "webhooks")
"""The read models the planner reads."""
_PERSON_COLUMNS: Final = ("creator_id", "completer_id", "responsible_id")


class Planner:
    """The ``webhooks`` delivery reader of one instance (one instance at a time does the
    work).

    Args:
        services: the store, the read models to wait for, the clock.
        wake: set once a step that planned deliveries has committed (the sender looks at
            once).
        settle_timeout: how long one wait for the read models lasts before a warning.
    """

    def __init__(
        self, services: Services, wake: asyncio.Event, *, settle_timeout: float = 5.0
    ) -> None:
        self.services = services
        self.wake = wake
        self.planned = 0
        self._settle_timeout = settle_timeout
        self._kinds = known_kinds()
        self.reader = _Reader(services.store, NAME, self._plan, before=self._settle)
        self.reader.planner = self

    async def _settle(self, events: Sequence[RecordedEvent]) -> None:
        engine = self.services.engine
        if engine is None or not any(e.project_id is not None for e in events):
            return
        names = [n for n in _SETTLING if n in engine.projections]
        while not await engine.wait_for(events[-1].cursor, self._settle_timeout, names):
            _log.warning("read models are late; the webhook planner waits for them")

    def _wanted(self, event: RecordedEvent, endpoints: Sequence[Endpoint]) -> list[Endpoint]:
        if event.project_id is None:
            return []
        kind = wp.kind_of(event.event_type)
        if kind not in self._kinds:
            return []
        return [
            e
            for e in endpoints
            if e.created_position < event.position
            and (e.project_id is None or e.project_id == event.project_id)
            and (e.kinds is None or kind in e.kinds)
        ]

    async def _plan(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        endpoints = await active_endpoints(conn)
        if not endpoints:
            return
        work = [(e, hooks) for e in events if (hooks := self._wanted(e, endpoints))]
        if not work:
            return
        project_ids = sorted({e.project_id for e, _ in work if e.project_id is not None})
        projects = await projects_facts(conn, project_ids)
        project_names: dict[str, str] = {}
        for project_id in project_ids:  # a batch names few projects
            found = await directory.project(conn, project_id)
            if found is not None:
                project_names[project_id] = found["name"]
        ids: set[str] = set()
        people: set[str] = set()
        for event, _ in work:
            recording_id = recording_id_of(event.stream_id)
            if recording_id is not None:
                ids.add(recording_id)
            named = mentions(event.event, event.metadata.actor)
            ids |= named.recordings
            people |= named.people
        rows = await rows_by_id(conn, sorted(ids))
        facts: dict[str, RecordingFacts] = {r: recording_facts(row) for r, row in rows.items()}
        for row in rows.values():
            people.update(row[c] for c in _PERSON_COLUMNS if row[c] is not None)
            people.update(row["assignee_ids"])
        people.discard(CAIRN_ID)
        names = await directory.names(conn, sorted(people))
        due = self.services.clock()
        planned: list[Planned] = []
        bodies: dict[tuple[int, str], bytes | None] = {}
        for event, hooks in work:
            assert event.project_id is not None
            recording_id = recording_id_of(event.stream_id)
            wanted = mentions(event.event).recordings | {recording_id or ""}
            mine = {r: facts[r] for r in wanted if r in facts}
            for hook in hooks:
                key = (event.position, hook.audience)
                if key not in bodies:
                    bodies[key] = self._body(
                        event, hook.audience, projects, project_names, mine, rows, names
                    )
                body = bodies[key]
                if body is None:
                    continue
                planned.append(
                    Planned(
                        webhook_id=hook.id,
                        position=event.position,
                        msg_id=wp.msg_id(event.position, hook.id),
                        kind=wp.kind_of(event.event_type),
                        payload=body,
                        url=hook.url,
                        audience=hook.audience,
                    )
                )
        await plan(conn, planned, due)
        self.planned += len(planned)

    @staticmethod
    def _body(
        event: RecordedEvent,
        audience: str,
        projects: dict[str, Any],
        project_names: dict[str, str],
        recordings: dict[str, RecordingFacts],
        rows: dict[str, Any],
        names: dict[str, str],
    ) -> bytes | None:
        assert event.project_id is not None
        sight = wp.judge(event, audience, projects.get(event.project_id), recordings)
        if sight is None:
            return None
        recording_id = recording_id_of(event.stream_id)
        return wp.payload(
            event,
            sight,
            project_name=project_names.get(event.project_id),
            recording_row=rows.get(recording_id) if recording_id is not None else None,
            names=names,
        )


class _Reader(DeliveryReader):
    """The delivery reader, waking the sender after a step that planned deliveries has
    committed (woken before, it would find nothing and sleep until its next poll)."""

    planner: Planner

    async def step(self) -> int:
        before = self.planner.planned
        try:
            return await super().step()
        finally:
            if self.planner.planned != before:
                self.planner.wake.set()

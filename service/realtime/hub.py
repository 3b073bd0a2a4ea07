"""The hub: one log follower per instance, fanning each event out to the local subscriptions.

**One follower.** The hub follows the log from its head at start-up
(:meth:`EventStore.follow`), so every event appended through any instance reaches every
instance's subscribers, and PostgreSQL restarts are survived by the store. Each event is
judged once for the whole instance: the read models it needs (directory, recordings) are
awaited until they have applied it, then the shared access rules decide, per subscriber,
whether it may see the event. The frame is encoded once and the same object goes to every
socket allowed to see it (see :class:`~service.realtime.protocol.EventFrame`).

**Catch-up without gap or duplicate.** A subscription with ``since`` is registered at once
but *catching up*: the follower parks its events in the subscription's ``pending`` list
instead of sending them. The catch-up task replays the log from ``since`` and sends only
events up to the follower's cursor at that moment; once a read shows nothing more up to that
cursor, it sends the parked events after the last replayed one and turns the subscription
live, all without an ``await`` in between, so the follower cannot slip an event past it.

**Failure.** Nothing here sends on a socket directly: frames go to each connection's bounded
buffer (:mod:`.connection`), so one stalled client never delays the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from ..domain.access import (
    ProjectFacts,
    RecordingFacts,
    Viewer,
    can_see_project,
    can_see_recording,
    hidden_probe,
)
from ..domain.activity import KnownRecording, recorded_activity
from ..errors import DatabaseUnavailable, UnknownPosition
from ..events.base import RecordedEvent
from ..events.people import PersonDeactivated, PersonEdited, TokenRevoked
from ..events.store import START, Cursor, EventStore
from ..events.streams import person_id_of, project_stream
from ..events.wakeup import TRANSIENT_ERRORS
from ..projections.engine import ProjectionEngine
from ..reads.access import project_facts, recordings_by_id, viewer_by_id
from ..reads.tokens import api_token_hash
from .connection import Connection, Limits
from .counters import Counters
from .protocol import (
    ALL,
    CLOSE_DEACTIVATED,
    CLOSE_SHUTDOWN,
    CLOSE_UNAUTHORIZED,
    BadFrame,
    ErrorCode,
    ErrorFrame,
    EventFrame,
    Outgoing,
    Subscribe,
    Subscribed,
    Unsubscribe,
    Unsubscribed,
    decode_client_frame,
    encode,
    event_frame,
    kind_of,
    recording_of,
)

_log = logging.getLogger(__name__)

DIRECTORY: Final = "directory"
RECORDINGS: Final = "recordings"
_RETRY_DELAY: Final = 0.2


class Subscription:
    """One followed project (or ``"all"``) of one connection.

    ``pending`` is not None while the subscription catches up: the events the follower
    dispatched meanwhile (cursor, frame), in log order, already judged visible to it.
    """

    __slots__ = ("conn", "ended", "name", "pending", "resets")

    def __init__(self, name: str, conn: Connection, *, catching_up: bool) -> None:
        self.name = name
        self.conn = conn
        self.pending: list[tuple[Cursor, Outgoing]] | None = [] if catching_up else None
        self.resets = 0
        self.ended = False

    def over(self) -> bool:
        """Whether the subscription has ended (checked again after every ``await``)."""
        return self.ended


@dataclass(frozen=True, slots=True)
class _Judged:
    """An event and the facts the access rules need to judge it (judged once per event)."""

    event: RecordedEvent
    project: ProjectFacts | None
    recording_id: str | None
    recording: RecordingFacts | None
    kind: str

    def visible_to(self, viewer: Viewer) -> bool:
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
        return event_frame(self.event, self.kind)


class Hub:
    """Live project events for this instance's WebSocket connections.

    Args:
        store: the event store (its pool serves the read-model look-ups too).
        engine: the projection engine, to wait until read models have applied an event.
        limits: per-connection send buffer limits.
        settle_timeout: how long one wait for a read model lasts before a warning is logged
            (the hub then waits again: it never judges an event on stale facts).
        max_subscriptions: subscriptions one connection may hold.
        replay_batch: events read per page while catching up.
    """

    def __init__(
        self,
        store: EventStore,
        engine: ProjectionEngine,
        *,
        limits: Limits | None = None,
        settle_timeout: float = 5.0,
        max_subscriptions: int = 100,
        replay_batch: int = 500,
    ) -> None:
        self.store = store
        self.engine = engine
        self.limits = limits or Limits()
        self.counters = Counters()
        self.live_cursor: Cursor = START
        """The last event the follower has fanned out (log order)."""
        self._settle_timeout = settle_timeout
        self._max_subscriptions = max_subscriptions
        self._replay_batch = replay_batch
        self._projects: dict[str, set[Subscription]] = {}
        self._all: set[Subscription] = set()
        self._people: dict[str, set[Connection]] = {}
        self._connections: set[Connection] = set()
        # Project facts as of the follower's cursor. An entry is dropped when an event of the
        # project's stream is dispatched; ``_generation`` counts those drops, so that a load
        # that raced with one is not cached.
        self._facts: dict[str, ProjectFacts] = {}
        self._generation: dict[str, int] = {}
        self._follower: asyncio.Task[None] | None = None
        self._catch_ups: set[asyncio.Task[None]] = set()
        self.started = asyncio.Event()
        """Set once the follower has its starting cursor."""

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Take the log's head and start following from it.

        Raises:
            DatabaseUnavailable: PostgreSQL cannot be reached.
        """
        try:
            self.live_cursor = await self.store.head()
        except TRANSIENT_ERRORS as exc:
            raise DatabaseUnavailable(f"cannot read the log's head: {exc}") from exc
        self._follower = asyncio.get_running_loop().create_task(self._follow(), name="cairn-hub")
        self.started.set()

    async def stop(self) -> None:
        """Close every connection with 1012 and stop following."""
        for conn in list(self._connections):
            conn.close(CLOSE_SHUTDOWN, "server shutting down")
        tasks = [t for t in (self._follower, *self._catch_ups) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        waiting = [asyncio.ensure_future(c.finished.wait()) for c in self._connections]
        if waiting:
            await asyncio.wait(waiting, timeout=self.limits.close_timeout)
            for w in waiting:
                w.cancel()

    # ------------------------------------------------------------ connections

    def attach(self, conn: Connection) -> None:
        """Register a connection (authenticated, accepted)."""
        self._connections.add(conn)
        self._people.setdefault(conn.viewer.person_id, set()).add(conn)
        self.counters.connections += 1
        self.counters.connections_total += 1

    def detach(self, conn: Connection) -> None:
        """Forget a connection that is over, ending its subscriptions silently."""
        for sub in list(conn.subscriptions.values()):
            self._drop(sub)
        if conn in self._connections:
            self._connections.discard(conn)
            self.counters.connections -= 1
        people = self._people.get(conn.viewer.person_id)
        if people is not None:
            people.discard(conn)
            if not people:
                del self._people[conn.viewer.person_id]

    async def receive(self, conn: Connection, text: str) -> None:
        """Handle one client frame of ``conn``."""
        try:
            frame = decode_client_frame(text)
        except BadFrame as exc:
            self._error(conn, "bad_frame", str(exc))
            return
        if isinstance(frame, Subscribe):
            await self._subscribe(conn, frame)
        elif isinstance(frame, Unsubscribe):
            sub = conn.subscriptions.get(frame.project_id)
            if sub is None:
                self._error(conn, "not_subscribed", "no such subscription", frame.project_id)
                return
            self._drop(sub)
            conn.push(encode(Unsubscribed(subscription=sub.name)))

    # ------------------------------------------------------------ subscribing

    async def _subscribe(self, conn: Connection, frame: Subscribe) -> None:
        name = frame.project_id
        held = conn.subscriptions
        if name in held or (name == ALL and held) or (name != ALL and ALL in held):
            # Overlapping subscriptions would deliver an event twice on one socket.
            self._error(conn, "already_subscribed", "overlaps a subscription you hold", name)
            return
        if len(held) >= self._max_subscriptions:
            self._error(
                conn,
                "too_many_subscriptions",
                f"a connection holds at most {self._max_subscriptions} subscriptions",
                name,
            )
            return
        try:
            if name != ALL:
                facts = await self._project(name, self.live_cursor)
                if facts is None or not can_see_project(conn.viewer, facts):
                    self._error(conn, "not_found", "there is no such project", name)
                    return
            cursor = None if frame.since is None else await self.store.cursor_of(frame.since)
        except UnknownPosition:
            self._error(
                conn, "unknown_position", f"there is no event at position {frame.since}", name
            )
            return
        except TRANSIENT_ERRORS:
            self._error(conn, "unavailable", "the database is unavailable; try again", name)
            return
        if conn.closing or name in conn.subscriptions:
            return
        sub = Subscription(name, conn, catching_up=cursor is not None)
        conn.subscriptions[name] = sub
        (self._all if name == ALL else self._projects.setdefault(name, set())).add(sub)
        self.counters.subscriptions += 1
        conn.push(encode(Subscribed(subscription=name)))
        if cursor is not None:
            task = asyncio.get_running_loop().create_task(self._catch_up(sub, cursor))
            self._catch_ups.add(task)
            task.add_done_callback(self._catch_ups.discard)

    def _drop(self, sub: Subscription) -> None:
        if sub.ended:
            return
        sub.ended = True
        sub.pending = None
        sub.conn.subscriptions.pop(sub.name, None)
        if sub.name == ALL:
            self._all.discard(sub)
        else:
            subs = self._projects.get(sub.name)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._projects[sub.name]
        self.counters.subscriptions -= 1

    def _end(self, sub: Subscription, code: ErrorCode, detail: str) -> None:
        """End a subscription on the server's initiative, telling the client why."""
        if not sub.ended:
            self._drop(sub)
            self._error(sub.conn, code, detail, sub.name)

    def _error(
        self, conn: Connection, code: ErrorCode, detail: str, subscription: str | None = None
    ) -> None:
        conn.push(encode(ErrorFrame(code=code, detail=detail, subscription=subscription)))

    async def _catch_up(self, sub: Subscription, cursor: Cursor) -> None:
        conn = sub.conn
        project_id = None if sub.name == ALL else sub.name
        while not sub.over() and not conn.closing:
            await conn.room()
            limit = max(1, min(self._replay_batch, conn.free()))
            resets = sub.resets
            try:
                page = await self.store.read_after(cursor, limit, project_id=project_id)
                judged = await self._judge([e for e in page if e.project_id is not None])
            except TRANSIENT_ERRORS as exc:
                _log.info("catch-up lost PostgreSQL (%s); retrying", exc)
                await asyncio.sleep(_RETRY_DELAY)
                continue
            # No await from here to the end of the loop body: the follower's cursor and the
            # pending list cannot move while we decide.
            if sub.over():
                return
            head = self.live_cursor
            considered = [e for e in page if e.cursor <= head]
            if considered:
                cursor = considered[-1].cursor
            for item in judged:
                if item.event.cursor <= head and item.visible_to(conn.viewer):
                    conn.push(encode(item.frame()), event=True)
                    self.counters.events_replayed += 1
            if len(considered) == limit or sub.resets != resets:
                # More to read up to the follower's cursor, or parked events were dropped
                # after this page was read (this page may not reach them): read again.
                continue
            assert sub.pending is not None
            for at, frame in sub.pending:
                if at > cursor:
                    conn.push(frame, event=True)
            sub.pending = None
            return

    # ------------------------------------------------------------ following

    async def _follow(self) -> None:
        async for event in self.store.follow(self.live_cursor):
            while True:
                try:
                    await self._dispatch(event)
                    break
                except TRANSIENT_ERRORS as exc:
                    _log.info("hub lost PostgreSQL (%s); retrying event %s", exc, event.position)
                    await asyncio.sleep(_RETRY_DELAY)
                except Exception:
                    # A bug must not stop every subscription of the instance: this event
                    # is not delivered (never delivered unjudged), the next ones are.
                    _log.exception("hub failed on event %s; skipping it", event.position)
                    self.live_cursor = event.cursor
                    break

    def _subscribers(self, project_id: str) -> list[Subscription]:
        subs = self._projects.get(project_id)
        if subs is None:
            return list(self._all)
        return [*subs, *self._all]

    async def _dispatch(self, event: RecordedEvent) -> None:
        stream = event.stream_id
        person_id = person_id_of(stream)
        if person_id is not None:
            await self._person_changed(person_id, event)
        project_id = event.project_id
        if project_id is None:
            self.live_cursor = event.cursor
            return
        if stream == project_stream(project_id):
            self._forget(project_id)
        if not self._subscribers(project_id):
            self.live_cursor = event.cursor
            return
        (item,) = await self._judge([event])
        # No await from here on: subscriptions registered meanwhile are included, and the
        # cursor moves together with the fan-out (see _catch_up).
        frame: Outgoing | None = None
        # The rules' answer per person (sockets of one person share it): (project, event).
        verdicts: dict[Viewer, tuple[bool, bool]] = {}
        for sub in self._subscribers(project_id):
            if sub.ended:
                continue
            viewer = sub.conn.viewer
            verdict = verdicts.get(viewer)
            if verdict is None:
                sees = item.project is not None and can_see_project(viewer, item.project)
                verdict = verdicts[viewer] = (sees, sees and item.visible_to(viewer))
            if not verdict[0]:
                if sub.name == project_id:
                    self._end(sub, "access_revoked", "you may no longer see this project")
                continue
            if not verdict[1]:
                continue
            if frame is None:
                frame = encode(item.frame())
                self.counters.frames_encoded += 1
            if sub.pending is None:
                sub.conn.push(frame, event=True)
            else:
                sub.pending.append((event.cursor, frame))
                if len(sub.pending) > self.limits.messages:
                    # Bounded: the catch-up reads these from the log instead.
                    sub.pending.clear()
                    sub.resets += 1
        self.live_cursor = event.cursor

    async def _judge(self, events: Sequence[RecordedEvent]) -> list[_Judged]:
        """The facts for judging ``events`` (project events, log order), read once each."""
        if not events:
            return []
        last = max(events[-1].cursor, self.live_cursor)
        projects: dict[str, ProjectFacts | None] = {}
        for event in events:
            assert event.project_id is not None
            if event.project_id not in projects:
                projects[event.project_id] = await self._project(event.project_id, last)
        ids = {r for r in map(recording_of, events) if r is not None}
        recordings: dict[str, tuple[RecordingFacts, KnownRecording]] = {}
        if ids:
            await self._settled(events[-1].cursor, RECORDINGS)
            recordings = await recordings_by_id(self.store.pool, ids)
        judged = []
        for event in events:
            assert event.project_id is not None
            recording_id = recording_of(event)
            found = recordings.get(recording_id) if recording_id is not None else None
            judged.append(
                _Judged(
                    event=event,
                    project=projects[event.project_id],
                    recording_id=recording_id,
                    recording=None if found is None else found[0],
                    kind=_kind(event, None if found is None else found[1]),
                )
            )
        return judged

    # ------------------------------------------------------------ facts

    def _forget(self, project_id: str) -> None:
        self._facts.pop(project_id, None)
        self._generation[project_id] = self._generation.get(project_id, 0) + 1

    async def _project(self, project_id: str, at: Cursor) -> ProjectFacts | None:
        """The project's facts, no older than the event at ``at`` (None: no such project)."""
        facts = self._facts.get(project_id)
        if facts is not None:
            return facts
        generation = self._generation.get(project_id, 0)
        await self._settled(at, DIRECTORY)
        facts = await project_facts(self.store.pool, project_id)
        if facts is not None and self._generation.get(project_id, 0) == generation:
            self._facts[project_id] = facts
        return facts

    async def _settled(self, cursor: Cursor, projection: str) -> None:
        """Wait until ``projection`` has applied the event at ``cursor``."""
        if projection not in self.engine.projections:
            return
        while not await self.engine.wait_for(cursor, self._settle_timeout, names=[projection]):
            _log.warning("projection %s is late; the hub waits for it", projection)

    async def _person_changed(self, person_id: str, event: RecordedEvent) -> None:
        conns = self._people.get(person_id)
        if not conns:
            return
        change = event.event
        if isinstance(change, PersonDeactivated):
            for conn in list(conns):
                conn.close(CLOSE_DEACTIVATED, "the account was deactivated")
        elif isinstance(change, TokenRevoked):
            token_hash = await api_token_hash(self.store.pool, change.token_id)
            # Deactivation revokes every token first, then deactivates: same close code.
            if change.reason == "deactivated":
                code, why = CLOSE_DEACTIVATED, "the account was deactivated"
            else:
                code, why = CLOSE_UNAUTHORIZED, "the token was revoked"
            for conn in list(conns):
                if conn.token_hash == token_hash:
                    conn.close(code, why)
        elif isinstance(change, PersonEdited) and any(c.field == "role" for c in change.changes):
            await self._settled(event.cursor, DIRECTORY)
            viewer = await viewer_by_id(self.store.pool, person_id)
            for conn in list(self._people.get(person_id, ())):
                if viewer is None:
                    conn.close(CLOSE_DEACTIVATED, "the account is gone")
                    continue
                conn.viewer = viewer
                for sub in list(conn.subscriptions.values()):
                    if sub.name == ALL:
                        continue
                    facts = await self._project(sub.name, event.cursor)
                    if facts is None or not can_see_project(viewer, facts):
                        self._end(sub, "access_revoked", "you may no longer see this project")


def _kind(event: RecordedEvent, known: KnownRecording | None) -> str:
    """The activity kind of ``event`` (``todo_assigned``…), else its snake_case type."""
    item = recorded_activity(event, known)
    return item.kind if item is not None else kind_of(event.event_type)

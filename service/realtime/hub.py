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

**I/O here, decisions there.** This module follows the log, reads facts, waits for read
models and retries; every decision (who holds what, who sees an event, what a replayed page
sends, when a catch-up turns live) is made by :class:`~.subscriptions.Subscriptions`, which
never awaits.

**Failure.** Nothing here sends on a socket directly: frames go to each connection's bounded
buffer (:mod:`.connection`), so one stalled client never delays the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

import msgspec

from ..domain.access import ProjectFacts, RecordingFacts, Viewer
from ..domain.activity import KnownRecording
from ..domain.notices import notification_id
from ..domain.redaction import mentions
from ..errors import DatabaseUnavailable, UnknownPosition
from ..events.base import RecordedEvent
from ..events.notices import AllNotificationsRead, NotificationsRead, PeopleNotified
from ..events.people import PersonDeactivated, PersonEdited, TokenRevoked
from ..events.store import START, Cursor, EventStore
from ..events.streams import INBOX, NOTICE, person_id_of, project_stream
from ..events.wakeup import TRANSIENT_ERRORS
from ..metrics import WEBSOCKET_CONNECTIONS
from ..projections.engine import ProjectionEngine
from ..reads.access import project_facts, projects_of, recordings_by_id, viewer_by_id
from ..reads.inbox import unread_count
from ..reads.tokens import api_token_hash
from .connection import Connection, Limits
from .counters import Counters
from .judged import Judged, may_follow
from .protocol import (
    ALL,
    CLOSE_SHUTDOWN,
    NOTIFICATIONS,
    BadFrame,
    NotificationFrame,
    NotificationsReadFrame,
    Subscribe,
    Subscribed,
    Unsubscribe,
    Unsubscribed,
    decode_client_frame,
    encode,
    recording_of,
)
from .subscriptions import Subscription, Subscriptions, send_error

_log = logging.getLogger(__name__)

DIRECTORY: Final = "directory"
RECORDINGS: Final = "recordings"
INBOX_MODEL: Final = "inbox"

NotificationRenderer = Callable[[Mapping[str, Any], Viewer, Sequence[str]], Awaitable[list[bytes]]]
"""How notifications are shown (``renderer(scope, viewer, ids)``: the JSON of each of the
viewer's notifications ``ids`` they may see now, for a socket of handshake ``scope``); the
HTTP layer's, handed over by the app, so frames show them as ``GET /v1/my/notifications``
does."""
_RETRY_DELAY: Final = 0.2


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
        notifications: how notifications are shown in ``notification`` frames (None: none
            are sent).
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
        notifications: NotificationRenderer | None = None,
    ) -> None:
        self.store = store
        self._notifications = notifications
        self.engine = engine
        self.limits = limits or Limits()
        self.counters = Counters()
        self.live_cursor: Cursor = START
        """The last event the follower has fanned out (log order)."""
        self._settle_timeout = settle_timeout
        self._replay_batch = replay_batch
        self._subscriptions: Subscriptions[Connection] = Subscriptions(
            self.counters, max_subscriptions=max_subscriptions, max_pending=self.limits.messages
        )
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
        for conn in self._subscriptions.connections():
            conn.close(CLOSE_SHUTDOWN, "server shutting down")
        tasks = [t for t in (self._follower, *self._catch_ups) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        waiting = [
            asyncio.ensure_future(c.finished.wait()) for c in self._subscriptions.connections()
        ]
        if waiting:
            await asyncio.wait(waiting, timeout=self.limits.close_timeout)
            for w in waiting:
                w.cancel()

    # ------------------------------------------------------------ connections

    def attach(self, conn: Connection) -> None:
        """Register a connection (authenticated, accepted)."""
        self._subscriptions.attach(conn)
        WEBSOCKET_CONNECTIONS.inc()

    def detach(self, conn: Connection) -> None:
        """Forget a connection that is over, ending its subscriptions silently."""
        open_before = self.counters.connections
        self._subscriptions.detach(conn)
        # By what the counters moved: only a connection still registered counts down.
        WEBSOCKET_CONNECTIONS.dec(open_before - self.counters.connections)

    @property
    def following(self) -> bool:
        """Whether the log follower has started and not ended (it outlives PostgreSQL
        restarts: only a bug or :meth:`stop` ends it)."""
        return self._follower is not None and not self._follower.done()

    async def receive(self, conn: Connection, text: str) -> None:
        """Handle one client frame of ``conn``."""
        try:
            frame = decode_client_frame(text)
        except BadFrame as exc:
            send_error(conn, "bad_frame", str(exc))
            return
        if isinstance(frame, Subscribe):
            if frame.project_id == NOTIFICATIONS:
                self._follow_notifications(conn, frame)
            else:
                await self._subscribe(conn, frame)
        elif isinstance(frame, Unsubscribe):
            if frame.project_id == NOTIFICATIONS:
                self._unfollow_notifications(conn)
            else:
                self._subscriptions.unsubscribe(conn, frame.project_id)

    # ------------------------------------------------------------ notifications

    def _follow_notifications(self, conn: Connection, frame: Subscribe) -> None:
        # Not a Subscription: it follows no project and is never judged nor replayed; a
        # flag on the connection, read when a notice or a read of its person arrives.
        if frame.since is not None:
            send_error(
                conn,
                "bad_frame",
                "notifications are not replayed: read GET /v1/my/notifications",
                NOTIFICATIONS,
            )
        elif conn.notifications:
            send_error(conn, "already_subscribed", "you follow them already", NOTIFICATIONS)
        else:
            conn.notifications = True
            conn.push(encode(Subscribed(subscription=NOTIFICATIONS)))

    def _unfollow_notifications(self, conn: Connection) -> None:
        if not conn.notifications:
            send_error(conn, "not_subscribed", "no such subscription", NOTIFICATIONS)
        else:
            conn.notifications = False
            conn.push(encode(Unsubscribed(subscription=NOTIFICATIONS)))

    def _notified_sockets(self, person_id: str) -> list[Connection]:
        return [c for c in self._subscriptions.of_person(person_id) if c.notifications]

    # ------------------------------------------------------------ subscribing

    async def _subscribe(self, conn: Connection, frame: Subscribe) -> None:
        name = frame.project_id
        refusal = self._subscriptions.refusal(conn, name)
        if refusal is not None:
            conn.push(encode(refusal))
            return
        try:
            if name != ALL:
                facts = await self._project(name, self.live_cursor)
                if not may_follow(conn.viewer, facts):
                    send_error(conn, "not_found", "there is no such project", name)
                    return
            cursor = None if frame.since is None else await self.store.cursor_of(frame.since)
        except UnknownPosition:
            send_error(
                conn, "unknown_position", f"there is no event at position {frame.since}", name
            )
            return
        except TRANSIENT_ERRORS:
            send_error(conn, "unavailable", "the database is unavailable; try again", name)
            return
        sub = self._subscriptions.open(conn, name, catching_up=cursor is not None)
        if sub is not None and cursor is not None:
            task = asyncio.get_running_loop().create_task(self._catch_up(sub, conn, cursor))
            self._catch_ups.add(task)
            task.add_done_callback(self._catch_ups.discard)

    async def _catch_up(self, sub: Subscription, conn: Connection, cursor: Cursor) -> None:
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
            # No await from taking the follower's cursor to the step's decision: the cursor
            # and the pending list cannot move while it decides.
            cursor, more = self._subscriptions.catch_up_step(
                sub, cursor, page, judged, head=self.live_cursor, limit=limit, resets=resets
            )
            if not more:
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

    async def _dispatch(self, event: RecordedEvent) -> None:
        stream = event.stream_id
        if stream.startswith((NOTICE, INBOX)):
            await self._notified(event)
            self.live_cursor = event.cursor
            return
        person_id = person_id_of(stream)
        if person_id is not None:
            await self._person_changed(person_id, event)
        project_id = event.project_id
        if project_id is None:
            self.live_cursor = event.cursor
            return
        if stream == project_stream(project_id):
            self._forget(project_id)
        if not self._subscriptions.watched(project_id):
            self.live_cursor = event.cursor
            return
        (item,) = await self._judge([event])
        # No await from here on: subscriptions registered meanwhile are included, and the
        # cursor moves together with the fan-out (see _catch_up).
        self._subscriptions.fan_out(item)
        self.live_cursor = event.cursor

    async def _judge(self, events: Sequence[RecordedEvent]) -> list[Judged]:
        """The facts for judging ``events`` (project events, log order), read once each:
        their projects, their recordings and those they name, and the projects of the
        people they name who are not on their project (for redaction)."""
        if not events:
            return []
        last = max(events[-1].cursor, self.live_cursor)
        projects: dict[str, ProjectFacts | None] = {}
        for event in events:
            assert event.project_id is not None
            if event.project_id not in projects:
                projects[event.project_id] = await self._project(event.project_id, last)
        ids: set[str] = set()
        outsiders: set[str] = set()
        for event in events:
            recording_id = recording_of(event)
            if recording_id is not None:
                ids.add(recording_id)
            named = mentions(event.event, event.metadata.actor)
            ids |= named.recordings
            assert event.project_id is not None
            project = projects[event.project_id]
            members = project.members if project is not None else {}
            outsiders.update(p for p in named.people if p not in members)
        recordings: dict[str, tuple[RecordingFacts, KnownRecording]] = {}
        if ids:
            await self._settled(events[-1].cursor, RECORDINGS)
            recordings = await recordings_by_id(self.store.pool, ids)
        people: dict[str, tuple[ProjectFacts, ...]] = {}
        if outsiders:
            # Rare (an admin who is not on the project, someone who left it): who they may
            # be shown to depends on the projects they are on.
            await self._settled(last, DIRECTORY)
            on = await projects_of(self.store.pool, outsiders)
            for person_id in outsiders:
                found = [await self._project(p, last) for p in on.get(person_id, ())]
                people[person_id] = tuple(f for f in found if f is not None)
        judged = []
        for event in events:
            assert event.project_id is not None
            judged.append(Judged.of(event, projects[event.project_id], recordings, people))
        return judged

    async def _notified(self, event: RecordedEvent) -> None:
        """Tell a person's own sockets of a notification of theirs, or of notifications
        they read (other people's sockets never hear of them)."""
        change = event.event
        pool = self.store.pool
        if isinstance(change, PeopleNotified):
            render = self._notifications
            people = [p for p in change.recipient_ids if self._notified_sockets(p)]
            if render is None or not people:
                return
            await self._settled(event.cursor, INBOX_MODEL)
            for person_id in people:
                unread = await unread_count(pool, person_id)
                nid = notification_id(change.source_position, person_id)
                for conn in self._notified_sockets(person_id):
                    for body in await render(conn.scope, conn.viewer, [nid]):
                        frame = NotificationFrame(
                            notification=msgspec.Raw(body), unread_notifications=unread
                        )
                        conn.push(encode(frame))
        elif isinstance(change, NotificationsRead | AllNotificationsRead):
            person_id = event.stream_id.removeprefix(INBOX)
            if not self._notified_sockets(person_id):
                return
            await self._settled(event.cursor, INBOX_MODEL)
            read = NotificationsReadFrame(
                ids=list(change.notification_ids)
                if isinstance(change, NotificationsRead)
                else None,
                up_to_position=change.up_to_position
                if isinstance(change, AllNotificationsRead)
                else None,
                unread_notifications=await unread_count(pool, person_id),
            )
            out = encode(read)
            for conn in self._notified_sockets(person_id):
                conn.push(out)

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
        if not self._subscriptions.of_person(person_id):
            return
        change = event.event
        if isinstance(change, PersonDeactivated):
            self._subscriptions.deactivated(person_id)
        elif isinstance(change, TokenRevoked):
            token_hash = await api_token_hash(self.store.pool, change.token_id)
            self._subscriptions.token_revoked(person_id, token_hash, change.reason)
        elif isinstance(change, PersonEdited) and any(c.field == "role" for c in change.changes):
            await self._settled(event.cursor, DIRECTORY)
            viewer = await viewer_by_id(self.store.pool, person_id)
            for sub in self._subscriptions.role_changed(person_id, viewer):
                self._subscriptions.recheck(sub, await self._project(sub.name, event.cursor))

"""Who follows what on this instance, and what each socket is sent: the hub's decisions, no I/O.

The hub (:mod:`.hub`) does the waiting: it follows the log, reads the facts the access
rules need from the read models, waits for projections and retries. It hands what it
learnt to :class:`Subscriptions`, which decides without awaiting anything, the way
:mod:`.protocol` is the wire without the sockets. Of a socket it needs only
:class:`Socket` (the hub's is :class:`~.connection.Connection`), so tests drive it with a
fake that records frames and closes.

**Judged once.** An event comes with its facts as a :class:`~.judged.Judged`; the shared
access rules decide per person what they are told of it (sockets of one person share the
answer): nothing, the event redacted for them, or that it hid something from them. Each
distinct frame is encoded once, for every socket told the same.

**Catch-up without gap or duplicate.** A subscription with ``since`` is opened
*catching up*: :meth:`Subscriptions.fan_out` parks the follower's events in its
``pending`` list instead of sending them. The hub's catch-up task reads the log from
``since``; :meth:`Subscriptions.catch_up_step` sends only events up to the follower's cursor
at that moment, and once a read shows nothing more up to that cursor, sends the parked
events after the last replayed one and turns the subscription live. Neither method awaits,
and the hub calls each right after reading (or before moving) the follower's cursor, so the
follower cannot slip an event between them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Generic, Protocol, TypeVar

import msgspec

from ..domain.access import ProjectFacts, Viewer
from ..events.base import RecordedEvent
from .counters import Counters
from .judged import Judged, Told, may_follow
from .protocol import (
    ALL,
    CLOSE_DEACTIVATED,
    CLOSE_UNAUTHORIZED,
    ErrorCode,
    ErrorFrame,
    Outgoing,
    Subscribed,
    Unsubscribed,
    encode,
)

Cursor = tuple[int, int]
"""A place in log order, ``(tx_id, position)``: the store's ``Cursor``."""

_REVOKED: Final = "you may no longer see this project"


class Socket(Protocol):
    """What the bookkeeping needs of a connection (the hub's is :class:`.connection.Connection`)."""

    viewer: Viewer
    """Who is connected (kept current on role changes)."""
    token_hash: str
    """The stored hash of the API token the socket authenticated with."""
    subscriptions: dict[str, Subscription]
    """Held subscriptions by name; managed by :class:`Subscriptions`."""

    @property
    def closing(self) -> bool:
        """Whether the socket is closed or closing: pushes are ignored."""

    def push(self, frame: Outgoing, *, event: bool = False) -> None:
        """Queue ``frame`` for sending, in order, without blocking; ``event`` counts it as
        an event sent."""

    def close(self, code: int, reason: str = "") -> None:
        """Close the socket with ``code`` (idempotent)."""


class Subscription:
    """One followed project (or ``"all"``) of one connection.

    ``pending`` is not None while the subscription catches up: the events the follower
    dispatched meanwhile (cursor, frame), in log order, already judged visible to it.
    ``resets`` counts the times ``pending`` overflowed and was emptied.
    """

    __slots__ = ("conn", "ended", "name", "pending", "resets")

    def __init__(self, name: str, conn: Socket, *, catching_up: bool) -> None:
        self.name = name
        self.conn = conn
        self.pending: list[tuple[Cursor, Outgoing]] | None = [] if catching_up else None
        self.resets = 0
        self.ended = False

    def over(self) -> bool:
        """Whether the subscription has ended (checked again after every ``await``)."""
        return self.ended


def send_error(conn: Socket, code: ErrorCode, detail: str, subscription: str | None = None) -> None:
    """Tell ``conn`` what went wrong (about ``subscription``, if it concerns one)."""
    conn.push(encode(ErrorFrame(code=code, detail=detail, subscription=subscription)))


C = TypeVar("C", bound=Socket)


class Subscriptions(Generic[C]):
    """The connections of this instance, their subscriptions, and what each is sent.

    Nothing here awaits: every method decides on the facts it is given and pushes frames
    into the sockets' buffers (which never block).

    Args:
        counters: the hub's counters. Counted here: ``connections``, ``connections_total``,
            ``subscriptions``, ``frames_encoded``, ``events_replayed`` (sockets count the rest).
        max_subscriptions: subscriptions one connection may hold.
        max_pending: events parked per catching-up subscription; past that they are dropped
            and its catch-up reads them from the log instead.
    """

    def __init__(
        self, counters: Counters, *, max_subscriptions: int = 100, max_pending: int = 1000
    ) -> None:
        self.counters = counters
        self._max_subscriptions = max_subscriptions
        self._max_pending = max_pending
        self._projects: dict[str, set[Subscription]] = {}
        self._all: set[Subscription] = set()
        self._people: dict[str, set[C]] = {}
        self._connections: set[C] = set()

    # ------------------------------------------------------------ connections

    def attach(self, conn: C) -> None:
        """Register a connection (authenticated, accepted)."""
        self._connections.add(conn)
        self._people.setdefault(conn.viewer.person_id, set()).add(conn)
        self.counters.connections += 1
        self.counters.connections_total += 1

    def detach(self, conn: C) -> None:
        """Forget a connection that is over, ending its subscriptions silently."""
        for sub in list(conn.subscriptions.values()):
            self.drop(sub)
        if conn in self._connections:
            self._connections.discard(conn)
            self.counters.connections -= 1
        people = self._people.get(conn.viewer.person_id)
        if people is not None:
            people.discard(conn)
            if not people:
                del self._people[conn.viewer.person_id]

    def connections(self) -> list[C]:
        """The attached connections, as of now."""
        return list(self._connections)

    def of_person(self, person_id: str) -> list[C]:
        """The attached connections of ``person_id``, as of now."""
        return list(self._people.get(person_id, ()))

    # ------------------------------------------------------------ subscribing

    def refusal(self, conn: Socket, name: str) -> ErrorFrame | None:
        """Why ``conn`` may not subscribe to ``name`` whatever the facts, or None."""
        held = conn.subscriptions
        if name in held or (name == ALL and held) or (name != ALL and ALL in held):
            # Overlapping subscriptions would deliver an event twice on one socket.
            return ErrorFrame(
                code="already_subscribed",
                detail="overlaps a subscription you hold",
                subscription=name,
            )
        if len(held) >= self._max_subscriptions:
            return ErrorFrame(
                code="too_many_subscriptions",
                detail=f"a connection holds at most {self._max_subscriptions} subscriptions",
                subscription=name,
            )
        return None

    def open(self, conn: Socket, name: str, *, catching_up: bool) -> Subscription | None:
        """Register ``name`` for ``conn`` (the checks passed) and tell the client.

        A catching-up subscription parks its live events until :meth:`catch_up_step` turns
        it live. Returns None, and does nothing, if ``conn`` is closing or holds ``name``
        by now.
        """
        if conn.closing or name in conn.subscriptions:
            return None
        sub = Subscription(name, conn, catching_up=catching_up)
        conn.subscriptions[name] = sub
        (self._all if name == ALL else self._projects.setdefault(name, set())).add(sub)
        self.counters.subscriptions += 1
        conn.push(encode(Subscribed(subscription=name)))
        return sub

    def unsubscribe(self, conn: Socket, name: str) -> None:
        """End ``conn``'s subscription ``name`` at the client's request, answering it."""
        sub = conn.subscriptions.get(name)
        if sub is None:
            send_error(conn, "not_subscribed", "no such subscription", name)
            return
        self.drop(sub)
        conn.push(encode(Unsubscribed(subscription=sub.name)))

    def drop(self, sub: Subscription) -> None:
        """Forget ``sub`` silently (idempotent): no more of its events are sent."""
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

    def end(self, sub: Subscription, code: ErrorCode, detail: str) -> None:
        """End a subscription on the server's initiative, telling the client why."""
        if not sub.ended:
            self.drop(sub)
            send_error(sub.conn, code, detail, sub.name)

    def recheck(self, sub: Subscription, project: ProjectFacts | None) -> None:
        """End ``sub`` (of a project) with ``access_revoked`` unless its viewer may still
        follow the project of these facts (read after the change that raised the doubt)."""
        if not may_follow(sub.conn.viewer, project):
            self.end(sub, "access_revoked", _REVOKED)

    # ------------------------------------------------------------ person changes

    def deactivated(self, person_id: str) -> None:
        """Close the sockets of a person whose account was deactivated (4403)."""
        for conn in self.of_person(person_id):
            conn.close(CLOSE_DEACTIVATED, "the account was deactivated")

    def token_revoked(self, person_id: str, token_hash: str | None, reason: str) -> None:
        """Close the sockets of ``person_id`` authenticated with the revoked token
        (``token_hash``; None: no such token, nothing to close) for ``reason``."""
        # Deactivation revokes every token first, then deactivates: same close code.
        if reason == "deactivated":
            code, why = CLOSE_DEACTIVATED, "the account was deactivated"
        else:
            code, why = CLOSE_UNAUTHORIZED, "the token was revoked"
        for conn in self.of_person(person_id):
            if conn.token_hash == token_hash:
                conn.close(code, why)

    def role_changed(self, person_id: str, viewer: Viewer | None) -> list[Subscription]:
        """Give ``person_id``'s sockets their new ``viewer`` (None: the person is gone: their
        sockets close with 4403). Returns their project subscriptions, for the caller to
        :meth:`recheck` with the projects' current facts."""
        followed: list[Subscription] = []
        for conn in self.of_person(person_id):
            if viewer is None:
                conn.close(CLOSE_DEACTIVATED, "the account is gone")
                continue
            # The person's role changed, not the scope of the token the socket presented.
            conn.viewer = msgspec.structs.replace(viewer, scope=conn.viewer.scope)
            followed.extend(s for s in conn.subscriptions.values() if s.name != ALL)
        return followed

    # ------------------------------------------------------------ events

    def watched(self, project_id: str) -> bool:
        """Whether any subscription would be offered the events of ``project_id``."""
        return bool(self._all) or project_id in self._projects

    def subscribers(self, project_id: str) -> list[Subscription]:
        """The subscriptions offered the events of ``project_id``: its own and ``all``."""
        subs = self._projects.get(project_id)
        if subs is None:
            return list(self._all)
        return [*subs, *self._all]

    def fan_out(self, item: Judged) -> None:
        """Hand the follower's event ``item`` to every subscription allowed to see it, as
        :meth:`~.judged.Judged.told` says: redacted for its viewer, or a frame saying what
        it hid from them.

        A subscription of the project whose viewer may no longer see the project ends with
        ``access_revoked``. A catching-up subscription gets the frame parked in ``pending``
        with the event's cursor instead (at most ``max_pending``: past that the list is
        emptied and ``resets`` counted). Each distinct frame is encoded once, for the first
        socket it goes to (staff and clients told the same share it).

        The caller moves the follower's cursor to this event right after, without an
        ``await`` in between: :meth:`catch_up_step` counts on parking and cursor moving
        together.
        """
        project_id = item.event.project_id
        assert project_id is not None
        frames: dict[Told, Outgoing] = {}
        # The rules' answer per person (sockets of one person share it): (project, told).
        verdicts: dict[Viewer, tuple[bool, Told | None]] = {}
        for sub in self.subscribers(project_id):
            if sub.ended:
                continue
            viewer = sub.conn.viewer
            verdict = verdicts.get(viewer)
            if verdict is None:
                verdict = verdicts[viewer] = (may_follow(viewer, item.project), item.told(viewer))
            sees, told = verdict
            if not sees and sub.name == project_id:
                self.end(sub, "access_revoked", _REVOKED)
                continue
            if told is None:
                continue
            frame = frames.get(told)
            if frame is None:
                frame = frames[told] = encode(item.frame(told))
                self.counters.frames_encoded += 1
            if sub.pending is None:
                sub.conn.push(frame, event=True)
            else:
                sub.pending.append((item.event.cursor, frame))
                if len(sub.pending) > self._max_pending:
                    # Bounded: the catch-up reads these from the log instead.
                    sub.pending.clear()
                    sub.resets += 1

    def catch_up_step(
        self,
        sub: Subscription,
        cursor: Cursor,
        page: Sequence[RecordedEvent],
        judged: Sequence[Judged],
        *,
        head: Cursor,
        limit: int,
        resets: int,
    ) -> tuple[Cursor, bool]:
        """Send one page of ``sub``'s replay; at its end, turn ``sub`` live.

        Args:
            sub: a catching-up subscription (or one that ended meanwhile: nothing is sent).
            cursor: where the replay stood; ``page`` was read after it.
            page: the events read, in log order (the project's, or all of them for ``all``).
            judged: the project events of ``page``, judged, in the same order.
            head: the follower's cursor now. Events up to it are sent from ``page``; those
                after it are the follower's, parked in ``pending``.
            limit: how many events the read asked for (a full page: there may be more).
            resets: ``sub.resets`` before the read (it moved: parked events were dropped
                that this page may not reach).

        Returns:
            ``(cursor, more)``: where the replay stands, and whether to read after it again.
            When ``more`` is False, ``sub`` is over, or live with the parked events after
            the last replayed one sent, each once.

        The caller takes ``head`` and calls this without an ``await`` in between: the
        follower's cursor and ``pending`` cannot move while this decides.
        """
        if sub.ended:
            return cursor, False
        conn = sub.conn
        considered = [e for e in page if e.cursor <= head]
        if considered:
            cursor = considered[-1].cursor
        for item in judged:
            told = item.told(conn.viewer) if item.event.cursor <= head else None
            if told is not None:
                conn.push(encode(item.frame(told)), event=True)
                self.counters.events_replayed += 1
        if len(considered) == limit or sub.resets != resets:
            # More to read up to the follower's cursor, or parked events were dropped
            # after this page was read (this page may not reach them): read again.
            return cursor, True
        assert sub.pending is not None
        for at, frame in sub.pending:
            if at > cursor:
                conn.push(frame, event=True)
        sub.pending = None
        return cursor, False

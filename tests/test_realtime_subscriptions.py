"""The hub's bookkeeping without sockets or a database: subscriptions and their limits, the
fan-out of judged events, parking while catching up, the catch-up's switch to live, and
person changes (``service.realtime.subscriptions``, ``service.realtime.judged``).

Events are decided by the domain and judged on the facts folded from them; sockets are
fakes that record what they are sent and how they are closed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from service.domain.access import RecordingFacts, Viewer
from service.domain.activity import KnownRecording, created_recording
from service.domain.context import Context
from service.domain.messages import PostMessage, decide_post_message
from service.domain.projects import (
    CreateProject,
    ProjectState,
    decide_create_project,
    evolve_project,
    project_facts,
)
from service.domain.recordings import fold_recording, recording_facts
from service.domain.redaction import mentions
from service.events.base import Event, Metadata, RecordedEvent, type_name
from service.events.people import TokenRevoked
from service.events.projects import ProjectMemberAdded, ProjectMemberRemoved, ProjectRole
from service.events.streams import person_stream, project_stream, recording_id_of, recording_stream
from service.realtime.counters import Counters
from service.realtime.judged import Judged
from service.realtime.protocol import ALL, Outgoing
from service.realtime.subscriptions import Subscription, Subscriptions

AT = datetime(2026, 11, 28, 10, 15, tzinfo=UTC)
ADA = Viewer(person_id="per_ada", role="admin")
MAX = Viewer(person_id="per_max", role="member")
CLEO = Viewer(person_id="per_cleo", role="client")


class FakeSocket:
    """A connection that keeps what it is sent and how it was closed (pushes to a closing
    socket are ignored, as :class:`service.realtime.connection.Connection` does)."""

    def __init__(self, viewer: Viewer, token_hash: str = "hash-1") -> None:
        self.viewer = viewer
        self.token_hash = token_hash
        self.subscriptions: dict[str, Subscription] = {}
        self.sent: list[tuple[Outgoing, bool]] = []
        self.closed: list[tuple[int, str]] = []

    @property
    def closing(self) -> bool:
        return bool(self.closed)

    def push(self, frame: Outgoing, *, event: bool = False) -> None:
        if not self.closing:
            self.sent.append((frame, event))

    def close(self, code: int, reason: str = "") -> None:
        if not self.closing:
            self.closed.append((code, reason))

    def frames(self) -> list[dict[str, Any]]:
        return [json.loads(frame.text) for frame, _ in self.sent]

    def positions(self) -> list[int]:
        """Positions of the frames pushed as events (counted as events sent), in order."""
        frames = [json.loads(frame.text) for frame, event in self.sent if event]
        assert all(f["type"] == "event" for f in frames)
        return [f["position"] for f in frames]

    def last(self) -> dict[str, Any]:
        return self.frames()[-1]


class World:
    """Projects and messages decided by the domain and appended to one in-memory log; an
    event is judged on the facts folded from everything recorded so far (what the hub's
    read models show once they have applied it)."""

    def __init__(self) -> None:
        self.log: list[RecordedEvent] = []
        self.projects: dict[str, ProjectState] = {}
        self.recordings: dict[str, list[Event]] = {}

    def _append(self, stream_id: str, project_id: str | None, events: Iterable[Event]) -> None:
        for event in events:
            position = len(self.log) + 1
            version = 1 + sum(1 for e in self.log if e.stream_id == stream_id)
            self.log.append(
                RecordedEvent(
                    position, position, stream_id, version, project_id, type_name(type(event)),
                    1, event, Metadata(actor=ADA.person_id), AT, b"",
                )
            )  # fmt: skip
            recording_id = recording_id_of(stream_id)
            if recording_id is not None:
                self.recordings.setdefault(recording_id, []).append(event)
            elif project_id is not None:
                self.projects[project_id] = evolve_project(self.projects.get(project_id), event)

    def project(
        self, project_id: str, *members: tuple[Viewer, ProjectRole], clients: bool = True
    ) -> None:
        created = decide_create_project(
            CreateProject(project_id=project_id, name="Launch", clients_enabled=clients),
            Context(actor=ADA, now=AT),
        )
        joined = [ProjectMemberAdded(person_id=v.person_id, project_role=r) for v, r in members]
        self._append(project_stream(project_id), project_id, [*created, *joined])

    def remove(self, project_id: str, person: Viewer) -> RecordedEvent:
        removed = ProjectMemberRemoved(person_id=person.person_id)
        self._append(project_stream(project_id), project_id, [removed])
        return self.log[-1]

    def post(self, project_id: str, subject: str, *, visible: bool = False) -> RecordedEvent:
        recording_id = f"rec_{len(self.log) + 1}"
        message = PostMessage(
            recording_id=recording_id, subject=subject, body="<p>…</p>", visible_to_clients=visible
        )
        posted = decide_post_message(self.projects[project_id], message, Context(actor=ADA, now=AT))
        self._append(recording_stream(recording_id), project_id, posted)
        return self.log[-1]

    def revoke_token(self, person: Viewer) -> RecordedEvent:
        """An event of no project (a person's stream)."""
        revoked = TokenRevoked(token_id="tok_1", reason="revoked")
        self._append(person_stream(person.person_id), None, [revoked])
        return self.log[-1]

    def judged(self, event: RecordedEvent) -> Judged:
        assert event.project_id is not None
        recordings: dict[str, tuple[RecordingFacts, KnownRecording]] = {}
        for recording_id, events in self.recordings.items():
            known = created_recording(events[0])
            state = fold_recording(events)
            assert known is not None
            assert state is not None
            recordings[recording_id] = (recording_facts(state), known)
        project = self.projects.get(event.project_id)
        # As the hub does: the projects of the people it names who are not on its project.
        facts = {p: project_facts(state) for p, state in self.projects.items()}
        named = mentions(event.event, event.metadata.actor).people
        outsiders = named - set(facts[event.project_id].members if project else ())
        people = {p: [f for f in facts.values() if p in f.members] for p in outsiders}
        return Judged.of(event, facts.get(event.project_id), recordings, people)

    def judge(self, events: Sequence[RecordedEvent]) -> list[Judged]:
        return [self.judged(e) for e in events if e.project_id is not None]


@pytest.fixture
def world() -> World:
    world = World()
    world.project("prj_1", (MAX, "member"), (CLEO, "client"))
    world.project("prj_2")
    return world


def book(**limits: int) -> Subscriptions[FakeSocket]:
    return Subscriptions(Counters(), **limits)


def connected(subs: Subscriptions[FakeSocket], viewer: Viewer, *names: str) -> FakeSocket:
    """A socket of ``viewer``, attached, holding live subscriptions ``names``."""
    conn = FakeSocket(viewer)
    subs.attach(conn)
    for name in names:
        assert subs.open(conn, name, catching_up=False) is not None
    return conn


def catching_up(subs: Subscriptions[FakeSocket], viewer: Viewer, name: str) -> Subscription:
    """A subscription of a new socket of ``viewer`` that catches up."""
    conn = connected(subs, viewer)
    sub = subs.open(conn, name, catching_up=True)
    assert sub is not None
    return sub


def socket(sub: Subscription) -> FakeSocket:
    assert isinstance(sub.conn, FakeSocket)
    return sub.conn


# ------------------------------------------------------------------ subscribing


def test_open_registers_the_subscription_and_says_subscribed() -> None:
    """Opening a subscription registers it on the socket, counts it and answers ``subscribed``."""
    subs = book()
    conn = connected(subs, MAX)
    sub = subs.open(conn, "prj_1", catching_up=False)
    assert sub is not None
    assert conn.subscriptions == {"prj_1": sub}
    assert conn.frames() == [{"type": "subscribed", "subscription": "prj_1"}]
    assert subs.subscribers("prj_1") == [sub]
    assert subs.counters.subscriptions == 1


@pytest.mark.parametrize(
    ("held", "asked"),
    [("prj_1", "prj_1"), ("prj_1", ALL), (ALL, "prj_2"), (ALL, ALL)],
)
def test_overlapping_subscriptions_are_refused(held: str, asked: str) -> None:
    """A subscription that overlaps one the socket holds is refused with ``already_subscribed``."""
    subs = book()
    conn = connected(subs, ADA, held)
    refusal = subs.refusal(conn, asked)
    assert refusal is not None
    assert (refusal.code, refusal.subscription) == ("already_subscribed", asked)


def test_distinct_projects_do_not_overlap() -> None:
    """Two different projects may be followed on one socket."""
    subs = book()
    assert subs.refusal(connected(subs, ADA, "prj_1"), "prj_2") is None


def test_a_socket_holds_at_most_max_subscriptions() -> None:
    """Past ``max_subscriptions`` a subscription is refused with ``too_many_subscriptions``."""
    subs = book(max_subscriptions=2)
    conn = connected(subs, ADA, "prj_1", "prj_2")
    refusal = subs.refusal(conn, "prj_3")
    assert refusal is not None
    assert refusal.code == "too_many_subscriptions"
    assert refusal.detail == "a connection holds at most 2 subscriptions"
    subs.unsubscribe(conn, "prj_2")
    assert subs.refusal(conn, "prj_3") is None


@pytest.mark.parametrize("why", ["closing", "held"])
def test_open_does_nothing_once_the_socket_closes_or_holds_the_name(why: str) -> None:
    """Opening on a closing socket, or a name it got meanwhile, registers and sends nothing."""
    subs = book()
    conn = connected(subs, ADA, "prj_1")
    if why == "closing":
        conn.close(1012)
    assert subs.open(conn, "prj_1" if why == "held" else "prj_2", catching_up=False) is None
    assert len(conn.sent) == 1
    assert subs.counters.subscriptions == 1


def test_unsubscribe_ends_the_subscription_and_answers() -> None:
    """``unsubscribe`` forgets the subscription and answers ``unsubscribed``; events stop."""
    world, subs = World(), book()
    world.project("prj_1")
    conn = connected(subs, ADA, "prj_1")
    subs.unsubscribe(conn, "prj_1")
    assert conn.last() == {"type": "unsubscribed", "subscription": "prj_1"}
    assert conn.subscriptions == {}
    assert not subs.watched("prj_1")
    subs.fan_out(world.judged(world.post("prj_1", "after")))
    assert conn.positions() == []
    assert subs.counters.subscriptions == 0


def test_unsubscribe_of_what_is_not_held_is_an_error() -> None:
    """``unsubscribe`` of a name the socket does not follow answers ``not_subscribed``."""
    subs = book()
    conn = connected(subs, ADA)
    subs.unsubscribe(conn, "prj_x")
    assert conn.last() == {
        "type": "error",
        "code": "not_subscribed",
        "detail": "no such subscription",
        "subscription": "prj_x",
    }


# ------------------------------------------------------------------ connections


def test_attach_and_detach_keep_the_connection_counters() -> None:
    """Attaching counts a connection; detaching uncounts it once and ends its subscriptions
    silently."""
    subs = book()
    first = connected(subs, MAX, "prj_1", "prj_2")
    second = connected(subs, MAX, ALL)
    assert (subs.counters.connections, subs.counters.connections_total) == (2, 2)
    assert subs.counters.subscriptions == 3
    sent = len(first.sent)
    subs.detach(first)
    subs.detach(first)
    assert first.subscriptions == {}
    assert len(first.sent) == sent
    assert (subs.counters.connections, subs.counters.connections_total) == (1, 2)
    assert subs.counters.subscriptions == 1
    assert subs.of_person(MAX.person_id) == [second]
    assert subs.connections() == [second]
    subs.detach(second)
    assert subs.of_person(MAX.person_id) == []
    assert not subs.watched("prj_1")
    assert subs.counters.subscriptions == 0


def test_drop_is_silent_and_idempotent() -> None:
    """Dropping a subscription twice forgets and uncounts it once, without a frame."""
    subs = book()
    conn = connected(subs, ADA, "prj_1")
    (sub,) = conn.subscriptions.values()
    subs.drop(sub)
    subs.drop(sub)
    assert sub.over()
    assert subs.subscribers("prj_1") == []
    assert subs.counters.subscriptions == 0
    assert len(conn.sent) == 1


# ------------------------------------------------------------------ fan-out


def test_one_frame_is_encoded_once_and_shared_by_every_socket(world: World) -> None:
    """An event seen by several sockets (staff and client) is encoded once, the same object
    going to each."""
    subs = book()
    conns = [connected(subs, ADA, "prj_1"), connected(subs, MAX, ALL), connected(subs, CLEO, ALL)]
    event = world.post("prj_1", "for everyone", visible=True)
    subs.fan_out(world.judged(event))
    (a, _), (b, _), (c, _) = (conn.sent[-1] for conn in conns)
    assert a is b is c
    assert [conn.positions() for conn in conns] == [[event.position]] * 3
    assert subs.counters.frames_encoded == 1
    assert conns[0].last()["kind"] == "message_posted"


def test_each_redaction_is_encoded_once_and_shared_by_the_sockets_told_the_same(
    world: World,
) -> None:
    """An event by someone a client may not be told about is encoded twice: as it is for
    staff (one object for all of them), with that person null for clients."""
    subs = book()
    staff = [connected(subs, ADA, "prj_1"), connected(subs, MAX, ALL)]
    clients = [connected(subs, CLEO, "prj_1"), connected(subs, CLEO, ALL)]
    posted = world.post("prj_1", "from HQ", visible=True)
    outsider = msgspec.structs.replace(posted, metadata=Metadata(actor="per_hq"))
    project = world.projects["prj_1"]
    subs.fan_out(world.judged(outsider))
    (a, _), (b, _) = (conn.sent[-1] for conn in staff)
    (c, _), (d, _) = (conn.sent[-1] for conn in clients)
    assert a is b
    assert c is d
    assert subs.counters.frames_encoded == 2
    assert staff[0].last()["actor"] == "per_hq"
    assert clients[0].last()["actor"] is None
    assert clients[0].last()["data"] == staff[0].last()["data"]
    assert "per_hq" not in project.members


def test_clients_do_not_receive_hidden_items(world: World) -> None:
    """A message hidden from clients goes to staff only; a visible one to the client too."""
    subs = book()
    staff, client = connected(subs, MAX, "prj_1"), connected(subs, CLEO, "prj_1")
    hidden = world.post("prj_1", "internal")
    shown = world.post("prj_1", "for the client", visible=True)
    for event in (hidden, shown):
        subs.fan_out(world.judged(event))
    assert staff.positions() == [hidden.position, shown.position]
    assert client.positions() == [shown.position]
    assert client.subscriptions.keys() == {"prj_1"}


def test_an_event_nobody_may_see_is_not_encoded(world: World) -> None:
    """An event no subscriber may see is neither sent nor encoded."""
    subs = book()
    client = connected(subs, CLEO, ALL)
    subs.fan_out(world.judged(world.post("prj_1", "internal")))
    subs.fan_out(world.judged(world.post("prj_2", "elsewhere")))
    assert client.positions() == []
    assert subs.counters.frames_encoded == 0


def test_an_event_missing_from_the_read_models_is_shown_to_staff_only(world: World) -> None:
    """A recording missing from the read model counts as hidden from clients, and an event of
    a project that cannot be found goes to nobody."""
    event = world.post("prj_1", "shown", visible=True)
    project = project_facts(world.projects["prj_1"])
    unrecorded = Judged.of(event, project, {})
    assert [unrecorded.visible_to(v) for v in (ADA, MAX, CLEO)] == [True, True, False]
    assert world.judged(event).visible_to(CLEO)
    assert not Judged.of(event, None, {}).visible_to(ADA)


def test_all_follows_only_the_projects_one_sees(world: World) -> None:
    """``all`` brings the events of every project the person sees, and no error for others."""
    subs = book()
    conn = connected(subs, MAX, ALL)
    mine, theirs = world.post("prj_1", "mine"), world.post("prj_2", "theirs")
    for event in (mine, theirs):
        subs.fan_out(world.judged(event))
    assert [f["type"] for f in conn.frames()] == ["subscribed", "event"]
    assert conn.positions() == [mine.position]
    assert subs.watched("prj_2")
    assert subs.subscribers("prj_2") == list(conn.subscriptions.values())


def test_a_removed_member_gets_access_revoked_and_loses_the_subscription(world: World) -> None:
    """Removing a member ends their subscription of that project with ``access_revoked``;
    their ``all`` goes on, told once that the project is hidden from them, and the others
    get the event."""
    subs = book()
    removed, other = connected(subs, MAX, "prj_1"), connected(subs, ADA, "prj_1")
    removed_all = connected(subs, MAX, ALL)
    event = world.remove("prj_1", MAX)
    subs.fan_out(world.judged(event))
    assert removed.last() == {
        "type": "error",
        "code": "access_revoked",
        "detail": "you may no longer see this project",
        "subscription": "prj_1",
    }
    assert removed.subscriptions == {}
    assert removed.positions() == []
    hidden = {"kind": "project_hidden", "project_id": "prj_1", "recording": None, "data": None}
    assert removed_all.frames()[0] == {"type": "subscribed", "subscription": ALL}
    assert [{k: f[k] for k in hidden} for f in removed_all.frames()[1:]] == [hidden]
    assert removed_all.positions() == [event.position]
    assert other.positions() == [event.position]
    assert subs.counters.subscriptions == 2
    subs.fan_out(world.judged(world.post("prj_1", "after")))
    assert len(removed.sent) == 2
    assert len(removed_all.sent) == 2


def test_clients_hear_of_no_removal_even_of_someone_they_know(world: World) -> None:
    """A client is not told that someone left a project, even someone they still know from
    another project (as in the activity streams); staff are."""
    world.project("prj_3", (MAX, "member"), (CLEO, "client"))
    subs = book()
    client, staff = connected(subs, CLEO, "prj_1"), connected(subs, ADA, "prj_1")
    removed = world.remove("prj_1", MAX)
    subs.fan_out(world.judged(removed))
    assert client.positions() == []
    assert staff.positions() == [removed.position]


# ------------------------------------------------------------------ parking


def test_a_catching_up_subscription_parks_the_followers_events(world: World) -> None:
    """While catching up, the follower's events are parked with their cursors, the frame
    shared with the live sockets, and nothing is sent."""
    subs = book()
    live = connected(subs, ADA, "prj_1")
    sub = catching_up(subs, ADA, "prj_1")
    event = world.post("prj_1", "meanwhile")
    subs.fan_out(world.judged(event))
    assert socket(sub).positions() == []
    assert sub.pending == [(event.cursor, live.sent[-1][0])]
    assert subs.counters.frames_encoded == 1


def test_parked_events_are_bounded_and_each_overflow_is_counted(world: World) -> None:
    """Past ``max_pending`` parked events the list is emptied and ``resets`` counted."""
    subs = book(max_pending=2)
    sub = catching_up(subs, ADA, "prj_1")
    for i in range(3):
        subs.fan_out(world.judged(world.post("prj_1", f"m{i}")))
    assert (sub.pending, sub.resets) == ([], 1)
    last = world.post("prj_1", "m3")
    subs.fan_out(world.judged(last))
    assert sub.pending is not None
    assert [at for at, _ in sub.pending] == [last.cursor]
    assert sub.resets == 1


# ------------------------------------------------------------------ catch-up


def test_catch_up_sends_only_up_to_the_followers_cursor(world: World) -> None:
    """A replayed page is sent up to the follower's cursor; the rest comes live, once."""
    subs = book()
    sub = catching_up(subs, ADA, "prj_1")
    since = world.log[-1].cursor
    page = [world.post("prj_1", f"m{i}") for i in range(4)]
    cursor, more = subs.catch_up_step(
        sub, since, page, world.judge(page), head=page[1].cursor, limit=10, resets=0
    )
    assert (cursor, more) == (page[1].cursor, False)
    assert sub.pending is None
    for event in page[2:]:
        subs.fan_out(world.judged(event))
    assert socket(sub).positions() == [e.position for e in page]
    assert subs.counters.events_replayed == 2


def test_catch_up_reads_again_after_a_full_page(world: World) -> None:
    """A full page up to the follower's cursor means more to read: the step stays catching up."""
    subs = book()
    sub = catching_up(subs, ADA, "prj_1")
    since = world.log[-1].cursor
    page = [world.post("prj_1", f"m{i}") for i in range(2)]
    head = world.post("prj_1", "later").cursor
    cursor, more = subs.catch_up_step(
        sub, since, page, world.judge(page), head=head, limit=2, resets=0
    )
    assert (cursor, more) == (page[-1].cursor, True)
    assert sub.pending == []
    assert socket(sub).positions() == [e.position for e in page]


def test_catch_up_reads_again_when_parked_events_were_dropped(world: World) -> None:
    """When parked events were dropped after the page was read, the step reads again even
    though the page was not full."""
    subs = book(max_pending=1)
    sub = catching_up(subs, ADA, "prj_1")
    since = world.log[-1].cursor
    page = [world.post("prj_1", "replayed")]
    resets = sub.resets
    for i in range(2):
        subs.fan_out(world.judged(world.post("prj_1", f"live {i}")))
    assert sub.resets == resets + 1
    cursor, more = subs.catch_up_step(
        sub, since, page, world.judge(page), head=world.log[-1].cursor, limit=10, resets=resets
    )
    assert (cursor, more) == (page[0].cursor, True)
    assert sub.pending == []


def test_the_switch_sends_the_parked_events_after_the_last_replayed_one_exactly_once(
    world: World,
) -> None:
    """Turning live sends the parked events after the last replayed one, each once, in log
    order: no gap, no duplicate."""
    subs = book()
    sub = catching_up(subs, ADA, "prj_1")
    since = world.log[-1].cursor
    events = [world.post("prj_1", f"m{i}") for i in range(5)]
    # The follower fans out m1..m4 while the replay's read of m0..m2 is under way.
    for event in events[1:]:
        subs.fan_out(world.judged(event))
    page = events[:3]
    cursor, more = subs.catch_up_step(
        sub, since, page, world.judge(page), head=events[-1].cursor, limit=10, resets=0
    )
    assert (cursor, more) == (events[2].cursor, False)
    assert sub.pending is None
    assert socket(sub).positions() == [e.position for e in events]
    assert subs.counters.events_replayed == 3
    after = world.post("prj_1", "live")
    subs.fan_out(world.judged(after))
    assert socket(sub).positions() == [e.position for e in [*events, after]]


def test_a_replay_judges_with_the_same_rules_and_moves_past_hidden_events(world: World) -> None:
    """A client's replay skips what is hidden from clients but moves its cursor past it."""
    subs = book()
    sub = catching_up(subs, CLEO, "prj_1")
    since = world.log[-1].cursor
    page = [world.post("prj_1", "shown", visible=True), world.post("prj_1", "hidden")]
    cursor, more = subs.catch_up_step(
        sub, since, page, world.judge(page), head=page[-1].cursor, limit=2, resets=0
    )
    assert (cursor, more) == (page[-1].cursor, True)
    assert socket(sub).positions() == [page[0].position]
    assert subs.counters.events_replayed == 1


def test_a_replay_of_all_counts_events_of_no_project_towards_a_full_page(world: World) -> None:
    """For ``all``, events of no project fill the page and move the cursor, unsent."""
    subs = book()
    sub = catching_up(subs, MAX, ALL)
    since = world.log[-1].cursor
    page = [world.post("prj_1", "mine"), world.post("prj_2", "theirs"), world.revoke_token(MAX)]
    cursor, more = subs.catch_up_step(
        sub, since, page, world.judge(page), head=page[-1].cursor, limit=3, resets=0
    )
    assert (cursor, more) == (page[-1].cursor, True)
    assert socket(sub).positions() == [page[0].position]
    cursor, more = subs.catch_up_step(sub, cursor, [], [], head=page[-1].cursor, limit=3, resets=0)
    assert (cursor, more) == (page[-1].cursor, False)
    assert sub.pending is None


def test_a_catch_up_of_an_ended_subscription_sends_nothing(world: World) -> None:
    """Once the subscription has ended, the step sends nothing and stops the catch-up."""
    subs = book()
    sub = catching_up(subs, ADA, "prj_1")
    since = world.log[-1].cursor
    page = [world.post("prj_1", "too late")]
    subs.unsubscribe(socket(sub), "prj_1")
    sent = len(socket(sub).sent)
    assert subs.catch_up_step(
        sub, since, page, world.judge(page), head=page[-1].cursor, limit=10, resets=0
    ) == (since, False)
    assert len(socket(sub).sent) == sent


# ------------------------------------------------------------------ person changes


def test_deactivation_closes_every_socket_of_the_person() -> None:
    """A deactivated person's sockets all close with 4403; others stay open."""
    subs = book()
    mine, also_mine, theirs = connected(subs, MAX), connected(subs, MAX), connected(subs, ADA)
    subs.deactivated(MAX.person_id)
    assert mine.closed == also_mine.closed == [(4403, "the account was deactivated")]
    assert theirs.closed == []


@pytest.mark.parametrize(
    ("reason", "token_hash", "closed"),
    [
        ("revoked", "hash-1", [(4401, "the token was revoked")]),
        ("deactivated", "hash-1", [(4403, "the account was deactivated")]),
        ("revoked", None, []),
    ],
)
def test_token_revocation_closes_the_sockets_of_that_token(
    reason: str, token_hash: str | None, closed: list[tuple[int, str]]
) -> None:
    """A revoked token closes the person's sockets that used it (4401, or 4403 when the
    account is being deactivated); their other sockets stay open."""
    subs = book()
    used, other = FakeSocket(MAX, "hash-1"), FakeSocket(MAX, "hash-2")
    subs.attach(used)
    subs.attach(other)
    subs.token_revoked(MAX.person_id, token_hash, reason)
    assert (used.closed, other.closed) == (closed, [])


def test_a_role_change_updates_viewers_and_rechecks_their_projects(world: World) -> None:
    """A new role reaches the person's sockets; a project they may no longer see ends with
    ``access_revoked`` on recheck, ``all`` is not rechecked."""
    subs = book()
    world.project("prj_3", (MAX, "member"), clients=False)
    first, second = connected(subs, MAX, "prj_1", "prj_3"), connected(subs, MAX, ALL)
    demoted = Viewer(person_id=MAX.person_id, role="client")
    followed = subs.role_changed(MAX.person_id, demoted)
    assert first.viewer == second.viewer == demoted
    assert sorted(s.name for s in followed) == ["prj_1", "prj_3"]
    for sub in followed:
        subs.recheck(sub, project_facts(world.projects[sub.name]))
    assert first.subscriptions.keys() == {"prj_1"}
    assert first.last()["code"] == "access_revoked"
    assert first.last()["subscription"] == "prj_3"


def test_a_person_gone_on_role_change_is_closed() -> None:
    """A role change of a person who can no longer be found closes their sockets with 4403."""
    subs = book()
    conn = connected(subs, MAX, "prj_1")
    assert subs.role_changed(MAX.person_id, None) == []
    assert conn.closed == [(4403, "the account is gone")]


# ------------------------------------------------------------------ purity


def test_the_bookkeeping_does_no_io() -> None:
    """The pure modules import neither asyncio, asyncpg, starlette, websockets nor the
    socket side of the hub."""
    check = (
        "import sys, service.realtime.subscriptions, service.realtime.judged\n"
        "banned = ('asyncio', 'asyncpg', 'starlette', 'websockets',\n"
        "          'service.realtime.connection', 'service.realtime.hub')\n"
        "print(sorted(m for m in banned if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"

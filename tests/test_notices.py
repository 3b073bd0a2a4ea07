"""Notices: who is told of what (the pure rule, service/domain/notices.py, over the access
rules), and the notice worker (service/workers/notices.py) recording it in the log: one
``PeopleNotified`` per event, with two instances running too, and nothing for history."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import httpx
import pytest

from bench.rebuild import Workload, load
from service.domain.access import ProjectFacts, RecordingFacts, Viewer
from service.domain.notices import NoticeFacts, notice_of, notification_id
from service.events import alerts as al
from service.events import recordings as rc
from service.events.base import Event, FieldChange, Metadata
from service.events.store import ANY, EventStore
from service.events.streams import recording_stream

from .support.api import Api, add_admin, bearer, known_token, new_person
from .support.servers import serving
from .support.teams import Team
from .support.waiting import eventually

AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
PEOPLE = {
    "ada": Viewer(person_id="ada", role="admin"),
    "olga": Viewer(person_id="olga", role="member"),
    "max": Viewer(person_id="max", role="member"),
    "cleo": Viewer(person_id="cleo", role="client"),
    "gone": Viewer(person_id="gone", role="member", active=False),
    "otto": Viewer(person_id="otto", role="member"),
}
PROJECT = ProjectFacts(
    project_id="prj",
    status="active",
    clients_enabled=True,
    members={
        "ada": "owner",
        "olga": "member",
        "max": "member",
        "cleo": "client",
        "gone": "member",
    },
)


def _facts(
    kind: str = "message", *, visible: bool = True, parent: str | None = None, **more: Any
) -> NoticeFacts:
    recording = RecordingFacts(
        recording_id="rec",
        project_id="prj",
        kind=kind,  # type: ignore[arg-type]
        status="active",
        visible_to_clients=visible,
        creator_id="olga",
        assignee_ids=frozenset(more.pop("assignees", ())),
    )
    return NoticeFacts(
        project=PROJECT,
        recording=recording,
        parent_id=parent,
        assignees=recording.assignee_ids,
        people=PEOPLE,
        **more,
    )


def _message(subscribers: tuple[str, ...], visible: bool) -> rc.MessagePosted:
    return rc.MessagePosted(
        recording_id="rec", project_id="prj", creator_id="olga", at=AT, subject="S", body="<p/>",
        category=None, visible_to_clients=visible, subscriber_ids=subscribers,
    )  # fmt: skip


def _comment() -> rc.CommentAdded:
    return rc.CommentAdded(
        recording_id="rec", project_id="prj", creator_id="olga", at=AT, parent_id="msg",
        parent_kind="message", content="<p/>", subscriber_ids=("olga",),
    )  # fmt: skip


def _todo(assignees: tuple[str, ...]) -> rc.TodoAdded:
    return rc.TodoAdded(
        recording_id="rec", project_id="prj", creator_id="olga", at=AT, todolist_id="lst",
        content="T", notes=None, assignee_ids=assignees, starts_on=None, due_on=None,
        subscriber_ids=("olga", *assignees),
    )  # fmt: skip


def _milestone(responsible: str | None) -> rc.MilestoneCreated:
    return rc.MilestoneCreated(
        recording_id="rec", project_id="prj", creator_id="olga", at=AT, title="M",
        due_on=date(2026, 4, 1), responsible_id=responsible, notes=None,
        visible_to_clients=True, subscriber_ids=("olga",),
    )  # fmt: skip


_DUE = {"due_on": date(2026, 4, 1), "due_at": AT, "at": AT}
EVERYONE = frozenset(PEOPLE)

CASES: list[tuple[str, Event, NoticeFacts, str | None, tuple[str, ...]]] = [
    # (case, event, facts, kind, told): the actor is always olga (None for alerts).
    ("message: subscribers but the actor", _message(tuple(EVERYONE), True), _facts(),
     "message", ("ada", "cleo", "max")),
    ("message hidden from clients: not the client", _message(tuple(EVERYONE), False),
     _facts(visible=False), "message", ("ada", "max")),
    ("comment: the parent's subscribers", _comment(),
     _facts("comment", parent="msg", subscribers=frozenset({"ada", "olga", "cleo"})),
     "comment", ("ada", "cleo")),
    ("comment under a hidden message: not the client", _comment(),
     _facts("comment", visible=False, parent="msg", subscribers=frozenset({"ada", "cleo"})),
     "comment", ("ada",)),
    ("to-do assigned", _todo(("max", "olga")), _facts("todo"), "assignment", ("max",)),
    ("to-do without assignees", _todo(()), _facts("todo"), None, ()),
    ("assignees added by an edit: only the new ones",
     rc.TodoEdited(at=AT, changes=(
         FieldChange(field="assignee_ids", before=["max"], after=["max", "ada", "gone"]),)),
     _facts("todo"), "assignment", ("ada",)),
    ("assignees removed: nobody",
     rc.TodoEdited(at=AT, changes=(
         FieldChange(field="assignee_ids", before=["max", "ada"], after=["max"]),)),
     _facts("todo"), None, ()),
    ("milestone with a responsible person", _milestone("max"), _facts("milestone"),
     "assignment", ("max",)),
    ("responsible person changed",
     rc.MilestoneEdited(at=AT, changes=(
         FieldChange(field="responsible_id", before="max", after="ada"),)),
     _facts("milestone"), "assignment", ("ada",)),
    ("milestone due soon: its responsible person", al.MilestoneDueSoon(**_DUE),
     _facts("milestone", responsible_id="max"), "milestone_due_soon", ("max",)),
    ("milestone overdue, nobody responsible", al.MilestoneOverdue(**_DUE),
     _facts("milestone"), None, ()),
    ("to-do overdue: its assignees", al.TodoOverdue(**_DUE),
     _facts("todo", assignees={"max", "cleo", "gone"}), "todo_overdue", ("cleo", "max")),
    ("to-do due soon, hidden: not the client", al.TodoDueSoon(**_DUE),
     _facts("todo", visible=False, assignees={"max", "cleo"}), "todo_due_soon", ("max",)),
    ("a completion tells nobody", rc.TodoCompleted(at=AT, completer_id="olga"), _facts("todo"),
     None, ()),
    ("deactivated, unknown and non-members are never told",
     _message(("gone", "nobody", "otto"), True), _facts(), None, ()),
]  # fmt: skip


@pytest.mark.parametrize(
    ("event", "facts", "kind", "told"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_who_is_told(
    event: Event, facts: NoticeFacts, kind: str | None, told: tuple[str, ...]
) -> None:
    actor = None if isinstance(event, al.MilestoneDueSoon | al.TodoOverdue) else "olga"
    notice = notice_of(event, "rec", actor, facts)
    if kind is None:
        assert notice is None
        return
    assert notice is not None
    assert (notice.kind, notice.recipient_ids) == (kind, told)
    assert notice.recording_id == "rec"
    assert notice.thread_id == ("msg" if isinstance(event, rc.CommentAdded) else "rec")


def test_a_recording_the_read_models_lack_tells_nobody() -> None:
    facts = NoticeFacts(project=PROJECT, recording=None, people=PEOPLE)
    assert notice_of(_message(("ada",), True), "rec", "olga", facts) is None


def test_notification_ids_are_derived_from_the_event_and_the_person() -> None:
    first = notification_id(42, "per_a")
    assert first == notification_id(42, "per_a")
    assert len({first, notification_id(43, "per_a"), notification_id(42, "per_b")}) == 3
    assert first.startswith("ntf_")
    assert len(first) == 4 + 20
    int(first[4:], 16)


# ------------------------------------------------------------------ the worker


async def _notices(database_url: str) -> list[dict[str, Any]]:
    """Every PeopleNotified in the log, in log order, with its stream."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT stream_id, stream_version, project_id, event_type, data, metadata "
            "FROM events WHERE stream_id ^@ 'notice-' ORDER BY tx_id, position"
        )
    finally:
        await conn.close()
    notices = []
    for row in rows:
        assert row["event_type"] == "PeopleNotified"
        assert row["stream_version"] == 1
        assert row["project_id"] is None
        assert json.loads(row["metadata"])["actor"] == "system"
        data = json.loads(row["data"])
        assert row["stream_id"] == f"notice-{data['source_position']}"
        notices.append(data)
    return notices


async def _told(database_url: str, recording_id: str, count: int = 1) -> list[dict[str, Any]]:
    """The notices about ``recording_id``, once there are ``count`` of them."""

    async def there() -> list[dict[str, Any]]:
        found = [n for n in await _notices(database_url) if n["recording_id"] == recording_id]
        assert len(found) >= count, found
        return found

    return await eventually(there, timeout=10)


async def _ok(team: Team, method: str, path: str, body: Any, as_: Any = None) -> Any:
    reply = await team.c.request(method, path, json=body, headers=as_)
    assert reply.status_code < 300, reply.text
    return reply.json() if reply.content else None


async def test_who_is_told_of_what_is_done_over_http(team: Team) -> None:
    """Messages tell their subscribers, comments the parent's subscribers, assignments the
    people given them, alerts the responsible person; never the actor, nor a client of a
    hidden item or its comments, nor a deactivated person."""
    url, project, admin = team.api.server.database_url, team.project_id, team.api.admin_id
    dan_id, _ = await new_person(team.api, "Dan")
    await _ok(team, "PUT", f"/v1/projects/{project}/people/{dan_id}", {"project_role": "member"})
    visible = await team.message(visible_to_clients=True)
    (told,) = await _told(url, visible["id"])
    assert told["kind"] == "message"
    assert told["actor_id"] == admin
    assert sorted(told["recipient_ids"]) == sorted([team.mia_id, team.cleo_id, dan_id])
    assert (told["thread_id"], told["project_id"]) == (visible["id"], project)
    hidden = await team.message(visible_to_clients=False)
    (told,) = await _told(url, hidden["id"])
    assert sorted(told["recipient_ids"]) == sorted([team.mia_id, dan_id])

    # Mia comments on the visible message; then it is hidden and she comments again.
    await _ok(team, "POST", f"/v1/people/{dan_id}/deactivate", {})
    comment = await team.post(
        f"/v1/recordings/{visible['id']}/comments", {"content": "<p>one</p>"}, team.mia
    )
    (told,) = await _told(url, comment["id"])
    assert told["kind"] == "comment"
    assert told["thread_id"] == visible["id"]
    assert told["actor_id"] == team.mia_id
    assert sorted(told["recipient_ids"]) == sorted([admin, team.cleo_id])
    await _ok(
        team, "PUT", f"/v1/recordings/{visible['id']}/client_visibility",
        {"visible_to_clients": False},
    )  # fmt: skip
    comment = await team.post(
        f"/v1/recordings/{visible['id']}/comments", {"content": "<p>two</p>"}, team.mia
    )
    (told,) = await _told(url, comment["id"])
    assert told["recipient_ids"] == [admin]

    # Assignments: on creation, then an edit adding someone.
    todolist = await team.post(f"/v1/projects/{project}/todolists", {"name": "Plan"})
    todo = await team.post(
        f"/v1/todolists/{todolist['id']}/todos", {"content": "Ship", "assignee_ids": [team.mia_id]}
    )
    (told,) = await _told(url, todo["id"])
    assert (told["kind"], told["recipient_ids"]) == ("assignment", [team.mia_id])
    await _ok(team, "PATCH", f"/v1/todos/{todo['id']}", {"assignee_ids": [team.mia_id, admin]})
    await _ok(team, "PATCH", f"/v1/todos/{todo['id']}", {"notes": "<p>no one told</p>"})
    milestone = await team.post(
        f"/v1/projects/{project}/milestones",
        {"title": "Beta", "due_on": "2030-01-01", "responsible_id": team.mia_id},
    )
    (told,) = await _told(url, milestone["id"])
    assert (told["kind"], told["recipient_ids"]) == ("assignment", [team.mia_id])

    # An alert, as the scheduler appends it (as Cairn), tells the to-do's assignees.
    store = await EventStore.open(url, min_size=1, max_size=2)
    try:
        due = {"due_on": date(2030, 1, 1), "due_at": AT, "at": AT}
        await store.append(
            recording_stream(todo["id"]), [al.TodoOverdue(**due)], ANY,
            Metadata(actor="system"), project_id=project,
        )  # fmt: skip
    finally:
        await store.close()
    told_of_todo = await _told(url, todo["id"], 2)
    alert = told_of_todo[-1]
    assert (alert["kind"], alert["actor_id"], alert["source_type"]) == (
        "todo_overdue", None, "TodoOverdue",
    )  # fmt: skip
    # The edit adding the admin told nobody: the admin made it (and Mia had it already).
    assert sorted(alert["recipient_ids"]) == sorted([admin, team.mia_id])
    assert [n["kind"] for n in told_of_todo] == ["assignment", "todo_overdue"]


async def test_one_notice_per_event_with_two_instances(api: Api) -> None:
    """Messages posted through two instances, each running the notice worker: every
    message gets exactly one notice (the second instance neither repeats nor loses any)."""
    url = api.server.database_url
    people = [await new_person(api, f"Member {i}") for i in range(3)]
    project = (await api.client.post("/v1/projects", json={"name": "Twice"})).json()["id"]
    for person_id, _ in people:
        await api.client.put(
            f"/v1/projects/{project}/people/{person_id}", json={"project_role": "member"}
        )
    async with (
        serving(url) as other,
        httpx.AsyncClient(
            base_url=other.base_url, headers={"Authorization": f"Bearer {api.admin_token}"}
        ) as second,
    ):

        async def post(client: httpx.AsyncClient, i: int) -> str:
            reply = await client.post(
                f"/v1/projects/{project}/messages", json={"subject": f"m{i}", "body": "<p>x</p>"}
            )
            assert reply.status_code == 201, reply.text
            return str(reply.json()["id"])

        posted = await asyncio.gather(
            *(post(api.client if i % 2 else second, i) for i in range(30))
        )

        async def all_told() -> list[dict[str, Any]]:
            notices = await _notices(url)
            assert {n["recording_id"] for n in notices} >= set(posted)
            return notices

        notices = await eventually(all_told, timeout=20)
    mine = [n for n in notices if n["recording_id"] in set(posted)]
    assert len(mine) == len(posted) == 30
    expected = sorted(p for p, _ in people)
    assert all(sorted(n["recipient_ids"]) == expected for n in mine)
    conn = await asyncpg.connect(url)
    try:
        handed = await conn.fetchval(
            "SELECT delivered FROM delivery_checkpoints WHERE name = 'notices'"
        )
    finally:
        await conn.close()
    assert handed >= 30


async def test_history_is_never_told(database_url: str) -> None:
    """A log written before the notice worker ever ran (thousands of messages, comments and
    assignments) gets no notice when a server starts on it; what happens next does."""
    store = await EventStore.open(database_url, min_size=1, max_size=4)
    try:
        await load(store, Workload(seed=3, people=12, max_projects=4).appends(1500), chunk=50)
        history = await store.head()
    finally:
        await store.close()
    async with serving(database_url) as server:
        admin = await add_admin(database_url, email="late@example.com")
        async with httpx.AsyncClient(
            base_url=server.base_url, headers=bearer(admin.token), timeout=30
        ) as client:
            await known_token(client, timeout=10)
            person_id = (
                await client.post(
                    "/v1/people", json={"name": "Nia", "email": "nia@example.com", "role": "member"}
                )
            ).json()["id"]
            project = (await client.post("/v1/projects", json={"name": "New"})).json()["id"]
            await client.put(
                f"/v1/projects/{project}/people/{person_id}", json={"project_role": "member"}
            )
            posted = await client.post(
                f"/v1/projects/{project}/messages", json={"subject": "Now", "body": "<p>x</p>"}
            )
            (told,) = await _told(database_url, posted.json()["id"])
    assert told["recipient_ids"] == [person_id]
    notices = await _notices(database_url)
    assert notices == [told]
    assert told["source_position"] > history[1]

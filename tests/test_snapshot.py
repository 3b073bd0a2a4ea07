"""Time travel: ``GET /v1/projects/{id}/snapshot`` and ``cairn replay``, over real HTTP and
real PostgreSQL.

People and projects are made through their HTTP routes; recordings through the domain's
``decide`` functions and the event store (:class:`Scenario`), exactly as the write routes do,
then the test waits for the read models to show them before it looks.
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from service.domain.snapshot import Replay
from service.events.base import Event, Metadata
from service.events.recordings import TodoAdded, TodoMoved
from service.events.store import EventStore

from .support.cli import CAIRN
from .support.scenario import TODAY, Scenario, pinned_to_today

# ------------------------------------------------------------------ helpers


@pytest.fixture
def server_settings() -> dict[str, object]:
    """The server's "today" is :data:`TODAY`, even when the suite runs past midnight."""
    return pinned_to_today()


async def head(api: Any) -> int:
    """The log head position the API reports now."""
    health = await api.client.get("/v1/health")
    return int(health.json()["head_position"])


async def read_model(api: Any, project_id: str) -> dict[str, Any]:
    """What the recordings read model (the source of every recordings GET) shows now."""
    store = await EventStore.open(api.server.database_url, min_size=1, max_size=1)
    try:
        rows = await store.pool.fetch(
            "SELECT * FROM recordings WHERE project_id = $1 ORDER BY seq", project_id
        )
    finally:
        await store.close()
    lists = {
        r["recording_id"]: [
            (t["recording_id"], t["position"], t["title"], t["completed"], t["status"])
            for t in sorted(
                (t for t in rows if t["kind"] == "todo" and t["parent_id"] == r["recording_id"]),
                key=lambda t: t["position"],
            )
        ]
        for r in rows
        if r["kind"] == "todolist"
    }
    milestones = [
        (r["recording_id"], r["title"], r["due_on"].isoformat(), r["completed"], r["status"])
        for r in rows
        if r["kind"] == "milestone"
    ]
    messages = [
        (r["recording_id"], r["title"], r["status"]) for r in rows if r["kind"] == "message"
    ]
    return {"lists": lists, "milestones": milestones, "messages": messages}


def shown(snapshot: dict[str, Any]) -> dict[str, Any]:
    """A snapshot in the shape of :func:`read_model`."""
    return {
        "lists": {
            tl["id"]: [
                (t["id"], t["position"], t["content"], t["completed"], t["status"])
                for t in tl["todos"]
            ]
            for tl in snapshot["todolists"]
        },
        "milestones": [
            (m["id"], m["title"], m["due_on"], m["completed"], m["status"])
            for m in snapshot["milestones"]
        ],
        "messages": [(m["id"], m["subject"], m["status"]) for m in snapshot["messages"]],
    }


async def cairn_replay(api: Any, project_id: str, position: int) -> tuple[int | None, bytes, bytes]:
    """``cairn replay --project ID --until-position N`` on the API's database: its exit
    code, standard output and standard error."""
    assert CAIRN is not None
    child = await asyncio.create_subprocess_exec(
        CAIRN,
        *("replay", "--project", project_id, "--until-position", str(position)),
        env={**os.environ, "DATABASE_URL": api.server.database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await child.communicate()
    return child.returncode, out, err


async def get_snapshot(client: httpx.AsyncClient, project_id: str, **params: Any) -> Any:
    reply = await client.get(f"/v1/projects/{project_id}/snapshot", params=params)
    assert reply.status_code == 200, reply.text
    return reply.json()


# ------------------------------------------------------------------ tests


def test_replay_keeps_each_lists_order_through_adds_and_moves() -> None:
    """Replaying TodoAdded and TodoMoved gives every list its order, clamped and 1-based."""
    from service.events.base import RecordedEvent

    at = datetime(2026, 1, 5, tzinfo=UTC)

    def recorded(position: int, recording_id: str, event: Event) -> RecordedEvent:
        return RecordedEvent(
            position=position,
            tx_id=position,
            stream_id=f"recording-{recording_id}",
            stream_version=1,
            project_id="prj",
            event_type=type(event).__name__,
            schema_version=1,
            event=event,
            metadata=Metadata(),
            recorded_at=at,
            hash=b"",
        )

    def added(position: int, todo: str, list_id: str) -> RecordedEvent:
        return recorded(
            position,
            todo,
            TodoAdded(
                recording_id=todo,
                project_id="prj",
                creator_id="per",
                at=at,
                todolist_id=list_id,
                content=todo,
                notes=None,
                assignee_ids=(),
                starts_on=None,
                due_on=None,
                subscriber_ids=(),
            ),
        )

    def moved(position: int, todo: str, source: str, target: str, place: int) -> RecordedEvent:
        event = TodoMoved(at=at, from_todolist_id=source, to_todolist_id=target, position=place)
        return recorded(position, todo, event)

    replay = Replay("prj")
    replay.extend([added(1, "a", "L"), added(2, "b", "L"), added(3, "c", "L")])
    replay.extend([moved(4, "c", "L", "L", 1), moved(5, "a", "L", "M", 9)])
    assert replay.orders == {"L": ["c", "b"], "M": ["a"]}
    assert replay.position == 5
    assert replay.count == 5


async def test_snapshots_equal_what_the_api_showed_at_each_moment(api: Any) -> None:
    """A snapshot at the head position of an earlier moment shows what the read models showed then."""
    async with Scenario.open(api) as s:
        project = await s.project("Launch")
        plan = await s.todolist(project, "Plan", visible=True)
        a = await s.todo(plan, "Write brief", due_on=TODAY + timedelta(days=1))
        b = await s.todo(plan, "Book venue")
        c = await s.todo(plan, "Print flyers")
        m = await s.milestone(project, "Ship v1", TODAY + timedelta(days=5))
        await s.message(project, "Kick-off")
        moments = []

        async def remember() -> None:
            overview = (await api.client.get(f"/v1/projects/{project}/overview")).json()
            gets = {}
            for path in [f"/v1/todolists/{t['id']}" for t in overview["todolists"]] + [
                f"/v1/milestones/{m}"
            ]:
                reply = await api.client.get(path)
                assert reply.status_code == 200, reply.text
                gets[path] = reply.json()
            moments.append((await head(api), await read_model(api, project), overview, gets))

        await remember()
        await s.complete(b)
        await s.move(c, 1)
        await s.reschedule(m, TODAY + timedelta(days=9))
        await s.set_status(a, "trashed")
        await s.message(project, "Venue booked")
        await remember()
        later = await s.todolist(project, "Later")
        await s.move(b, 1, later)
        await s.complete_milestone(m)
        await s.todo(later, "Retrospective")
        await remember()

        for position, model, overview, gets in moments:
            snapshot = await get_snapshot(api.client, project, position=position)
            assert snapshot["position"] == position
            assert shown(snapshot) == model
            for todolist in snapshot["todolists"]:
                got = gets[f"/v1/todolists/{todolist['id']}"]
                assert got["name"] == todolist["name"]
                assert got["progress"] == {
                    "completed": todolist["completed_count"],
                    "total": todolist["todos_count"],
                }
                # The list's GET shows its active to-dos, numbered within the whole order.
                assert [
                    (t["id"], t["position"], t["content"], t["completed"]) for t in got["todos"]
                ] == [
                    (t["id"], t["position"], t["content"], t["completed"])
                    for t in todolist["todos"]
                    if t["status"] == "active"
                ]
            (milestone,) = snapshot["milestones"]
            got = gets[f"/v1/milestones/{m}"]
            for field in ("title", "due_on", "completed", "completed_at", "status"):
                assert got[field] == milestone[field]
            progress = [
                {"id": t["id"], "completed": t["completed_count"], "total": t["todos_count"]}
                for t in snapshot["todolists"]
            ]
            assert [
                {k: p[k] for k in ("id", "completed", "total")} for p in overview["todolists"]
            ] == progress
            newest = sorted(snapshot["messages"], key=lambda x: x["created_at"], reverse=True)
            assert [x["id"] for x in overview["latest_messages"]] == [x["id"] for x in newest]

        # The first moment's to-do order, then the reorder and the move, as replayed.
        first = await get_snapshot(api.client, project, position=moments[0][0])
        assert [t["id"] for t in first["todolists"][0]["todos"]] == [a, b, c]
        last = await get_snapshot(api.client, project, position=moments[2][0])
        assert [t["id"] for t in last["todolists"][0]["todos"]] == [c, a]
        assert [t["position"] for t in last["todolists"][0]["todos"]] == [1, 2]
        assert last["milestones"][0]["completed"] is True
        assert first["milestones"][0]["due_on"] == (TODAY + timedelta(days=5)).isoformat()


async def test_at_a_time_replays_every_event_recorded_until_then(api: Any) -> None:
    """``?at=`` gives the same state as ``?position=`` of the last event recorded by then."""
    async with Scenario.open(api) as s:
        project = await s.project("Timeline")
        plan = await s.todolist(project, "Plan")
        todo = await s.todo(plan, "First")
        middle = await get_snapshot(api.client, project, position=await head(api))
        await s.complete(todo)
        await s.todo(plan, "Second")

        at = middle["last_event_at"]
        by_time = await get_snapshot(api.client, project, at=at)
        assert by_time["position"] == middle["last_event_position"]
        assert {**by_time, "position": 0} == {**middle, "position": 0}
        assert [t["completed"] for t in by_time["todos"]] == [False]

        before = await get_snapshot(api.client, project, at="2000-01-01T00:00:00Z")
        assert before["position"] == 0
        assert before["project"] is None
        assert before["todolists"] == []
        assert before["events_replayed"] == 0
        now = await get_snapshot(api.client, project, at=datetime.now(UTC).isoformat())
        assert [t["content"] for t in now["todos"]] == ["First", "Second"]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"position": "1", "at": "2026-01-01T00:00:00Z"},
        {"position": "x"},
        {"position": "-3"},
        {"at": "yesterday"},
        {"at": "2026-01-01T00:00:00"},
        {"at": "2026-01-01"},
    ],
)
async def test_bad_or_missing_parameters_get_400(api: Any, params: dict[str, str]) -> None:
    """Anything but exactly one well-formed ``position`` or ``at`` is a 400 problem."""
    async with Scenario.open(api) as s:
        project = await s.project("Params")
        reply = await api.client.get(f"/v1/projects/{project}/snapshot", params=params)
        assert reply.status_code == 400
        assert reply.headers["content-type"].startswith("application/problem+json")


async def test_unknown_position_and_unknown_project_get_404(api: Any) -> None:
    """A position no event has, and a project the caller cannot see, are 404s."""
    async with Scenario.open(api) as s:
        project = await s.project("Missing")
        outsider = await s.person("Otto Outsider", "member")
        for position in (10**12, 10**30):
            reply = await api.client.get(
                f"/v1/projects/{project}/snapshot", params={"position": position}
            )
            assert reply.status_code == 404
        for client, pid in [(api.client, "prj_nope"), (outsider.client, project)]:
            reply = await client.get(f"/v1/projects/{pid}/snapshot", params={"position": 1})
            assert reply.status_code == 404


async def test_a_client_sees_only_what_clients_could_see_then_and_can_see_now(api: Any) -> None:
    """A client's snapshot leaves out items hidden from clients then, or hidden since."""
    async with Scenario.open(api) as s:
        client = await s.person("Cleo Client", "client", company="Acme")
        project = await s.project("Shared", members=[(client, "client")])
        shared = await s.todolist(project, "Shared list", visible=True)
        internal = await s.todolist(project, "Internal list")
        await s.todo(shared, "Visible to-do")
        await s.todo(internal, "Secret to-do")
        shown_milestone = await s.milestone(project, "Public date", TODAY, visible=True)
        hidden_later = await s.milestone(project, "Was public", TODAY, visible=True)
        await s.message(project, "Internal memo")
        position = await head(api)
        await s.set_visible(hidden_later, False)

        staff = await get_snapshot(api.client, project, position=position)
        assert len(staff["todolists"]) == 2
        assert len(staff["milestones"]) == 2
        mine = await get_snapshot(client.client, project, position=position)
        text = json.dumps(mine)
        assert [t["id"] for t in mine["todolists"]] == [shared]
        assert [t["content"] for t in mine["todos"]] == ["Visible to-do"]
        assert [m["id"] for m in mine["milestones"]] == [shown_milestone]
        assert mine["messages"] == []
        for secret in ("Secret", "Internal", "Was public", internal, hidden_later):
            assert secret not in text


async def test_cairn_replay_prints_the_http_snapshot(api: Any) -> None:
    """``cairn replay --project ID --until-position N`` prints the admin's HTTP snapshot."""
    assert CAIRN is not None
    async with Scenario.open(api) as s:
        project = await s.project("Replayed")
        plan = await s.todolist(project, "Plan")
        first = await s.todo(plan, "One")
        await s.todo(plan, "Two")
        position = await head(api)
        await s.complete(first)
        expected = await get_snapshot(api.client, project, position=position)
        code, out, err = await cairn_replay(api, project, position)
        assert code == 0, err.decode()
        assert json.loads(out) == expected
        assert [t["completed"] for t in expected["todos"]] == [False, False]

        code, out, err = await cairn_replay(api, project, 10**12)
        assert code == 2
        assert out == b""
        assert b"no event at position" in err

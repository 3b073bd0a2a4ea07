"""Milestone and to-do alerts raised by the scheduler, with two server instances on one
database sharing a movable clock: exactly once per due date, re-armed by a reschedule,
cancelled by completion, timed in the responsible person's zone, shown in the activity."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import feedparser
import httpx
import pytest
from websockets.asyncio.client import ClientConnection

from service.events.store import EventStore
from service.events.streams import recording_stream
from service.projections import all_projections
from service.projections.engine import ProjectionEngine
from service.workers.alerts import AlertScheduler

from .support.api import Api, bearer, new_person
from .support.projections import rebuilt_differences
from .support.realtime import frame, subscribe, ws
from .support.servers import FixedClock, Server, serving
from .support.waiting import eventually

NOW = datetime(2026, 5, 28, 12, tzinfo=UTC)
DUE = "2026-06-01"
"""Ends 1 June 12:00 UTC in Auckland (UTC+12) and 2 June 07:00 UTC in Los Angeles (UTC-7)."""
INTERVAL = 0.05
"""Short, so that ticks come quickly; no assertion waits for time (see _tick_passed)."""
ALERTS = ("MilestoneDueSoon", "MilestoneOverdue", "TodoDueSoon", "TodoOverdue")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def server_settings(clock: FixedClock) -> dict[str, object]:
    return {"clock": clock, "alert_interval": INTERVAL}


@pytest.fixture
async def second(live_server: Server, clock: FixedClock) -> AsyncIterator[Server]:
    """A second instance on the same database and clock."""
    async with serving(live_server.database_url, clock=clock, alert_interval=INTERVAL) as other:
        yield other


async def _created(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> str:
    reply = await client.post(path, json=body)
    assert reply.status_code == 201, reply.text
    created: str = reply.json()["id"]
    return created


async def _alerts(store: EventStore, recording_id: str) -> list[tuple[str, str]]:
    events = await store.read_stream(recording_stream(recording_id))
    return [
        (type(e.event).__name__, str(e.event.due_on))  # type: ignore[attr-defined]
        for e in events
        if type(e.event).__name__ in ALERTS
    ]


async def _settle(
    store: EventStore, recording_id: str, expected: list[tuple[str, str]], *servers: Server
) -> None:
    """Wait until the recording's alerts are ``expected``, then until every scheduler of
    ``servers`` has decided again on the clock as it is, and check that none added one."""

    async def seen() -> None:
        assert await _alerts(store, recording_id) == expected

    await eventually(seen, timeout=10)
    await _tick_passed(*servers)
    assert await _alerts(store, recording_id) == expected


def _scheduler(server: Server) -> AlertScheduler:
    app: Any = server.uvicorn.config.app  # create_app's, which keeps its scheduler in state
    scheduler: AlertScheduler = app.state.alerts
    return scheduler


async def _tick_passed(*servers: Server) -> None:
    """Wait until each server's scheduler has ended a tick begun after this call (its tick
    counter moved by two): whatever the clock now makes owed has been decided on, by all."""
    started = [(_scheduler(s), _scheduler(s).ticks) for s in servers]
    assert started, "no scheduler to wait for"

    async def ticked() -> None:
        for scheduler, ticks in started:
            assert scheduler.ticks >= ticks + 2

    await eventually(ticked, timeout=10)


async def _project(api: Api, **settings: Any) -> tuple[str, dict[str, str]]:
    """A project with Ann (Auckland) and Lou (Los Angeles) as members: their ids by name."""
    c = api.client
    ann, _ = await new_person(api, "Ann", time_zone="Pacific/Auckland")
    lou, _ = await new_person(api, "Lou", time_zone="America/Los_Angeles")
    project_id = await _created(c, "/v1/projects", {"name": "Launch", **settings})
    for person_id in (ann, lou):
        added = await c.put(
            f"/v1/projects/{project_id}/people/{person_id}", json={"project_role": "member"}
        )
        assert added.status_code == 201, added.text
    return project_id, {"ann": ann, "lou": lou}


async def test_each_alert_fires_once_with_two_instances_and_follows_the_zone(
    api: Api, second: Server, store: EventStore, clock: FixedClock
) -> None:
    """Two instances, one clock: Ann's milestone (Auckland) gets "due soon" 48 h before
    1 June ends there and "overdue" at its end, once each, while Lou's (Los Angeles) gets
    its alerts 19 hours later."""
    project_id, people = await _project(api)
    milestones = f"/v1/projects/{project_id}/milestones"
    ann_m = await _created(
        api.client, milestones, {"title": "Ann", "due_on": DUE, "responsible_id": people["ann"]}
    )
    lou_m = await _created(
        api.client, milestones, {"title": "Lou", "due_on": DUE, "responsible_id": people["lou"]}
    )
    await _tick_passed(api.server, second)
    assert await _alerts(store, ann_m) == []
    clock.now = datetime(2026, 5, 30, 12, 30, tzinfo=UTC)  # 47.5 h before Auckland's end
    await _settle(store, ann_m, [("MilestoneDueSoon", DUE)], api.server, second)
    assert await _alerts(store, lou_m) == []
    clock.now = datetime(2026, 6, 1, 12, 30, tzinfo=UTC)  # 1 June over in Auckland
    await _settle(
        store, ann_m, [("MilestoneDueSoon", DUE), ("MilestoneOverdue", DUE)], api.server, second
    )
    await _settle(store, lou_m, [("MilestoneDueSoon", DUE)], api.server, second)
    clock.now = datetime(2026, 6, 2, 7, 30, tzinfo=UTC)  # 1 June over in Los Angeles
    await _settle(
        store, lou_m, [("MilestoneDueSoon", DUE), ("MilestoneOverdue", DUE)], api.server, second
    )
    # Stale "due soon" never follows an "overdue"; the activity shows them as Cairn's.
    reply = await api.client.get(
        f"/v1/projects/{project_id}/activity", headers={"Accept-Language": "fr"}
    )
    sentences = [e["sentence"] for e in reply.json()]
    # French quotes hold no-break spaces.
    assert "Le jalon «\u00a0Ann\u00a0» est en retard" in sentences, sentences
    assert "Le jalon «\u00a0Ann\u00a0» arrive à échéance dans 2 jours" in sentences
    # Lou's came when 1 June was over in Auckland, 18.5 hours before its end in Los Angeles.
    assert "Le jalon «\u00a0Lou\u00a0» arrive à échéance dans 18 heures" in sentences
    kinds = [e["kind"] for e in reply.json()]
    assert kinds.count("milestone_overdue") == 2
    assert kinds.count("milestone_due_soon") == 2


async def test_a_reschedule_rearms_and_completion_cancels(
    api: Api, store: EventStore, clock: FixedClock
) -> None:
    """A to-do assigned to Lou gets "due soon"; moved to a later date it gets it again for
    that date; completed, it gets no "overdue"; an unassigned to-do gets nothing."""
    project_id, people = await _project(api)
    c = api.client
    list_id = await _created(c, f"/v1/projects/{project_id}/todolists", {"name": "L"})
    todos = f"/v1/todolists/{list_id}/todos"
    todo = await _created(
        c, todos, {"content": "T", "due_on": DUE, "assignee_ids": [people["lou"]]}
    )
    alone = await _created(c, todos, {"content": "Nobody's", "due_on": DUE})
    clock.now = datetime(2026, 5, 31, 12, tzinfo=UTC)  # inside Lou's 48 h
    await _settle(store, todo, [("TodoDueSoon", DUE)], api.server)
    moved = await c.patch(f"/v1/todos/{todo}", json={"due_on": "2026-06-02"})
    assert moved.status_code == 200, moved.text
    clock.now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    await _settle(store, todo, [("TodoDueSoon", DUE), ("TodoDueSoon", "2026-06-02")], api.server)
    done = await c.post(f"/v1/todos/{todo}/completion")
    assert done.status_code in (200, 201), done.text
    clock.now = datetime(2026, 6, 10, tzinfo=UTC)
    await _settle(store, todo, [("TodoDueSoon", DUE), ("TodoDueSoon", "2026-06-02")], api.server)
    assert await _alerts(store, alone) == []


async def test_alert_hours_is_a_project_setting(
    api: Api, store: EventStore, clock: FixedClock
) -> None:
    """``alert_hours`` is shown, checked (1..720) and changes when "due soon" fires."""
    c = api.client
    project_id, people = await _project(api, alert_hours=2)
    shown = await c.get(f"/v1/projects/{project_id}")
    assert shown.json()["alert_hours"] == 2
    bad = await c.patch(f"/v1/projects/{project_id}", json={"alert_hours": 721})
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    milestone = await _created(
        c,
        f"/v1/projects/{project_id}/milestones",
        {"title": "M", "due_on": DUE, "responsible_id": people["lou"]},
    )
    clock.now = datetime(2026, 6, 2, 4, 30, tzinfo=UTC)  # 2.5 h before Los Angeles' end
    await _tick_passed(api.server)
    assert await _alerts(store, milestone) == []
    clock.now = datetime(2026, 6, 2, 5, 30, tzinfo=UTC)  # 1.5 h before
    await _settle(store, milestone, [("MilestoneDueSoon", DUE)], api.server)
    edited = await c.patch(f"/v1/projects/{project_id}", json={"alert_hours": 720})
    assert edited.json()["alert_hours"] == 720
    # Thirty days ahead now counts as soon: a milestone due in 24 days is told at once
    # (with the default 48 hours it would wait three weeks).
    later = await _created(
        c,
        f"/v1/projects/{project_id}/milestones",
        {"title": "Later", "due_on": "2026-06-26", "responsible_id": people["lou"]},
    )
    await _settle(store, later, [("MilestoneDueSoon", "2026-06-26")], api.server)


async def _alert_frames(conn: ClientConnection, until: str) -> list[dict[str, Any]]:
    """The alert frames ``conn`` receives before the first frame about ``until``, every
    frame about a recording checked to be an alert or ``until``'s."""
    alerts: list[dict[str, Any]] = []
    while True:
        got = await frame(conn)
        assert got["type"] == "event", got
        if got["recording"] == until:
            return alerts
        if got["kind"].endswith(("_due_soon", "_overdue")):
            alerts.append(got)


async def test_alerts_reach_feeds_and_sockets_and_clients_only_see_theirs(
    api: Api, store: EventStore, clock: FixedClock
) -> None:
    """An alert is an event of the project like any other: in its Atom feed (its sentence as
    the entry's title) and on a WebSocket subscription to it (kind ``milestone_due_soon``,
    ``todo_overdue``...); a client hears of neither channel's alerts about a milestone hidden
    from clients."""
    c = api.client
    project_id, people = await _project(api, clients_enabled=True)
    cleo, cleo_token = await new_person(api, "Cleo", role="client")
    added = await c.put(f"/v1/projects/{project_id}/people/{cleo}", json={"project_role": "client"})
    assert added.status_code == 201, added.text
    milestones = f"/v1/projects/{project_id}/milestones"
    lou = people["lou"]
    public = await _created(
        c,
        milestones,
        {"title": "Public", "due_on": DUE, "responsible_id": lou, "visible_to_clients": True},
    )
    secret = await _created(
        c, milestones, {"title": "Secret", "due_on": DUE, "responsible_id": lou}
    )
    list_id = await _created(c, f"/v1/projects/{project_id}/todolists", {"name": "L"})
    todo = await _created(
        c,
        f"/v1/todolists/{list_id}/todos",
        {"content": "Ship", "due_on": DUE, "assignee_ids": [lou]},
    )
    async with (
        ws(api.server.ws_url, api.admin_token) as staff,
        ws(api.server.ws_url, cleo_token) as client,
    ):
        await subscribe(staff, project_id)
        await subscribe(client, project_id)
        raised = {public: "Milestone", secret: "Milestone", todo: "Todo"}
        clock.now = datetime(2026, 5, 31, 7, 30, tzinfo=UTC)  # 47.5 h before LA's end
        for recording, kind in raised.items():
            await _settle(store, recording, [(f"{kind}DueSoon", DUE)], api.server)
        clock.now = datetime(2026, 6, 2, 7, 30, tzinfo=UTC)  # 1 June over in Los Angeles
        for recording, kind in raised.items():
            expected = [(f"{kind}DueSoon", DUE), (f"{kind}Overdue", DUE)]
            await _settle(store, recording, expected, api.server)
        # A message visible to clients, after the alerts in the log: each socket's last frame.
        marker = await _created(
            c,
            f"/v1/projects/{project_id}/messages",
            {"subject": "Marker", "body": "<p>m</p>", "visible_to_clients": True},
        )
        told_staff = await _alert_frames(staff, marker)
        told_client = await _alert_frames(client, marker)
    assert sorted((f["kind"], f["recording"]) for f in told_staff) == sorted(
        [
            *[("milestone_due_soon", public), ("milestone_due_soon", secret)],
            ("todo_due_soon", todo),
            *[("milestone_overdue", public), ("milestone_overdue", secret)],
            ("todo_overdue", todo),
        ]
    )
    assert {f["actor"] for f in told_staff} == {"system"}
    assert told_staff[0]["data"]["due_on"] == DUE
    # The list is hidden from clients (the default), as is the secret milestone.
    assert [(f["kind"], f["recording"]) for f in told_client] == [
        ("milestone_due_soon", public),
        ("milestone_overdue", public),
    ]

    async def feed(token: str) -> list[str]:
        async with httpx.AsyncClient(base_url=api.server.base_url, timeout=30) as anon:
            issued = await anon.post("/v1/me/feed_token", headers=bearer(token))
            assert issued.status_code == 200, issued.text
            got = await anon.get(
                f"/feeds/projects/{project_id}.atom", params={"token": issued.json()["token"]}
            )
        assert got.status_code == 200, got.text
        parsed = feedparser.parse(got.content)
        assert not parsed.bozo, parsed.bozo_exception
        return [e.title for e in parsed.entries]

    staff_titles = await feed(api.admin_token)
    # Newest first: the marker, the three "overdue", then the three "due soon" (in no given
    # order each).
    assert staff_titles[0] == "Ada Admin posted the message “Marker”"
    assert set(staff_titles[1:4]) == {
        "The milestone “Public” is overdue",
        "The milestone “Secret” is overdue",
        "The to-do “Ship” is overdue",
    }, staff_titles
    assert set(staff_titles[4:7]) == {
        "The milestone “Public” is due in 2 days",
        "The milestone “Secret” is due in 2 days",
        "The to-do “Ship” is due in 2 days",
    }, staff_titles
    client_titles = await feed(cleo_token)
    assert client_titles[:3] == [
        "Ada Admin posted the message “Marker”",
        "The milestone “Public” is overdue",
        "The milestone “Public” is due in 2 days",
    ], client_titles
    assert not [t for t in client_titles if "Secret" in t]
    # Every read model rebuilt from the log (in bulk) holds the alerts as they were applied.
    assert await rebuilt_differences(store, ProjectionEngine(store, all_projections())) == {}

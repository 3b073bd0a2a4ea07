"""Cross-project reports: my assignments, overdue and upcoming, over real HTTP and PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from .support.scenario import TODAY, Scenario, pinned_to_today


@pytest.fixture
def server_settings() -> dict[str, object]:
    """The server's "today" is :data:`TODAY`, even when the suite runs past midnight."""
    return pinned_to_today()


async def test_my_assignments_are_grouped_by_project_with_due_dates(api: Any) -> None:
    """Open to-dos assigned to the caller, by project then due date; done and trashed ones left out."""
    async with Scenario.open(api) as s:
        mia = await s.person("Mia Member", "member")
        alpha = await s.project("Alpha", members=[(mia, "member")])
        beta = await s.project("Beta", members=[(mia, "member")])
        gamma = await s.project("Gamma")
        a_list = await s.todolist(alpha, "A tasks")
        b_list = await s.todolist(beta, "B tasks")
        g_list = await s.todolist(gamma, "G tasks")
        undated = await s.todo(a_list, "Undated", assignees=[mia.id])
        due_soon = await s.todo(a_list, "Due soon", assignees=[mia.id], due_on=TODAY)
        late = await s.todo(b_list, "Late", assignees=[mia.id], due_on=TODAY - timedelta(days=1))
        done = await s.todo(b_list, "Done", assignees=[mia.id])
        trashed = await s.todo(b_list, "Trashed", assignees=[mia.id])
        await s.todo(b_list, "Someone else's")
        await s.todo(g_list, "Admin's own", assignees=[api.admin_id])
        await s.complete(done)
        await s.set_status(trashed, "trashed")

        reply = await mia.client.get("/v1/my/assignments")
        assert reply.status_code == 200
        report = reply.json()
        assert report["today"] == TODAY.isoformat()
        assert report["total"] == 3
        assert report["overdue"] == 1
        grouped = [
            (group["project"]["id"], [(t["id"], t["due_on"]) for t in group["todos"]])
            for group in report["projects"]
        ]
        assert grouped == [
            (alpha, [(due_soon, TODAY.isoformat()), (undated, None)]),
            (beta, [(late, (TODAY - timedelta(days=1)).isoformat())]),
        ]
        first = report["projects"][0]["todos"][0]
        assert first["todolist"]["id"] == a_list
        assert first["type"] == "todo"
        assert first["url"].endswith(f"/v1/todos/{due_soon}")


async def test_overdue_and_upcoming_span_every_visible_project(api: Any) -> None:
    """To-dos and milestones across projects, by due date, within the window asked for."""
    async with Scenario.open(api) as s:
        mia = await s.person("Mia Member", "member")
        mine = await s.project("Mine", members=[(mia, "member")])
        other = await s.project("Not mine")
        lst = await s.todolist(mine, "List")
        other_list = await s.todolist(other, "Other list")
        t_late = await s.todo(lst, "Late to-do", due_on=TODAY - timedelta(days=3))
        m_late = await s.milestone(mine, "Late milestone", TODAY - timedelta(days=1))
        t_today = await s.todo(lst, "Due today", due_on=TODAY)
        m_soon = await s.milestone(mine, "Soon milestone", TODAY + timedelta(days=14))
        t_far = await s.todo(lst, "Far", due_on=TODAY + timedelta(days=30))
        done = await s.todo(lst, "Done late", due_on=TODAY - timedelta(days=5))
        await s.complete(done)
        await s.todo(other_list, "Other late", due_on=TODAY - timedelta(days=2))

        overdue = await mia.client.get("/v1/reports/overdue")
        assert overdue.status_code == 200
        assert [(i["id"], i["type"]) for i in overdue.json()] == [
            (t_late, "todo"),
            (m_late, "milestone"),
        ]
        assert overdue.headers["x-total-count"] == "2"
        everyone = (await api.client.get("/v1/reports/overdue")).json()
        assert len(everyone) == 3

        upcoming = (await mia.client.get("/v1/reports/upcoming")).json()
        assert [i["id"] for i in upcoming] == [t_today, m_soon]
        wider = (await mia.client.get("/v1/reports/upcoming", params={"days": 30})).json()
        assert [i["id"] for i in wider] == [t_today, m_soon, t_far]
        assert wider[1]["project"]["name"] == "Mine"
        assert wider[1]["todolist"] is None


async def test_report_pages_follow_the_cursor(api: Any) -> None:
    """``?limit=`` pages through a report by cursor, with ``X-Total-Count`` and ``Link``."""
    async with Scenario.open(api) as s:
        project = await s.project("Paged")
        lst = await s.todolist(project, "List")
        expected = [
            await s.todo(lst, f"Late {n}", due_on=TODAY - timedelta(days=10 - n)) for n in range(5)
        ]
        seen: list[str] = []
        url: str | None = "/v1/reports/overdue?limit=2"
        pages = 0
        while url is not None:
            reply = await api.client.get(url)
            assert reply.status_code == 200
            assert reply.headers["x-total-count"] == "5"
            seen += [item["id"] for item in reply.json()]
            url = reply.links.get("next", {}).get("url")
            pages += 1
        assert seen == expected
        assert pages == 3


async def test_a_client_sees_only_client_visible_items_of_visible_projects(api: Any) -> None:
    """A client's reports leave out hidden lists and milestones, and projects closed to them."""
    async with Scenario.open(api) as s:
        cleo = await s.person("Cleo Client", "client", company="Acme")
        open_project = await s.project("Open", members=[(cleo, "client")])
        closed = await s.project("Closed", members=[(cleo, "client")], clients_enabled=False)
        shared = await s.todolist(open_project, "Shared", visible=True)
        internal = await s.todolist(open_project, "Internal")
        closed_list = await s.todolist(closed, "Closed list", visible=True)
        mine = await s.todo(shared, "Approve", assignees=[cleo.id], due_on=TODAY - timedelta(1))
        await s.todo(internal, "Secret late", due_on=TODAY - timedelta(days=2))
        await s.todo(closed_list, "Secret closed", due_on=TODAY - timedelta(days=2))
        public = await s.milestone(open_project, "Public", TODAY + timedelta(days=1), visible=True)
        await s.milestone(open_project, "Secret milestone", TODAY + timedelta(days=1))
        await s.milestone(open_project, "Secret past", TODAY - timedelta(days=1))

        overdue = await cleo.client.get("/v1/reports/overdue")
        assert [i["id"] for i in overdue.json()] == [mine]
        assert overdue.headers["x-total-count"] == "1"
        upcoming = await cleo.client.get("/v1/reports/upcoming")
        assert [i["id"] for i in upcoming.json()] == [public]
        assignments = (await cleo.client.get("/v1/my/assignments")).json()
        assert [t["id"] for g in assignments["projects"] for t in g["todos"]] == [mine]
        for reply in (overdue.text, upcoming.text, json.dumps(assignments)):
            assert "Secret" not in reply
            assert internal not in reply
            assert closed not in reply


@pytest.mark.parametrize("days", ["0", "366", "soon", "-1"])
async def test_upcoming_days_out_of_range_get_400(api: Any, days: str) -> None:
    """``?days=`` must be a whole number from 1 to 365."""
    reply = await api.client.get("/v1/reports/upcoming", params={"days": days})
    assert reply.status_code == 400
    assert reply.json()["errors"][0]["field"] == "days"

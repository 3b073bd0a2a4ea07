"""The project overview, ``GET /v1/projects/{id}/overview``, over real HTTP and PostgreSQL."""

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


async def test_overview_sums_up_the_project(api: Any) -> None:
    """People, to-do counts, list progress, messages, milestones and activity after a scenario."""
    async with Scenario.open(api) as s:
        mia = await s.person("Mia Member", "member")
        project = await s.project("Website", members=[(mia, "member")])
        design = await s.todolist(project, "Design")
        build = await s.todolist(project, "Build")
        late = await s.todo(design, "Wireframes", due_on=TODAY - timedelta(days=2))
        done = await s.todo(design, "Moodboard")
        await s.todo(build, "Set up CI", due_on=TODAY + timedelta(days=3))
        trashed = await s.todo(build, "Old idea", due_on=TODAY - timedelta(days=9))
        await s.complete(done)
        await s.set_status(trashed, "trashed")
        archived_list = await s.todolist(project, "Archive me")
        await s.todo(archived_list, "Never counted", due_on=TODAY - timedelta(days=1))
        await s.set_status(archived_list, "archived")
        soon = await s.milestone(project, "Beta", TODAY + timedelta(days=14))
        await s.milestone(project, "Launch", TODAY + timedelta(days=15))
        overdue = await s.milestone(project, "Kick-off", TODAY - timedelta(days=1))
        finished = await s.milestone(project, "Contract", TODAY - timedelta(days=3))
        await s.complete_milestone(finished)
        subjects = [f"Update {n}" for n in range(1, 7)]
        for subject in subjects:
            await s.message(project, subject)

        reply = await api.client.get(f"/v1/projects/{project}/overview")
        assert reply.status_code == 200
        assert reply.headers["etag"]
        overview = reply.json()

        assert overview["today"] == TODAY.isoformat()
        monday = TODAY - timedelta(days=TODAY.weekday())
        assert overview["week_starts_on"] == monday.isoformat()
        people = {p["id"]: p["project_role"] for p in overview["people"]}
        assert people == {api.admin_id: "owner", mia.id: "member"}
        assert overview["todos"] == {"open": 2, "overdue": 1, "completed_this_week": 1}
        progress = [(t["id"], t["name"], t["completed"], t["total"]) for t in overview["todolists"]]
        assert progress == [(design, "Design", 1, 2), (build, "Build", 0, 1)]
        assert [m["subject"] for m in overview["latest_messages"]] == subjects[::-1][:5]
        assert overview["latest_messages"][0]["creator"]["id"] == api.admin_id
        assert [m["id"] for m in overview["milestones_due_soon"]] == [soon]
        assert [m["id"] for m in overview["late_milestones"]] == [overdue]
        activity = overview["activity"]
        assert len(activity) == 20
        assert [a["at"] for a in activity] == sorted((a["at"] for a in activity), reverse=True)
        assert activity[0]["kind"] == "message_posted"
        assert "Update 6" in activity[0]["sentence"]
        assert late not in json.dumps(overview["milestones_due_soon"])

        again = await api.client.get(
            f"/v1/projects/{project}/overview", headers={"If-None-Match": reply.headers["etag"]}
        )
        assert again.status_code == 304


async def test_a_clients_overview_never_mentions_hidden_items(api: Any) -> None:
    """Counts, lists, messages, milestones and activity of a client leave hidden items out."""
    async with Scenario.open(api) as s:
        cleo = await s.person("Cleo Client", "client", company="Acme")
        project = await s.project("Agency", members=[(cleo, "client")])
        shared = await s.todolist(project, "Deliverables", visible=True)
        internal = await s.todolist(project, "Internal margins")
        await s.todo(shared, "Send proofs", due_on=TODAY - timedelta(days=1))
        await s.todo(internal, "Secret overdue task", due_on=TODAY - timedelta(days=4))
        await s.todo(internal, "Secret open task")
        public = await s.milestone(project, "Proofs due", TODAY + timedelta(days=2), visible=True)
        hidden = await s.milestone(project, "Secret deadline", TODAY + timedelta(days=3))
        await s.milestone(project, "Secret late", TODAY - timedelta(days=3))
        await s.message(project, "Welcome aboard", visible=True)
        await s.message(project, "Secret pricing memo")

        staff = (await api.client.get(f"/v1/projects/{project}/overview")).json()
        assert staff["todos"]["open"] == 3
        assert staff["todos"]["overdue"] == 2
        assert {m["id"] for m in staff["milestones_due_soon"]} == {public, hidden}

        reply = await cleo.client.get(f"/v1/projects/{project}/overview")
        assert reply.status_code == 200
        mine = reply.json()
        assert mine["todos"] == {"open": 1, "overdue": 1, "completed_this_week": 0}
        assert [t["id"] for t in mine["todolists"]] == [shared]
        assert [m["id"] for m in mine["milestones_due_soon"]] == [public]
        assert mine["late_milestones"] == []
        assert [m["subject"] for m in mine["latest_messages"]] == ["Welcome aboard"]
        assert mine["activity"], "the client sees the activity on what they may see"
        text = json.dumps(mine)
        for secret in ("Secret", "Internal", internal, hidden):
            assert secret not in text


async def test_outsiders_get_404(api: Any) -> None:
    """Someone not on the project, or an unknown project, gets 404."""
    async with Scenario.open(api) as s:
        otto = await s.person("Otto Outsider", "member")
        project = await s.project("Closed")
        assert (await otto.client.get(f"/v1/projects/{project}/overview")).status_code == 404
        assert (await api.client.get("/v1/projects/prj_nope/overview")).status_code == 404


async def test_the_overviews_activity_is_the_project_stream_as_the_caller_reads_it(
    api: Any,
) -> None:
    """The overview's latest activity is the first page of the project's activity stream, for
    staff and client alike: a client is not told of a to-do's stay in a hidden list."""
    async with Scenario.open(api) as s:
        cleo = await s.person("Cleo Client", "client", company="Acme")
        project = await s.project("Agency", members=[(cleo, "client")])
        shared = await s.todolist(project, "Deliverables", visible=True)
        internal = await s.todolist(project, "Internal margins")
        proofs = await s.todo(shared, "Send proofs")
        await s.move(proofs, 1, to_list=internal)
        await s.move(proofs, 1, to_list=shared)
        await s.message(project, "Welcome aboard", visible=True)

        for client in (api.client, cleo.client):
            overview = (await client.get(f"/v1/projects/{project}/overview")).json()
            reply = await client.get(f"/v1/projects/{project}/activity", params={"limit": 20})
            assert reply.status_code == 200, reply.text
            stream = reply.json()
            assert [
                (a["kind"], a["sentence"], a["actor"] and a["actor"]["id"])
                for a in overview["activity"]
            ] == [(i["kind"], i["sentence"], i["actor"]["id"]) for i in stream]
            assert [a["recording"]["id"] for a in overview["activity"] if a["recording"]] == [
                i["target"]["id"]
                for i in stream
                if i["target"]["type"] not in ("project", "person")
            ]
        assert "Internal" not in json.dumps(overview)
        staff = (await api.client.get(f"/v1/projects/{project}/overview")).json()
        assert any("Internal margins" in a["sentence"] for a in staff["activity"])

"""Service accounts (#18): non-human people created by admins, without e-mail, owned by an
admin, never told of anything, assignable only when made so, posting with scoped tokens and
shown as integrations in envelopes, activity and feeds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from service.domain.access import ProjectFacts, RecordingFacts, Viewer
from service.domain.notices import NoticeFacts, notice_of
from service.events import recordings as rc

from .support.api import Api, bearer, problem
from .support.teams import Team


async def _bot(api: Api, name: str = "Deploy bot", **extra: Any) -> dict[str, Any]:
    created = await api.client.post("/v1/people", json={"name": name, "role": "service", **extra})
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


async def _on_project(team: Team, person_id: str) -> None:
    added = await team.c.put(
        f"/v1/projects/{team.project_id}/people/{person_id}", json={"project_role": "member"}
    )
    assert added.status_code == 201, added.text


async def test_admins_create_service_accounts_without_e_mail(api: Api) -> None:
    """A service account has no e-mail, is owned by the creating admin (or the admin named),
    is not assignable unless asked; bad combinations are 422."""
    bot = await _bot(api)
    assert bot["role"] == "service"
    assert bot["email"] is None
    assert bot["owner_id"] == api.admin_id
    assert bot["assignable"] is False
    twin = await _bot(api, "Deploy bot 2", owner_id=api.admin_id, assignable=True)
    assert twin["assignable"] is True
    member = await api.client.post(
        "/v1/people", json={"name": "Max", "email": "max@example.com", "role": "member"}
    )
    assert member.json()["owner_id"] is None
    assert member.json()["assignable"] is True
    refusals = [
        ({"name": "B", "role": "service", "email": "b@example.com"}, "email"),
        ({"name": "B", "role": "service", "owner_id": member.json()["id"]}, "owner_id"),
        ({"name": "B", "role": "service", "owner_id": "per_nobody"}, "owner_id"),
        ({"name": "B", "role": "member"}, "email"),
        ({"name": "B", "role": "member", "email": "b@example.com", "assignable": True}, ""),
    ]
    for body, field in refusals:
        refused = problem(await api.client.post("/v1/people", json=body), 422)
        if field:
            assert refused["errors"][0]["field"] == field, body
    role_change = await api.client.patch(f"/v1/people/{bot['id']}", json={"role": "member"})
    problem(role_change, 422)
    mail = await api.client.patch(f"/v1/people/{bot['id']}", json={"email": "bot@example.com"})
    problem(mail, 422)


async def test_a_service_account_posts_and_shows_via_integration(team: Team) -> None:
    """A bot with a token limited to the project posts a message: its envelope's creator
    says service, the activity item and the feed read "Deploy bot (via integration)" (and
    in French "via une intégration")."""
    api = team.api
    bot = await _bot(api)
    await _on_project(team, bot["id"])
    issued = await api.client.post(
        f"/v1/people/{bot['id']}/tokens",
        json={"label": "CI", "scopes": ["write", f"project:{team.project_id}"]},
    )
    assert issued.status_code == 201, issued.text
    as_bot = bearer(issued.json()["token"])
    posted = await team.post(
        f"/v1/projects/{team.project_id}/messages",
        {"subject": "Build 42 deployed", "body": "<p>green</p>"},
        as_=as_bot,
    )
    assert posted["creator"]["service"] is True
    assert posted["creator"]["name"] == "Deploy bot"
    activity = await team.c.get(f"/v1/projects/{team.project_id}/activity")
    item = activity.json()[0]
    assert item["sentence"] == "Deploy bot (via integration) posted the message “Build 42 deployed”"
    assert item["actor"]["service"] is True
    assert item["actor"]["name"] == "Deploy bot (via integration)"
    french = await team.c.get(
        f"/v1/projects/{team.project_id}/activity", headers={"Accept-Language": "fr"}
    )
    assert "Deploy bot (via une intégration)" in french.json()[0]["sentence"]
    human = (await team.c.get("/v1/activity")).json()[-1]
    assert "service" not in human["actor"]
    feed = await team.c.get(f"/feeds/projects/{team.project_id}.atom")
    assert feed.status_code == 200
    assert "Deploy bot (via integration) posted the message" in feed.text
    message = await team.c.get(f"/v1/messages/{posted['id']}")
    assert message.json()["creator"]["service"] is True
    people = await team.c.get(f"/v1/messages/{posted['id']}", headers=team.mia)
    assert people.json()["creator"]["service"] is True


async def test_a_service_account_is_assignable_only_when_made_so(team: Team) -> None:
    """Giving a to-do or a milestone to a bot not made assignable is 422 naming the field;
    an assignable one takes it."""
    bot = await _bot(team.api)
    helper = await _bot(team.api, "Triage bot", assignable=True)
    for person in (bot, helper):
        await _on_project(team, person["id"])
    todolist = await team.post(f"/v1/projects/{team.project_id}/todolists", {"name": "Ops"})
    refused = await team.c.post(
        f"/v1/todolists/{todolist['id']}/todos",
        json={"content": "Rotate keys", "assignee_ids": [bot["id"]]},
    )
    assert problem(refused, 422)["errors"][0]["field"] == "assignee_ids"
    milestone = await team.c.post(
        f"/v1/projects/{team.project_id}/milestones",
        json={"title": "Freeze", "due_on": "2030-01-01", "responsible_id": bot["id"]},
    )
    assert problem(milestone, 422)["errors"][0]["field"] == "responsible_id"
    taken = await team.post(
        f"/v1/todolists/{todolist['id']}/todos",
        {"content": "Rotate keys", "assignee_ids": [helper["id"]]},
    )
    assert [a["id"] for a in taken["assignees"]] == [helper["id"]]


def test_a_service_account_is_never_notified() -> None:
    """The notice rule tells the people subscribed, never a service account among them."""
    project = ProjectFacts(
        project_id="prj",
        status="active",
        clients_enabled=False,
        members={"olga": "owner", "max": "member", "bot": "member"},
    )
    recording = RecordingFacts(
        recording_id="rec",
        project_id="prj",
        kind="message",
        status="active",
        visible_to_clients=False,
        creator_id="olga",
    )
    people = {
        "max": Viewer(person_id="max", role="member"),
        "bot": Viewer(person_id="bot", role="service"),
    }
    facts = NoticeFacts(project=project, recording=recording, people=people)
    event = rc.MessagePosted(
        recording_id="rec",
        project_id="prj",
        creator_id="olga",
        at=datetime(2026, 3, 2, tzinfo=UTC),
        subject="S",
        body="<p/>",
        category=None,
        visible_to_clients=False,
        subscriber_ids=("olga", "max", "bot"),
    )
    notice = notice_of(event, "rec", "olga", facts)
    assert notice is not None
    assert notice.recipient_ids == ("max",)

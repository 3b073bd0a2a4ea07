"""Webhook endpoints over HTTP (docs/WEBHOOKS.md): who may manage them, the secret shown
once, rotation by the clock, limits and refusals, deactivated owners, and a read model equal
to its rebuild."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import feedparser
import httpx
import pytest
import standardwebhooks

from service.events.store import EventStore
from service.projections import all_projections
from service.projections.engine import ProjectionEngine
from service.reads import webhooks as reads

from .support.api import Api, bearer, problem
from .support.projections import rebuilt_differences
from .support.servers import FixedClock
from .support.teams import Team

NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CLOCK = FixedClock(NOON)
HOOK = {"url": "https://hooks.example/cairn", "kinds": ["todo_completed", "message_posted"]}


@pytest.fixture
def server_settings() -> dict[str, object]:
    return {"clock": CLOCK}


@pytest.fixture(autouse=True)
def _noon() -> None:
    CLOCK.now = NOON


@pytest.fixture
async def store(api: Api) -> AsyncIterator[EventStore]:
    opened = await EventStore.open(api.server.database_url, min_size=1, max_size=4)
    try:
        yield opened
    finally:
        await opened.close()


async def _create(
    c: httpx.AsyncClient, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> dict[str, Any]:
    made = await c.post(path, json=body, headers=headers)
    assert made.status_code == 201, made.text
    assert made.headers["location"] == made.json()["href"]
    assert made.headers["cache-control"] == "no-store"
    shown: dict[str, Any] = made.json()
    return shown


async def _token(c: httpx.AsyncClient, person_id: str, scopes: list[str]) -> dict[str, str]:
    issued = await c.post(
        f"/v1/people/{person_id}/tokens", json={"label": "scoped", "scopes": scopes}
    )
    assert issued.status_code == 201, issued.text
    return bearer(issued.json()["token"])


async def test_a_project_hook_is_made_read_changed_and_deleted(
    team: Team, store: EventStore
) -> None:
    """An admin adds a hook to a project: 201 with its secret (a Standard Webhooks secret),
    never shown again; it is listed, changed (If-Match guards a change), and deleted with its
    secrets."""
    c = team.c
    made = await _create(c, f"/v1/projects/{team.project_id}/webhooks", HOOK)
    assert made["secret"].startswith("whsec_")
    standardwebhooks.Webhook(made["secret"])
    assert made["project_id"] == team.project_id
    assert made["kinds"] == ["message_posted", "todo_completed"]
    assert (made["audience"], made["active"], made["status"]) == ("team", True, "active")
    assert made["owner_id"] == team.api.admin_id
    one = await c.get(made["href"])
    assert one.status_code == 200, one.text
    assert "secret" not in one.json()
    assert one.json() == {k: v for k, v in made.items() if k != "secret"}
    listed = await c.get(f"/v1/projects/{team.project_id}/webhooks")
    assert [h["id"] for h in listed.json()] == [made["id"]]
    assert made["id"] in [h["id"] for h in (await c.get("/v1/webhooks")).json()]

    etag = one.headers["etag"]
    changed = await c.patch(
        made["href"],
        json={"kinds": None, "audience": "clients", "active": False},
        headers={"If-Match": etag},
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["kinds"], changed.json()["audience"]) == (None, "clients")
    assert changed.json()["status"] == "paused"
    stale = await c.patch(made["href"], json={"active": True}, headers={"If-Match": etag})
    problem(stale, 412)
    assert (await c.get(made["href"])).json()["active"] is False

    gone = await c.delete(made["href"])
    assert gone.status_code == 204, gone.text
    problem(await c.get(made["href"]), 404)
    problem(await c.delete(made["href"]), 404)
    assert await reads.signing_secrets(store.pool, made["id"], NOON) == []
    assert (await c.get(f"/v1/projects/{team.project_id}/webhooks")).json() == []


async def test_who_may_manage_hooks(team: Team) -> None:
    """A project's owners and admins manage its hooks; members, clients and outsiders get
    404 (a client always); account-wide hooks are for admins whose token reaches every
    project; a read-only token cannot write; a token limited to projects only manages
    theirs."""
    c = team.c
    path = f"/v1/projects/{team.project_id}/webhooks"
    made = await _create(c, path, HOOK)
    account = await _create(c, "/v1/webhooks", {"url": "https://hooks.example/all"})
    assert account["project_id"] is None

    for who in (team.mia, team.cleo, team.otto):
        problem(await c.get(path, headers=who), 404)
        problem(await c.post(path, json=HOOK, headers=who), 404)
        problem(await c.get(made["href"], headers=who), 404)
        problem(await c.patch(made["href"], json={"active": False}, headers=who), 404)
        problem(await c.delete(made["href"], headers=who), 404)
        problem(await c.get(account["href"], headers=who), 404)
        problem(await c.post("/v1/webhooks", json=HOOK, headers=who), 404)
        assert (await c.get("/v1/webhooks", headers=who)).json() == []

    promoted = await c.put(
        f"/v1/projects/{team.project_id}/people/{team.mia_id}", json={"project_role": "owner"}
    )
    assert promoted.status_code == 200, promoted.text
    mine = await _create(c, path, {"url": "https://mia.example/hook"}, headers=team.mia)
    assert mine["owner_id"] == team.mia_id
    assert (await c.get(made["href"], headers=team.mia)).status_code == 200
    assert [h["id"] for h in (await c.get("/v1/webhooks", headers=team.mia)).json()] == [
        made["id"],
        mine["id"],
    ]
    problem(await c.get(account["href"], headers=team.mia), 404)
    everything = [h["id"] for h in (await c.get("/v1/webhooks")).json()]
    assert sorted(everything) == sorted([made["id"], account["id"], mine["id"]])

    reader = await _token(c, team.mia_id, ["read"])
    assert (await c.get(made["href"], headers=reader)).status_code == 200
    problem(await c.post(path, json=HOOK, headers=reader), 403)
    problem(await c.delete(made["href"], headers=reader), 403)

    admin_id = team.api.admin_id
    limited = await _token(c, admin_id, ["write", f"project:{team.project_id}"])
    assert (await c.get(made["href"], headers=limited)).status_code == 200
    problem(await c.get(account["href"], headers=limited), 404)
    problem(await c.post("/v1/webhooks", json=HOOK, headers=limited), 404)
    listed = [h["id"] for h in (await c.get("/v1/webhooks", headers=limited)).json()]
    assert sorted(listed) == sorted([made["id"], mine["id"]])


async def test_secret_is_shown_once_and_rotation_keeps_both_for_a_day(
    team: Team, store: EventStore
) -> None:
    """A retried creation (same Idempotency-Key) makes nothing new and shows no secret; a
    rotation answers the new secret once, and both sign until 24 h later by the clock."""
    c = team.c
    path = f"/v1/projects/{team.project_id}/webhooks"
    key = {"Idempotency-Key": "hook-1"}
    made = await _create(c, path, HOOK, headers=key)
    again = await c.post(path, json=HOOK, headers=key)
    assert again.status_code == 201, again.text
    assert again.json()["id"] == made["id"]
    assert again.json()["secret"] is None
    assert len((await c.get(path)).json()) == 1

    CLOCK.now = NOON + timedelta(hours=2)
    rotated = await c.post(f"{made['href']}/rotate_secret")
    assert rotated.status_code == 200, rotated.text
    newer = rotated.json()["secret"]
    assert newer.startswith("whsec_")
    assert newer != made["secret"]
    pool = store.pool
    assert await reads.signing_secrets(pool, made["id"], CLOCK.now) == [newer, made["secret"]]
    day_later = CLOCK.now + timedelta(hours=24)
    before = day_later - timedelta(seconds=1)
    assert await reads.signing_secrets(pool, made["id"], before) == [newer, made["secret"]]
    assert await reads.signing_secrets(pool, made["id"], day_later) == [newer]

    # Both verify what they sign, as a receiver following the specification checks.
    payload = '{"kind":"todo_completed"}'
    sent = datetime.now(UTC)  # the receiver checks the timestamp against its own clock
    for secret in (newer, made["secret"]):
        hook = standardwebhooks.Webhook(secret)
        headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(sent.timestamp()))}
        signature = hook.sign("msg_1", sent, payload)
        hook.verify(payload, {**headers, "webhook-signature": signature})
    assert "secret" not in (await c.get(made["href"])).json()


async def test_bad_hooks_are_refused(team: Team) -> None:
    """Unknown kinds and an empty list are 422 naming ``kinds``; a project has at most 20
    hooks (409); an unknown project is 404."""
    c = team.c
    path = f"/v1/projects/{team.project_id}/webhooks"
    bad = problem(await c.post(path, json={**HOOK, "kinds": ["person_created"]}), 422)
    assert "person_created" in str(bad)
    problem(await c.post(path, json={**HOOK, "kinds": []}), 422)
    problem(await c.post(path, json={**HOOK, "kinds": ["no_such_kind"]}), 422)
    for n in range(20):
        await _create(c, path, {"url": f"https://hooks.example/{n}"})
    full = problem(await c.post(path, json=HOOK), 409)
    assert "20" in full["detail"]
    problem(await c.post("/v1/projects/prj_00000000000000000000/webhooks", json=HOOK), 404)


async def test_unsafe_urls_are_refused(team: Team) -> None:
    """A URL Cairn may not send to (http, a loopback or private address, credentials) is a
    422 problem naming ``url``, on creation and on a change; nothing is written."""
    c = team.c
    path = f"/v1/projects/{team.project_id}/webhooks"
    for url in (
        "http://hooks.example/in",
        "https://127.0.0.1/in",
        "https://[::1]/in",
        "https://169.254.169.254/latest",
        "https://user:pw@hooks.example/in",
        "ftp://hooks.example/in",
    ):
        refused = problem(await c.post(path, json={"url": url}), 422)
        assert "url" in str(refused), refused
    assert (await c.get(path)).json() == []
    made = await _create(c, path, HOOK)
    problem(await c.patch(made["href"], json={"url": "https://10.0.0.1/"}), 422)
    assert (await c.get(made["href"])).json()["url"] == HOOK["url"]


async def test_a_deactivated_owners_hooks_are_disabled_with_them(team: Team) -> None:
    """When the person who made a hook is deactivated, it shows as ``owner_deactivated``
    and delivery leaves it out; a service account may own hooks."""
    c = team.c
    admin_id = team.api.admin_id
    await c.put(
        f"/v1/projects/{team.project_id}/people/{team.mia_id}", json={"project_role": "owner"}
    )
    made = await _create(c, f"/v1/projects/{team.project_id}/webhooks", HOOK, headers=team.mia)
    off = await c.post(f"/v1/people/{team.mia_id}/deactivate")
    assert off.status_code == 200, off.text
    shown = (await c.get(made["href"])).json()
    assert (shown["status"], shown["active"]) == ("owner_deactivated", True)
    assert admin_id != team.mia_id

    bot = await c.post("/v1/people", json={"name": "CI bot", "role": "service"})
    assert bot.status_code == 201, bot.text
    bot_id = bot.json()["id"]
    token = await c.post(f"/v1/people/{bot_id}/tokens", json={"label": "ci"})
    assert token.status_code == 201, token.text
    seated = await c.put(
        f"/v1/projects/{team.project_id}/people/{bot_id}", json={"project_role": "owner"}
    )
    assert seated.status_code == 201, seated.text
    owned = await _create(
        c, f"/v1/projects/{team.project_id}/webhooks", HOOK, headers=bearer(token.json()["token"])
    )
    assert (owned["owner_id"], owned["status"]) == (bot_id, "active")


async def test_the_read_model_equals_its_rebuild(team: Team, store: EventStore) -> None:
    """After hooks are made, changed, rotated, disabled and deleted, the webhooks read model
    equals one rebuilt from the log."""
    from service.commands import webhooks as commands
    from service.commands.caller import Services

    c = team.c
    path = f"/v1/projects/{team.project_id}/webhooks"
    first = await _create(c, path, HOOK)
    second = await _create(c, "/v1/webhooks", {"url": "https://hooks.example/all"})
    third = await _create(c, path, {"url": "https://hooks.example/3"})
    await c.patch(first["href"], json={"url": "https://hooks.example/moved", "kinds": None})
    await c.post(f"{second['href']}/rotate_secret")
    await commands.disable(Services(store=store), first["id"], "failing", "8 attempts failed")
    await c.delete(third["href"])
    shown = (await c.get(first["href"])).json()
    assert (shown["status"], shown["disabled_reason"]) == ("disabled", "failing")
    engine = ProjectionEngine(store, all_projections())
    assert await rebuilt_differences(store, engine) == {}
    again = await c.patch(first["href"], json={"active": True})
    assert (again.json()["status"], again.json()["disabled_reason"]) == ("active", None)


async def test_hooks_show_in_the_projects_activity_for_its_team_only(
    team: Team, store: EventStore
) -> None:
    """A project hook's creation, disabling (by Cairn) and deletion are items of the project's
    activity, in English and French, for its team; its clients never see them (a URL is
    private), and account-wide hooks make none."""
    from service.commands import webhooks as commands
    from service.commands.caller import Services

    c = team.c
    made = await _create(c, f"/v1/projects/{team.project_id}/webhooks", HOOK)
    await _create(c, "/v1/webhooks", {"url": "https://hooks.example/all"})
    await commands.disable(Services(store=store), made["id"], "gone", "410 Gone")
    assert (await c.delete(made["href"])).status_code == 204
    await team.message()
    activity = f"/v1/projects/{team.project_id}/activity"

    async def kinds(who: dict[str, str] | None, **headers: str) -> list[tuple[str, str]]:
        page = await c.get(activity, headers={**(who or {}), **headers})
        assert page.status_code == 200, page.text
        return [(i["kind"], i["sentence"]) for i in page.json()]

    seen = await kinds(None)
    hooks = [(k, s) for k, s in seen if k.startswith("webhook_")]
    assert hooks == [
        ("webhook_deleted", "Ada Admin deleted a webhook of “Launch”"),
        ("webhook_disabled", "Cairn disabled a webhook of “Launch”: its deliveries failed"),
        ("webhook_created", "Ada Admin added a webhook to “Launch”"),
    ], seen
    assert [k for k, _ in await kinds(team.mia)][:4] == [
        "message_posted", "webhook_deleted", "webhook_disabled", "webhook_created"
    ]  # fmt: skip
    french = [s for k, s in await kinds(team.mia, **{"Accept-Language": "fr"}) if "webhook" in k]
    assert french[0] == "Ada Admin a supprimé un webhook de «\u00a0Launch\u00a0»", french
    client = await kinds(team.cleo)
    assert client, "the client sees the project's other items"
    assert not [k for k, _ in client if k.startswith("webhook_")], client
    everything = await c.get("/v1/activity", headers=team.cleo)
    assert not [i for i in everything.json() if i["kind"].startswith("webhook_")]

    feed = f"/feeds/projects/{team.project_id}.atom"
    entries = feedparser.parse((await c.get(feed, headers=team.mia)).text).entries
    assert "Ada Admin added a webhook to “Launch”" in [e.title for e in entries]
    theirs = feedparser.parse((await c.get(feed, headers=team.cleo)).text).entries
    assert theirs, "the client's feed has the project's other items"
    assert not [e for e in theirs if "webhook" in e.title]

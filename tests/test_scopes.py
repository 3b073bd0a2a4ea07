"""Scoped tokens (#18) on every channel: HTTP reads and writes, search, activity, reports,
feeds, downloads and the WebSocket stream; minting limits; and WebSocket tickets (single
use, 30-second expiry on the server's clock, redeemed on another instance)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from service.domain.access import FULL_SCOPE
from service.domain.people import fold_person
from service.events.base import decode_event
from service.events.people import PersonCreated

from .support.api import Api, bearer, problem
from .support.realtime import frame, recording_events, subscribe, ws
from .support.servers import FixedClock, serving
from .support.teams import Team

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


async def _token(api: Api, person_id: str, scopes: list[str] | None, as_: str | None = None) -> str:
    body: dict[str, Any] = {"label": "scoped"}
    if scopes is not None:
        body["scopes"] = scopes
    issued = await api.client.post(
        f"/v1/people/{person_id}/tokens", json=body, headers=None if as_ is None else bearer(as_)
    )
    assert issued.status_code == 201, issued.text
    token: str = issued.json()["token"]
    return token


@dataclass
class Two:
    """Two projects of the admin, each with a message; tokens of the admin limited."""

    a: str
    b: str
    message_a: dict[str, Any]
    message_b: dict[str, Any]


async def _two(team: Team) -> Two:
    other = await team.c.post("/v1/projects", json={"name": "Other"})
    assert other.status_code == 201, other.text
    b = other.json()["id"]
    ma = await team.message(subject="Alpha news")
    mb = await team.post(
        f"/v1/projects/{b}/messages", {"subject": "Bravo news", "body": "<p>Hello</p>"}
    )
    return Two(team.project_id, b, ma, mb)


async def test_scopes_are_shown_and_default_to_full_power(api: Api) -> None:
    """A token without scopes has read and write on every project; scopes given are listed
    with the tokens, normalised (write implies read); an unknown scope is 422."""
    full = await api.client.post(f"/v1/people/{api.admin_id}/tokens", json={})
    assert full.json()["scopes"] == ["read", "write"]
    limited = await api.client.post(
        f"/v1/people/{api.admin_id}/tokens", json={"scopes": ["write", "project:prj_x"]}
    )
    assert limited.status_code == 201, limited.text
    assert limited.json()["scopes"] == ["read", "write", "project:prj_x"]
    listed = await api.client.get(f"/v1/people/{api.admin_id}/tokens")
    by_id = {t["id"]: t["scopes"] for t in listed.json()}
    assert by_id[limited.json()["id"]] == ["read", "write", "project:prj_x"]
    assert by_id[full.json()["id"]] == ["read", "write"]
    bad = await api.client.post(f"/v1/people/{api.admin_id}/tokens", json={"scopes": ["admin"]})
    problem(bad, 422)
    only_projects = await api.client.post(
        f"/v1/people/{api.admin_id}/tokens", json={"scopes": ["project:prj_x"]}
    )
    problem(only_projects, 422)


async def test_a_read_only_token_reads_and_gets_403_on_every_write(team: Team) -> None:
    """Reads work; writes (a message, a comment, a project, an upload's bytes, a token) are
    403 insufficient_scope problems; its holder's full token still writes."""
    api, pid = team.api, team.project_id
    message = await team.message()
    reader = bearer(await _token(api, team.mia_id, ["read"]))
    assert (await team.c.get(f"/v1/messages/{message['id']}", headers=reader)).status_code == 200
    assert (await team.c.get("/v1/search", params={"q": "Kick"}, headers=reader)).status_code == 200
    writes = [
        ("POST", f"/v1/projects/{pid}/messages", {"subject": "x", "body": "<p>x</p>"}),
        ("POST", f"/v1/recordings/{message['id']}/comments", {"content": "<p>x</p>"}),
        ("POST", "/v1/projects", {"name": "Nope"}),
        ("PATCH", "/v1/me", {"title": "Reader"}),
        ("POST", f"/v1/people/{team.mia_id}/tokens", {"scopes": ["read"]}),
        ("POST", "/v1/me/feed_token", None),
    ]
    for method, path, body in writes:
        refused = await team.c.request(method, path, json=body, headers=reader)
        assert problem(refused, 403)["type"] == "urn:cairn:problem:insufficient_scope", path
    upload = await team.c.post(
        "/v1/attachments",
        params={"name": "a.txt"},
        content=b"hello",
        headers={"Content-Type": "text/plain", **reader},
    )
    assert problem(upload, 403)["type"] == "urn:cairn:problem:insufficient_scope"
    # A project the holder may not see stays 404, not a hint by 403 (otto is on none).
    otto_reader = bearer(await _token(api, team.otto_id, ["read"]))
    hidden = await team.c.get(f"/v1/messages/{message['id']}", headers=otto_reader)
    problem(hidden, 404)
    await team.post(
        f"/v1/projects/{pid}/messages", {"subject": "ok", "body": "<p>ok</p>"}, as_=team.mia
    )


async def test_a_project_limited_token_sees_other_projects_as_absent(team: Team) -> None:
    """An admin's token limited to project A: B is 404 (its page, its messages, its stream,
    its overview), B's items are in no list, search, activity, report or feed; nothing can be
    created outside A, and A works as before."""
    two = await _two(team)
    api = team.api
    limited = bearer(await _token(api, api.admin_id, ["write", f"project:{two.a}"]))
    c = team.c
    for path in (
        f"/v1/projects/{two.b}",
        f"/v1/projects/{two.b}/messages",
        f"/v1/projects/{two.b}/activity",
        f"/v1/projects/{two.b}/overview",
        f"/v1/messages/{two.message_b['id']}",
        f"/feeds/projects/{two.b}.atom",
    ):
        problem(await c.get(path, headers=limited), 404)
    assert (await c.get(f"/v1/projects/{two.a}", headers=limited)).status_code == 200
    projects = await c.get("/v1/projects", headers=limited)
    assert [p["id"] for p in projects.json()] == [two.a]
    found = await c.get("/v1/search", params={"q": "news"}, headers=limited)
    assert [h["recording"]["id"] for h in found.json()] == [two.message_a["id"]]
    problem(
        await c.get("/v1/search", params={"q": "news", "project_id": two.b}, headers=limited), 404
    )
    activity = await c.get("/v1/activity", headers=limited)
    assert {i["project"]["id"] for i in activity.json()} == {two.a}
    everything = await c.get("/v1/activity")
    assert {i["project"]["id"] for i in everything.json()} == {two.a, two.b}
    feed = await c.get("/feeds/activity.atom", headers=limited)
    assert feed.status_code == 200
    assert "Alpha news" in feed.text
    assert "Bravo news" not in feed.text
    for report in ("/v1/reports/overdue", "/v1/reports/upcoming"):
        assert (await c.get(report, headers=limited)).status_code == 200
    posted_b = await c.post(
        f"/v1/projects/{two.b}/messages",
        json={"subject": "x", "body": "<p>x</p>"},
        headers=limited,
    )
    problem(posted_b, 404)
    new_project = await c.post("/v1/projects", json={"name": "Elsewhere"}, headers=limited)
    assert problem(new_project, 403)["type"] == "urn:cairn:problem:insufficient_scope"
    new_person = await c.post(
        "/v1/people",
        json={"name": "Zed", "email": "zed@example.com", "role": "member"},
        headers=limited,
    )
    assert problem(new_person, 403)["type"] == "urn:cairn:problem:insufficient_scope"
    posted_a = await c.post(
        f"/v1/projects/{two.a}/messages",
        json={"subject": "fine", "body": "<p>x</p>"},
        headers=limited,
    )
    assert posted_a.status_code == 201, posted_a.text


async def test_downloads_follow_the_token_s_projects(team: Team) -> None:
    """A file of project B is 404 to a token limited to A, downloadable with a full token."""
    two = await _two(team)
    sent = await team.c.post(
        "/v1/attachments",
        params={"name": "b.txt"},
        content=b"bravo bytes",
        headers={"Content-Type": "text/plain"},
    )
    assert sent.status_code == 201, sent.text
    upload = await team.post(
        f"/v1/projects/{two.b}/uploads", {"attachable_id": sent.json()["attachable_id"]}
    )
    path = f"/v1/uploads/{upload['id']}/download"
    assert (await team.c.get(path)).content == b"bravo bytes"
    limited = bearer(await _token(team.api, team.api.admin_id, [f"project:{two.a}", "read"]))
    problem(await team.c.get(path, headers=limited), 404)
    problem(await team.c.get(f"/v1/uploads/{upload['id']}/link", headers=limited), 404)


async def test_a_token_is_never_minted_with_more_power_than_its_minter(team: Team) -> None:
    """A project-limited token mints tokens limited to some of its projects, never one for
    more projects nor an unlimited one; a read-only token mints nothing."""
    two = await _two(team)
    api = team.api
    limited = await _token(api, api.admin_id, ["write", f"project:{two.a}"])
    narrower = await api.client.post(
        f"/v1/people/{api.admin_id}/tokens",
        json={"scopes": ["read", f"project:{two.a}"]},
        headers=bearer(limited),
    )
    assert narrower.status_code == 201, narrower.text
    for scopes in (None, ["read"], ["read", f"project:{two.a}", f"project:{two.b}"]):
        body = {} if scopes is None else {"scopes": scopes}
        wider = await api.client.post(
            f"/v1/people/{api.admin_id}/tokens", json=body, headers=bearer(limited)
        )
        assert problem(wider, 403)["type"] == "urn:cairn:problem:insufficient_scope", scopes
    # Nor for someone else: people are outside any project.
    for_mia = await api.client.post(
        f"/v1/people/{team.mia_id}/tokens",
        json={"scopes": ["read", f"project:{two.a}"]},
        headers=bearer(limited),
    )
    assert problem(for_mia, 403)["type"] == "urn:cairn:problem:insufficient_scope"
    reader = await _token(api, team.mia_id, ["read"])
    minted = await api.client.post(
        f"/v1/people/{team.mia_id}/tokens", json={"scopes": ["read"]}, headers=bearer(reader)
    )
    assert problem(minted, 403)["type"] == "urn:cairn:problem:insufficient_scope"
    listed = await api.client.get(f"/v1/people/{team.mia_id}/tokens", headers=bearer(reader))
    assert listed.status_code == 200, listed.text


async def test_the_stream_follows_only_the_token_s_projects(team: Team) -> None:
    """Over the WebSocket, a token limited to A gets not_found subscribing to B, and its
    ``all`` subscription carries A's events, never B's."""
    two = await _two(team)
    limited = await _token(team.api, team.api.admin_id, ["read", f"project:{two.a}"])
    async with ws(team.api.server.ws_url, limited) as conn:
        await conn.send(json.dumps({"type": "subscribe", "project_id": two.b}))
        refused = await frame(conn)
        assert refused["type"] == "error"
        assert refused["code"] == "not_found"
        await subscribe(conn, "all")
        await team.post(f"/v1/projects/{two.b}/messages", {"subject": "B", "body": "<p>b</p>"})
        await team.message(subject="A again")
        [event] = await recording_events(conn, 1)
        assert event["project_id"] == two.a


# ------------------------------------------------------------------ tickets


async def _ticket(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    minted = await client.post("/v1/stream/tickets", headers=bearer(token))
    assert minted.status_code == 201, minted.text
    body: dict[str, Any] = minted.json()
    return body


@pytest.fixture
def server_settings() -> dict[str, object]:
    return {"clock": FixedClock(START)}


@pytest.fixture
async def clock(live_server: Any, server_settings: dict[str, object]) -> FixedClock:
    fixed = server_settings["clock"]
    assert isinstance(fixed, FixedClock)
    return fixed


async def _opens(url: str) -> bool:
    """Whether a socket opened at ``url`` stays open for a subscription (False: closed 4401)."""
    async with connect(url, open_timeout=10) as conn:
        try:
            await conn.send(json.dumps({"type": "subscribe", "project_id": "all"}))
            answer = json.loads(await conn.recv())
        except ConnectionClosed as closed:
            refused = closed.rcvd
        else:
            assert answer == {"type": "subscribed", "subscription": "all"}
            return True
    assert refused is not None
    assert refused.code == 4401
    return False


async def test_a_ticket_opens_one_socket_once(team: Team, clock: FixedClock) -> None:
    """A ticket opens the stream once; the second use is refused (4401); a read-only token
    may mint one; it expires 30 s after it was minted, on the server's clock."""
    reader = await _token(team.api, team.mia_id, ["read"])
    ticket = await _ticket(team.c, reader)
    assert ticket["stream_url"] == f"{team.api.server.ws_url}?ticket={ticket['ticket']}"
    assert datetime.fromisoformat(ticket["expires_at"]) == START + timedelta(seconds=30)
    assert await _opens(ticket["stream_url"])
    assert not await _opens(ticket["stream_url"])
    late = await _ticket(team.c, reader)
    clock.now = START + timedelta(seconds=30)
    assert not await _opens(late["stream_url"])
    just_in_time = await _ticket(team.c, reader)
    clock.now = START + timedelta(seconds=59, milliseconds=999)
    assert await _opens(just_in_time["stream_url"])
    assert not await _opens(f"{team.api.server.ws_url}?ticket=cairnws_unknown")


async def test_a_ticket_carries_its_token_s_scopes_and_dies_with_it(team: Team) -> None:
    """A ticket of a token limited to A follows A only; a ticket of a revoked token opens
    nothing."""
    two = await _two(team)
    limited = await _token(team.api, team.api.admin_id, ["read", f"project:{two.a}"])
    ticket = await _ticket(team.c, limited)
    async with connect(ticket["stream_url"], open_timeout=10) as conn:
        await conn.send(json.dumps({"type": "subscribe", "project_id": two.b}))
        assert (await frame(conn))["code"] == "not_found"
        await subscribe(conn, two.a)
    doomed = await team.c.post(f"/v1/people/{team.mia_id}/tokens", json={})
    unused = await _ticket(team.c, doomed.json()["token"])
    revoked = await team.c.delete(f"/v1/tokens/{doomed.json()['id']}")
    assert revoked.status_code == 204
    assert not await _opens(unused["stream_url"])


@pytest.fixture
async def second(live_server: Any, server_settings: dict[str, object]) -> AsyncIterator[str]:
    async with serving(live_server.database_url, **server_settings) as other:
        yield other.ws_url


async def test_a_ticket_minted_on_one_instance_opens_a_socket_on_another(
    team: Team, second: str
) -> None:
    """Tickets live in PostgreSQL: minted here, redeemed there, and then used up there too."""
    ticket = await _ticket(team.c, team.api.admin_token)
    there = f"{second}?ticket={ticket['ticket']}"
    assert await _opens(there)
    assert not await _opens(ticket["stream_url"])


def test_tokens_issued_before_scopes_have_full_power() -> None:
    """A TokenIssued stored before scopes existed (no write, no projects) folds to a token
    with its holder's full power."""
    old = b'{"token_id": "tok_1", "token_hash": "' + b"a" * 64 + b'", "label": "old"}'
    event = decode_event("TokenIssued", 1, old)
    created = PersonCreated(
        person_id="per_1", name="Old", email="old@example.com", role="member", company=None,
        title=None,
    )  # fmt: skip
    person = fold_person([created, event])
    assert person is not None
    assert person.tokens["tok_1"].scope == FULL_SCOPE


async def test_a_feed_token_is_made_with_full_power_only(team: Team) -> None:
    """A feed token reads every project its holder sees: a token limited to a project may
    not make one (403 insufficient_scope, the old feed token kept); a full token may."""
    api = team.api
    limited = bearer(await _token(api, api.admin_id, ["write", f"project:{team.project_id}"]))
    refused = await team.c.post("/v1/me/feed_token", headers=limited)
    assert problem(refused, 403)["type"] == "urn:cairn:problem:insufficient_scope"
    made = await team.c.post("/v1/me/feed_token")
    assert made.status_code == 200, made.text
    assert made.json()["token"].startswith("cairnfeed_")

"""OAuth 2 for third-party front ends (docs/API.md "OAuth 2"): registered apps, the
authorization code flow with PKCE driven by authlib's client against a real server, the
consent page, refresh rotation and reuse detection, revocation and the metadata."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any

import asyncpg
import httpx
import pytest
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from service.reads import oauth

from .support.api import Api, add_admin, bearer, known_token, new_person, problem
from .support.servers import FixedClock, Server, serving
from .support.waiting import eventually

PASSWORD = "correct horse battery staple"
REDIRECT = "http://127.0.0.1:9/callback"


@dataclass
class Site:
    server: Server
    clock: FixedClock
    api: Api
    clients: list[httpx.AsyncClient] = field(default_factory=list)
    """The people's browsers and the apps' OAuth clients, closed before the server stops: an
    open keep-alive connection holds uvicorn's graceful shutdown for its whole 5 s."""

    @property
    def url(self) -> str:
        return self.server.base_url.rstrip("/")


@pytest.fixture
async def site(database_url: str) -> AsyncIterator[Site]:
    clock = FixedClock(datetime(2030, 3, 4, 9, 0, tzinfo=UTC))
    async with serving(database_url, clock=clock, rate_limit=0) as server:
        admin = await add_admin(database_url)
        async with httpx.AsyncClient(
            base_url=server.base_url, headers=bearer(admin.token), timeout=30
        ) as client:
            await known_token(client, timeout=5.0)
            site = Site(server, clock, Api(server, client, admin.person_id, admin.token))
            try:
                yield site
            finally:
                for opened in site.clients:
                    await opened.aclose()


@dataclass
class Person:
    person_id: str
    browser: httpx.AsyncClient


async def _signed_in(site: Site, name: str, **extra: Any) -> Person:
    """A member with a password, signed in by a browser keeping the session cookie."""
    person_id, _ = await new_person(site.api, name, **extra)
    put = await site.api.client.put(f"/v1/people/{person_id}/password", json={"password": PASSWORD})
    assert put.status_code == 204, put.text
    browser = httpx.AsyncClient(base_url=site.url, timeout=30)
    site.clients.append(browser)
    email = f"{name.lower()}@example.com"
    signed = await browser.post("/v1/session", json={"email": email, "password": PASSWORD})
    assert signed.status_code == 204, signed.text
    return Person(person_id, browser)


async def _app(site: Site, **extra: Any) -> dict[str, Any]:
    body = {"name": "Board <Viewer>", "redirect_uris": [REDIRECT], **extra}
    made = await site.api.client.post("/v1/oauth/apps", json=body)
    assert made.status_code == 201, made.text
    return dict(made.json())


def _client(site: Site, app: dict[str, Any], scope: str = "read write") -> AsyncOAuth2Client:
    client = AsyncOAuth2Client(
        client_id=app["client_id"],
        client_secret=app.get("client_secret"),
        token_endpoint_auth_method="client_secret_basic" if app["confidential"] else "none",
        redirect_uri=REDIRECT,
        scope=scope,
        code_challenge_method="S256",
    )
    site.clients.append(client)
    return client


def _form(page: str) -> dict[str, str]:
    """The hidden fields of the consent form."""
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page)
    return {unescape(k): unescape(v) for k, v in fields}


@dataclass
class Flow:
    client: AsyncOAuth2Client
    verifier: str
    location: str


async def _authorize(site: Site, person: Person, client: AsyncOAuth2Client) -> Flow:
    """Through the consent page: the redirect back to the app carrying a code."""
    verifier = secrets.token_urlsafe(48)
    url, _ = client.create_authorization_url(site.url + "/oauth/authorize", code_verifier=verifier)
    page = await person.browser.get(url)
    assert page.status_code == 200, page.text
    fields = _form(page.text)
    answer = await person.browser.post(
        "/oauth/authorize", data={**fields, "decision": "allow"}, headers={"Origin": site.url}
    )
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert location.startswith(REDIRECT + "?code="), location
    return Flow(client, verifier, location)


async def _tokens(site: Site, flow: Flow, **kw: Any) -> dict[str, Any]:
    token = await flow.client.fetch_token(
        site.url + "/oauth/token",
        authorization_response=flow.location,
        code_verifier=flow.verifier,
        **kw,
    )
    return dict(token)


async def test_the_full_flow_gives_a_scoped_expiring_cairn_token(site: Site) -> None:
    """A public app, PKCE S256: a French person sees the consent page in French, the code
    becomes a read-write token that calls the API, which stops working after one hour."""
    app = await _app(site)
    assert app["client_secret"] is None
    person = await _signed_in(site, "Zoe", locale="fr")
    client = _client(site, app)
    verifier = secrets.token_urlsafe(48)
    url, _ = client.create_authorization_url(site.url + "/oauth/authorize", code_verifier=verifier)
    page = await person.browser.get(url)
    assert page.status_code == 200
    assert page.headers["content-language"] == "fr"
    assert "Autoriser Board &lt;Viewer&gt; ?" in page.text
    assert "<Viewer>" not in page.text
    assert page.headers["x-frame-options"] == "DENY"
    english = await person.browser.get(url, headers={"Accept-Language": "en"})
    assert "Authorise Board &lt;Viewer&gt;?" in english.text

    flow = await _authorize(site, person, client)
    token = await _tokens(site, flow)
    assert token["token_type"].lower() == "bearer"
    assert token["expires_in"] == 3600
    assert token["scope"] == "read write"
    async with httpx.AsyncClient(base_url=site.url, timeout=30) as api:
        me = await api.get("/v1/me", headers=bearer(token["access_token"]))
        assert me.status_code == 200, me.text
        assert me.json()["id"] == person.person_id
        site.clock.now += timedelta(hours=1)
        expired = await api.get("/v1/me", headers=bearer(token["access_token"]))
        problem(expired, 401)
    mine = await person.browser.get("/v1/me/authorizations")
    assert [(a["app_id"], a["scopes"]) for a in mine.json()] == [(app["id"], ["read", "write"])]


async def test_scopes_of_the_token_are_honoured(site: Site) -> None:
    """A ``read`` token gets 403 on a write; a ``project:<id>`` token 404 elsewhere."""
    person = await _signed_in(site, "Noe")
    ids = []
    for name in ("Alpha", "Bravo"):
        made = await site.api.client.post("/v1/projects", json={"name": name})
        ids.append(made.json()["id"])
        added = await site.api.client.put(
            f"/v1/projects/{ids[-1]}/people/{person.person_id}", json={"project_role": "member"}
        )
        assert added.status_code in (200, 201, 204), added.text
    a, b = ids
    app = await _app(site)
    read = await _tokens(site, await _authorize(site, person, _client(site, app, "read")))
    limited = await _tokens(
        site, await _authorize(site, person, _client(site, app, f"read write project:{a}"))
    )
    message = {"subject": "Hello", "body": "<p>Hi</p>"}
    async with httpx.AsyncClient(base_url=site.url, timeout=30) as api:
        refused = await api.post(
            f"/v1/projects/{a}/messages", json=message, headers=bearer(read["access_token"])
        )
        problem(refused, 403)
        seen = await api.get(f"/v1/projects/{a}", headers=bearer(read["access_token"]))
        assert seen.status_code == 200
        posted = await api.post(
            f"/v1/projects/{a}/messages", json=message, headers=bearer(limited["access_token"])
        )
        assert posted.status_code == 201, posted.text
        elsewhere = await api.get(f"/v1/projects/{b}", headers=bearer(limited["access_token"]))
        problem(elsewhere, 404)


async def test_wrong_verifier_redirect_and_reused_code_are_invalid_grant(site: Site) -> None:
    """A wrong code_verifier or redirect_uri is invalid_grant; a code works once, and its
    reuse revokes the token issued from it."""
    app = await _app(site, redirect_uris=[REDIRECT, "https://board.example/cb"])
    person = await _signed_in(site, "Ida")
    flow = await _authorize(site, person, _client(site, app))
    with pytest.raises(OAuthError) as wrong:
        await flow.client.fetch_token(
            site.url + "/oauth/token",
            authorization_response=flow.location,
            code_verifier=secrets.token_urlsafe(48),
        )
    assert wrong.value.error == "invalid_grant"

    flow = await _authorize(site, person, _client(site, app))
    with pytest.raises(OAuthError) as redirect:
        await _tokens(site, flow, redirect_uri="https://board.example/cb")
    assert redirect.value.error == "invalid_grant"

    flow = await _authorize(site, person, _client(site, app))
    token = await _tokens(site, flow)
    with pytest.raises(OAuthError) as reused:
        await _tokens(site, flow)
    assert reused.value.error == "invalid_grant"
    async with httpx.AsyncClient(base_url=site.url, timeout=30) as api:

        async def revoked() -> None:
            problem(await api.get("/v1/me", headers=bearer(token["access_token"])), 401)

        await eventually(revoked, timeout=1.0)


async def test_unregistered_redirect_and_plain_pkce_are_refused(site: Site) -> None:
    """A redirect URI not registered is never redirected to; ``plain`` PKCE is refused; a
    person not signed in is told to sign in."""
    app = await _app(site)
    person = await _signed_in(site, "Ava")
    base = f"{site.url}/oauth/authorize?response_type=code&client_id={app['id']}"
    challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    bad = await person.browser.get(
        f"{base}&redirect_uri=https://evil.example/cb&code_challenge={challenge}"
        "&code_challenge_method=S256"
    )
    assert bad.status_code == 400
    assert "location" not in bad.headers
    plain = await person.browser.get(
        f"{base}&redirect_uri={REDIRECT}&code_challenge={challenge}&code_challenge_method=plain"
        "&state=s1"
    )
    assert plain.status_code == 303
    assert "error=invalid_request" in plain.headers["location"]
    assert "state=s1" in plain.headers["location"]
    async with httpx.AsyncClient(base_url=site.url, timeout=30) as stranger:
        page = await stranger.get(
            f"{base}&redirect_uri={REDIRECT}&code_challenge={challenge}&code_challenge_method=S256"
        )
        assert page.status_code == 401
        assert "Sign in first" in page.text
        # The consent form without the session's CSRF token is refused.
        forged = await person.browser.post(
            "/oauth/authorize",
            data={"client_id": app["id"], "redirect_uri": REDIRECT, "decision": "allow"},
        )
        assert forged.status_code == 403


async def test_redirect_uris_must_be_https_or_loopback(site: Site) -> None:
    """Apps are registered by admins only, with https or loopback redirect URIs; a
    confidential app's secret is shown once."""
    made = await site.api.client.post(
        "/v1/oauth/apps", json={"name": "x", "redirect_uris": ["http://board.example/cb"]}
    )
    problem(made, 422)
    app = await _app(site, confidential=True)
    assert app["client_secret"].startswith("cairncs_")
    shown = await site.api.client.get(f"/v1/oauth/apps/{app['id']}")
    assert shown.json()["client_secret"] is None
    listed = await site.api.client.get("/v1/oauth/apps")
    assert [a["id"] for a in listed.json()] == [app["id"]]
    _, token = await new_person(site.api, "Mel")
    async with httpx.AsyncClient(base_url=site.url, headers=bearer(token), timeout=30) as c:
        problem(
            await c.post("/v1/oauth/apps", json={"name": "y", "redirect_uris": [REDIRECT]}), 403
        )
    gone = await site.api.client.delete(f"/v1/oauth/apps/{app['id']}")
    assert gone.status_code == 204
    problem(await site.api.client.get(f"/v1/oauth/apps/{app['id']}"), 404)


async def test_confidential_app_refresh_rotation_and_reuse_revoke_the_family(site: Site) -> None:
    """Each refresh gives a new refresh token; presenting an old one revokes every token of
    the grant: the current access token is 401 within a second."""
    app = await _app(site, confidential=True)
    person = await _signed_in(site, "Lea")
    client = _client(site, app)
    first = await _tokens(site, await _authorize(site, person, client))
    second = dict(await client.refresh_token(site.url + "/oauth/token", first["refresh_token"]))
    assert second["refresh_token"] != first["refresh_token"]
    third = dict(await client.refresh_token(site.url + "/oauth/token", second["refresh_token"]))
    async with httpx.AsyncClient(base_url=site.url, timeout=30) as api:
        ok = await api.get("/v1/me", headers=bearer(third["access_token"]))
        assert ok.status_code == 200
        with pytest.raises(OAuthError) as reused:
            await client.refresh_token(site.url + "/oauth/token", first["refresh_token"])
        assert reused.value.error == "invalid_grant"

        async def revoked() -> None:
            for t in (first, second, third):
                problem(await api.get("/v1/me", headers=bearer(t["access_token"])), 401)

        await eventually(revoked, timeout=1.0)
        with pytest.raises(OAuthError):
            await client.refresh_token(site.url + "/oauth/token", third["refresh_token"])
    wrong = AsyncOAuth2Client(client_id=app["id"], client_secret="nope")
    site.clients.append(wrong)
    with pytest.raises(OAuthError) as unauthenticated:
        await wrong.refresh_token(site.url + "/oauth/token", third["refresh_token"])
    assert unauthenticated.value.error == "invalid_client"


async def test_revocation_endpoint_and_withdrawing_an_authorisation(site: Site) -> None:
    """RFC 7009 revocation ends the grant (200 for unknown tokens too); a person withdrawing
    an app's authorisation revokes its tokens."""
    app = await _app(site)
    person = await _signed_in(site, "Max")
    client = _client(site, app)
    token = await _tokens(site, await _authorize(site, person, client))
    revoked = await client.revoke_token(site.url + "/oauth/revoke", token["refresh_token"])
    assert revoked.status_code == 200
    unknown = await client.revoke_token(site.url + "/oauth/revoke", "cairn_nothing")
    assert unknown.status_code == 200
    async with httpx.AsyncClient(base_url=site.url, timeout=30) as api:
        problem(await api.get("/v1/me", headers=bearer(token["access_token"])), 401)
        again = await _tokens(site, await _authorize(site, person, client))
        listed = await person.browser.get("/v1/me/authorizations")
        assert [a["app_id"] for a in listed.json()] == [app["id"]]
        csrf = {"X-CSRF-Token": person.browser.cookies["cairn_csrf"], "Origin": site.url}
        gone = await person.browser.delete(f"/v1/me/authorizations/{app['id']}", headers=csrf)
        assert gone.status_code == 204, gone.text
        problem(await api.get("/v1/me", headers=bearer(again["access_token"])), 401)
        assert (await person.browser.get("/v1/me/authorizations")).json() == []


async def test_metadata_document(site: Site) -> None:
    """RFC 8414 metadata: the endpoints, PKCE S256 only, code flow and refresh; valid as
    authlib's model of it."""
    async with httpx.AsyncClient(base_url=site.url, timeout=30) as c:
        answer = await c.get("/.well-known/oauth-authorization-server")
    doc = answer.json()
    AuthorizationServerMetadata(doc).validate()
    assert doc["issuer"] == site.url
    assert doc["authorization_endpoint"] == site.url + "/oauth/authorize"
    assert doc["token_endpoint"] == site.url + "/oauth/token"
    assert doc["revocation_endpoint"] == site.url + "/oauth/revoke"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["grant_types_supported"] == ["authorization_code", "refresh_token"]
    assert doc["response_types_supported"] == ["code"]


async def test_an_access_token_mints_no_lasting_token(site: Site) -> None:
    """An OAuth access token (expiring) may not issue an API token nor rotate the feed
    token: 403 insufficient_scope, so nothing it mints outlives the grant's revocation."""
    app = await _app(site)
    person = await _signed_in(site, "Tom")
    token = await _tokens(site, await _authorize(site, person, _client(site, app)))
    async with httpx.AsyncClient(
        base_url=site.url, timeout=30, headers=bearer(token["access_token"])
    ) as api:
        minted = await api.post(f"/v1/people/{person.person_id}/tokens", json={})
        assert problem(minted, 403)["type"].endswith("insufficient_scope")
        narrower = await api.post(
            f"/v1/people/{person.person_id}/tokens", json={"scopes": ["read"]}
        )
        problem(narrower, 403)
        feed = await api.post("/v1/me/feed_token")
        problem(feed, 403)
        assert (await api.get("/v1/me")).status_code == 200


async def test_a_refresh_asking_a_narrower_scope_gets_it(site: Site) -> None:
    """A refresh with ``scope=read`` of a read-write grant gives a read-only access token
    (and says so); the next refresh without scope gets the grant's whole scope again."""
    made = await site.api.client.post("/v1/projects", json={"name": "Narrow"})
    project = made.json()["id"]
    app = await _app(site, confidential=True)
    person = await _signed_in(site, "Una")
    added = await site.api.client.put(
        f"/v1/projects/{project}/people/{person.person_id}", json={"project_role": "member"}
    )
    assert added.status_code in (200, 201, 204), added.text
    client = _client(site, app)
    first = await _tokens(site, await _authorize(site, person, client))
    read = dict(
        await client.refresh_token(site.url + "/oauth/token", first["refresh_token"], scope="read")
    )
    assert read["scope"] == "read"
    message = {"subject": "Hello", "body": "<p>Hi</p>"}
    async with httpx.AsyncClient(base_url=site.url, timeout=30) as api:
        refused = await api.post(
            f"/v1/projects/{project}/messages", json=message, headers=bearer(read["access_token"])
        )
        problem(refused, 403)
        whole = dict(await client.refresh_token(site.url + "/oauth/token", read["refresh_token"]))
        assert whole["scope"] == "read write"
        posted = await api.post(
            f"/v1/projects/{project}/messages", json=message, headers=bearer(whole["access_token"])
        )
        assert posted.status_code == 201, posted.text


async def test_deactivation_revokes_the_grants(site: Site) -> None:
    """Deactivating a person revokes their OAuth grants: after a reactivation the old
    refresh token is invalid_grant and the app is no longer authorised."""
    app = await _app(site, confidential=True)
    person = await _signed_in(site, "Vic")
    client = _client(site, app)
    token = await _tokens(site, await _authorize(site, person, client))
    off = await site.api.client.post(f"/v1/people/{person.person_id}/deactivate")
    assert off.status_code == 200, off.text
    on = await site.api.client.post(f"/v1/people/{person.person_id}/reactivate")
    assert on.status_code == 200, on.text
    with pytest.raises(OAuthError) as refused:
        await client.refresh_token(site.url + "/oauth/token", token["refresh_token"])
    assert refused.value.error == "invalid_grant"
    async with httpx.AsyncClient(base_url=site.url, timeout=30) as api:
        problem(await api.get("/v1/me", headers=bearer(token["access_token"])), 401)


async def test_tokens_are_not_recorded_for_a_revoked_grant(site: Site) -> None:
    """The race of an exchange with a revocation: once the grant is revoked, recording a
    new access token for it is refused (so no token escapes the revocation's sweep)."""
    app = await _app(site)
    person = await _signed_in(site, "Wes")
    client = _client(site, app)
    token = await _tokens(site, await _authorize(site, person, client))
    pool = await asyncpg.create_pool(site.server.database_url, min_size=1, max_size=1)
    try:
        grant_id = await pool.fetchval(
            "SELECT grant_id FROM oauth_grants WHERE person_id = $1", person.person_id
        )
        revoked = await client.revoke_token(site.url + "/oauth/revoke", token["refresh_token"])
        assert revoked.status_code == 200
        recorded = await oauth.record_tokens(
            pool, grant_id, "tok_late", "cairn_late", "cairnrt_late", site.clock()
        )
        assert recorded is False
        late = await pool.fetchval(
            "SELECT count(*) FROM oauth_access_tokens WHERE token_id = 'tok_late'"
        )
        assert late == 0
    finally:
        await pool.close()


async def _closed_with(conn: ClientConnection) -> int:
    """The code ``conn`` is closed with by the server, waiting for it (frames before it are
    skipped)."""
    try:
        while True:
            await asyncio.wait_for(conn.recv(), timeout=10)
    except ConnectionClosed as closed:
        ended = closed.rcvd
    assert ended is not None
    return ended.code


async def test_a_socket_of_an_access_token_closes_when_it_expires(site: Site) -> None:
    """A WebSocket opened with an OAuth access token (by header, or by a ticket it minted)
    is closed with 4401 at the token's expiry on the server's clock."""
    app = await _app(site)
    person = await _signed_in(site, "Yan")
    issued_at = site.clock()
    token = await _tokens(site, await _authorize(site, person, _client(site, app)))
    expiry = issued_at + timedelta(seconds=token["expires_in"])
    site.clock.now = expiry - timedelta(seconds=1)
    minted = await site.api.client.post("/v1/stream/tickets", headers=bearer(token["access_token"]))
    assert minted.status_code == 201, minted.text
    headers = bearer(token["access_token"])
    async with (
        connect(site.server.ws_url, additional_headers=headers, open_timeout=10) as by_header,
        connect(minted.json()["stream_url"], open_timeout=10) as by_ticket,
    ):
        for conn in (by_header, by_ticket):
            await conn.send(json.dumps({"type": "subscribe", "project_id": "all"}))
            assert json.loads(await conn.recv())["type"] == "subscribed"
        site.clock.now = expiry
        assert await _closed_with(by_header) == 4401
        assert await _closed_with(by_ticket) == 4401

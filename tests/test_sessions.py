"""Sign-in for people (docs/API.md "Sessions"): passwords, sessions and their cookies, the
CSRF defence, the lockout and rate limits, mailed single-use links and password resets, on
real servers and a real PostgreSQL."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from .support.api import Api, add_admin, bearer, known_token, new_person, problem
from .support.servers import FixedClock, Server, serving
from .support.waiting import eventually

PASSWORD = "correct horse battery staple"
OTHER = "a different passphrase, also long"


@dataclass
class Site:
    """A server with a clock the test moves, its first admin's client, and its database."""

    server: Server
    clock: FixedClock
    api: Api

    @property
    def url(self) -> str:
        return self.server.base_url

    def browser(self, **headers: str) -> httpx.AsyncClient:
        """A client with no token, keeping cookies, as a browser would."""
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture
async def site(database_url: str, request: pytest.FixtureRequest) -> AsyncIterator[Site]:
    settings: dict[str, Any] = getattr(request, "param", {})
    clock = FixedClock(datetime(2030, 3, 4, 9, 0, tzinfo=UTC))
    async with serving(database_url, clock=clock, rate_limit=0, **settings) as server:
        admin = await add_admin(database_url)
        async with httpx.AsyncClient(
            base_url=server.base_url, headers=bearer(admin.token), timeout=30
        ) as client:
            await known_token(client, timeout=5.0)
            yield Site(server, clock, Api(server, client, admin.person_id, admin.token))


async def _person(site: Site, name: str, password: str | None = PASSWORD) -> tuple[str, str]:
    """A member (person id, API token) with ``password`` set by the admin."""
    person_id, token = await new_person(site.api, name)
    if password is not None:
        set_ = await site.api.client.put(
            f"/v1/people/{person_id}/password", json={"password": password}
        )
        assert set_.status_code == 204, set_.text
    return person_id, token


def _email(name: str) -> str:
    return f"{name.lower()}@example.com"


async def _sign_in(c: httpx.AsyncClient, name: str, password: str = PASSWORD) -> httpx.Response:
    return await c.post("/v1/session", json={"email": _email(name), "password": password})


def _cookies(response: httpx.Response) -> dict[str, str]:
    """Each Set-Cookie of ``response`` by cookie name (the whole header line)."""
    return {h.split("=", 1)[0]: h for h in response.headers.get_list("set-cookie")}


def _csrf(c: httpx.AsyncClient) -> dict[str, str]:
    return {"X-CSRF-Token": c.cookies["cairn_csrf"]}


async def _log_text(database_url: str) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT event_type, data::text AS data FROM events")
    finally:
        await conn.close()
    return "\n".join(f"{r['event_type']} {r['data']}" for r in rows)


async def _mailed(database_url: str, email: str, purpose: str) -> str:
    """The token of the last mail waiting to be sent to ``email`` (as a mail would carry it)."""
    conn = await asyncpg.connect(database_url)
    try:
        token = await conn.fetchval(
            "SELECT token FROM sign_in_mail WHERE email = $1 AND purpose = $2 "
            "ORDER BY mail_id DESC LIMIT 1",
            email,
            purpose,
        )
    finally:
        await conn.close()
    assert token is not None, f"no {purpose} mail for {email}"
    return str(token)


# ------------------------------------------------------------------ signing in


async def test_signing_in_sets_the_cookies_and_the_session_authenticates(site: Site) -> None:
    """A right password answers 204 with an HttpOnly, SameSite=Lax session cookie (not
    Secure on 127.0.0.1) and a CSRF cookie scripts can read; the session is the person's
    for reads, and the log says they signed in, with no secret."""
    mia_id, _ = await _person(site, "Mia")
    async with site.browser() as c:
        signed = await _sign_in(c, "Mia")
        assert signed.status_code == 204, signed.text
        cookies = _cookies(signed)
        session = cookies["cairn_session"]
        assert "HttpOnly" in session
        assert "SameSite=lax" in session
        assert "Path=/" in session
        assert "Secure" not in session
        assert "HttpOnly" not in cookies["cairn_csrf"]
        assert "Secure" not in cookies["cairn_csrf"]
        me = await c.get("/v1/me")
        assert me.status_code == 200, me.text
        assert me.json()["id"] == mia_id
        current = await c.get("/v1/session")
        assert current.json()["csrf_token"] == c.cookies["cairn_csrf"]
        secret = c.cookies["cairn_session"]
    log = await _log_text(site.server.database_url)
    assert "PersonSignedIn" in log
    assert "PasswordChanged" in log
    assert secret not in log
    assert PASSWORD not in log
    assert "argon2" not in log


async def test_cookies_are_secure_outside_localhost(site: Site) -> None:
    await _person(site, "Mia")
    async with site.browser(Host="cairn.example.com") as c:
        signed = await _sign_in(c, "Mia")
        assert signed.status_code == 204, signed.text
        cookies = _cookies(signed)
        assert "Secure" in cookies["cairn_session"]
        assert "Secure" in cookies["cairn_csrf"]


async def test_a_wrong_password_and_an_unknown_address_are_the_same_401(site: Site) -> None:
    """Both 401 with the same problem, and take as long (a dummy hash is verified)."""
    await _person(site, "Mia")
    await _person(site, "Nopass", password=None)
    async with site.browser() as c:
        timings: dict[str, list[float]] = {}
        details = set()
        for name in ["Mia", "Nobody", "Nopass"] * 3:
            began = time.perf_counter()
            refused = await _sign_in(c, name, "not the right password")
            timings.setdefault(name, []).append(time.perf_counter() - began)
            details.add(problem(refused, 401)["detail"])
        assert details == {"wrong e-mail address or password"}
        assert "cairn_session" not in c.cookies
    wrong, unknown = min(timings["Mia"]), min(timings["Nobody"])
    assert 0.5 < unknown / wrong < 2, timings


@pytest.mark.parametrize("site", [{"sign_in_lockout": 3}], indirect=True)
async def test_failures_in_a_row_lock_the_address_until_the_lock_ends(site: Site) -> None:
    """Three failures lock the address (even the right password is 429 with Retry-After,
    through every instance: the lock is in the database) for 15 minutes."""
    await _person(site, "Mia")
    async with site.browser() as c:
        for _ in range(3):
            problem(await _sign_in(c, "Mia", "not the right password"), 401)
        locked = await _sign_in(c, "Mia")
        assert "too many failed sign-ins" in problem(locked, 429)["detail"]
        assert 890 <= int(locked.headers["retry-after"]) <= 900
        site.clock.now += timedelta(minutes=14)
        problem(await _sign_in(c, "Mia"), 429)
        site.clock.now += timedelta(minutes=2)
        assert (await _sign_in(c, "Mia")).status_code == 204
        # A success starts the count again.
        for _ in range(2):
            problem(await _sign_in(c, "Mia", "not the right password"), 401)
        assert (await _sign_in(c, "Mia")).status_code == 204


@pytest.mark.parametrize(
    "site", [{"sign_in_burst": 2, "sign_in_rate": 0.001, "sign_in_lockout": 0}], indirect=True
)
async def test_sign_in_is_rate_limited_per_address_and_per_client(site: Site) -> None:
    """Past the burst of an address: 429 with Retry-After, as the API's limiter answers;
    a client address gets five times the burst, whatever addresses it tries."""
    await _person(site, "Mia")
    async with site.browser() as c:
        for _ in range(2):
            problem(await _sign_in(c, "Mia", "not the right password"), 401)
        limited = await _sign_in(c, "Mia")
        assert problem(limited, 429)["type"] == "urn:cairn:problem:rate-limited"
        assert int(limited.headers["retry-after"]) >= 1
        statuses = [(await _sign_in(c, f"someone{n}", "whatever")).status_code for n in range(9)]
        assert statuses == [401] * 7 + [429] * 2, statuses


# ------------------------------------------------------------------ CSRF


async def test_unsafe_requests_by_cookie_need_the_csrf_token_and_a_good_origin(
    site: Site,
) -> None:
    await _person(site, "Mia")
    async with site.browser() as c:
        assert (await _sign_in(c, "Mia")).status_code == 204
        project = {"name": "Cookies"}
        bare = await c.post("/v1/projects", json=project)
        assert problem(bare, 403)["type"] == "urn:cairn:problem:csrf"
        wrong = await c.post("/v1/projects", json=project, headers={"X-CSRF-Token": "0" * 64})
        assert problem(wrong, 403)["type"] == "urn:cairn:problem:csrf"
        # A cookie planted by a sibling site, with a header to match: not this session's.
        real = _csrf(c)
        c.cookies.delete("cairn_csrf")
        c.cookies.set("cairn_csrf", "0" * 64)
        planted = await c.post("/v1/projects", json=project, headers={"X-CSRF-Token": "0" * 64})
        assert problem(planted, 403)["type"] == "urn:cairn:problem:csrf"
        c.cookies.delete("cairn_csrf")
        c.cookies.set("cairn_csrf", real["X-CSRF-Token"])
        foreign = await c.post(
            "/v1/projects", json=project, headers={**_csrf(c), "Origin": "https://evil.example"}
        )
        assert problem(foreign, 403)["type"] == "urn:cairn:problem:csrf"
        cross = await c.post(
            "/v1/projects", json=project, headers={**_csrf(c), "Sec-Fetch-Site": "cross-site"}
        )
        assert problem(cross, 403)["type"] == "urn:cairn:problem:csrf"
        own = await c.post("/v1/projects", json=project, headers={**_csrf(c), "Origin": site.url})
        assert own.status_code == 201, own.text
        plain = await c.post("/v1/projects", json=project, headers=_csrf(c))
        assert plain.status_code == 201, plain.text
        # Reads need no token.
        assert (await c.get("/v1/projects")).status_code == 200
    # A bearer token is not concerned, whatever its origin.
    by_token = await site.api.client.post(
        "/v1/projects", json=project, headers={"Origin": "https://evil.example"}
    )
    assert by_token.status_code == 201, by_token.text
    # Nor can a page of another origin sign someone in.
    async with site.browser(Origin="https://evil.example") as c:
        assert problem(await _sign_in(c, "Mia"), 403)["type"] == "urn:cairn:problem:csrf"


@pytest.mark.parametrize("site", [{"cors_origins": "https://app.example"}], indirect=True)
async def test_an_origin_of_cairn_cors_origins_may_use_the_session(site: Site) -> None:
    await _person(site, "Mia")
    async with site.browser(Origin="https://app.example") as c:
        assert (await _sign_in(c, "Mia")).status_code == 204
        made = await c.post("/v1/projects", json={"name": "App"}, headers=_csrf(c))
        assert made.status_code == 201, made.text


# ------------------------------------------------------------------ sessions


async def test_sessions_are_listed_and_a_revoked_one_stops_on_another_instance(
    site: Site,
) -> None:
    """Two browsers signed in; the first lists both (itself marked current) and ends the
    other's: a second instance refuses it within a second."""
    await _person(site, "Mia")
    async with (
        site.browser(**{"User-Agent": "Browser A"}) as a,
        site.browser(**{"User-Agent": "Browser B"}) as b,
        serving(site.server.database_url, clock=site.clock, rate_limit=0) as other,
        httpx.AsyncClient(base_url=other.base_url, timeout=30) as b_elsewhere,
    ):
        assert (await _sign_in(a, "Mia")).status_code == 204
        assert (await _sign_in(b, "Mia")).status_code == 204
        b_elsewhere.cookies.update(b.cookies)
        assert (await b_elsewhere.get("/v1/me")).status_code == 200
        listed = (await a.get("/v1/me/sessions")).json()
        assert sorted((s["user_agent"], s["current"]) for s in listed) == [
            ("Browser A", True),
            ("Browser B", False),
        ]
        assert all(s["expires_at"] == "2030-03-18T09:00:00Z" for s in listed), listed
        other_id = next(s["id"] for s in listed if not s["current"])
        ended = await a.delete(f"/v1/me/sessions/{other_id}", headers=_csrf(a))
        assert ended.status_code == 204, ended.text
        began = time.monotonic()

        async def refused() -> int:
            return int(problem(await b_elsewhere.get("/v1/me"), 401)["status"])

        await eventually(refused, timeout=1.0)
        assert time.monotonic() - began < 1.0
        problem(await a.delete(f"/v1/me/sessions/{other_id}", headers=_csrf(a)), 404)
        assert (await a.get("/v1/me")).status_code == 200


async def test_signing_out_ends_the_session_and_clears_the_cookies(site: Site) -> None:
    await _person(site, "Mia")
    async with site.browser() as c:
        assert (await _sign_in(c, "Mia")).status_code == 204
        kept = dict(c.cookies)
        problem(await c.delete("/v1/session"), 403)  # CSRF: no signing out from a page
        out = await c.delete("/v1/session", headers=_csrf(c))
        assert out.status_code == 204, out.text
        assert 'cairn_session=""' in _cookies(out)["cairn_session"]
        c.cookies.update(kept)
        problem(await c.get("/v1/me"), 401)


async def test_sessions_end_after_inactivity(site: Site) -> None:
    await _person(site, "Mia")
    async with site.browser() as c:
        assert (await _sign_in(c, "Mia")).status_code == 204
        site.clock.now += timedelta(days=13)
        assert (await c.get("/v1/me")).status_code == 200  # used: 14 more days
        site.clock.now += timedelta(days=13)
        assert (await c.get("/v1/me")).status_code == 200
        site.clock.now += timedelta(days=14, seconds=1)
        problem(await c.get("/v1/me"), 401)


async def test_deactivating_a_person_ends_their_sessions_everywhere(site: Site) -> None:
    mia_id, _ = await _person(site, "Mia")
    async with (
        site.browser() as c,
        serving(site.server.database_url, clock=site.clock, rate_limit=0) as other,
        httpx.AsyncClient(base_url=other.base_url, timeout=30) as elsewhere,
    ):
        assert (await _sign_in(c, "Mia")).status_code == 204
        elsewhere.cookies.update(c.cookies)
        assert (await elsewhere.get("/v1/me")).status_code == 200
        off = await site.api.client.post(f"/v1/people/{mia_id}/deactivate")
        assert off.status_code == 200, off.text
        problem(await elsewhere.get("/v1/me"), 401)
        problem(await c.post("/v1/projects", json={"name": "X"}, headers=_csrf(c)), 401)
        problem(await _sign_in(c, "Mia"), 401)
        on = await site.api.client.post(f"/v1/people/{mia_id}/reactivate")
        assert on.status_code == 200, on.text
        problem(await elsewhere.get("/v1/me"), 401)  # the old session stays ended
        assert (await _sign_in(c, "Mia")).status_code == 204


# ------------------------------------------------------------------ passwords


async def test_changing_a_password(site: Site) -> None:
    """The first one needs no current password, the next do; a change ends the person's
    other sessions; short and common passwords are 422."""
    _mia_id, token = await _person(site, "Mia", password=None)
    async with httpx.AsyncClient(base_url=site.url, headers=bearer(token)) as mia:
        short = await mia.put("/v1/me/password", json={"password": "short"})
        assert problem(short, 422)
        common = await mia.put("/v1/me/password", json={"password": "qwerty123456"})
        assert "most common" in problem(common, 422)["errors"][0]["detail"]
        repeated = await mia.put("/v1/me/password", json={"password": "monkeymonkeymonkey"})
        problem(repeated, 422)
        first = await mia.put("/v1/me/password", json={"password": PASSWORD})
        assert first.status_code == 204, first.text
        async with site.browser() as browser:
            assert (await _sign_in(browser, "Mia")).status_code == 204
            missing = await mia.put("/v1/me/password", json={"password": OTHER})
            assert problem(missing, 422)["errors"][0]["field"] == "current_password"
            wrong = await mia.put(
                "/v1/me/password", json={"password": OTHER, "current_password": "nope"}
            )
            problem(wrong, 403)
            changed = await mia.put(
                "/v1/me/password", json={"password": OTHER, "current_password": PASSWORD}
            )
            assert changed.status_code == 204, changed.text
            problem(await browser.get("/v1/me"), 401)
            problem(await _sign_in(browser, "Mia"), 401)
            assert (await _sign_in(browser, "Mia", OTHER)).status_code == 204
            # Changed through the session: that session stays, the others end.
            again = await browser.put(
                "/v1/me/password",
                json={"password": PASSWORD, "current_password": OTHER},
                headers=_csrf(browser),
            )
            assert again.status_code == 204, again.text
            assert (await browser.get("/v1/me")).status_code == 200
    log = await _log_text(site.server.database_url)
    assert log.count("\nPasswordChanged {") == 3
    assert OTHER not in log
    assert "argon2" not in log


async def test_admins_set_a_first_password_only(site: Site) -> None:
    mia_id, token = await _person(site, "Mia")
    again = await site.api.client.put(f"/v1/people/{mia_id}/password", json={"password": OTHER})
    problem(again, 409)
    ivan_id, _ = await _person(site, "Ivan", password=None)
    async with httpx.AsyncClient(base_url=site.url, headers=bearer(token)) as mia:
        problem(await mia.put(f"/v1/people/{ivan_id}/password", json={"password": OTHER}), 403)
    problem(
        await site.api.client.put(
            "/v1/people/per_00000000000000000000/password", json={"password": OTHER}
        ),
        404,
    )


# ------------------------------------------------------------------ mailed tokens


async def test_a_sign_in_link_works_once_and_for_15_minutes(site: Site) -> None:
    await _person(site, "Mia", password=None)
    async with site.browser() as c:
        asked = await c.post("/v1/session/links", json={"email": "MIA@example.com"})
        assert asked.status_code == 202, asked.text
        token = await _mailed(site.server.database_url, "mia@example.com", "sign_in")
        assert re.fullmatch(r"[A-Za-z0-9_-]{40,}", token)
        used = await c.post("/v1/session", json={"link_token": token})
        assert used.status_code == 204, used.text
        assert (await c.get("/v1/me")).status_code == 200
        c.cookies.clear()
        problem(await c.post("/v1/session", json={"link_token": token}), 401)
        await c.post("/v1/session/links", json={"email": "mia@example.com"})
        late = await _mailed(site.server.database_url, "mia@example.com", "sign_in")
        site.clock.now += timedelta(minutes=15)
        problem(await c.post("/v1/session", json={"link_token": late}), 401)
        mixed = await c.post("/v1/session", json={"link_token": late, "email": "mia@example.com"})
        problem(mixed, 422)
        # An unknown address is answered the same, and nothing is mailed.
        unknown = await c.post("/v1/session/links", json={"email": "nobody@example.com"})
        assert unknown.status_code == 202
    log = await _log_text(site.server.database_url)
    assert token not in log
    assert '"method":"link"' in log.replace(" ", "")


async def test_a_password_reset_sets_a_new_password_once(site: Site) -> None:
    await _person(site, "Mia")
    async with site.browser() as c, site.browser() as signed:
        assert (await _sign_in(signed, "Mia")).status_code == 204
        asked = await c.post("/v1/password_resets", json={"email": "mia@example.com"})
        assert asked.status_code == 202, asked.text
        token = await _mailed(site.server.database_url, "mia@example.com", "reset")
        weak = await c.put(f"/v1/password_resets/{token}", json={"password": "password1234"})
        problem(weak, 422)  # refused before the token is spent
        reset = await c.put(f"/v1/password_resets/{token}", json={"password": OTHER})
        assert reset.status_code == 204, reset.text
        problem(await c.put(f"/v1/password_resets/{token}", json={"password": OTHER}), 404)
        problem(await signed.get("/v1/me"), 401)  # a reset ends every session
        problem(await _sign_in(c, "Mia"), 401)
        assert (await _sign_in(c, "Mia", OTHER)).status_code == 204
        await c.post("/v1/password_resets", json={"email": "mia@example.com"})
        late = await _mailed(site.server.database_url, "mia@example.com", "reset")
        site.clock.now += timedelta(minutes=16)
        problem(await c.put(f"/v1/password_resets/{late}", json={"password": PASSWORD}), 404)
        # A sign-in link is no reset token, nor the reverse.
        problem(await c.post("/v1/session", json={"link_token": late}), 401)


async def test_a_session_is_its_person_under_the_same_access_rules(site: Site) -> None:
    """A member's session may do what their token may, no more; a bearer token sent with the
    cookie is what counts (no CSRF token needed then)."""
    mia_id, token = await _person(site, "Mia")
    async with site.browser() as c:
        assert (await _sign_in(c, "Mia")).status_code == 204
        person = {"name": "Eve", "email": "eve@example.com", "role": "member"}
        problem(await c.post("/v1/people", json=person, headers=_csrf(c)), 403)
        ada = f"/v1/people/{site.api.admin_id}/tokens"
        problem(await c.get(ada), 403)
        assert (await c.get(f"/v1/people/{mia_id}/tokens")).status_code == 200
        by_token = await c.post("/v1/projects", json={"name": "T"}, headers=bearer(token))
        assert by_token.status_code == 201, by_token.text
        assert by_token.json()["creator"]["id"] == mia_id


async def test_a_first_password_needs_full_power(site: Site) -> None:
    """A token limited to a project sets no first password, neither its holder's own
    (which would open a session of full power) nor, an admin's, anyone else's: 403
    insufficient_scope; with full power both work."""
    project = await site.api.client.post("/v1/projects", json={"name": "P"})
    assert project.status_code == 201, project.text
    scopes = ["write", f"project:{project.json()['id']}"]
    mia_id, _ = await _person(site, "Mia", password=None)
    other_id, _ = await new_person(site.api, "Ivan", role="admin")
    for person_id in (mia_id, site.api.admin_id):
        minted = await site.api.client.post(
            f"/v1/people/{person_id}/tokens", json={"label": "p", "scopes": scopes}
        )
        assert minted.status_code == 201, minted.text
        limited = bearer(minted.json()["token"])
        if person_id == mia_id:
            own = await site.api.client.put(
                "/v1/me/password", json={"password": PASSWORD}, headers=limited
            )
            assert problem(own, 403)["type"] == "urn:cairn:problem:insufficient_scope"
        else:
            theirs = await site.api.client.put(
                f"/v1/people/{other_id}/password", json={"password": PASSWORD}, headers=limited
            )
            assert problem(theirs, 403)["type"] == "urn:cairn:problem:insufficient_scope"
    async with site.browser() as browser:
        problem(await _sign_in(browser, "Mia"), 401)
        problem(await _sign_in(browser, "Ivan"), 401)
    set_ = await site.api.client.put(f"/v1/people/{other_id}/password", json={"password": PASSWORD})
    assert set_.status_code == 204, set_.text


# ------------------------------------------------------------------ stream tickets


async def _stream_opens(url: str) -> int | None:
    """None when a socket opened at ``url`` is subscribed; else the code it was closed with."""
    async with connect(url, open_timeout=10) as conn:
        try:
            await conn.send(json.dumps({"type": "subscribe", "project_id": "all"}))
            answer = json.loads(await conn.recv())
        except ConnectionClosed as closed:
            refused = closed.rcvd
        else:
            assert answer == {"type": "subscribed", "subscription": "all"}
            return None
    assert refused is not None
    return refused.code


async def test_a_signed_in_page_mints_a_stream_ticket_for_its_session(site: Site) -> None:
    """A page signed in mints a WebSocket ticket with its cookie and CSRF header; the ticket
    opens the stream; a ticket of a session that ended since opens nothing (4401)."""
    await _person(site, "Bea")
    async with site.browser(Origin=site.url.rstrip("/")) as c:
        assert (await _sign_in(c, "Bea")).status_code == 204
        minted = await c.post("/v1/stream/tickets", headers=_csrf(c))
        assert minted.status_code == 201, minted.text
        assert await _stream_opens(minted.json()["stream_url"]) is None
        unused = await c.post("/v1/stream/tickets", headers=_csrf(c))
        assert unused.status_code == 201, unused.text
        out = await c.delete("/v1/session", headers=_csrf(c))
        assert out.status_code == 204, out.text
        assert await _stream_opens(unused.json()["stream_url"]) == 4401

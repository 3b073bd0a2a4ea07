"""Invitations (docs/API.md "Invitations"): made by admins and project owners, mailed
through a real SMTP server (aiosmtpd) in the project's language, accepted once within 7
days, creating the person (or linking the one with the address), putting them on exactly
one project and signing them in; resent (the old link dies) and revoked."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import asyncpg
import httpx
import pytest

from .support.api import Api, add_admin, bearer, known_token, new_person, problem
from .support.servers import FixedClock, serving
from .support.smtp_sink import Sink
from .support.waiting import eventually

START = datetime(2030, 5, 6, 9, 0, tzinfo=UTC)
LINK = "https://app.example.com/{purpose}?token={token}"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def server_settings(sink: Sink, clock: FixedClock) -> dict[str, object]:
    return {
        "smtp_url": sink.url,
        "mail_domain": "cairn.test",
        "poll_interval": 0.05,
        "clock": clock,
        "rate_limit": 0,
        "link_url": LINK,
    }


async def _project(api: Api, name: str, language: str = "en") -> str:
    made = await api.client.post(
        "/v1/projects", json={"name": name, "clients_enabled": True, "language": language}
    )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


async def _mail_to(sink: Sink, address: str) -> EmailMessage:
    def found() -> EmailMessage:
        mails = [m for m in sink.mails if m["To"].addresses[0].addr_spec == address]
        assert mails, f"no mail to {address} yet ({len(sink.mails)} in all)"
        return mails[-1]

    mail: EmailMessage = await eventually(found, timeout=10)
    return mail


def _token(mail: EmailMessage) -> str:
    plain = mail.get_body(("plain",))
    assert plain is not None
    found = re.search(
        r"https://app\.example\.com/invitation\?token=([A-Za-z0-9_-]+)", plain.get_content()
    )
    assert found, plain.get_content()
    return found.group(1)


def _browser(api: Api) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=api.server.base_url, timeout=30)


async def _invite(api: Api, headers: dict[str, str] | None = None, **body: Any) -> dict[str, Any]:
    made = await api.client.post("/v1/invitations", json=body, headers=headers)
    assert made.status_code == 201, made.text
    out: dict[str, Any] = made.json()
    return out


async def test_a_client_invited_by_mail_in_french_joins_one_project_and_sees_only_it(
    api: Api, sink: Sink, database_url: str
) -> None:
    """An invitation of a client to a French project is mailed in French (plain and HTML,
    no List-Unsubscribe); its link, accepted, creates the client, signs them in with a
    cookie, and they see that project only."""
    chantier = await _project(api, "Chantier", "fr")
    other = await _project(api, "Autre")
    made = await _invite(
        api,
        email="claire@client.example",
        name="Claire",
        role="client",
        company="Client SA",
        project_id=chantier,
    )
    assert made["status"] == "pending"
    assert made["mailed"] is True
    assert made["project_role"] == "client"
    assert made["accept_url"] == LINK.format(purpose="invitation", token=made["token"])
    mail = await _mail_to(sink, "claire@client.example")
    assert mail["Subject"] == "Ada Admin vous a invité·e au projet Chantier"
    assert mail["Content-Language"] == "fr"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["List-Unsubscribe"] is None
    html = mail.get_body(("html",))
    assert html is not None
    assert "Accepter l’invitation" in html.get_content()
    token = _token(mail)
    assert token == made["token"]

    async with _browser(api) as browser:
        accepted = await browser.post(f"/v1/invitations/{token}/accept", json={})
        assert accepted.status_code == 200, accepted.text
        body = accepted.json()
        assert body["created"] is True
        assert body["signed_in"] is True
        assert "cairn_session" in browser.cookies
        me = await browser.get("/v1/me")
        assert me.status_code == 200, me.text
        assert me.json()["role"] == "client"
        assert me.json()["company"] == "Client SA"
        projects = await browser.get("/v1/projects")
        assert [p["id"] for p in projects.json()] == [chantier]
        problem(await browser.get(f"/v1/projects/{other}"), 404)
        again = await browser.post(f"/v1/invitations/{token}/accept", json={})
        problem(again, 404)
    shown = await api.client.get(f"/v1/invitations/{made['id']}")
    assert shown.json()["status"] == "accepted"
    assert shown.json()["person_id"] == body["person_id"]
    assert "token" not in shown.json()
    conn = await asyncpg.connect(database_url)
    try:
        told = await conn.fetch(
            "SELECT event_type, metadata->>'actor' AS actor FROM events "
            "WHERE stream_id = ANY($1) ORDER BY position",
            [f"invitation-{made['id']}", f"person-{body['person_id']}"],
        )
    finally:
        await conn.close()
    assert [(r["event_type"], r["actor"]) for r in told] == [
        ("InvitationSent", api.admin_id),
        ("PersonCreated", api.admin_id),
        ("InvitationAccepted", body["person_id"]),
        ("PersonSignedIn", body["person_id"]),
    ]


async def test_the_log_tells_the_lifecycle_without_the_token(
    api: Api, sink: Sink, database_url: str
) -> None:
    """Sent, resent, revoked: events on the invitation's stream, never its token; a resent
    invitation's old link is dead, a revoked one's new link too."""
    made = await _invite(api, email="rita@example.com", name="Rita", role="member")
    resent = await api.client.post(f"/v1/invitations/{made['id']}/resend")
    assert resent.status_code == 200, resent.text
    new_token = resent.json()["token"]
    assert new_token != made["token"]
    async with _browser(api) as browser:
        problem(await browser.post(f"/v1/invitations/{made['token']}/accept", json={}), 404)
        revoked = await api.client.delete(f"/v1/invitations/{made['id']}")
        assert revoked.status_code == 204, revoked.text
        problem(await browser.post(f"/v1/invitations/{new_token}/accept", json={}), 404)
    assert (await api.client.get(f"/v1/invitations/{made['id']}")).json()["status"] == "revoked"
    problem(await api.client.post(f"/v1/invitations/{made['id']}/resend"), 409)
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT event_type, data::text AS data FROM events WHERE stream_id = $1 "
            "ORDER BY stream_version",
            f"invitation-{made['id']}",
        )
        everything = await conn.fetchval("SELECT string_agg(data::text, ' ') FROM events")
    finally:
        await conn.close()
    assert [r["event_type"] for r in rows] == [
        "InvitationSent",
        "InvitationSent",
        "InvitationRevoked",
    ]
    assert made["token"] not in everything
    assert new_token not in everything


async def test_an_invitation_expires_after_seven_days(api: Api, clock: FixedClock) -> None:
    """A link accepted 7 days after it was made is refused (404); its status is expired."""
    made = await _invite(api, email="late@example.com", name="Late", role="member")
    clock.now += timedelta(days=7)
    async with _browser(api) as browser:
        problem(await browser.post(f"/v1/invitations/{made['token']}/accept", json={}), 404)
    assert (await api.client.get(f"/v1/invitations/{made['id']}")).json()["status"] == "expired"


async def test_an_invitation_to_an_address_in_use_links_that_person(api: Api) -> None:
    """Inviting an existing person's address puts that person on the project (no new
    person); they are signed in only with their own password."""
    project = await _project(api, "Launch")
    mia_id, _mia = await new_person(api, "Mia")
    set_ = await api.client.put(f"/v1/people/{mia_id}/password", json={"password": PASSWORD})
    assert set_.status_code == 204, set_.text
    made = await _invite(api, email="mia@example.com", role="member", project_id=project)
    async with _browser(api) as browser:
        wrong = await browser.post(
            f"/v1/invitations/{made['token']}/accept", json={"password": "not her password"}
        )
        problem(wrong, 403)
        accepted = await browser.post(
            f"/v1/invitations/{made['token']}/accept", json={"password": PASSWORD}
        )
        assert accepted.status_code == 200, accepted.text
        assert accepted.json() == {
            "person_id": mia_id,
            "created": False,
            "project_id": project,
            "signed_in": True,
        }
        assert (await browser.get("/v1/me")).json()["id"] == mia_id
    member = await api.client.get(f"/v1/projects/{project}/people/{mia_id}")
    assert member.status_code == 200
    assert member.json()["project_role"] == "member"


async def test_a_new_person_may_set_a_password_when_accepting(api: Api) -> None:
    """A password given on acceptance is the new person's: they sign in with it later."""
    made = await _invite(api, email="nora@example.com", role="member")
    async with _browser(api) as browser:
        weak = await browser.post(
            f"/v1/invitations/{made['token']}/accept", json={"name": "Nora", "password": "short"}
        )
        problem(weak, 422)
        accepted = await browser.post(
            f"/v1/invitations/{made['token']}/accept", json={"name": "Nora", "password": PASSWORD}
        )
        assert accepted.status_code == 200, accepted.text
    async with _browser(api) as other:
        signed = await other.post(
            "/v1/session", json={"email": "nora@example.com", "password": PASSWORD}
        )
        assert signed.status_code == 204, signed.text


async def test_owners_invite_to_their_projects_only(api: Api) -> None:
    """An owner invites to their project (members, clients), not elsewhere, not admins, not
    without a project; they list their projects' invitations only; a member invites no one."""
    owner_id, owner = await new_person(api, "Olga")
    mine = await _project(api, "Mine")
    theirs = await _project(api, "Theirs")
    hidden = await _project(api, "Hidden")
    for project, role in ((mine, "owner"), (theirs, "member")):
        put = await api.client.put(
            f"/v1/projects/{project}/people/{owner_id}", json={"project_role": role}
        )
        assert put.status_code == 201, put.text
    as_owner = bearer(owner)
    ok = await _invite(api, as_owner, email="c@example.com", name="C", role="client",
                       company="Co", project_id=mine)  # fmt: skip
    assert ok["inviter_id"] == owner_id
    admins = await _invite(api, email="x@example.com", name="X", role="member", project_id=theirs)

    async def refused(status: int, **body: Any) -> None:
        answer = await api.client.post("/v1/invitations", json=body, headers=as_owner)
        problem(answer, status)

    await refused(403, email="d@example.com", name="D", role="member", project_id=theirs)
    await refused(404, email="d@example.com", name="D", role="member", project_id=hidden)
    await refused(403, email="d@example.com", name="D", role="admin", project_id=mine)
    await refused(403, email="d@example.com", name="D", role="member")
    await refused(422, email="d@example.com", role="client", project_id=mine)
    listed = await api.client.get("/v1/invitations", headers=as_owner)
    assert [i["id"] for i in listed.json()] == [ok["id"]]
    problem(await api.client.get(f"/v1/invitations/{admins['id']}", headers=as_owner), 404)
    problem(await api.client.delete(f"/v1/invitations/{admins['id']}", headers=as_owner), 404)
    everyone = await api.client.get("/v1/invitations")
    assert {i["id"] for i in everyone.json()} == {ok["id"], admins["id"]}
    _, member = await new_person(api, "Max")
    answer = await api.client.post(
        "/v1/invitations",
        json={"email": "e@example.com", "name": "E", "role": "member", "project_id": mine},
        headers=bearer(member),
    )
    problem(answer, 404)


async def test_an_invitation_without_a_project_is_in_the_servers_language(
    database_url: str, sink: Sink
) -> None:
    """On a server whose default language is French, an invitation to Cairn alone is
    mailed in French; accepted, the person is on no project."""
    settings = {"smtp_url": sink.url, "mail_domain": "cairn.test", "poll_interval": 0.05}
    async with serving(
        database_url, locale="fr", link_url=LINK, rate_limit=0, **settings
    ) as server:
        admin = await add_admin(database_url)
        async with httpx.AsyncClient(
            base_url=server.base_url, headers=bearer(admin.token), timeout=30
        ) as client:
            await known_token(client, timeout=5.0)
            made = await client.post(
                "/v1/invitations",
                json={"email": "zoe@example.com", "name": "Zoé", "role": "member"},
            )
            assert made.status_code == 201, made.text
            mail = await _mail_to(sink, "zoe@example.com")
            assert mail["Subject"] == "Ada Admin vous invite sur Cairn"
            plain = mail.get_body(("plain",))
            assert plain is not None
            assert "Bonjour Zoé," in plain.get_content()
            async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as browser:
                accepted = await browser.post(f"/v1/invitations/{_token(mail)}/accept", json={})
                assert accepted.status_code == 200, accepted.text
                assert accepted.json()["project_id"] is None
                assert (await browser.get("/v1/projects")).json() == []


async def test_a_project_limited_token_manages_only_its_projects_invitations(api: Api) -> None:
    """An admin's token limited to project P invites to P only: no admin, no one without a
    project (403 insufficient_scope), nothing to Q (404); it lists, reads and resends P's
    invitations only. An owner's limited token lists its projects' only."""
    p = await _project(api, "P")
    q = await _project(api, "Q")
    minted = await api.client.post(
        f"/v1/people/{api.admin_id}/tokens",
        json={"label": "p only", "scopes": ["write", f"project:{p}"]},
    )
    assert minted.status_code == 201, minted.text
    limited = bearer(minted.json()["token"])
    of_q = await _invite(api, email="q@example.com", name="Q", role="member", project_id=q)
    alone = await _invite(api, email="a@example.com", name="A", role="member")

    async def refused(status: int, **body: Any) -> None:
        answer = await api.client.post("/v1/invitations", json=body, headers=limited)
        assert problem(answer, status)["type"] == (
            "urn:cairn:problem:insufficient_scope"
            if status == 403
            else "urn:cairn:problem:not-found"
        )

    await refused(403, email="x@evil.example", name="X", role="admin")
    await refused(403, email="x@evil.example", name="X", role="admin", project_id=p)
    await refused(403, email="x@evil.example", name="X", role="member")
    await refused(404, email="x@evil.example", name="X", role="member", project_id=q)
    of_p = await _invite(api, limited, email="p@example.com", name="P", role="member", project_id=p)
    listed = await api.client.get("/v1/invitations", headers=limited)
    assert [i["id"] for i in listed.json()] == [of_p["id"]]
    for other in (of_q, alone):
        url = f"/v1/invitations/{other['id']}"
        problem(await api.client.get(url, headers=limited), 404)
        problem(await api.client.post(f"{url}/resend", headers=limited), 404)
        problem(await api.client.delete(url, headers=limited), 404)
    resent = await api.client.post(f"/v1/invitations/{of_p['id']}/resend", headers=limited)
    assert resent.status_code == 200, resent.text
    owner_id, _ = await new_person(api, "Olga")
    for project in (p, q):
        put = await api.client.put(
            f"/v1/projects/{project}/people/{owner_id}", json={"project_role": "owner"}
        )
        assert put.status_code == 201, put.text
    owner_token = await api.client.post(
        f"/v1/people/{owner_id}/tokens", json={"label": "p", "scopes": ["read", f"project:{p}"]}
    )
    assert owner_token.status_code == 201, owner_token.text
    owners = await api.client.get("/v1/invitations", headers=bearer(owner_token.json()["token"]))
    assert [i["id"] for i in owners.json()] == [of_p["id"]]


async def test_an_invitation_dies_with_its_inviter_s_admin_power(api: Api) -> None:
    """An invitation without a project, or of an admin, is accepted only while whoever made
    it is an active admin: demoted or deactivated since, acceptance is 409 and creates no
    one."""
    project = await _project(api, "Launch")
    made: list[dict[str, Any]] = []
    for name, change in (("Ann", {"role": "member"}), ("Ben", None)):
        admin_id, admin = await new_person(api, name, role="admin")
        made.append(await _invite(api, bearer(admin), email=f"new-{name}@example.com",
                                  name="New", role="admin", project_id=project))  # fmt: skip
        made.append(await _invite(api, bearer(admin), email=f"alone-{name}@example.com",
                                  name="Alone", role="member"))  # fmt: skip
        if change is not None:
            changed = await api.client.patch(f"/v1/people/{admin_id}", json=change)
        else:
            changed = await api.client.post(f"/v1/people/{admin_id}/deactivate")
        assert changed.status_code == 200, changed.text
    async with _browser(api) as browser:
        for invitation in made:
            accepted = await browser.post(f"/v1/invitations/{invitation['token']}/accept", json={})
            problem(accepted, 409)
    people = await api.client.get("/v1/people")
    assert not [p for p in people.json() if p["email"].startswith(("new-", "alone-"))]

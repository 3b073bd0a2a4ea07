"""People, /v1/me and API tokens over real HTTP, and `cairn people create-admin`."""

from __future__ import annotations

import asyncio
import os
import subprocess

import asyncpg
import httpx
import pytest

from service.events.store import EventStore
from service.projections import all_projections
from service.projections.engine import ProjectionEngine

from .support.api import Api, all_pages, bearer, known_token, new_person, problem
from .support.cli import CAIRN
from .support.projections import rebuilt_differences
from .support.servers import Server, another_instance
from .support.waiting import eventually

# ------------------------------------------------------------------ people


async def test_people_and_tokens_scenario(api: Api) -> None:
    """An admin adds a member and a client; tokens are shown once, listed without secrets,
    and a revoked token or a deactivated person's token stops working at once."""
    c = api.client
    me = await c.get("/v1/me")
    assert me.status_code == 200
    assert me.json()["id"] == api.admin_id
    assert me.json()["role"] == "admin"

    problem(
        await c.post(
            "/v1/people", json={"name": "Cleo", "email": "cleo@example.com", "role": "client"}
        ),
        422,
    )
    created = await c.post(
        "/v1/people",
        json={"name": "Max Member", "email": "Max@Example.com", "role": "member", "title": "Dev"},
    )
    assert created.status_code == 201, created.text
    max_ = created.json()
    assert created.headers["location"] == max_["url"]
    assert max_["email"] == "Max@Example.com"
    assert (max_["role"], max_["title"], max_["company"], max_["active"]) == (
        "member",
        "Dev",
        None,
        True,
    )
    assert (await c.get(max_["url"])).json() == max_

    cleo_id, cleo_token = await new_person(api, "Cleo", "client", company="Acme")
    cleo = (await c.get("/v1/me", headers=bearer(cleo_token))).json()
    assert (cleo["id"], cleo["role"], cleo["company"]) == (cleo_id, "client", "Acme")

    # Max gets a first token from the admin, then makes a second one himself.
    first = await c.post(f"/v1/people/{max_['id']}/tokens", json={})
    assert first.status_code == 201
    first_token = first.json()
    assert first_token["label"] == ""
    assert first_token["token"].startswith("cairn_")
    assert first.headers["location"].endswith(f"/v1/tokens/{first_token['id']}")
    own = await c.post(
        f"/v1/people/{max_['id']}/tokens",
        json={"label": "laptop"},
        headers=bearer(first_token["token"]),
    )
    assert own.status_code == 201
    second_token = own.json()

    listed = await c.get(f"/v1/people/{max_['id']}/tokens", headers=bearer(second_token["token"]))
    assert listed.status_code == 200
    assert [t["label"] for t in listed.json()] == ["", "laptop"]
    assert all("token" not in t and t["revoked"] is False for t in listed.json())
    assert listed.headers["x-total-count"] == "2"
    assert first_token["token"] not in listed.text

    # Revoking a token: 204, then that token gets 401 and the other one still works.
    revoked = await c.delete(
        f"/v1/tokens/{first_token['id']}", headers=bearer(second_token["token"])
    )
    assert revoked.status_code == 204
    problem(await c.get("/v1/me", headers=bearer(first_token["token"])), 401)
    assert (await c.get("/v1/me", headers=bearer(second_token["token"]))).status_code == 200
    # Revoking again changes nothing (DELETE is idempotent).
    again = await c.delete(f"/v1/tokens/{first_token['id']}")
    assert again.status_code == 204
    shown = (await c.get(f"/v1/tokens/{first_token['id']}")).json()
    assert shown["revoked"] is True
    assert shown["revoked_at"] is not None

    # A member may not act on other people's tokens, nor see that a token exists.
    problem(
        await c.post(
            f"/v1/people/{cleo_id}/tokens", json={}, headers=bearer(second_token["token"])
        ),
        403,
    )
    problem(await c.get(f"/v1/people/{cleo_id}/tokens", headers=bearer(second_token["token"])), 403)
    cleos = (await c.get(f"/v1/people/{cleo_id}/tokens")).json()
    problem(
        await c.delete(f"/v1/tokens/{cleos[0]['id']}", headers=bearer(second_token["token"])), 404
    )

    # Deactivation: every token of the person stops working at once.
    problem(await c.post(f"/v1/people/{api.admin_id}/deactivate"), 403)
    problem(
        await c.post(f"/v1/people/{cleo_id}/deactivate", headers=bearer(second_token["token"])), 403
    )
    off = await c.post(f"/v1/people/{max_['id']}/deactivate")
    assert off.status_code == 200
    assert off.json()["active"] is False
    problem(await c.get("/v1/me", headers=bearer(second_token["token"])), 401)
    problem(await c.post(f"/v1/people/{max_['id']}/deactivate"), 409)
    assert all(t["revoked"] for t in (await c.get(f"/v1/people/{max_['id']}/tokens")).json())

    # Reactivation: old tokens stay revoked; a new one works.
    on = await c.post(f"/v1/people/{max_['id']}/reactivate")
    assert on.status_code == 200
    assert on.json()["active"] is True
    problem(await c.get("/v1/me", headers=bearer(second_token["token"])), 401)
    fresh = (await c.post(f"/v1/people/{max_['id']}/tokens", json={"label": "new"})).json()
    assert (await c.get("/v1/me", headers=bearer(fresh["token"]))).json()["id"] == max_["id"]


async def test_clients_see_themselves_and_the_people_of_their_projects(api: Api) -> None:
    """A client lists only themselves and the people of projects they may see; anyone else is
    404 to them, while members see everyone."""
    c = api.client
    cleo_id, cleo = await new_person(api, "Cleo", "client")
    carl_id, carl = await new_person(api, "Carl", "client")
    olga_id, olga = await new_person(api, "Olga")
    nils_id, _ = await new_person(api, "Nils")
    # Olga's project with clients enabled has Cleo; Carl is on a project with clients off.
    shared = (
        await c.post(
            "/v1/projects", json={"name": "Shared", "clients_enabled": True}, headers=bearer(olga)
        )
    ).json()
    hidden = (await c.post("/v1/projects", json={"name": "Hidden"}, headers=bearer(olga))).json()
    for project, person in ((shared, cleo_id), (hidden, carl_id)):
        put = await c.put(
            f"/v1/projects/{project['id']}/people/{person}",
            json={"project_role": "client"},
            headers=bearer(olga),
        )
        assert put.status_code == 201, put.text

    seen, totals = await all_pages(c, "/v1/people", bearer(cleo))
    assert sorted(p["id"] for p in seen) == sorted([cleo_id, olga_id])
    assert totals == [2]
    assert (await c.get(f"/v1/people/{olga_id}", headers=bearer(cleo))).status_code == 200
    for other in (nils_id, carl_id, api.admin_id, "per_nobody"):
        problem(await c.get(f"/v1/people/{other}", headers=bearer(cleo)), 404)
        problem(
            await c.patch(f"/v1/people/{other}", json={"title": "x"}, headers=bearer(cleo)), 404
        )
    # Carl's only project has clients disabled: he sees nobody but himself.
    assert [p["id"] for p in (await c.get("/v1/people", headers=bearer(carl))).json()] == [carl_id]

    everyone, _ = await all_pages(c, "/v1/people", bearer(olga))
    assert {cleo_id, carl_id, olga_id, nils_id, api.admin_id} == {p["id"] for p in everyone}


async def test_patch_merges_and_moves_the_email_claim(api: Api) -> None:
    """PATCH changes only the fields sent, null clears, and a new e-mail address is claimed
    while the old one is freed, in one step; a taken address is 409."""
    c = api.client
    max_id, max_token = await new_person(api, "Max", title="Dev")
    await new_person(api, "Nora")

    titled = await c.patch(f"/v1/people/{max_id}", json={"name": "Max M."})
    assert titled.status_code == 200
    assert (titled.json()["name"], titled.json()["title"]) == ("Max M.", "Dev")
    cleared = (await c.patch(f"/v1/people/{max_id}", json={"title": None})).json()
    assert (cleared["name"], cleared["title"]) == ("Max M.", None)
    problem(await c.patch(f"/v1/people/{max_id}", json={"name": None}), 422)

    # People edit themselves, but not their role, and not others.
    own = await c.patch("/v1/people/" + max_id, json={"title": "Lead"}, headers=bearer(max_token))
    assert own.json()["title"] == "Lead"
    problem(
        await c.patch(f"/v1/people/{max_id}", json={"role": "admin"}, headers=bearer(max_token)),
        403,
    )
    problem(
        await c.patch(f"/v1/people/{api.admin_id}", json={"title": "x"}, headers=bearer(max_token)),
        403,
    )

    problem(await c.patch(f"/v1/people/{max_id}", json={"email": "nora@example.com"}), 409)
    moved = await c.patch(f"/v1/people/{max_id}", json={"email": "max.m@example.com"})
    assert moved.json()["email"] == "max.m@example.com"
    # The old address is free again; the new one is taken.
    reuse = await c.post(
        "/v1/people", json={"name": "Other Max", "email": "MAX@example.com", "role": "member"}
    )
    assert reuse.status_code == 201, reuse.text
    taken = await c.post(
        "/v1/people", json={"name": "Dup", "email": "max.m@example.com", "role": "member"}
    )
    problem(taken, 409)
    # A change of case only keeps the same claim.
    recased = await c.patch(f"/v1/people/{max_id}", json={"email": "Max.M@example.com"})
    assert recased.status_code == 200, recased.text

    # A client needs a company: clearing it is refused.
    cleo_id, _ = await new_person(api, "Cleo", "client")
    problem(await c.patch(f"/v1/people/{cleo_id}", json={"company": None}), 422)


async def test_people_set_their_locale_and_time_zone_with_patch_me(api: Api) -> None:
    """PATCH /v1/me sets and clears the caller's locale and time zone; those who may see a
    person see them, as they see a title."""
    c = api.client
    mia_id, mia_token = await new_person(api, "Mia")
    mia = bearer(mia_token)
    before = (await c.get("/v1/me", headers=mia)).json()
    assert (before["locale"], before["time_zone"]) == (None, None)

    chosen = await c.patch(
        "/v1/me", json={"locale": "fr", "time_zone": "Pacific/Kiritimati"}, headers=mia
    )
    assert chosen.status_code == 200, chosen.text
    assert (chosen.json()["id"], chosen.json()["locale"], chosen.json()["time_zone"]) == (
        mia_id,
        "fr",
        "Pacific/Kiritimati",
    )
    assert (await c.get("/v1/me", headers=mia)).json() == chosen.json()
    # /v1/me is the person and how many of their notifications are unread.
    assert chosen.json().pop("unread_notifications") == 0
    as_person = {k: v for k, v in chosen.json().items() if k != "unread_notifications"}
    assert (await c.get(f"/v1/people/{mia_id}")).json() == as_person
    _, otto_token = await new_person(api, "Otto")
    seen = (await c.get(f"/v1/people/{mia_id}", headers=bearer(otto_token))).json()
    assert (seen["locale"], seen["time_zone"]) == ("fr", "Pacific/Kiritimati")

    # Merge: a field left out stays; null clears back to the server's defaults.
    renamed = (await c.patch("/v1/me", json={"name": "Mia M."}, headers=mia)).json()
    assert (renamed["locale"], renamed["time_zone"]) == ("fr", "Pacific/Kiritimati")
    cleared = (await c.patch("/v1/me", json={"time_zone": None}, headers=mia)).json()
    assert (cleared["locale"], cleared["time_zone"]) == ("fr", None)
    problem(await c.patch("/v1/me", json={"role": "admin"}, headers=mia), 403)


async def test_admins_give_people_their_preferences(api: Api) -> None:
    """An admin sets a person's locale and time zone on creation and by PATCH
    /v1/people/{id}; a member may not set another's."""
    c = api.client
    created = await c.post(
        "/v1/people",
        json={
            "name": "Pia",
            "email": "pia@example.com",
            "role": "member",
            "locale": "en",
            "time_zone": "Pacific/Pago_Pago",
        },
    )
    assert created.status_code == 201, created.text
    pia = created.json()
    assert (pia["locale"], pia["time_zone"]) == ("en", "Pacific/Pago_Pago")
    edited = (await c.patch(pia["url"], json={"locale": "fr", "time_zone": "Europe/Paris"})).json()
    assert (edited["locale"], edited["time_zone"]) == ("fr", "Europe/Paris")
    _, max_token = await new_person(api, "Max")
    problem(await c.patch(pia["url"], json={"locale": "en"}, headers=bearer(max_token)), 403)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"time_zone": "europe/paris"}, "time_zone"),
        ({"time_zone": "localtime"}, "time_zone"),
        ({"time_zone": "+02:00"}, "time_zone"),
        ({"time_zone": 2}, "time_zone"),
        ({"locale": "de"}, "locale"),
        ({"locale": "fr-FR"}, "locale"),
    ],
)
async def test_unknown_time_zones_and_locales_are_422_naming_the_field(
    api: Api, body: dict[str, object], field: str
) -> None:
    """A time zone outside the IANA database, or a locale other than en and fr, is a 422
    naming the field, on PATCH /v1/me, PATCH /v1/people/{id} and POST /v1/people."""
    c = api.client
    new = {"name": "Zed", "email": "zed@example.com", "role": "member"}
    for refused in (
        await c.patch("/v1/me", json=body),
        await c.patch(f"/v1/people/{api.admin_id}", json=body),
        await c.post("/v1/people", json={**new, **body}),
    ):
        errors = problem(refused, 422)["errors"]
        assert [e["field"] for e in errors] == [field]
    me = (await c.get("/v1/me")).json()
    assert (me["locale"], me["time_zone"]) == (None, None)


async def test_preferences_survive_a_directory_rebuild(api: Api) -> None:
    """The directory rebuilt from the log, event by event or in bulk, holds the same locales
    and time zones as the one kept up to date."""
    c = api.client
    kiri_id, kiri_token = await new_person(api, "Kiri", locale="fr", time_zone="Pacific/Kiritimati")
    pago_id, pago_token = await new_person(api, "Pago")
    await c.patch("/v1/me", json={"time_zone": "Pacific/Pago_Pago"}, headers=bearer(pago_token))
    await c.patch("/v1/me", json={"locale": None}, headers=bearer(kiri_token))
    expected = {kiri_id: (None, "Pacific/Kiritimati"), pago_id: (None, "Pacific/Pago_Pago")}

    store = await EventStore.open(api.server.database_url, min_size=1, max_size=4)
    try:
        engine = ProjectionEngine(store, all_projections())
        assert await rebuilt_differences(store, engine) == {}
        await engine.rebuild("directory")
    finally:
        await store.close()
    for person_id, preferences in expected.items():
        shown = (await c.get(f"/v1/people/{person_id}")).json()
        assert (shown["locale"], shown["time_zone"]) == preferences


async def test_people_errors_are_problems(api: Api, live_server: Server) -> None:
    """Bad requests on the people routes get 400, 401, 403, 404, 405, 409, 413, 415 and 422
    as problem+json."""
    c = api.client
    _, max_token = await new_person(api, "Max")
    body = {"name": "Zed", "email": "zed@example.com", "role": "member"}

    problem(
        await c.post(
            "/v1/people", content=b"{not json", headers={"Content-Type": "application/json"}
        ),
        400,
    )
    problem(await c.get("/v1/people?limit=0"), 400)
    problem(await c.get("/v1/people?cursor=!!"), 400)
    async with httpx.AsyncClient(base_url=live_server.base_url) as anonymous:
        unauthenticated = await anonymous.get("/v1/me")
        problem(unauthenticated, 401)
        assert unauthenticated.headers["www-authenticate"].startswith("Bearer")
        problem(await anonymous.get("/v1/people", headers={"Authorization": "Basic eDp5"}), 401)
        problem(await anonymous.get("/v1/people", headers=bearer("cairn_wrong")), 401)
    problem(await c.post("/v1/people", json=body, headers=bearer(max_token)), 403)
    problem(await c.get("/v1/people/per_nobody"), 404)
    problem(await c.post("/v1/people/per_nobody/deactivate"), 404)
    problem(await c.delete("/v1/tokens/tok_nobody"), 404)
    problem(await c.put(f"/v1/people/{api.admin_id}", json={}), 405)
    problem(await c.post("/v1/people", json={**body, "email": "ada@example.com"}), 409)
    problem(await c.post("/v1/people", json={**body, "title": "x" * 2_000_000}), 413)
    problem(
        await c.post("/v1/people", content=b"name=Zed", headers={"Content-Type": "text/plain"}), 415
    )
    unknown = problem(await c.post("/v1/people", json={**body, "nickname": "z"}), 422)
    assert "nickname" in unknown["detail"]
    problem(await c.post("/v1/people", json={**body, "role": "owner"}), 422)
    problem(await c.post("/v1/people", json={**body, "email": "not-an-address"}), 422)
    problem(await c.patch(f"/v1/people/{api.admin_id}", json={"id": "x"}), 422)


async def test_get_person_etag_and_304(api: Api) -> None:
    """GET /v1/people/{id} and /v1/me send an ETag, answer If-None-Match with 304, and a
    change gives a new ETag."""
    c = api.client
    first = await c.get(f"/v1/people/{api.admin_id}")
    etag = first.headers["etag"]
    assert (
        await c.get(f"/v1/people/{api.admin_id}", headers={"If-None-Match": etag})
    ).status_code == 304
    me = await c.get("/v1/me")
    assert (await c.get("/v1/me", headers={"If-None-Match": me.headers["etag"]})).status_code == 304
    await c.patch(f"/v1/people/{api.admin_id}", json={"title": "Boss"})
    changed = await c.get(f"/v1/people/{api.admin_id}", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag


async def test_people_pages_hold_while_people_are_added(api: Api) -> None:
    """Paging through /v1/people while people are added returns every earlier person exactly
    once, in creation order, with X-Total-Count growing."""
    c = api.client
    for i in range(5):
        await c.post(
            "/v1/people", json={"name": f"P{i}", "email": f"p{i}@example.com", "role": "member"}
        )
    before = [p["id"] for p in (await c.get("/v1/people?limit=100")).json()]
    assert len(before) == 6
    added = 0

    async def add() -> None:
        nonlocal added
        added += 1
        await c.post(
            "/v1/people",
            json={"name": f"N{added}", "email": f"n{added}@example.com", "role": "member"},
        )

    seen, totals = await all_pages(c, "/v1/people?limit=2", between=add)
    ids = [p["id"] for p in seen]
    assert len(ids) == len(set(ids))
    assert ids[: len(before)] == before
    assert totals[0] == 6
    assert totals == sorted(totals)
    assert totals[-1] > 6


async def test_token_post_is_idempotent(api: Api) -> None:
    """A retried token POST with the same Idempotency-Key issues one token, not two."""
    c = api.client
    max_id, _ = await new_person(api, "Max")
    key = {"Idempotency-Key": "token-1"}
    first = await c.post(f"/v1/people/{max_id}/tokens", json={"label": "ci"}, headers=key)
    retry = await c.post(f"/v1/people/{max_id}/tokens", json={"label": "ci"}, headers=key)
    assert first.status_code == retry.status_code == 201
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json()["id"] == first.json()["id"]
    labels = [t["label"] for t in (await c.get(f"/v1/people/{max_id}/tokens")).json()]
    assert labels == ["tests", "ci"]


async def test_token_secret_is_never_stored(api: Api, live_server: Server) -> None:
    """Under an Idempotency-Key, the saved response (and so the replay) leaves out the secret."""
    c = api.client
    key = {"Idempotency-Key": "token-2"}
    first = await c.post(f"/v1/people/{api.admin_id}/tokens", json={}, headers=key)
    secret = first.json()["token"]
    retry = await c.post(f"/v1/people/{api.admin_id}/tokens", json={}, headers=key)
    assert retry.json()["id"] == first.json()["id"]
    assert retry.json()["token"] is None
    conn = await asyncpg.connect(live_server.database_url)
    try:
        bodies = await conn.fetch("SELECT body FROM http_responses")
    finally:
        await conn.close()
    assert bodies
    assert all(secret.encode() not in bytes(r["body"]) for r in bodies)


# ------------------------------------------------------------------ cairn people create-admin


async def test_create_admin_command_prints_a_working_token(live_server: Server) -> None:
    """`cairn people create-admin` prints a token that the API accepts as the new admin's;
    a second admin with the same address is refused with exit code 2."""
    assert CAIRN is not None
    env = {**os.environ, "DATABASE_URL": live_server.database_url}
    args = [CAIRN, "people", "create-admin", "--name", "Root", "--email", "root@example.com"]
    done = await asyncio.to_thread(subprocess.run, args, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert token.startswith("cairn_")
    assert "\n" not in token

    async with httpx.AsyncClient(base_url=live_server.base_url, headers=bearer(token)) as client:
        # The server's read model follows the log the command wrote to: poll until it has it.
        me = await known_token(client, timeout=5.0)
        assert me.status_code == 200, me.text
        assert (me.json()["name"], me.json()["email"], me.json()["role"]) == (
            "Root",
            "root@example.com",
            "admin",
        )

    again = await asyncio.to_thread(subprocess.run, args, env=env, capture_output=True, text=True)
    assert again.returncode == 2
    assert "already in use" in again.stderr


@pytest.mark.parametrize("server_settings", [{"token_cache_ttl": 60.0}])
async def test_token_holders_are_remembered_across_other_writes(api: Api) -> None:
    """The token cache keeps its entries while this instance writes messages and projects,
    and forgets them when it changes a person (who might be the token's holder). Seen from
    outside by revoking a token behind the service's back, in the read model only: a
    remembered holder still gets in, a looked-up one does not."""
    c = api.client
    mia_id, mia_token = await new_person(api, "Mia")
    assert (await c.get("/v1/me", headers=bearer(mia_token))).status_code == 200
    conn = await asyncpg.connect(api.server.database_url)
    try:
        await conn.execute("UPDATE api_tokens SET revoked = true WHERE person_id = $1", mia_id)
    finally:
        await conn.close()
    project = await c.post("/v1/projects", json={"name": "Unrelated"})
    assert project.status_code == 201
    message = await c.post(
        f"/v1/projects/{project.json()['id']}/messages", json={"subject": "Hi", "body": "x"}
    )
    assert message.status_code == 201
    assert (await c.get("/v1/me", headers=bearer(mia_token))).status_code == 200
    _, _ = await new_person(api, "Otto")  # a change of a person (another one, even)
    problem(await c.get("/v1/me", headers=bearer(mia_token)), 401)


async def test_a_revocation_through_one_instance_holds_on_another_within_a_second(
    api: Api,
) -> None:
    """Two instances on one database: a token revoked through one stops working on the
    other, which had its holder in memory, within its cache lifetime (1 s by default)."""
    c = api.client
    mia_id, mia_token = await new_person(api, "Mia")
    tokens = (await c.get(f"/v1/people/{mia_id}/tokens")).json()
    async with another_instance(api.server.database_url, mia_token) as other:

        async def accepted() -> None:
            assert (await other.get("/v1/me")).status_code == 200

        async def refused() -> None:
            me = await other.get("/v1/me")
            assert me.status_code != 200, "still accepted 3 s after revocation"

        await eventually(accepted, timeout=5.0)
        revoked = await c.delete(f"/v1/tokens/{tokens[0]['id']}")
        assert revoked.status_code == 204
        await eventually(refused, timeout=3.0, interval=0.02)
        problem(await other.get("/v1/me"), 401)


async def test_a_token_retried_after_a_lost_response_is_not_shown_again(api: Api) -> None:
    """A token POST whose first run died after issuing the token but before saving its
    response: the retry names the same token, without a secret (the one in force is the
    first run's, never seen again), and issues nothing more. The same for feed tokens."""
    c = api.client
    key = {"Idempotency-Key": "token-crash"}
    first = await c.post(f"/v1/people/{api.admin_id}/tokens", json={"label": "x"}, headers=key)
    assert first.status_code == 201
    feed_key = {"Idempotency-Key": "feed-crash"}
    feed = await c.post("/v1/me/feed_token", headers=feed_key)
    assert feed.status_code == 200
    conn = await asyncpg.connect(api.server.database_url)
    try:
        events = await conn.fetchval("SELECT count(*) FROM events")
        await conn.execute("DELETE FROM http_responses")
        retry = await c.post(f"/v1/people/{api.admin_id}/tokens", json={"label": "x"}, headers=key)
        feed_retry = await c.post("/v1/me/feed_token", headers=feed_key)
        assert await conn.fetchval("SELECT count(*) FROM events") == events
    finally:
        await conn.close()
    assert retry.status_code == 201
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json() == {**first.json(), "token": None}
    assert (await c.get("/v1/me", headers=bearer(first.json()["token"]))).status_code == 200
    assert feed_retry.status_code == 200
    assert feed_retry.json()["token"] is None
    atom = await c.get(feed.json()["activity_atom_url"].removeprefix(str(c.base_url).rstrip("/")))
    assert atom.status_code == 200

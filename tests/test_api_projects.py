"""Projects, their status and their members over real HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .support.api import Api, all_pages, bearer, new_person, problem
from .support.servers import Server


async def _project(api: Api, token: str | None = None, **fields: Any) -> dict[str, Any]:
    """A new project (by the holder of ``token``, else the admin)."""
    headers = bearer(token) if token else None
    created = await api.client.post(
        "/v1/projects", json={"name": "Launch", **fields}, headers=headers
    )
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


async def _put_member(
    api: Api, project_id: str, person_id: str, role: str, token: str | None = None
) -> httpx.Response:
    return await api.client.put(
        f"/v1/projects/{project_id}/people/{person_id}",
        json={"project_role": role},
        headers=bearer(token) if token else None,
    )


async def test_project_scenario(api: Api) -> None:
    """A member creates a project and owns it, adds a member and a client, edits it; an
    archived project is read-only (409) until unarchived; trash and restore move it
    between the status lists."""
    c = api.client
    olga_id, olga = await new_person(api, "Olga")
    max_id, max_ = await new_person(api, "Max")
    cleo_id, cleo = await new_person(api, "Cleo", "client", company="Acme")

    created = await c.post(
        "/v1/projects",
        json={"name": "Launch", "description": "<p>Go <b>live</b></p>"},
        headers=bearer(olga),
    )
    assert created.status_code == 201, created.text
    project = created.json()
    pid = project["id"]
    assert created.headers["location"] == project["url"]
    assert project["url"].endswith(f"/v1/projects/{pid}")
    assert project["app_url"] == f"http://localhost:3000/projects/{pid}"
    assert (project["name"], project["status"], project["clients_enabled"]) == (
        "Launch",
        "active",
        False,
    )
    assert project["project_role"] == "owner"
    assert project["creator"]["id"] == olga_id
    assert project["creator"]["name"] == "Olga"
    # The admin sees it without being on it.
    as_admin = (await c.get(f"/v1/projects/{pid}")).json()
    assert as_admin["project_role"] is None
    assert as_admin["created_at"] == project["created_at"]

    # Members: 201 when added, 200 when changed or unchanged.
    added = await _put_member(api, pid, max_id, "member", olga)
    assert added.status_code == 201, added.text
    assert added.headers["location"].endswith(f"/v1/projects/{pid}/people/{max_id}")
    assert (added.json()["id"], added.json()["project_role"]) == (max_id, "member")
    assert (await _put_member(api, pid, max_id, "member", olga)).status_code == 200
    promoted = await _put_member(api, pid, max_id, "owner", olga)
    assert (promoted.status_code, promoted.json()["project_role"]) == (200, "owner")
    assert (await _put_member(api, pid, cleo_id, "client", max_)).status_code == 201
    people = await c.get(f"/v1/projects/{pid}/people", headers=bearer(max_))
    assert [(p["id"], p["project_role"]) for p in people.json()] == [
        (olga_id, "owner"),
        (max_id, "owner"),
        (cleo_id, "client"),
    ]
    assert people.headers["x-total-count"] == "3"

    # The client sees the project only once clients are enabled.
    problem(await c.get(f"/v1/projects/{pid}", headers=bearer(cleo)), 404)
    assert (await c.get("/v1/projects", headers=bearer(cleo))).json() == []
    edited = await c.patch(
        f"/v1/projects/{pid}", json={"clients_enabled": True}, headers=bearer(olga)
    )
    assert edited.status_code == 200
    assert (edited.json()["clients_enabled"], edited.json()["name"]) == (True, "Launch")
    assert edited.json()["description"] == project["description"]
    seen = await c.get(f"/v1/projects/{pid}", headers=bearer(cleo))
    assert (seen.status_code, seen.json()["project_role"]) == (200, "client")
    assert [p["id"] for p in (await c.get("/v1/projects", headers=bearer(cleo))).json()] == [pid]
    cleared = await c.patch(f"/v1/projects/{pid}", json={"description": None}, headers=bearer(olga))
    assert cleared.json()["description"] is None

    # Archived: readable, listed as archived, every write 409 until unarchived.
    archived = await c.post(f"/v1/projects/{pid}/archive", headers=bearer(olga))
    assert (archived.status_code, archived.json()["status"]) == (200, "archived")
    assert (await c.get(f"/v1/projects/{pid}", headers=bearer(max_))).status_code == 200
    assert [p["id"] for p in (await c.get("/v1/projects?status=archived")).json()] == [pid]
    assert (await c.get("/v1/projects")).json() == []
    problem(await c.patch(f"/v1/projects/{pid}", json={"name": "X"}, headers=bearer(olga)), 409)
    problem(await _put_member(api, pid, max_id, "member", olga), 409)
    problem(await c.delete(f"/v1/projects/{pid}/people/{cleo_id}", headers=bearer(olga)), 409)
    problem(await c.post(f"/v1/projects/{pid}/trash", headers=bearer(olga)), 409)
    problem(await c.post(f"/v1/projects/{pid}/archive", headers=bearer(olga)), 409)
    unarchived = await c.post(f"/v1/projects/{pid}/unarchive", headers=bearer(olga))
    assert unarchived.json()["status"] == "active"
    renamed = await c.patch(f"/v1/projects/{pid}", json={"name": "Launch 2"}, headers=bearer(olga))
    assert renamed.json()["name"] == "Launch 2"

    # Trash and restore.
    trashed = await c.post(f"/v1/projects/{pid}/trash", headers=bearer(max_))
    assert trashed.json()["status"] == "trashed"
    assert [
        p["id"] for p in (await c.get("/v1/projects?status=trashed", headers=bearer(max_))).json()
    ] == [pid]
    problem(await c.patch(f"/v1/projects/{pid}", json={"name": "X"}, headers=bearer(olga)), 409)
    problem(await c.post(f"/v1/projects/{pid}/unarchive", headers=bearer(olga)), 409)
    restored = await c.post(f"/v1/projects/{pid}/restore", headers=bearer(olga))
    assert restored.json()["status"] == "active"
    problem(await c.post(f"/v1/projects/{pid}/restore", headers=bearer(olga)), 409)

    # Removing people: 204, then they no longer see the project; the last owner stays.
    assert (
        await c.delete(f"/v1/projects/{pid}/people/{max_id}", headers=bearer(olga))
    ).status_code == 204
    problem(await c.get(f"/v1/projects/{pid}", headers=bearer(max_)), 404)
    problem(await c.delete(f"/v1/projects/{pid}/people/{max_id}", headers=bearer(olga)), 404)
    problem(await c.delete(f"/v1/projects/{pid}/people/{olga_id}", headers=bearer(olga)), 409)
    problem(await _put_member(api, pid, olga_id, "member", olga), 409)


async def test_project_access_rules(api: Api) -> None:
    """Non-members get 404 on everything of a project; members may not manage it (403);
    clients see only clients-enabled projects they are on and cannot create projects."""
    c = api.client
    olga_id, olga = await new_person(api, "Olga")
    max_id, max_ = await new_person(api, "Max")
    nils_id, nils = await new_person(api, "Nils")
    cleo_id, cleo = await new_person(api, "Cleo", "client")
    open_ = await _project(api, olga, name="Open", clients_enabled=True)
    closed = await _project(api, olga, name="Closed")
    for project in (open_, closed):
        assert (await _put_member(api, project["id"], max_id, "member", olga)).status_code == 201
        assert (await _put_member(api, project["id"], cleo_id, "client", olga)).status_code == 201

    pid = open_["id"]
    for method, path, body in [
        ("GET", f"/v1/projects/{pid}", None),
        ("PATCH", f"/v1/projects/{pid}", {"name": "X"}),
        ("POST", f"/v1/projects/{pid}/archive", None),
        ("POST", f"/v1/projects/{pid}/trash", None),
        ("GET", f"/v1/projects/{pid}/people", None),
        ("GET", f"/v1/projects/{pid}/people/{olga_id}", None),
        ("PUT", f"/v1/projects/{pid}/people/{nils_id}", {"project_role": "member"}),
        ("DELETE", f"/v1/projects/{pid}/people/{max_id}", None),
    ]:
        response = await c.request(method, path, json=body, headers=bearer(nils))
        problem(response, 404)
    assert (await c.get("/v1/projects", headers=bearer(nils))).json() == []

    # A plain member sees the project but may not manage it.
    for method, path, body in [
        ("PATCH", f"/v1/projects/{pid}", {"name": "X"}),
        ("POST", f"/v1/projects/{pid}/archive", None),
        ("PUT", f"/v1/projects/{pid}/people/{nils_id}", {"project_role": "member"}),
        # Nobody has this id (one not of an id's shape is a 404 before any rule is asked).
        ("PUT", f"/v1/projects/{pid}/people/per_{'0' * 20}", {"project_role": "member"}),
        ("DELETE", f"/v1/projects/{pid}/people/{olga_id}", None),
    ]:
        problem(await c.request(method, path, json=body, headers=bearer(max_)), 403)
    # An owner adding someone who does not exist learns so (404).
    problem(await _put_member(api, pid, "per_nobody", "member", olga), 404)

    # Clients: the clients-enabled project only; no project creation, no management.
    listed = await c.get("/v1/projects", headers=bearer(cleo))
    assert [p["id"] for p in listed.json()] == [pid]
    problem(await c.get(f"/v1/projects/{closed['id']}", headers=bearer(cleo)), 404)
    problem(await c.get(f"/v1/projects/{closed['id']}/people", headers=bearer(cleo)), 404)
    problem(await c.post("/v1/projects", json={"name": "Mine"}, headers=bearer(cleo)), 403)
    problem(await c.patch(f"/v1/projects/{pid}", json={"name": "X"}, headers=bearer(cleo)), 403)
    problem(await _put_member(api, pid, nils_id, "member", cleo), 403)
    assert (await c.get(f"/v1/projects/{pid}/people", headers=bearer(cleo))).status_code == 200

    # Roles must fit the person: a client is only ever a client of a project, and back.
    problem(await _put_member(api, pid, cleo_id, "owner", olga), 422)
    problem(await _put_member(api, pid, nils_id, "client", olga), 422)

    # A deactivated person's token stops working, and they cannot be added anywhere.
    assert (await c.post(f"/v1/people/{max_id}/deactivate")).status_code == 200
    problem(await c.get(f"/v1/projects/{pid}", headers=bearer(max_)), 401)
    assert (await c.delete(f"/v1/projects/{closed['id']}/people/{max_id}")).status_code == 204
    problem(await _put_member(api, closed["id"], max_id, "member"), 409)


async def test_project_errors_are_problems(api: Api, live_server: Server) -> None:
    """Bad requests on the project routes get 400, 401, 405, 413, 415 and 422 as
    problem+json."""
    c = api.client
    pid = (await _project(api))["id"]
    problem(await c.get("/v1/projects?status=deleted"), 400)
    problem(await c.get("/v1/projects?limit=101"), 400)
    problem(await c.get(f"/v1/projects/{pid}/people?cursor=abc"), 400)
    problem(
        await c.patch(
            f"/v1/projects/{pid}",
            content=b'{"name": ',
            headers={"Content-Type": "application/json"},
        ),
        400,
    )
    async with httpx.AsyncClient(base_url=live_server.base_url) as anonymous:
        problem(await anonymous.get("/v1/projects"), 401)
        problem(await anonymous.post("/v1/projects", json={"name": "X"}), 401)
    problem(await c.get("/v1/projects/prj_nobody"), 404)
    problem(await c.post("/v1/projects/prj_nobody/archive"), 404)
    problem(await c.delete(f"/v1/projects/{pid}"), 405)
    problem(await c.put(f"/v1/projects/{pid}", json={"name": "X"}), 405)
    problem(await c.post(f"/v1/projects/{pid}/unarchive"), 409)
    problem(await c.post("/v1/projects", json={"name": "X", "description": "x" * 2_000_000}), 413)
    problem(await c.post("/v1/projects", content=b"name=X"), 415)
    problem(await c.post("/v1/projects", json={"name": "X", "owner": "me"}), 422)
    problem(await c.post("/v1/projects", json={"name": ""}), 422)
    problem(await c.post("/v1/projects", json={"name": "X", "clients_enabled": "yes"}), 422)
    problem(await c.patch(f"/v1/projects/{pid}", json={"status": "archived"}), 422)
    problem(await c.patch(f"/v1/projects/{pid}", json={"name": None}), 422)
    problem(await _put_member(api, pid, api.admin_id, "boss"), 422)


async def test_retried_project_post_creates_one_project(api: Api) -> None:
    """A POST /v1/projects retried with the same Idempotency-Key returns the first response
    and creates one project; the same key with another body is 422."""
    c = api.client
    key = {"Idempotency-Key": "create-launch"}
    first = await c.post("/v1/projects", json={"name": "Launch"}, headers=key)
    retry = await c.post("/v1/projects", json={"name": "Launch"}, headers=key)
    assert first.status_code == retry.status_code == 201
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json() == first.json()
    assert retry.headers["location"] == first.headers["location"]
    listed = await c.get("/v1/projects")
    assert [p["id"] for p in listed.json()] == [first.json()["id"]]
    assert listed.headers["x-total-count"] == "1"
    problem(await c.post("/v1/projects", json={"name": "Other"}, headers=key), 422)
    # Status changes are POSTs too: a retried archive is replayed, not refused as a conflict.
    pid = first.json()["id"]
    archive = {"Idempotency-Key": "archive-launch"}
    assert (await c.post(f"/v1/projects/{pid}/archive", headers=archive)).status_code == 200
    again = await c.post(f"/v1/projects/{pid}/archive", headers=archive)
    assert (again.status_code, again.json()["status"]) == (200, "archived")


async def test_project_etag_and_304(api: Api) -> None:
    """GETs of a project, the list and the members send ETags and answer If-None-Match with
    304 until something changes."""
    c = api.client
    pid = (await _project(api))["id"]
    for path in (f"/v1/projects/{pid}", "/v1/projects", f"/v1/projects/{pid}/people"):
        first = await c.get(path)
        etag = first.headers["etag"]
        unchanged = await c.get(path, headers={"If-None-Match": etag})
        assert unchanged.status_code == 304
        assert unchanged.content == b""
    etag = (await c.get(f"/v1/projects/{pid}")).headers["etag"]
    await c.patch(f"/v1/projects/{pid}", json={"name": "Renamed"})
    changed = await c.get(f"/v1/projects/{pid}", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.json()["name"] == "Renamed"


async def test_project_pages_hold_while_projects_are_added(api: Api) -> None:
    """Paging through /v1/projects (and a project's people) while more are added returns every
    earlier item exactly once, in creation order."""
    c = api.client
    before = [(await _project(api, name=f"P{i}"))["id"] for i in range(5)]
    added = 0

    async def add() -> None:
        nonlocal added
        added += 1
        await _project(api, name=f"New {added}")

    seen, totals = await all_pages(c, "/v1/projects?limit=2", between=add)
    ids = [p["id"] for p in seen]
    assert len(ids) == len(set(ids))
    assert ids[:5] == before
    assert totals[0] == 5
    assert totals == sorted(totals)
    assert totals[-1] > 5

    pid = before[0]
    people = [(await new_person(api, f"M{i}"))[0] for i in range(3)]
    for person_id in people[:2]:
        await _put_member(api, pid, person_id, "member")

    async def join() -> None:
        if people:
            await _put_member(api, pid, people.pop(), "member")

    members, _ = await all_pages(c, f"/v1/projects/{pid}/people?limit=1", between=join)
    assert len(members) == len({m["id"] for m in members}) == 4
    assert members[0]["id"] == api.admin_id


async def test_a_projects_language_is_set_when_made_and_edited(api: Api) -> None:
    """A project is in the instance's default language (English) unless made in another;
    its owner changes it with a PATCH, and an unknown language is a 422 naming the field."""
    c = api.client
    default = await _project(api)
    assert default["language"] == "en"
    french = await _project(api, language="fr")
    assert french["language"] == "fr"
    assert (await c.get(f"/v1/projects/{french['id']}")).json()["language"] == "fr"
    edited = await c.patch(f"/v1/projects/{default['id']}", json={"language": "fr"})
    assert (edited.status_code, edited.json()["language"]) == (200, "fr")
    refused = problem(await c.patch(f"/v1/projects/{default['id']}", json={"language": "de"}), 422)
    assert [e["field"] for e in refused["errors"]] == ["language"]
    refused = problem(await c.post("/v1/projects", json={"name": "X", "language": "french"}), 422)
    assert [e["field"] for e in refused["errors"]] == ["language"]


@pytest.mark.parametrize("server_settings", [{"locale": "fr"}])
async def test_new_projects_take_the_language_of_cairn_locale(api: Api) -> None:
    """With ``CAIRN_LOCALE=fr``, a project made without a language is French; one made in
    English stays English."""
    assert (await _project(api))["language"] == "fr"
    assert (await _project(api, language="en"))["language"] == "en"

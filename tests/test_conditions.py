"""ETags name a resource's version, and ``If-Match`` on every write to one resource refuses
(412, nothing appended) a write based on a stale read: no lost updates."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import httpx

from service.domain.unsubscribe import sign
from service.reads.mail_keys import keyring

from .support.api import Api, new_person, problem
from .support.teams import Team
from .support.waiting import eventually

_VERSIONED = re.compile(r'^"(\d+)-[0-9a-f]+"$')


def _version(response: httpx.Response) -> int:
    match = _VERSIONED.match(response.headers["etag"])
    assert match is not None, response.headers["etag"]
    return int(match[1])


async def _history_length(c: httpx.AsyncClient, recording_id: str) -> int:
    reply = await c.get(f"/v1/recordings/{recording_id}/events")
    assert reply.status_code == 200, reply.text
    return int(reply.headers["x-total-count"])


async def test_an_etag_names_the_version_and_if_match_guards_a_patch(team: Team) -> None:
    """A GET's ETag carries the stream version; a PATCH with it succeeds and answers the next
    version's ETag; the same stale ETag again is 412 and appends nothing."""
    c = team.c
    message = await team.message()
    read = await c.get(f"/v1/messages/{message['id']}")
    assert _version(read) == 1
    etag = read.headers["etag"]
    edited = await c.patch(
        f"/v1/messages/{message['id']}", json={"subject": "Agenda"}, headers={"If-Match": etag}
    )
    assert edited.status_code == 200, edited.text
    assert _version(edited) == 2
    before = await _history_length(c, message["id"])
    stale = await c.patch(
        f"/v1/messages/{message['id']}", json={"subject": "Lost"}, headers={"If-Match": etag}
    )
    assert "changed since you read it" in problem(stale, 412)["detail"]
    assert await _history_length(c, message["id"]) == before
    shown = await c.get(f"/v1/messages/{message['id']}")
    assert shown.json()["subject"] == "Agenda"


async def test_viewers_seeing_different_bytes_share_the_version(team: Team) -> None:
    """A client and a member get different bytes of a recording (different ETags for
    If-None-Match) but the same version, so either's ETag works for If-Match."""
    c = team.c
    todolist = await team.post(
        f"/v1/projects/{team.project_id}/todolists", {"name": "Shared", "visible_to_clients": True}
    )
    comment = await team.post(
        f"/v1/recordings/{todolist['id']}/comments", {"content": "<p>mine</p>"}, as_=team.cleo
    )
    as_client = await c.get(f"/v1/comments/{comment['id']}", headers=team.cleo)
    as_admin = await c.get(f"/v1/comments/{comment['id']}")
    assert _version(as_client) == _version(as_admin) == 1
    edited = await c.patch(
        f"/v1/comments/{comment['id']}",
        json={"content": "<p>edited</p>"},
        headers={**team.cleo, "If-Match": as_admin.headers["etag"]},
    )
    assert edited.status_code == 200, edited.text


async def test_if_match_star_passes_and_weak_or_foreign_tags_fail(team: Team) -> None:
    """``*`` matches any version; a weak tag and a tag this API did not make never match."""
    c = team.c
    message = await team.message()
    url = f"/v1/messages/{message['id']}"
    etag = (await c.get(url)).headers["etag"]
    for tag in (f"W/{etag}", '"abc"', "garbage"):
        problem(await c.patch(url, json={"subject": "x"}, headers={"If-Match": tag}), 412)
    starred = await c.patch(url, json={"subject": "Star"}, headers={"If-Match": "*"})
    assert starred.status_code == 200, starred.text
    listed = await c.patch(
        url, json={"subject": "Listed"}, headers={"If-Match": f'"99-00", {starred.headers["etag"]}'}
    )
    assert listed.status_code == 200, listed.text


async def test_a_hidden_resource_is_404_whatever_the_if_match(team: Team) -> None:
    """The precondition is looked at only once the caller may see the resource: an outsider
    with a stale tag learns nothing (404, not 412)."""
    message = await team.message()
    reply = await team.c.patch(
        f"/v1/messages/{message['id']}",
        json={"subject": "x"},
        headers={**team.otto, "If-Match": '"1-00"'},
    )
    problem(reply, 404)


async def test_people_and_projects_carry_their_versions(api: Api) -> None:
    """A person's and a project's ETags name their streams' versions, which move with every
    change of them (memberships included for a project)."""
    c = api.client
    person_id, _ = await new_person(api, "Vera")
    person = await c.get(f"/v1/people/{person_id}")
    edited = await c.patch(
        f"/v1/people/{person_id}",
        json={"title": "Chef"},
        headers={"If-Match": person.headers["etag"]},
    )
    assert _version(edited) == _version(person) + 1
    problem(
        await c.patch(
            f"/v1/people/{person_id}",
            json={"title": "Cook"},
            headers={"If-Match": person.headers["etag"]},
        ),
        412,
    )
    project = await c.post("/v1/projects", json={"name": "Versions"})
    assert project.status_code == 201
    first = _version(project)
    added = await c.put(
        f"/v1/projects/{project.json()['id']}/people/{person_id}", json={"project_role": "member"}
    )
    assert _version(added) == first + 1
    problem(
        await c.post(
            f"/v1/projects/{project.json()['id']}/archive",
            headers={"If-Match": project.headers["etag"]},
        ),
        412,
    )


async def test_every_write_to_one_resource_honours_if_match(team: Team) -> None:
    """Each PATCH, PUT, DELETE and non-creating POST of the OpenAPI document answers 412 to a
    tag of a version the resource is not at, and changes nothing."""
    c = team.c
    spec: dict[str, Any] = (await c.get("/openapi.json")).json()
    message = await team.message()
    todolist = await team.post(f"/v1/projects/{team.project_id}/todolists", {"name": "L"})
    todo = await team.post(f"/v1/todolists/{todolist['id']}/todos", {"content": "T"})
    milestone = await team.post(
        f"/v1/projects/{team.project_id}/milestones", {"title": "M", "due_on": "2030-01-01"}
    )
    comment = await team.post(f"/v1/recordings/{message['id']}/comments", {"content": "<p>c</p>"})
    # Mia's comment tells the admin (subscribed to their message): a notification of theirs.
    await team.post(f"/v1/recordings/{message['id']}/comments", {"content": "<p>m</p>"}, team.mia)

    async def notified() -> str:
        inbox = (await c.get("/v1/my/notifications")).json()
        assert inbox, "not told yet"
        return str(inbox[0]["id"])

    notification = await eventually(notified, timeout=10)
    sent = await c.post("/v1/attachments", params={"name": "f.txt"}, content=b"f")
    upload = await team.post(
        f"/v1/projects/{team.project_id}/uploads", {"attachable_id": sent.json()["attachable_id"]}
    )
    token = await c.post(f"/v1/people/{team.mia_id}/tokens", json={"label": "x"})
    hook = await c.post("/v1/webhooks", json={"url": "https://hooks.example/in"})
    ids = {
        "webhook_id": hook.json()["id"],
        "notification_id": notification,
        "id": message["id"],
        "project_id": team.project_id,
        "person_id": team.mia_id,
        "token_id": token.json()["id"],
    }
    by_path = {
        "/v1/todos/{id}": todo["id"],
        "/v1/todos/{id}/completion": todo["id"],
        "/v1/todos/{id}/position": todo["id"],
        "/v1/todolists/{id}": todolist["id"],
        "/v1/milestones/{id}": milestone["id"],
        "/v1/milestones/{id}/completion": milestone["id"],
        "/v1/comments/{id}": comment["id"],
        "/v1/uploads/{id}": upload["id"],
        "/v1/uploads/{id}/versions": upload["id"],
    }
    bodies = {
        "/v1/recordings/{id}/status": {"status": "archived"},
        "/v1/recordings/{id}/client_visibility": {"visible_to_clients": True},
        "/v1/todos/{id}/position": {"position": 1},
        "/v1/uploads/{id}/versions": {"attachable_id": sent.json()["attachable_id"]},
        "/v1/projects/{project_id}/people/{person_id}": {"project_role": "member"},
        "/v1/me/notifications": {"email": {}, "digest": False, "quiet_hours": None},
    }
    pool = await asyncpg.create_pool(team.api.server.database_url, min_size=1, max_size=1)
    try:
        unsubscribe = sign(await keyring(pool), team.api.admin_id, "comment")
    finally:
        await pool.close()
    queries = {"/v1/mail/unsubscribe": f"?token={unsubscribe}"}
    checked = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if not any(p["name"] == "If-Match" for p in operation.get("parameters", [])):
                continue
            values = {**ids, "id": by_path.get(path, ids["id"])}
            url = re.sub(r"\{(\w+)\}", lambda m, v=values: v[m[1]], path)  # type: ignore[misc]
            url += queries.get(path, "")
            body = bodies.get(path, {} if method in ("patch", "post") else None)
            reply = await c.request(
                method.upper(), url, json=body, headers={"If-Match": '"9999-00"'}
            )
            problem(reply, 412)
            checked.append((method, path))
    assert len(checked) >= 20, checked
    assert (await c.get(f"/v1/messages/{message['id']}")).json()["status"] == "active"
    assert (await c.get(f"/v1/todos/{todo['id']}")).json()["completed"] is False
    assert (await c.get(f"/v1/uploads/{upload['id']}")).json()["versions_count"] == 1
    assert (await c.get(f"/v1/tokens/{ids['token_id']}")).json()["revoked"] is False

"""Uploads and attachments over real HTTP: bytes sent with ``POST /v1/attachments``, kept on
a project as uploads (listed, filtered, paged, renamed, versioned, trashed), and attached to
messages and comments; who may see and name which file."""

from __future__ import annotations

import hashlib
from typing import Any

import feedparser
import httpx

from .support.api import all_pages, problem, ref
from .support.teams import Team


async def _bytes(
    team: Team, data: bytes, name: str, content_type: str, as_: dict[str, str] | None = None
) -> dict[str, Any]:
    """An attachable of ``data`` uploaded by ``as_`` (the admin by default)."""
    sent = await team.c.post(
        "/v1/attachments",
        params={"name": name},
        content=data,
        headers={"Content-Type": content_type, **(as_ or {})},
    )
    assert sent.status_code == 201, sent.text
    result: dict[str, Any] = sent.json()
    return result


async def _upload(
    team: Team, name: str, content_type: str = "text/plain", **fields: Any
) -> dict[str, Any]:
    """An upload on the team's project, made by the admin."""
    att = await _bytes(team, name.encode(), name, content_type)
    body = {"attachable_id": att["attachable_id"], **fields}
    return await team.post(f"/v1/projects/{team.project_id}/uploads", body)


async def test_an_upload_is_kept_renamed_and_versioned(team: Team) -> None:
    """An upload shows its file and description; a rename and a new version by Mia are in
    its history and its activity; every version stays listed with who added it."""
    c, pid = team.c, team.project_id
    first = await _bytes(team, b"%PDF-1 draft", "plan.pdf", "application/pdf")
    posted = await team.post(
        f"/v1/projects/{pid}/uploads",
        {
            "attachable_id": first["attachable_id"],
            "description": "<p>The <b>plan</b><script>x</script></p>",
            "folder": "Specs",
        },
    )
    uid = posted["id"]
    assert posted["type"] == "upload"
    assert posted["url"].endswith(f"/v1/uploads/{uid}")
    assert (posted["name"], posted["folder"], posted["content_type"]) == (
        "plan.pdf",
        "Specs",
        "application/pdf",
    )
    assert posted["description"] == "<p>The <b>plan</b></p>"
    assert posted["size"] == len(b"%PDF-1 draft")
    assert posted["sha256"] == hashlib.sha256(b"%PDF-1 draft").hexdigest()
    assert posted["versions_count"] == 1
    assert posted["download_url"].endswith(f"/v1/uploads/{uid}/download")
    assert posted["visible_to_clients"] is False
    assert (await c.get(f"/v1/uploads/{uid}", headers=team.mia)).json() == posted
    assert (await c.get(f"/v1/recordings/{uid}")).json() == posted

    renamed = await c.patch(
        f"/v1/uploads/{uid}", json={"name": "Plan v1.pdf", "folder": None}, headers=team.mia
    )
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["name"], renamed.json()["folder"]) == ("Plan v1.pdf", None)
    assert renamed.json()["description"] == posted["description"]

    second = await _bytes(team, b"%PDF-1 final", "plan-final.pdf", "application/pdf", team.mia)
    added = await c.post(
        f"/v1/uploads/{uid}/versions",
        json={"attachable_id": second["attachable_id"]},
        headers=team.mia,
    )
    assert added.status_code == 200, added.text
    now = added.json()
    assert (now["name"], now["versions_count"], now["sha256"]) == (
        "plan-final.pdf",
        2,
        second["sha256"],
    )

    versions = await c.get(f"/v1/uploads/{uid}/versions", headers=team.mia)
    assert versions.status_code == 200, versions.text
    assert [(v["n"], v["name"], v["sha256"], v["creator"]) for v in versions.json()] == [
        (1, "plan.pdf", first["sha256"], ref(team.api, team.api.admin_id, "Ada Admin")),
        (2, "plan-final.pdf", second["sha256"], ref(team.api, team.mia_id, "Mia")),
    ]
    assert versions.json()[0]["download_url"].endswith(f"/v1/uploads/{uid}/versions/1/download")

    history = (await c.get(f"/v1/recordings/{uid}/events")).json()
    assert [(e["kind"], e["actor"]["id"]) for e in history] == [
        ("upload_created", team.api.admin_id),
        ("upload_edited", team.mia_id),
        ("upload_version_added", team.mia_id),
    ]
    replaced = {ch["field"]: ch for ch in history[2]["changes"]}
    assert replaced["file"]["before"]["sha256"] == first["sha256"]
    assert replaced["file"]["after"]["sha256"] == second["sha256"]

    activity = (await c.get(f"/v1/projects/{pid}/activity")).json()
    sentences = [i["sentence"] for i in activity]
    assert "Mia replaced “plan-final.pdf” with a new version" in sentences, sentences


async def test_uploads_are_listed_by_folder_and_type_in_pages(team: Team) -> None:
    """The list is newest first, paged with Link and X-Total-Count; ``folder`` and
    ``content_type`` (exact, or ``type/*``) narrow it; a malformed type is a 400."""
    c, pid = team.c, team.project_id
    made = [
        await _upload(team, "a.png", "image/png", folder="Art"),
        await _upload(team, "b.jpg", "image/jpeg", folder="Art"),
        await _upload(team, "c.txt", "text/plain", folder="Notes"),
        await _upload(team, "d.png", "image/png"),
    ]
    url = f"/v1/projects/{pid}/uploads"
    everything, totals = await all_pages(c, f"{url}?limit=3")
    assert [u["id"] for u in everything] == [u["id"] for u in reversed(made)]
    assert totals == [4, 4]

    async def names(**params: str) -> list[str]:
        answer = await c.get(url, params=params)
        assert answer.status_code == 200, answer.text
        return [u["name"] for u in answer.json()]

    assert await names(folder="Art") == ["b.jpg", "a.png"]
    assert await names(content_type="image/png") == ["d.png", "a.png"]
    assert await names(content_type="image/*") == ["d.png", "b.jpg", "a.png"]
    assert await names(content_type="IMAGE/PNG", folder="Art") == ["a.png"]
    assert await names(folder="None such") == []
    bad = problem(await c.get(url, params={"content_type": "image"}), 400)
    assert bad["errors"][0]["field"] == "content_type"


async def test_clients_see_only_uploads_shown_to_them(team: Team) -> None:
    """A hidden upload is a 404 for a client and missing from their list, its versions too;
    one shown to clients is there; Otto, not on the project, gets 404 everywhere."""
    c, pid = team.c, team.project_id
    hidden = await _upload(team, "internal.txt")
    shown = await _upload(team, "brief.txt", visible_to_clients=True)
    listed = await c.get(f"/v1/projects/{pid}/uploads", headers=team.cleo)
    assert [u["id"] for u in listed.json()] == [shown["id"]]
    assert listed.headers["x-total-count"] == "1"
    problem(await c.get(f"/v1/uploads/{hidden['id']}", headers=team.cleo), 404)
    problem(await c.get(f"/v1/uploads/{hidden['id']}/versions", headers=team.cleo), 404)
    assert (await c.get(f"/v1/uploads/{shown['id']}", headers=team.cleo)).status_code == 200
    for path in (
        f"/v1/uploads/{shown['id']}",
        f"/v1/uploads/{shown['id']}/versions",
        f"/v1/projects/{pid}/uploads",
    ):
        problem(await c.get(path, headers=team.otto), 404)
    att = await _bytes(team, b"x", "x.txt", "text/plain", team.otto)
    refused = await c.post(
        f"/v1/projects/{pid}/uploads",
        json={"attachable_id": att["attachable_id"]},
        headers=team.otto,
    )
    problem(refused, 404)


async def test_someone_elses_attachable_is_refused(team: Team) -> None:
    """Mia cannot keep, version or attach the admin's attachable (nor an unknown one): 422
    naming the field; nothing is created."""
    c, pid = team.c, team.project_id
    admins = await _bytes(team, b"secret", "secret.txt", "text/plain")
    for attachable_id in (admins["attachable_id"], "att_00000000000000000000"):
        refused = problem(
            await c.post(
                f"/v1/projects/{pid}/uploads",
                json={"attachable_id": attachable_id},
                headers=team.mia,
            ),
            422,
        )
        assert refused["errors"][0]["field"] == "attachable_id"
    assert (await c.get(f"/v1/projects/{pid}/uploads")).json() == []

    upload = await _upload(team, "mine.txt")
    refused = problem(
        await c.post(
            f"/v1/uploads/{upload['id']}/versions",
            json={"attachable_id": admins["attachable_id"]},
            headers=team.mia,
        ),
        422,
    )
    assert refused["errors"][0]["field"] == "attachable_id"
    assert (await c.get(f"/v1/uploads/{upload['id']}")).json()["versions_count"] == 1

    body = {"subject": "S", "body": "<p>b</p>", "attachment_ids": [admins["attachable_id"]]}
    refused = problem(
        await c.post(f"/v1/projects/{pid}/messages", json=body, headers=team.mia), 422
    )
    assert refused["errors"][0]["field"] == "attachment_ids"
    assert (await c.get(f"/v1/projects/{pid}/messages")).json() == []
    too_many = {"subject": "S", "body": "<p>b</p>", "attachment_ids": ["att_x"] * 21}
    refused = problem(await c.post(f"/v1/projects/{pid}/messages", json=too_many), 422)
    assert "attachment_ids" in refused["errors"][0]["field"]


async def test_messages_and_comments_carry_attachments(team: Team) -> None:
    """A message and a comment list their files in order with download URLs; a PATCH's
    ``attachment_ids`` replaces the list, ``[]`` clears it, and leaving it out keeps it."""
    c, pid = team.c, team.project_id
    one = await _bytes(team, b"one", "one.txt", "text/plain")
    two = await _bytes(team, b"two", "two.csv", "text/csv")
    message = await team.post(
        f"/v1/projects/{pid}/messages",
        {
            "subject": "Files",
            "body": "<p>See</p>",
            "visible_to_clients": True,
            "attachment_ids": [two["attachable_id"], one["attachable_id"]],
        },
    )
    mid = message["id"]
    assert [
        (a["name"], a["size"], a["content_type"], a["sha256"]) for a in message["attachments"]
    ] == [
        ("two.csv", 3, "text/csv", two["sha256"]),
        ("one.txt", 3, "text/plain", one["sha256"]),
    ]
    assert message["attachments"][0]["download_url"].endswith(
        f"/v1/recordings/{mid}/attachments/{two['sha256']}/download"
    )
    listed = (await c.get(f"/v1/projects/{pid}/messages", headers=team.cleo)).json()
    assert listed[0]["attachments"] == message["attachments"]

    edited = await c.patch(f"/v1/messages/{mid}", json={"subject": "Files!"})
    assert edited.json()["attachments"] == message["attachments"]
    edited = await c.patch(f"/v1/messages/{mid}", json={"attachment_ids": [one["attachable_id"]]})
    assert edited.status_code == 200, edited.text
    assert [a["name"] for a in edited.json()["attachments"]] == ["one.txt"]
    cleared = await c.patch(f"/v1/messages/{mid}", json={"attachment_ids": []})
    assert cleared.json()["attachments"] == []

    mine = await _bytes(team, b"pic", "pic.png", "image/png", team.cleo)
    comment = await team.post(
        f"/v1/recordings/{mid}/comments",
        {"content": "<p>Here</p>", "attachment_ids": [mine["attachable_id"]]},
        as_=team.cleo,
    )
    assert [a["name"] for a in comment["attachments"]] == ["pic.png"]
    assert comment["attachments"][0]["download_url"].endswith(
        f"/v1/recordings/{comment['id']}/attachments/{mine['sha256']}/download"
    )
    kept = await c.patch(
        f"/v1/comments/{comment['id']}", json={"content": "<p>Hi</p>"}, headers=team.cleo
    )
    assert kept.json()["attachments"] == comment["attachments"]
    gone = await c.patch(
        f"/v1/comments/{comment['id']}", json={"attachment_ids": []}, headers=team.cleo
    )
    assert gone.status_code == 200, gone.text
    assert gone.json()["attachments"] == []
    plain = await team.message()
    assert plain["attachments"] == []


async def test_an_upload_is_trashed_and_restored(team: Team) -> None:
    """A trashed upload leaves the list (it is under ``status=trashed``) and refuses new
    versions and edits (409); restored, it is back and editable, also via the generic
    PATCH."""
    c, pid = team.c, team.project_id
    upload = await _upload(team, "old.txt")
    uid = upload["id"]
    trashed = await c.put(f"/v1/recordings/{uid}/status", json={"status": "trashed"})
    assert trashed.status_code == 200, trashed.text
    assert (await c.get(f"/v1/projects/{pid}/uploads")).json() == []
    in_trash = (await c.get(f"/v1/projects/{pid}/uploads", params={"status": "trashed"})).json()
    assert [u["id"] for u in in_trash] == [uid]
    problem(await c.patch(f"/v1/uploads/{uid}", json={"name": "new.txt"}), 409)
    att = await _bytes(team, b"new", "new.txt", "text/plain")
    problem(
        await c.post(f"/v1/uploads/{uid}/versions", json={"attachable_id": att["attachable_id"]}),
        409,
    )

    restored = await c.put(f"/v1/recordings/{uid}/status", json={"status": "active"})
    assert restored.status_code == 200, restored.text
    assert [u["id"] for u in (await c.get(f"/v1/projects/{pid}/uploads")).json()] == [uid]
    generic = await c.patch(f"/v1/recordings/{uid}", json={"name": "renamed.txt"})
    assert generic.status_code == 200, generic.text
    assert (generic.json()["type"], generic.json()["name"]) == ("upload", "renamed.txt")


async def test_clients_may_not_keep_files(team: Team) -> None:
    """A client's upload on the project is refused (403): keeping files is staff's."""
    c, pid = team.c, team.project_id
    att = await _bytes(team, b"c", "c.txt", "text/plain", team.cleo)
    refused = await c.post(
        f"/v1/projects/{pid}/uploads",
        json={"attachable_id": att["attachable_id"]},
        headers=team.cleo,
    )
    problem(refused, 403)


async def test_activity_filters_uploads_by_type(team: Team) -> None:
    """``?type=upload`` keeps the activity about uploads alone, on the account-wide and the
    project streams."""
    upload = await _upload(team, "plan.pdf", "application/pdf")
    await team.message()
    for url in ("/v1/activity", f"/v1/projects/{team.project_id}/activity"):
        found = await team.c.get(url, params={"type": "upload"})
        assert found.status_code == 200, found.text
        items = found.json()
        assert [i["target"]["id"] for i in items] == [upload["id"]]
        assert items[0]["kind"] == "upload_created"


async def test_feed_readers_download_enclosures_with_their_feed_token(team: Team) -> None:
    """A feed read with ``?token=`` carries enclosure addresses with that token: a feed
    reader downloads the file with nothing else. The feed token works by HTTP Basic too; an
    unknown one is 401; a client's feed token opens no file hidden from clients (404)."""
    data = b"quarterly numbers\n" * 100
    att = await _bytes(team, data, "numbers.txt", "text/plain")
    upload = await team.post(
        f"/v1/projects/{team.project_id}/uploads",
        {"attachable_id": att["attachable_id"], "visible_to_clients": False},
    )
    token = (await team.c.post("/v1/me/feed_token")).json()["token"]
    base = team.api.server.base_url
    async with httpx.AsyncClient(base_url=base, timeout=30) as reader:
        feed = await reader.get(f"/feeds/projects/{team.project_id}.atom", params={"token": token})
        assert feed.status_code == 200, feed.text
        parsed = feedparser.parse(feed.content)
        [href] = [e.href for entry in parsed.entries for e in entry.enclosures]
        assert href.startswith(f"{base.rstrip('/')}/v1/uploads/{upload['id']}/versions/1/")
        assert f"token={token}" in href
        got = await reader.get(href)
        assert (got.status_code, got.content) == (200, data)
        basic = await reader.get(
            f"/v1/uploads/{upload['id']}/download", auth=httpx.BasicAuth("feed", token)
        )
        assert (basic.status_code, basic.content) == (200, data)
        problem(await reader.get(f"/v1/uploads/{upload['id']}/download"), 401)
        problem(
            await reader.get(f"/v1/uploads/{upload['id']}/download", params={"token": "nope"}),
            401,
        )
        cleo_token = (await team.c.post("/v1/me/feed_token", headers=team.cleo)).json()["token"]
        problem(
            await reader.get(f"/v1/uploads/{upload['id']}/download", params={"token": cleo_token}),
            404,
        )

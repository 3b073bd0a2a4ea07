"""The notifications inbox: ``GET /v1/my/notifications`` (unread first, paged, each with its
sentence and the recording as the API shows it to the reader, redacted and re-checked),
marking read (one, all; idempotent; someone else's is a 404), the unread count on
``GET /v1/me``, live ``notification`` / ``notifications_read`` frames across two instances,
and the inbox read model rebuilt from the log row for row."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection

from service.events.alerts import TodoOverdue
from service.events.base import Metadata
from service.events.store import ANY, EventStore
from service.events.streams import recording_stream
from service.projections import all_projections
from service.projections.engine import ProjectionEngine

from .support.api import Api, all_pages, problem
from .support.projections import caught_up, differences, live_schema
from .support.realtime import GUARD, frame, ws
from .support.servers import serving
from .support.teams import Team
from .support.waiting import eventually

AT = datetime(2030, 1, 1, 23, 0, tzinfo=UTC)


async def _inbox(
    client: httpx.AsyncClient, headers: dict[str, str], count: int
) -> list[dict[str, Any]]:
    """The whole inbox (one page), once it holds ``count`` notifications."""

    async def there() -> list[dict[str, Any]]:
        reply = await client.get("/v1/my/notifications", headers=headers, params={"limit": 100})
        assert reply.status_code == 200, reply.text
        items: list[dict[str, Any]] = reply.json()
        assert len(items) >= count, items
        return items

    return await eventually(there, timeout=10)


async def _unread(client: httpx.AsyncClient, headers: dict[str, str]) -> int:
    me = await client.get("/v1/me", headers=headers)
    assert me.status_code == 200, me.text
    count: int = me.json()["unread_notifications"]
    return count


async def test_inbox_unread_first_paged_and_marked_read(team: Team) -> None:
    """Five messages tell Mia: her inbox lists them unread, newest first, each with its
    sentence and the message as ``GET /v1/messages/{id}`` shows it to her; one read moves to
    the end; pages follow ``Link``; reading is idempotent and someone else's is a 404;
    ``read_all`` leaves none unread; ``/v1/me`` counts them throughout."""
    c, mia = team.c, team.mia
    posted = [await team.message(subject=f"News {i}") for i in range(5)]
    items = await _inbox(c, mia, 5)
    assert [i["recording"]["id"] for i in items] == [p["id"] for p in reversed(posted)]
    first = items[0]
    assert first["kind"] == "message"
    assert first["read"] is False
    assert first["read_at"] is None
    assert first["summary"] == "Ada Admin posted the message “News 4”"
    assert first["actor"]["id"] == team.api.admin_id
    assert first["project"]["id"] == team.project_id
    assert first["thread_id"] == posted[4]["id"]
    as_shown = (await c.get(f"/v1/messages/{posted[4]['id']}", headers=mia)).json()
    assert first["recording"] == as_shown
    assert await _unread(c, mia) == 5
    assert await _unread(c, {}) == 0  # the admin posted them: told of nothing

    french = await c.get("/v1/my/notifications", headers={**mia, "Accept-Language": "fr"})
    assert french.headers["content-language"] == "fr"
    assert french.json()[0]["summary"] == "Ada Admin a publié le message «\u00a0News 4\u00a0»"

    # Reading one: it moves behind the unread ones, and it is read once only.
    second = items[1]
    read = await c.post(f"/v1/my/notifications/{second['id']}/read", headers=mia)
    assert read.status_code == 200, read.text
    assert read.json()["read"] is True
    assert read.json()["read_at"] is not None
    again = await c.post(f"/v1/my/notifications/{second['id']}/read", headers=mia)
    assert again.json()["read_at"] == read.json()["read_at"]
    problem(await c.post(f"/v1/my/notifications/{second['id']}/read"), 404)
    problem(await c.post(f"/v1/my/notifications/ntf_{'0' * 20}/read", headers=mia), 404)
    problem(await c.post("/v1/my/notifications/nope/read", headers=mia), 404)
    assert await _unread(c, mia) == 4

    paged, _ = await all_pages(c, "/v1/my/notifications?limit=2", headers=mia)
    order = [i["id"] for i in paged]
    assert order == [i["id"] for i in items if i["id"] != second["id"]] + [second["id"]]
    assert [i["read"] for i in paged] == [False] * 4 + [True]
    page = await c.get("/v1/my/notifications", headers=mia, params={"limit": 2})
    assert page.headers["x-total-count"] == "5"
    assert 'rel="next"' in page.headers["link"]
    problem(await c.get("/v1/my/notifications", headers=mia, params={"cursor": "AAAA"}), 400)

    done = await c.post("/v1/my/notifications/read_all", headers=mia)
    assert done.status_code == 200, done.text
    assert done.json() == {"unread_notifications": 0}
    assert await _unread(c, mia) == 0
    everything = await _inbox(c, mia, 5)
    assert all(i["read"] for i in everything)
    assert [i["id"] for i in everything] == [i["id"] for i in items]  # newest first again
    # Nothing left to read: nothing appended.
    stale = await c.post(
        "/v1/my/notifications/read_all", headers={**mia, "If-Match": done.headers["etag"]}
    )
    assert stale.status_code == 200, stale.text
    assert stale.headers["etag"] == done.headers["etag"]


async def test_a_client_sees_only_what_they_may_see_now(team: Team) -> None:
    """Cleo (a client) is told of a visible message and of Mia's comment on it; once Mia has
    left the project she reads as "Someone"; once the message is hidden from clients, both
    notifications leave Cleo's inbox (her count stays honest about what she was told)."""
    c, cleo = team.c, team.cleo
    message = await team.message(visible_to_clients=True)
    comment = await team.post(
        f"/v1/recordings/{message['id']}/comments", {"content": "<p>Done</p>"}, team.mia
    )
    items = await _inbox(c, cleo, 2)
    assert [i["kind"] for i in items] == ["comment", "message"]
    told = items[0]
    assert told["recording"]["id"] == comment["id"]
    assert told["thread_id"] == message["id"]
    assert told["summary"] == "Mia commented on “Kick-off”"
    assert told["actor"]["id"] == team.mia_id

    removed = await c.delete(f"/v1/projects/{team.project_id}/people/{team.mia_id}")
    assert removed.status_code < 300, removed.text
    items = await _inbox(c, cleo, 2)
    told = items[0]
    assert told["actor"] == {"id": None, "name": "Someone", "url": None, "avatar_url": None}
    assert told["summary"] == "Someone commented on “Kick-off”"
    assert told["recording"]["creator"] == {"id": None, "name": "Someone"}
    assert told["recording"] == (await c.get(f"/v1/comments/{comment['id']}", headers=cleo)).json()

    hidden = await c.put(
        f"/v1/recordings/{message['id']}/client_visibility", json={"visible_to_clients": False}
    )
    assert hidden.status_code == 200, hidden.text
    after = await c.get("/v1/my/notifications", headers=cleo)
    assert after.json() == []
    # What she was told is not taken back: two unread, though neither shows now.
    assert after.headers["x-total-count"] == "2"
    assert (await c.get("/v1/me", headers=cleo)).json()["unread_notifications"] == 2
    problem(await c.post(f"/v1/my/notifications/{told['id']}/read", headers=cleo), 404)


async def _next(conn: ClientConnection, kind: str) -> dict[str, Any]:
    """The next frame, which must be of ``kind``."""
    got = await frame(conn)
    assert got["type"] == kind, got
    return got


async def test_live_frames_reach_their_person_on_every_instance(api: Api) -> None:
    """Mia's socket on a second instance, subscribed to ``notifications``, gets a
    ``notification`` frame (the inbox's item) when a message posted through the first
    instance tells her, and ``notifications_read`` when she reads it through the first
    instance; the author's and an unconcerned person's sockets get neither."""
    c = api.client
    people = {}
    for name in ("Mia", "Otto"):
        body = {"name": name, "email": f"{name.lower()}@example.com", "role": "member"}
        person = (await c.post("/v1/people", json=body)).json()
        token = (await c.post(f"/v1/people/{person['id']}/tokens", json={"label": "ws"})).json()
        people[name] = (person["id"], token["token"])
    mia_id, mia_token = people["Mia"]
    project = (await c.post("/v1/projects", json={"name": "Live"})).json()["id"]
    await c.put(f"/v1/projects/{project}/people/{mia_id}", json={"project_role": "member"})
    mia = {"Authorization": f"Bearer {mia_token}"}
    async with (
        serving(api.server.database_url) as second,
        httpx.AsyncClient(base_url=second.base_url, timeout=GUARD) as on_second,
        ws(second.ws_url, mia_token) as mia_socket,
        ws(second.ws_url, people["Otto"][1]) as otto_socket,
        ws(second.ws_url, api.admin_token) as admin_socket,
    ):
        for conn in (mia_socket, otto_socket, admin_socket):
            await conn.send(json.dumps({"type": "subscribe", "project_id": "notifications"}))
            assert await _next(conn, "subscribed") == {
                "type": "subscribed",
                "subscription": "notifications",
            }
        await mia_socket.send(json.dumps({"type": "subscribe", "project_id": "notifications"}))
        assert (await _next(mia_socket, "error"))["code"] == "already_subscribed"

        posted = await c.post(
            f"/v1/projects/{project}/messages", json={"subject": "Live", "body": "<p>x</p>"}
        )
        assert posted.status_code == 201, posted.text
        told = await _next(mia_socket, "notification")
        assert told["unread_notifications"] == 1
        (listed,) = (await on_second.get("/v1/my/notifications", headers=mia)).json()
        assert told["notification"] == listed
        assert listed["recording"]["id"] == posted.json()["id"]

        read = await c.post(f"/v1/my/notifications/{listed['id']}/read", headers=mia)
        assert read.status_code == 200, read.text
        assert await _next(mia_socket, "notifications_read") == {
            "type": "notifications_read",
            "ids": [listed["id"]],
            "up_to_position": None,
            "unread_notifications": 0,
        }
        # The hub handles the log in order: had Otto's or the admin's socket been sent
        # anything about the notice or the read, it would come before these answers.
        for conn in (otto_socket, admin_socket):
            await conn.send(json.dumps({"type": "unsubscribe", "project_id": "notifications"}))
            assert (await _next(conn, "unsubscribed"))["subscription"] == "notifications"


async def test_notifications_are_not_replayed(api: Api) -> None:
    """``since`` on the notifications subscription is refused (the inbox is the history)."""
    async with ws(api.server.ws_url, api.admin_token) as conn:
        await conn.send(
            json.dumps({"type": "subscribe", "project_id": "notifications", "since": 1})
        )
        refused = await _next(conn, "error")
        assert (refused["code"], refused["subscription"]) == ("bad_frame", "notifications")
        await conn.send(json.dumps({"type": "unsubscribe", "project_id": "notifications"}))
        assert (await _next(conn, "error"))["code"] == "not_subscribed"


@pytest.mark.parametrize("batch", [1, 7])
async def test_rebuilding_the_inbox_gives_the_same_rows(team: Team, batch: int) -> None:
    """Notifications and their read state, rebuilt from the log in batches of any size,
    equal the live read model row for row."""
    c = team.c
    message = await team.message(visible_to_clients=True)
    for i in range(3):
        await team.post(
            f"/v1/recordings/{message['id']}/comments", {"content": f"<p>{i}</p>"}, team.mia
        )
    items = await _inbox(c, team.cleo, 4)
    await c.post(f"/v1/my/notifications/{items[1]['id']}/read", headers=team.cleo)
    await c.post("/v1/my/notifications/read_all", headers=team.mia)
    await c.post("/v1/my/notifications/read_all")
    store = await EventStore.open(team.api.server.database_url, min_size=1, max_size=4)
    try:
        engine = ProjectionEngine(store, all_projections())
        head = await caught_up(engine)
        async with store.pool.acquire() as conn:
            rows = await conn.fetch("SELECT person_id, read_at FROM notifications")
            assert len(rows) >= 8
            assert any(r["read_at"] is None for r in rows)
            assert any(r["read_at"] is not None for r in rows)
            shadow = await engine.build_shadow("inbox", until=head, batch=batch)
            try:
                assert await differences(conn, await live_schema(conn, "inbox"), shadow) == {}
            finally:
                await engine.drop_shadow(shadow)
    finally:
        await store.close()


async def test_assignments_and_alerts_read_as_sentences(team: Team) -> None:
    """An assignment names who gave it; an alert (appended by Cairn) is told by Cairn, in
    the reader's language."""
    c, mia = team.c, team.mia
    todolist = await team.post(f"/v1/projects/{team.project_id}/todolists", {"name": "Plan"})
    todo = await team.post(
        f"/v1/todolists/{todolist['id']}/todos", {"content": "Ship", "assignee_ids": [team.mia_id]}
    )
    (assigned,) = await _inbox(c, mia, 1)
    assert assigned["kind"] == "assignment"
    assert assigned["summary"] == "Ada Admin assigned you the to-do “Ship”"
    store = await EventStore.open(team.api.server.database_url, min_size=1, max_size=2)
    try:
        due = {"due_on": date(2030, 1, 1), "due_at": AT, "at": AT}
        await store.append(
            recording_stream(todo["id"]), [TodoOverdue(**due)], ANY,
            Metadata(actor="system"), project_id=team.project_id,
        )  # fmt: skip
    finally:
        await store.close()
    alert, _ = await _inbox(c, mia, 2)
    assert alert["kind"] == "todo_overdue"
    assert alert["summary"] == "The to-do “Ship” is overdue"
    assert alert["actor"] == {"id": None, "name": "Cairn", "url": None, "avatar_url": None}
    assert alert["recording"]["id"] == todo["id"]
    french = (await c.get("/v1/my/notifications", headers={**mia, "Accept-Language": "fr"})).json()
    assert [n["summary"] for n in french] == [
        "La tâche «\u00a0Ship\u00a0» est en retard",
        "Ada Admin vous a assigné la tâche «\u00a0Ship\u00a0»",
    ]

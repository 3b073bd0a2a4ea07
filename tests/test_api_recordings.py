"""Messages, comments and what every recording has (status, client visibility, subscription,
history) over real HTTP. To-dos and milestones are in ``test_api_todos.py``."""

from __future__ import annotations

from .support.api import Api, all_pages, problem, ref
from .support.teams import Team


async def test_message_scenario(team: Team) -> None:
    """A member posts a message that everyone is subscribed to, edits it with a merge
    patch, and a client comments on it; the envelope is the same everywhere."""
    c, pid = team.c, team.project_id
    posted = await team.post(
        f"/v1/projects/{pid}/messages",
        {
            "subject": "Kick-off",
            "body": "<p>Hello <script>x</script><b>team</b></p>",
            "category": "News",
            "visible_to_clients": True,
        },
        as_=team.mia,
    )
    mid = posted["id"]
    assert posted["type"] == "message"
    assert posted["body"] == "<p>Hello <b>team</b></p>"
    assert (posted["status"], posted["visible_to_clients"], posted["inherits_visibility"]) == (
        "active",
        True,
        False,
    )
    assert posted["creator"] == ref(team.api, team.mia_id, "Mia")
    assert posted["project"]["id"] == pid
    assert posted["project"]["name"] == "Launch"
    assert posted["parent"] is None
    assert posted["url"].endswith(f"/v1/messages/{mid}")
    assert posted["app_url"] == f"http://localhost:3000/messages/{mid}"
    assert posted["created_at"] == posted["updated_at"]

    subscription = (await c.get(f"/v1/recordings/{mid}/subscription", headers=team.cleo)).json()
    assert subscription["subscribed"] is True
    assert {p["id"] for p in subscription["subscribers"]} == {
        team.api.admin_id,
        team.mia_id,
        team.cleo_id,
    }

    edited = await c.patch(
        f"/v1/messages/{mid}", json={"subject": "Kick-off!", "category": None}, headers=team.mia
    )
    assert edited.status_code == 200, edited.text
    assert (edited.json()["subject"], edited.json()["category"]) == ("Kick-off!", None)
    assert edited.json()["body"] == posted["body"]
    assert edited.json()["updated_at"] > posted["updated_at"]

    commented = await team.post(
        f"/v1/recordings/{mid}/comments", {"content": "<p>Looks &amp; good</p>"}, as_=team.cleo
    )
    assert commented["type"] == "comment"
    assert commented["parent"]["id"] == mid
    assert commented["parent"]["type"] == "message"
    assert commented["parent"]["title"] == "Kick-off!"
    assert (commented["visible_to_clients"], commented["inherits_visibility"]) == (True, True)
    again = (await c.get(f"/v1/comments/{commented['id']}", headers=team.mia)).json()
    assert again == commented
    fixed = await c.patch(
        f"/v1/comments/{commented['id']}", json={"content": "<p>Great</p>"}, headers=team.cleo
    )
    assert fixed.json()["content"] == "<p>Great</p>"
    assert (await c.get(f"/v1/messages/{mid}")).json()["comments_count"] == 1
    comments = (await c.get(f"/v1/recordings/{mid}/comments", headers=team.cleo)).json()
    assert [x["id"] for x in comments] == [commented["id"]]

    listed = (await c.get(f"/v1/projects/{pid}/messages", headers=team.cleo)).json()
    assert [m["id"] for m in listed] == [mid]
    generic = (await c.get(f"/v1/recordings/{mid}")).json()
    assert generic["type"] == "message"
    assert generic["subject"] == "Kick-off!"


async def test_clients_see_only_what_is_shown_to_them(team: Team) -> None:
    """A client never sees a hidden message, nor the to-dos and comments of a hidden list;
    showing the list shows what inherits from it, and an inheriting item's own visibility
    cannot be set (403 with the reason)."""
    c, pid = team.c, team.project_id
    hidden = await team.message(subject="Internal")
    shown = await team.message(subject="Public", visible_to_clients=True)
    listed = (await c.get(f"/v1/projects/{pid}/messages", headers=team.cleo)).json()
    assert [m["id"] for m in listed] == [shown["id"]]
    problem(await c.get(f"/v1/messages/{hidden['id']}", headers=team.cleo), 404)
    problem(await c.get(f"/v1/recordings/{hidden['id']}/events", headers=team.cleo), 404)
    problem(
        await c.post(
            f"/v1/recordings/{hidden['id']}/comments", json={"content": "hi"}, headers=team.cleo
        ),
        404,
    )

    todolist = await team.post(f"/v1/projects/{pid}/todolists", {"name": "Plan"})
    todo = await team.post(f"/v1/todolists/{todolist['id']}/todos", {"content": "Draft"})
    note = await team.post(f"/v1/recordings/{todo['id']}/comments", {"content": "soon"})
    for path in (f"/v1/todolists/{todolist['id']}", f"/v1/todos/{todo['id']}"):
        problem(await c.get(path, headers=team.cleo), 404)
    problem(await c.get(f"/v1/comments/{note['id']}", headers=team.cleo), 404)

    shown_list = await c.put(
        f"/v1/recordings/{todolist['id']}/client_visibility", json={"visible_to_clients": True}
    )
    assert shown_list.json()["visible_to_clients"] is True
    seen = (await c.get(f"/v1/comments/{note['id']}", headers=team.cleo)).json()
    assert seen["visible_to_clients"] is True
    seen_list = (await c.get(f"/v1/todolists/{todolist['id']}", headers=team.cleo)).json()
    assert [t["id"] for t in seen_list["todos"]] == [todo["id"]]

    refused = problem(
        await c.put(
            f"/v1/recordings/{todo['id']}/client_visibility", json={"visible_to_clients": False}
        ),
        403,
    )
    assert "to-do list" in refused["detail"]
    refused = problem(
        await c.put(
            f"/v1/recordings/{note['id']}/client_visibility", json={"visible_to_clients": False}
        ),
        403,
    )
    assert "parent" in refused["detail"]

    await c.put(
        f"/v1/recordings/{todolist['id']}/client_visibility", json={"visible_to_clients": False}
    )
    problem(await c.get(f"/v1/comments/{note['id']}", headers=team.cleo), 404)
    problem(await c.get(f"/v1/todos/{todo['id']}", headers=team.cleo), 404)


async def test_trash_and_restore(team: Team) -> None:
    """A trashed message leaves the default list (it shows under ?status=trashed), takes no
    comments (409), and comes back when restored."""
    c, pid = team.c, team.project_id
    message = await team.message()
    mid = message["id"]
    trashed = await c.put(f"/v1/recordings/{mid}/status", json={"status": "trashed"})
    assert trashed.status_code == 200, trashed.text
    assert trashed.json()["status"] == "trashed"
    assert (await c.get(f"/v1/projects/{pid}/messages")).json() == []
    in_trash = (await c.get(f"/v1/projects/{pid}/messages?status=trashed")).json()
    assert [m["id"] for m in in_trash] == [mid]
    problem(await c.post(f"/v1/recordings/{mid}/comments", json={"content": "x"}), 409)
    problem(await c.patch(f"/v1/messages/{mid}", json={"subject": "y"}), 409)
    restored = await c.put(f"/v1/recordings/{mid}/status", json={"status": "active"})
    assert restored.json()["status"] == "active"
    assert [m["id"] for m in (await c.get(f"/v1/projects/{pid}/messages")).json()] == [mid]
    problem(await c.put(f"/v1/recordings/{mid}/status", json={"status": "gone"}), 422)


async def test_error_statuses(team: Team, api: Api) -> None:
    """Non-members get 404 everywhere, clients 403 on edits, an archived project 409, bad
    bodies 422, 415 and 413, and flat routes 404 on an id of another kind."""
    c, pid = team.c, team.project_id
    message = await team.message(visible_to_clients=True)
    mid = message["id"]
    for method, path, body in (
        ("GET", f"/v1/projects/{pid}/messages", None),
        ("POST", f"/v1/projects/{pid}/messages", {"subject": "a", "body": "b"}),
        ("GET", f"/v1/messages/{mid}", None),
        ("PATCH", f"/v1/messages/{mid}", {"subject": "a"}),
        ("GET", f"/v1/recordings/{mid}/events", None),
        ("POST", f"/v1/recordings/{mid}/comments", {"content": "a"}),
        ("POST", f"/v1/recordings/{mid}/subscription", None),
        ("PUT", f"/v1/recordings/{mid}/status", {"status": "trashed"}),
    ):
        response = await c.request(method, path, json=body, headers=team.otto)
        problem(response, 404)
    problem(await c.get("/v1/messages/rec_nothing"), 404)

    problem(await c.patch(f"/v1/messages/{mid}", json={"subject": "a"}, headers=team.cleo), 403)
    problem(
        await c.put(f"/v1/recordings/{mid}/status", json={"status": "trashed"}, headers=team.cleo),
        403,
    )
    problem(
        await c.post(
            f"/v1/projects/{pid}/messages", json={"subject": "a", "body": "b"}, headers=team.cleo
        ),
        403,
    )
    for wrong in ("comments", "todolists", "todos", "milestones"):
        problem(await c.get(f"/v1/{wrong}/{mid}"), 404)
    problem(await c.post(f"/v1/todos/{mid}/completion"), 404)

    unknown = problem(
        await c.post(
            f"/v1/projects/{pid}/messages", json={"subject": "a", "body": "b", "colour": "red"}
        ),
        422,
    )
    assert "colour" in unknown["detail"]
    problem(await c.patch(f"/v1/recordings/{mid}", json={"colour": "red"}), 422)
    empty = problem(await c.patch(f"/v1/messages/{mid}", json={"subject": "  "}), 422)
    assert empty["errors"][0]["field"] == "subject"
    problem(
        await c.post(
            f"/v1/projects/{pid}/messages",
            content=b"subject=a",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
        415,
    )
    huge = "x" * 1_100_000
    problem(await c.post(f"/v1/projects/{pid}/messages", json={"subject": "a", "body": huge}), 413)

    archived = await c.post(f"/v1/projects/{pid}/archive")
    assert archived.status_code == 200, archived.text
    problem(await c.post(f"/v1/projects/{pid}/messages", json={"subject": "a", "body": "b"}), 409)
    problem(await c.patch(f"/v1/messages/{mid}", json={"subject": "new"}), 409)
    problem(await c.post(f"/v1/recordings/{mid}/comments", json={"content": "x"}), 409)
    # Reads still work in an archived project.
    assert (await c.get(f"/v1/messages/{mid}")).status_code == 200


async def test_etag_and_304(team: Team) -> None:
    """A GET answers with an ETag; the same ETag gives 304 until the item changes."""
    c = team.c
    message = await team.message()
    url = f"/v1/messages/{message['id']}"
    first = await c.get(url)
    etag = first.headers["etag"]
    assert (await c.get(url, headers={"If-None-Match": etag})).status_code == 304
    listing = await c.get(f"/v1/projects/{team.project_id}/messages")
    same = await c.get(
        f"/v1/projects/{team.project_id}/messages",
        headers={"If-None-Match": listing.headers["etag"]},
    )
    assert same.status_code == 304
    await c.patch(url, json={"body": "<p>changed</p>"})
    changed = await c.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag


async def test_pages_hold_while_messages_are_added(team: Team) -> None:
    """Paging newest first by cursor neither repeats nor skips a message while new ones are
    posted between pages; X-Total-Count counts them all."""
    c, pid = team.c, team.project_id
    before = [(await team.message(subject=f"m{i}"))["id"] for i in range(5)]
    added: list[str] = []

    async def post_one() -> None:
        added.append((await team.message(subject=f"new{len(added)}"))["id"])

    items, totals = await all_pages(c, f"/v1/projects/{pid}/messages?limit=2", between=post_one)
    seen = [m["id"] for m in items]
    assert seen == list(reversed(before))
    assert totals[0] == 5
    assert totals[-1] == 5 + len(added) - 1
    assert len(added) == 3
    problem(await c.get(f"/v1/projects/{pid}/messages?cursor=nonsense"), 400)
    problem(await c.get(f"/v1/projects/{pid}/messages?limit=500"), 400)


async def test_idempotent_post_is_replayed(team: Team) -> None:
    """A POST retried with the same Idempotency-Key gets the first response and creates
    nothing more; a different body under the key is refused."""
    c, pid = team.c, team.project_id
    headers = {"Idempotency-Key": "post-once"}
    body = {"subject": "Once", "body": "<p>only once</p>"}
    first = await c.post(f"/v1/projects/{pid}/messages", json=body, headers=headers)
    second = await c.post(f"/v1/projects/{pid}/messages", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers["idempotent-replayed"] == "true"
    listed = await c.get(f"/v1/projects/{pid}/messages")
    assert listed.headers["x-total-count"] == "1"
    problem(
        await c.post(
            f"/v1/projects/{pid}/messages", json={**body, "subject": "Other"}, headers=headers
        ),
        422,
    )
    comment_key = {"Idempotency-Key": "comment-once"}
    mid = first.json()["id"]
    one = await c.post(f"/v1/recordings/{mid}/comments", json={"content": "a"}, headers=comment_key)
    two = await c.post(f"/v1/recordings/{mid}/comments", json={"content": "a"}, headers=comment_key)
    assert one.json()["id"] == two.json()["id"]
    assert (await c.get(f"/v1/messages/{mid}")).json()["comments_count"] == 1


async def test_retry_after_a_crash_before_the_response_was_saved(team: Team) -> None:
    """The process dies after appending but before saving the response (simulated by
    deleting the saved response): the retry answers as the first request did, with the
    same ids, and appends nothing more, for a creation and for a change."""
    import asyncpg

    c, pid = team.c, team.project_id
    headers = {"Idempotency-Key": "crash-once"}
    body = {"subject": "Once", "body": "<p>only once</p>"}
    first = await c.post(f"/v1/projects/{pid}/messages", json=body, headers=headers)
    assert first.status_code == 201
    mid = first.json()["id"]
    done = {"Idempotency-Key": "complete-once"}
    todolist = await team.post(f"/v1/projects/{pid}/todolists", {"name": "L"})
    todo = await team.post(f"/v1/todolists/{todolist['id']}/todos", {"content": "T"})
    completed = await c.post(f"/v1/todos/{todo['id']}/completion", headers=done)
    assert completed.status_code == 200, completed.text

    conn = await asyncpg.connect(team.api.server.database_url)
    try:
        count = "SELECT count(*) FROM events"
        events_before = await conn.fetchval(count)
        await conn.execute("DELETE FROM http_responses")
        again = await c.post(f"/v1/projects/{pid}/messages", json=body, headers=headers)
        assert again.status_code == 201, again.text
        assert again.json()["id"] == mid
        assert again.json()["created_at"] == first.json()["created_at"]
        assert again.headers["location"] == first.headers["location"]
        redone = await c.post(f"/v1/todos/{todo['id']}/completion", headers=done)
        assert redone.status_code == 200, redone.text
        assert redone.json()["completed_at"] == completed.json()["completed_at"]
        assert await conn.fetchval(count) == events_before
        # The key still refuses a different request, saved response or not.
        await conn.execute("DELETE FROM http_responses")
        other = {**body, "subject": "Other"}
        problem(await c.post(f"/v1/projects/{pid}/messages", json=other, headers=headers), 422)
        assert await conn.fetchval(count) == events_before
    finally:
        await conn.close()


async def test_history_has_actors_times_and_before_after(team: Team) -> None:
    """The history lists every event of the item with its actor, time, snake_case kind and
    the before/after value of each field; the creation lists every initial field."""
    c = team.c
    message = await team.message(category="News")
    mid = message["id"]
    await c.patch(f"/v1/messages/{mid}", json={"subject": "Renamed"}, headers=team.mia)
    await c.put(f"/v1/recordings/{mid}/client_visibility", json={"visible_to_clients": True})
    await c.put(f"/v1/recordings/{mid}/status", json={"status": "archived"})
    await c.delete(f"/v1/recordings/{mid}/subscription", headers=team.mia)

    response = await c.get(f"/v1/recordings/{mid}/events")
    assert response.headers["x-total-count"] == "5"
    events = response.json()
    assert [e["kind"] for e in events] == [
        "message_posted",
        "message_edited",
        "client_visibility_changed",
        "recording_status_changed",
        "subscriber_removed",
    ]
    created = events[0]
    assert created["actor"] == ref(team.api, team.api.admin_id, "Ada Admin")
    assert created["at"] == message["created_at"]
    initial = {ch["field"]: ch for ch in created["changes"]}
    assert set(initial) == {
        "subject",
        "body",
        "category",
        "visible_to_clients",
        "subscriber_ids",
    }
    assert all(ch["before"] is None for ch in created["changes"])
    assert initial["subject"]["after"] == "Kick-off"
    assert events[1]["actor"]["id"] == team.mia_id
    assert events[1]["changes"] == [{"field": "subject", "before": "Kick-off", "after": "Renamed"}]
    assert events[2]["changes"] == [{"field": "visible_to_clients", "before": False, "after": True}]
    assert events[3]["changes"] == [{"field": "status", "before": "active", "after": "archived"}]
    removed = events[4]["changes"][0]
    assert removed["field"] == "subscriber_ids"
    assert team.mia_id in removed["before"]
    assert team.mia_id not in removed["after"]
    assert [e["position"] for e in events] == sorted(e["position"] for e in events)

    paged, _ = await all_pages(c, f"/v1/recordings/{mid}/events?limit=2")
    assert paged == events


async def test_subscription_is_the_callers_own(team: Team) -> None:
    """Subscribing and unsubscribing act on the caller only and are idempotent; a client
    may subscribe to what they see."""
    c = team.c
    message = await team.message(visible_to_clients=True, subscriber_ids=[team.mia_id])
    url = f"/v1/recordings/{message['id']}/subscription"
    mine = (await c.get(url, headers=team.cleo)).json()
    assert mine["subscribed"] is False
    assert mine["count"] == 2
    for _ in range(2):
        on = await c.post(url, headers=team.cleo)
        assert on.status_code == 200, on.text
        assert on.json()["subscribed"] is True
        assert on.json()["count"] == 3
    for _ in range(2):
        off = await c.delete(url, headers=team.cleo)
        assert off.json()["subscribed"] is False
        assert off.json()["count"] == 2
    assert (await c.get(url, headers=team.mia)).json()["subscribed"] is True

"""To-do lists, to-dos and milestones over real HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from .support.api import all_pages, problem, ref
from .support.teams import Team


async def _todos(team: Team, list_id: str, query: str = "") -> list[dict[str, Any]]:
    response = await team.c.get(f"/v1/todolists/{list_id}/todos{query}")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()
    return items


async def _order(team: Team, list_id: str) -> list[tuple[str, int]]:
    return [(t["content"], t["position"]) for t in await _todos(team, list_id)]


async def test_todo_scenario(team: Team) -> None:
    """Members make lists and to-dos, assign, complete and reopen them; progress and the
    status and assignee filters follow."""
    c, pid = team.c, team.project_id
    plan = await team.post(
        f"/v1/projects/{pid}/todolists",
        {"name": "Plan", "description": "<p>What to do</p>"},
        as_=team.mia,
    )
    assert plan["type"] == "todolist"
    assert plan["progress"] == {"completed": 0, "total": 0}
    assert plan["url"].endswith(f"/v1/todolists/{plan['id']}")
    url = f"/v1/todolists/{plan['id']}/todos"
    draft = await team.post(
        url,
        {
            "content": "Draft",
            "notes": "<p>first</p>",
            "assignee_ids": [team.mia_id],
            "starts_on": "2026-03-01",
            "due_on": "2026-03-05",
        },
        as_=team.mia,
    )
    review = await team.post(url, {"content": "Review"})
    await team.post(url, {"content": "Ship"})
    assert draft["type"] == "todo"
    assert draft["assignees"] == [ref(team.api, team.mia_id, "Mia")]
    assert (draft["starts_on"], draft["due_on"], draft["position"]) == (
        "2026-03-01",
        "2026-03-05",
        1,
    )
    assert draft["parent"]["id"] == plan["id"]
    assert draft["todolist_id"] == plan["id"]
    assert (draft["visible_to_clients"], draft["inherits_visibility"]) == (False, True)
    assert await _order(team, plan["id"]) == [("Draft", 1), ("Review", 2), ("Ship", 3)]

    done = await c.post(f"/v1/todos/{draft['id']}/completion", headers=team.mia)
    assert done.status_code == 200, done.text
    assert done.json()["completed"] is True
    assert done.json()["completer"] == ref(team.api, team.mia_id, "Mia")
    assert done.json()["completed_at"] is not None
    problem(await c.post(f"/v1/todos/{draft['id']}/completion"), 409)
    got = (await c.get(f"/v1/todolists/{plan['id']}")).json()
    assert got["progress"] == {"completed": 1, "total": 3}
    assert [t["content"] for t in got["todos"]] == ["Draft", "Review", "Ship"]
    assert [t["content"] for t in await _todos(team, plan["id"], "?status=open")] == [
        "Review",
        "Ship",
    ]
    assert [t["content"] for t in await _todos(team, plan["id"], "?status=completed")] == ["Draft"]
    mine = await _todos(team, plan["id"], f"?assignee_id={team.mia_id}")
    assert [t["content"] for t in mine] == ["Draft"]
    reopened = await c.delete(f"/v1/todos/{draft['id']}/completion")
    assert reopened.json()["completed"] is False
    assert reopened.json()["completer"] is None
    problem(await c.delete(f"/v1/todos/{draft['id']}/completion"), 409)

    assigned = await c.patch(
        f"/v1/todos/{review['id']}",
        json={"assignee_ids": [team.mia_id], "due_on": "2026-04-01", "notes": None},
    )
    assert assigned.status_code == 200, assigned.text
    assert [a["id"] for a in assigned.json()["assignees"]] == [team.mia_id]
    assert assigned.json()["due_on"] == "2026-04-01"
    subscription = (await c.get(f"/v1/recordings/{review['id']}/subscription")).json()
    assert team.mia_id in {p["id"] for p in subscription["subscribers"]}
    mine = await _todos(team, plan["id"], f"?assignee_id={team.mia_id}")
    assert [t["content"] for t in mine] == ["Draft", "Review"]

    lists = (await c.get(f"/v1/projects/{pid}/todolists")).json()
    assert [(x["id"], x["progress"]) for x in lists] == [(plan["id"], {"completed": 0, "total": 3})]
    renamed = await c.patch(f"/v1/todolists/{plan['id']}", json={"description": None})
    assert renamed.json()["description"] is None
    assert renamed.json()["name"] == "Plan"

    history = (await c.get(f"/v1/recordings/{draft['id']}/events")).json()
    assert [e["kind"] for e in history] == ["todo_added", "todo_completed", "todo_reopened"]
    completed = {ch["field"]: ch for ch in history[1]["changes"]}
    assert completed["completed"] == {"field": "completed", "before": False, "after": True}
    assert completed["completer_id"]["after"] == team.mia_id


async def test_reorder_and_move_between_lists(team: Team) -> None:
    """PUT position reorders a list (1-based) and moves a to-do to another list, where it
    takes the list's visibility; positions stay dense in both lists."""
    c, pid = team.c, team.project_id
    first = await team.post(f"/v1/projects/{pid}/todolists", {"name": "First"})
    second = await team.post(
        f"/v1/projects/{pid}/todolists", {"name": "Second", "visible_to_clients": True}
    )
    ids = {}
    for name in ("a", "b", "c", "d"):
        ids[name] = (await team.post(f"/v1/todolists/{first['id']}/todos", {"content": name}))["id"]
    x = await team.post(f"/v1/todolists/{second['id']}/todos", {"content": "x"})

    moved = await c.put(f"/v1/todos/{ids['d']}/position", json={"position": 1})
    assert moved.status_code == 200, moved.text
    assert moved.json()["position"] == 1
    assert await _order(team, first["id"]) == [("d", 1), ("a", 2), ("b", 3), ("c", 4)]
    await c.put(f"/v1/todos/{ids['d']}/position", json={"position": 3})
    assert await _order(team, first["id"]) == [("a", 1), ("b", 2), ("d", 3), ("c", 4)]

    comment = await team.post(f"/v1/recordings/{ids['b']}/comments", {"content": "note"})
    problem(await c.get(f"/v1/comments/{comment['id']}", headers=team.cleo), 404)
    across = await c.put(
        f"/v1/todos/{ids['b']}/position", json={"position": 2, "todolist_id": second["id"]}
    )
    assert across.status_code == 200, across.text
    assert across.json()["todolist_id"] == second["id"]
    assert across.json()["visible_to_clients"] is True
    assert await _order(team, first["id"]) == [("a", 1), ("d", 2), ("c", 3)]
    assert await _order(team, second["id"]) == [("x", 1), ("b", 2)]
    # The comment under the moved to-do follows its new list's visibility.
    seen = await c.get(f"/v1/comments/{comment['id']}", headers=team.cleo)
    assert seen.status_code == 200
    assert seen.json()["visible_to_clients"] is True

    to_end = await c.put(
        f"/v1/todos/{ids['a']}/position", json={"position": 3, "todolist_id": second["id"]}
    )
    assert to_end.json()["position"] == 3
    assert await _order(team, second["id"]) == [("x", 1), ("b", 2), ("a", 3)]

    for bad in (0, 5, -1):
        body = problem(await c.put(f"/v1/todos/{x['id']}/position", json={"position": bad}), 422)
        assert body["errors"][0]["field"] == "position"
    problem(await c.put(f"/v1/todos/{x['id']}/position", json={"position": "first"}), 422)
    problem(
        await c.put(f"/v1/todos/{x['id']}/position", json={"position": 1, "todolist_id": x["id"]}),
        404,
    )
    problem(
        await c.put(f"/v1/todos/{x['id']}/position", json={"position": 1}, headers=team.cleo),
        403,
    )
    history = (await c.get(f"/v1/recordings/{ids['b']}/events")).json()
    move = history[-1]
    assert move["kind"] == "todo_moved"
    assert {"field": "todolist_id", "before": first["id"], "after": second["id"]} in move["changes"]


async def test_clients_complete_only_their_to_dos(team: Team) -> None:
    """A client completes a to-do assigned to them in a list they see, comments on it, and
    is refused (403) on others and on edits."""
    c, pid = team.c, team.project_id
    shared = await team.post(
        f"/v1/projects/{pid}/todolists", {"name": "Shared", "visible_to_clients": True}
    )
    theirs = await team.post(
        f"/v1/todolists/{shared['id']}/todos", {"content": "Sign", "assignee_ids": [team.cleo_id]}
    )
    ours = await team.post(f"/v1/todolists/{shared['id']}/todos", {"content": "Bill"})
    done = await c.post(f"/v1/todos/{theirs['id']}/completion", headers=team.cleo)
    assert done.status_code == 200, done.text
    assert done.json()["completer"]["id"] == team.cleo_id
    problem(await c.post(f"/v1/todos/{ours['id']}/completion", headers=team.cleo), 403)
    problem(
        await c.patch(f"/v1/todos/{theirs['id']}", json={"content": "x"}, headers=team.cleo), 403
    )
    commented = await c.post(
        f"/v1/recordings/{ours['id']}/comments", json={"content": "ok"}, headers=team.cleo
    )
    assert commented.status_code == 201, commented.text
    hidden = await team.post(f"/v1/projects/{pid}/todolists", {"name": "Hidden"})
    refused = problem(
        await c.post(
            f"/v1/todolists/{hidden['id']}/todos",
            json={"content": "x", "assignee_ids": [team.cleo_id]},
        ),
        422,
    )
    assert refused["errors"][0]["field"] == "assignee_ids"


async def test_a_client_keeps_every_assignment_in_sight(team: Team) -> None:
    """Hiding a list with a to-do assigned to a client is refused (422) exactly as moving
    that to-do into a hidden list is, so the client's assignments keep it; once the client
    is unassigned the list hides."""
    c, pid = team.c, team.project_id
    shared = await team.post(
        f"/v1/projects/{pid}/todolists", {"name": "Shared", "visible_to_clients": True}
    )
    hidden = await team.post(f"/v1/projects/{pid}/todolists", {"name": "Hidden"})
    theirs = await team.post(
        f"/v1/todolists/{shared['id']}/todos", {"content": "Sign", "assignee_ids": [team.cleo_id]}
    )
    visibility = f"/v1/recordings/{shared['id']}/client_visibility"
    hiding = problem(await c.put(visibility, json={"visible_to_clients": False}), 422)
    moving = problem(
        await c.put(
            f"/v1/todos/{theirs['id']}/position",
            json={"position": 1, "todolist_id": hidden["id"]},
        ),
        422,
    )
    assert [hiding["errors"][0]["field"], moving["errors"][0]["field"]] == [
        "visible_to_clients",
        "todolist_id",
    ]
    assert team.cleo_id in hiding["detail"]
    assert team.cleo_id in moving["detail"]
    assigned = (await c.get("/v1/my/assignments", headers=team.cleo)).json()
    assert [t["id"] for p in assigned["projects"] for t in p["todos"]] == [theirs["id"]]
    unassigned = await c.patch(f"/v1/todos/{theirs['id']}", json={"assignee_ids": [team.mia_id]})
    assert unassigned.status_code == 200, unassigned.text
    hid = await c.put(visibility, json={"visible_to_clients": False})
    assert hid.status_code == 200, hid.text
    assert hid.json()["visible_to_clients"] is False


async def test_todo_errors(team: Team) -> None:
    """Bad dates and unknown fields are 422, an archived list is 409, and the to-do routes
    404 on ids of other kinds and for non-members."""
    c, pid = team.c, team.project_id
    plan = await team.post(f"/v1/projects/{pid}/todolists", {"name": "Plan"})
    url = f"/v1/todolists/{plan['id']}/todos"
    problem(await c.post(url, json={"content": "x", "due_on": "2026-02-30"}), 422)
    problem(await c.post(url, json={"content": "x", "due_on": "tomorrow"}), 422)
    order = problem(
        await c.post(url, json={"content": "x", "starts_on": "2026-03-02", "due_on": "2026-03-01"}),
        422,
    )
    assert order["errors"][0]["field"] == "due_on"
    problem(await c.post(url, json={"content": "x", "priority": 1}), 422)
    todo = await team.post(url, {"content": "x"})
    problem(await c.patch(f"/v1/todos/{todo['id']}", json={"due_on": "soon"}), 422)
    problem(await c.patch(f"/v1/todos/{todo['id']}", json={"content": None}), 422)
    problem(await c.get(f"/v1/todolists/{todo['id']}"), 404)
    problem(await c.get(f"/v1/milestones/{todo['id']}"), 404)
    problem(await c.post(f"/v1/todolists/{todo['id']}/todos", json={"content": "x"}), 404)
    problem(await c.get(f"/v1/todolists/{plan['id']}/todos", headers=team.otto), 404)
    problem(await c.post(f"/v1/todos/{todo['id']}/completion", headers=team.otto), 404)
    problem(await c.get(f"{url}?status=later"), 400)

    await c.put(f"/v1/recordings/{plan['id']}/status", json={"status": "archived"})
    problem(await c.post(url, json={"content": "y"}), 409)
    problem(await c.post(f"/v1/todos/{todo['id']}/completion"), 409)
    archived = (await c.get(f"/v1/projects/{pid}/todolists?status=archived")).json()
    assert [x["id"] for x in archived] == [plan["id"]]
    assert (await c.get(f"/v1/projects/{pid}/todolists")).json() == []


async def test_todo_pages_hold_while_todos_are_added(team: Team) -> None:
    """Paging a list's to-dos by position neither repeats nor skips while to-dos are added
    at the end."""
    plan = await team.post(f"/v1/projects/{team.project_id}/todolists", {"name": "Plan"})
    url = f"/v1/todolists/{plan['id']}/todos"
    for i in range(5):
        await team.post(url, {"content": f"t{i}"})
    added = 0

    async def add() -> None:
        nonlocal added
        await team.post(url, {"content": f"late{added}"})
        added += 1

    items, totals = await all_pages(team.c, f"{url}?limit=2", between=add)
    contents = [t["content"] for t in items]
    assert contents[:5] == [f"t{i}" for i in range(5)]
    assert contents[5:] == [f"late{i}" for i in range(len(contents) - 5)]
    assert [t["position"] for t in items] == list(range(1, len(items) + 1))
    assert totals[0] == 5


async def test_milestones(team: Team) -> None:
    """Milestones are listed soonest first and filtered as upcoming, late or completed;
    a PATCH of due_on reschedules one; completing twice is 409."""
    c, pid = team.c, team.project_id
    today = datetime.now(UTC).date()
    url = f"/v1/projects/{pid}/milestones"
    late = await team.post(
        url,
        {
            "title": "Beta",
            "due_on": str(today - timedelta(days=3)),
            "responsible_id": team.mia_id,
            "notes": "<p>late</p>",
        },
    )
    soon = await team.post(
        url,
        {"title": "Launch", "due_on": str(today + timedelta(days=7)), "visible_to_clients": True},
    )
    assert late["type"] == "milestone"
    assert late["late"] is True
    assert late["responsible"] == ref(team.api, team.mia_id, "Mia")
    assert soon["late"] is False

    async def titles(query: str = "", as_: dict[str, str] | None = None) -> list[str]:
        return [m["title"] for m in (await c.get(f"{url}{query}", headers=as_)).json()]

    assert await titles() == ["Beta", "Launch"]
    assert await titles("?filter=late") == ["Beta"]
    assert await titles("?filter=upcoming") == ["Launch"]
    assert await titles(as_=team.cleo) == ["Launch"]

    moved = await c.patch(
        f"/v1/milestones/{late['id']}", json={"due_on": str(today + timedelta(days=30))}
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["late"] is False
    assert await titles() == ["Launch", "Beta"]
    assert await titles("?filter=late") == []
    history = (await c.get(f"/v1/recordings/{late['id']}/events")).json()
    assert history[-1]["kind"] == "milestone_edited"
    assert history[-1]["changes"] == [
        {
            "field": "due_on",
            "before": str(today - timedelta(days=3)),
            "after": str(today + timedelta(days=30)),
        }
    ]

    done = await c.post(f"/v1/milestones/{soon['id']}/completion")
    assert done.json()["completed"] is True
    problem(await c.post(f"/v1/milestones/{soon['id']}/completion"), 409)
    assert await titles("?filter=completed") == ["Launch"]
    assert await titles("?filter=upcoming") == ["Beta"]
    problem(await c.post(f"/v1/milestones/{soon['id']}/completion", headers=team.cleo), 403)
    reopened = await c.delete(f"/v1/milestones/{soon['id']}/completion")
    assert reopened.json()["completed"] is False
    problem(await c.patch(f"/v1/milestones/{soon['id']}", json={"due_on": None}), 422)
    problem(await c.get(f"{url}?filter=someday"), 400)
    problem(await c.post(url, json={"title": "x", "due_on": "2026-13-01"}), 422)
    problem(await c.get(f"/v1/todos/{soon['id']}"), 404)

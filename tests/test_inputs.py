"""No input answers 500: ids, cursors, integers, times and JSON bodies are checked by one layer
(service/http/params.py, paging.py, bodies.py) before Python or SQL sees them, and the
stream's bad frames get an error frame. Every refusal is a 4xx problem+json, and the server
logs no error for it."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import msgspec
import pytest

from .support.api import Api, problem
from .support.realtime import GUARD, close_code, realtime_server, subscribe, ws
from .support.servers import error_log
from .support.teams import Team


def _cursor(key: Any) -> str:
    """A cursor as the API makes them (base64url of JSON), of a key it never gave out."""
    return base64.urlsafe_b64encode(msgspec.json.encode(key)).decode().rstrip("=")


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


async def _places(team: Team) -> dict[str, str]:
    """Ids of a project's things, to fill the paths of :data:`BAD_INPUTS` with."""
    message = await team.message()
    todolist = await team.post(f"/v1/projects/{team.project_id}/todolists", {"name": "Plan"})
    todo = await team.post(f"/v1/todolists/{todolist['id']}/todos", {"content": "Ship"})
    return {
        "project": team.project_id,
        "message": message["id"],
        "todolist": todolist["id"],
        "todo": todo["id"],
    }


BAD_INPUTS = [
    # NUL in ids: in the path (404: it names nothing), in a query (400: a malformed filter).
    ("GET", "/v1/projects/prj_%00", None, 404),
    ("GET", "/v1/projects/{project}/activity?actor_id=per_%00", None, 400),
    ("GET", "/v1/todolists/{todolist}/todos?assignee_id=%00", None, 400),
    # NUL in JSON strings, whichever field holds them.
    ("POST", "/v1/people", {"name": "Nul", "email": "a\u0000@x.com", "role": "member"}, 422),
    ("PUT", "/v1/todos/{todo}/position", {"position": 1, "todolist_id": "rec_\u0000"}, 422),
    # Cursors the API did not give out: beyond int64, of the wrong type, out of shape.
    ("GET", "/v1/people?cursor=MTg0NDY3NDQwNzM3MDk1NTE2MTU", None, 400),
    ("GET", "/v1/projects/{project}/messages?cursor=WyJhYmMiXQ", None, 400),
    ("GET", f"/v1/activity?cursor={_cursor(['next', 2**64])}", None, 400),
    ("GET", f"/v1/projects/{{project}}/milestones?cursor={_cursor(['abc', 'x'])}", None, 400),
    ("GET", "/v1/reports/overdue?cursor=" + _cursor(["2026-01-01", "rec_\u0000"]), None, 400),
    # Integers are ASCII digits ("¹".isdigit() is true).
    ("GET", "/feeds/projects/{project}/archive/%C2%B9.atom", None, 404),
    # Times whose UTC conversion leaves the calendar.
    ("GET", "/v1/activity?since=0001-01-01T00:00:00%2B14:00", None, 400),
    ("GET", "/v1/activity?until=9999-12-31T23:59:59-14:00", None, 400),
    # JSON nested deeper than Python recurses.
    ("PATCH", "/v1/recordings/{message}", f'{{"subject": {_nested(1000)}}}', 400),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), BAD_INPUTS)
async def test_bad_input_is_a_4xx_problem_and_no_error_in_the_log(
    team: Team, method: str, path: str, body: Any, status: int
) -> None:
    """Each input that once reached Python or SQL unchecked is now refused with a 4xx
    problem+json, and the server logs no unhandled exception for it."""
    url = path.format(**await _places(team))
    content = body if isinstance(body, str) else None
    with error_log() as errors:
        reply = await team.c.request(
            method,
            url,
            json=None if content is not None else body,
            content=content,
            headers={"Content-Type": "application/json"} if content is not None else None,
        )
    problem(reply, status)
    assert errors == []


async def test_ill_formed_ids_are_404_in_paths_and_400_in_queries(team: Team) -> None:
    """An id not of its kind's shape names nothing in a path (404, like an unknown one) and
    is a malformed filter in a query (400 naming it); well-formed unknown ids keep their
    answers (404, and an empty list)."""
    unknown = "prj_" + "0" * 20
    for path in ("/v1/projects/prj_nope", f"/v1/projects/{unknown}", "/v1/recordings/prj_x"):
        problem(await team.c.get(path), 404)
    places = await _places(team)
    todos = f"/v1/todolists/{places['todolist']}/todos"
    body = problem(await team.c.get(todos, params={"assignee_id": "mia"}), 400)
    assert [e["field"] for e in body["errors"]] == ["assignee_id"]
    listed = await team.c.get(todos, params={"assignee_id": "per_" + "0" * 20})
    assert listed.status_code == 200, listed.text
    assert listed.json() == []


async def test_a_cursor_not_given_out_is_a_400_naming_cursor(team: Team) -> None:
    """Every kind of list refuses a forged cursor by name; the cursors it gives out work."""
    places = await _places(team)
    await team.post(f"/v1/todolists/{places['todolist']}/todos", {"content": "More"})
    lists = [
        "/v1/people",
        "/v1/activity",
        f"/v1/todolists/{places['todolist']}/todos",
        f"/v1/recordings/{places['todo']}/events",
        "/v1/reports/upcoming",
    ]
    for url in lists:
        body = problem(await team.c.get(url, params={"cursor": _cursor([-5, "x"])}), 400)
        assert [e["field"] for e in body["errors"]] == ["cursor"], url
        first = await team.c.get(url, params={"limit": 1})
        assert first.status_code == 200, first.text
        if "next" in first.links:
            following = await team.c.get(first.links["next"]["url"])
            assert following.status_code == 200, (url, following.text)


async def test_integers_and_times_are_ascii_and_within_range(api: Api) -> None:
    """Integers and times in other digits than ASCII, and times whose UTC conversion leaves
    the years 1-9999, are 400s naming the parameter; any offset within range is taken."""
    created = await api.client.post("/v1/projects", json={"name": "Times"})
    assert created.status_code == 201, created.text
    snapshot = f"/v1/projects/{created.json()['id']}/snapshot"
    refused = [
        (snapshot, "position", "\u00b9"),
        (snapshot, "position", "\u0661"),
        (snapshot, "at", "\uff12\uff10\uff12\uff16-01-01T00:00:00Z"),
        (snapshot, "at", "0001-01-01T00:00:00+00:01"),
        ("/v1/activity", "since", "0001-01-01T00:00:00+00:01"),
        ("/v1/activity", "until", "9999-12-31T23:59:59-00:01"),
    ]
    taken = [
        (snapshot, "at", "0001-01-01T00:00:00-01:00"),
        (snapshot, "at", "9999-12-31T23:59:59+00:00"),
        ("/v1/activity", "since", "2026-01-01T00:00:00+14:00"),
        ("/v1/activity", "until", "2026-01-01T00:00:00.123456789-12:00"),
    ]
    with error_log() as errors:
        for url, name, value in refused:
            body = problem(await api.client.get(url, params={name: value}), 400)
            assert [e["field"] for e in body["errors"]] == [name], value
        for url, name, value in taken:
            reply = await api.client.get(url, params={name: value})
            assert reply.status_code == 200, (value, reply.text)
    assert errors == []


async def test_bodies_nest_at_most_32_deep(team: Team) -> None:
    """Arrays and objects nested 33 deep are refused (400) before decoding, whatever the
    route's type; 32 deep is decoded as usual (here a 422: not the field's type), and
    brackets inside strings do not count."""
    places = await _places(team)
    url = f"/v1/recordings/{places['message']}"
    headers = {"Content-Type": "application/json"}
    for depth, status in ((31, 422), (32, 400), (100_000, 400)):
        body = f'{{"subject": {_nested(depth)}}}'  # the object is one level more
        with error_log() as errors:
            reply = await team.c.patch(url, content=body, headers=headers)
        problem(reply, status)
        assert errors == []
    posted = await team.c.post(
        f"/v1/projects/{team.project_id}/todolists",
        content=json.dumps({"name": "[" * 40}),
        headers=headers,
    )
    assert posted.status_code == 201, posted.text


# ------------------------------------------------------------------ the stream


@pytest.mark.parametrize(
    "sent",
    [
        json.dumps({"type": "subscribe", "project_id": "all", "since": 2**63}),
        json.dumps({"type": "subscribe", "project_id": "prj_\u0000"}),
        json.dumps({"type": "unsubscribe", "project_id": "\u0000"}),
        json.dumps({"type": "subscribe", "project_id": "x" * 2**20}),
    ],
    ids=["since-2^63", "nul-subscribe", "nul-unsubscribe", "1MiB"],
)
async def test_frames_that_dropped_the_socket_get_a_short_bad_frame(
    database_url: str, sent: str
) -> None:
    """A frame the server cannot take is answered with a short ``bad_frame`` error and the
    connection goes on; nothing is logged as an error."""
    async with realtime_server(database_url) as rt:
        with error_log() as errors:
            async with ws(rt.server.ws_url, rt.world.admin_token) as conn:
                await conn.send(sent)
                async with asyncio.timeout(GUARD):
                    raw = await conn.recv()
                assert len(raw) < 300, raw[:300]
                assert json.loads(raw)["code"] == "bad_frame"
                await subscribe(conn, "all")
        assert errors == []


async def test_a_frame_over_2_mib_closes_the_socket_with_1009(database_url: str) -> None:
    """The server reads frames up to 2 MiB (not uvicorn's 16): a larger one closes the
    socket with 1009, as the AsyncAPI document says."""
    async with (
        realtime_server(database_url) as rt,
        ws(rt.server.ws_url, rt.world.admin_token) as conn,
    ):
        await conn.send(json.dumps({"type": "subscribe", "project_id": "x" * 3 * 2**20}))
        assert await close_code(conn) == 1009

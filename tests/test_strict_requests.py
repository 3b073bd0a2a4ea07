"""Requests are checked as strictly as the OpenAPI document describes them: 422s name the JSON
path of the bad field, unknown query parameters are refused on /v1 (feeds ignore them), and a
POST that needs no body takes none."""

from __future__ import annotations

import pytest

from .support.api import Api, bearer, problem
from .support.teams import Team


async def _todolist(team: Team) -> str:
    created = await team.post(f"/v1/projects/{team.project_id}/todolists", {"name": "Launch"})
    return str(created["id"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"content": "Ship", "colour": "red"}, "colour"),
        ({"notes": "<p>no content</p>"}, "content"),
        ({"content": "Ship", "assignee_ids": ["per_a", 7]}, "assignee_ids[1]"),
        ({"content": "Ship", "due_on": "next week"}, "due_on"),
        ({"content": 12}, "content"),
    ],
)
async def test_a_422_names_the_json_path_of_the_bad_field(
    team: Team, body: dict[str, object], field: str
) -> None:
    """Unknown fields, missing required ones and values of the wrong type inside lists are
    each named by their JSON path, never as "(body)"."""
    list_id = await _todolist(team)
    reply = await team.c.post(f"/v1/todolists/{list_id}/todos", json=body)
    errors = problem(reply, 422)["errors"]
    assert [e["field"] for e in errors] == [field]


async def test_an_unknown_field_is_named_on_every_route(api: Api) -> None:
    """The body is checked before anything is looked up, and its unknown field named."""
    reply = await api.client.put(
        "/v1/recordings/rec_x/status", json={"status": "trashed", "why": "old"}
    )
    errors = problem(reply, 422)["errors"]
    assert [e["field"] for e in errors] == ["why"]


async def test_unknown_query_parameters_are_refused_by_name(team: Team) -> None:
    """A filter the route does not have is a 400 naming it, not a silent "everything"."""
    list_id = await _todolist(team)
    reply = await team.c.get(f"/v1/todolists/{list_id}/todos", params={"completed": "true"})
    body = problem(reply, 400)
    assert [e["field"] for e in body["errors"]] == ["completed"]
    assert "completed" in body["detail"]


async def test_query_parameters_are_checked_against_their_declared_types(team: Team) -> None:
    """Numbers out of range, values outside a closed set and a parameter given twice are 400s
    naming the parameter; good values pass."""
    list_id = await _todolist(team)
    url = f"/v1/todolists/{list_id}/todos"
    for params, field in (
        ({"limit": "0"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"status": "finished"}, "status"),
        ([("limit", "2"), ("limit", "3")], "limit"),
    ):
        body = problem(await team.c.get(url, params=params), 400)
        assert [e["field"] for e in body["errors"]] == [field], params
    ok = await team.c.get(url, params={"status": "open", "limit": "5"})
    assert ok.status_code == 200, ok.text


async def test_feeds_ignore_unknown_query_parameters(api: Api) -> None:
    """Feed readers append cache-busters: a feed URL with extra parameters still answers."""
    made = await api.client.post("/v1/me/feed_token")
    assert made.status_code == 200, made.text
    url = made.json()["activity_atom_url"] + "&_=12345"
    reply = await api.client.get(url, headers={"Authorization": ""})
    assert reply.status_code == 200, reply.text


async def test_a_post_whose_fields_are_optional_needs_no_body(api: Api) -> None:
    """``POST /v1/people/{id}/tokens`` with no body at all issues a token (it was 415)."""
    reply = await api.client.post(f"/v1/people/{api.admin_id}/tokens")
    assert reply.status_code == 201, reply.text
    token = reply.json()["token"]
    me = await api.client.get("/v1/me", headers=bearer(token))
    assert me.status_code == 200


async def test_a_body_that_is_not_json_is_still_refused(api: Api) -> None:
    """An actual body in another media type is 415; only no body at all reads as ``{}``."""
    reply = await api.client.post(
        f"/v1/people/{api.admin_id}/tokens",
        content=b"label=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    problem(reply, 415)


async def test_a_body_missing_a_required_field_names_it(api: Api) -> None:
    """A POST that needs fields, sent with no body, is a 422 naming the first missing one."""
    reply = await api.client.post("/v1/projects")
    errors = problem(reply, 422)["errors"]
    assert [e["field"] for e in errors] == ["name"]

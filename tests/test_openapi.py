"""The OpenAPI document describes what the API really sends: every response of a full
scenario is validated against the schema the document gives for its route and status."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jsonschema
import pytest

from .support.api import Api, bearer, new_person

_Checked = list[tuple[str, str, int]]


def _operation(spec: dict[str, Any], method: str, path: str) -> dict[str, Any] | None:
    for template, ops in spec["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", r"[^/]+", template) + "$"
        if re.match(pattern, path) and method.lower() in ops:
            return ops[method.lower()]  # type: ignore[no-any-return]
    return None


def _validate(spec: dict[str, Any], response: httpx.Response, checked: _Checked) -> None:
    request = response.request
    op = _operation(spec, request.method, request.url.path)
    assert op is not None, f"{request.method} {request.url.path} is not in the OpenAPI document"
    status = str(response.status_code)
    if response.status_code in (204, 304):
        return
    declared = op["responses"].get(status) or op["responses"].get("default")
    assert declared is not None, f"{request.method} {request.url.path}: status {status} undeclared"
    content_type = response.headers["content-type"].split(";")[0]
    content = declared.get("content")
    if content is None:
        return
    assert content_type in content, (
        f"{request.method} {request.url.path} {status}: {content_type} not declared"
    )
    schema = {**content[content_type]["schema"], "components": spec["components"]}
    jsonschema.validate(response.json(), schema, cls=jsonschema.Draft202012Validator)
    checked.append((request.method, op["operationId"], response.status_code))


@pytest.fixture
async def spec(api: Api) -> dict[str, Any]:
    document: dict[str, Any] = (await api.client.get("/openapi.json")).json()
    jsonschema.Draft202012Validator.check_schema({"$defs": document["components"]["schemas"]})
    return document


async def test_every_response_of_a_scenario_matches_the_document(
    api: Api, spec: dict[str, Any]
) -> None:
    """Success and problem responses across people, projects, recordings and views all
    validate against the OpenAPI schemas declared for their route and status."""
    checked: _Checked = []
    c = api.client
    responses: list[httpx.Response] = []

    async def keep(response: httpx.Response) -> None:
        await response.aread()
        responses.append(response)

    c.event_hooks["response"].append(keep)
    member_id, member_token = await new_person(api, "Mia")
    client_id, client_token = await new_person(api, "Cleo", "client", company="Acme")
    project = (
        await c.post("/v1/projects", json={"name": "Launch", "clients_enabled": True})
    ).json()
    pid = project["id"]
    await c.put(f"/v1/projects/{pid}/people/{member_id}", json={"project_role": "member"})
    await c.put(f"/v1/projects/{pid}/people/{client_id}", json={"project_role": "client"})
    message = (
        await c.post(
            f"/v1/projects/{pid}/messages",
            json={"subject": "Kick-off", "body": "<p>Hello</p>", "visible_to_clients": True},
        )
    ).json()
    await c.post(f"/v1/recordings/{message['id']}/comments", json={"content": "<p>Hi</p>"})
    todolist = (await c.post(f"/v1/projects/{pid}/todolists", json={"name": "Plan"})).json()
    due = (datetime.now(UTC).date() + timedelta(days=3)).isoformat()
    todo = (
        await c.post(
            f"/v1/todolists/{todolist['id']}/todos",
            json={"content": "Ship", "assignee_ids": [member_id], "due_on": due},
        )
    ).json()
    await c.post(f"/v1/todolists/{todolist['id']}/todos", json={"content": "Celebrate"})
    await c.put(f"/v1/todos/{todo['id']}/position", json={"position": 2})
    await c.post(f"/v1/todos/{todo['id']}/completion")
    await c.patch(f"/v1/todos/{todo['id']}", json={"notes": "<p>done</p>"})
    milestone = (
        await c.post(f"/v1/projects/{pid}/milestones", json={"title": "Beta", "due_on": due})
    ).json()
    await c.patch(f"/v1/milestones/{milestone['id']}", json={"due_on": due})
    await c.put(f"/v1/recordings/{message['id']}/status", json={"status": "archived"})
    await c.put(f"/v1/recordings/{message['id']}/status", json={"status": "active"})
    await c.post(f"/v1/recordings/{message['id']}/subscription")
    for path in [
        "/v1/me",
        "/v1/people",
        f"/v1/people/{member_id}",
        f"/v1/people/{member_id}/tokens",
        "/v1/projects",
        f"/v1/projects/{pid}",
        f"/v1/projects/{pid}/people",
        f"/v1/projects/{pid}/messages",
        f"/v1/messages/{message['id']}",
        f"/v1/recordings/{message['id']}",
        f"/v1/recordings/{message['id']}/comments",
        f"/v1/recordings/{message['id']}/events",
        f"/v1/recordings/{message['id']}/subscription",
        f"/v1/projects/{pid}/todolists",
        f"/v1/todolists/{todolist['id']}",
        f"/v1/todolists/{todolist['id']}/todos",
        f"/v1/todos/{todo['id']}",
        f"/v1/projects/{pid}/milestones",
        f"/v1/milestones/{milestone['id']}",
        f"/v1/projects/{pid}/activity",
        "/v1/activity",
        f"/v1/people/{member_id}/activity",
        f"/v1/projects/{pid}/overview",
        "/v1/reports/upcoming?days=14",
        "/v1/reports/overdue",
        f"/v1/projects/{pid}/snapshot?at={datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}",
    ]:
        response = await c.get(path)
        assert response.status_code == 200, (path, response.text)
    mine = await c.get("/v1/my/assignments", headers=bearer(member_token))
    assert mine.status_code == 200
    # Problems are part of the contract too.
    assert (await c.get("/v1/projects/prj_nope")).status_code == 404
    assert (await c.post("/v1/projects", json={"name": "x", "colour": "red"})).status_code == 422
    assert (
        await c.patch(f"/v1/todos/{todo['id']}", json={}, headers=bearer(client_token))
    ).status_code in (403, 404)
    assert (
        await c.post("/v1/projects", content=b"{", headers={"content-type": "application/json"})
    ).status_code == 400

    for response in responses:
        _validate(spec, response, checked)
    operations = {op for _, op, _ in checked}
    statuses = {status for _, _, status in checked}
    assert len(operations) >= 30
    assert {200, 201, 400, 404, 422} <= statuses

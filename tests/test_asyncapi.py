"""The AsyncAPI document of ``/v1/stream`` (``GET /asyncapi.json``) is valid AsyncAPI 3.0.0,
and describes what the stream really carries: every frame of a scenario, sent or received, is
valid against exactly the message its ``type`` names."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import jsonschema
import pytest
from websockets.asyncio.client import connect

from service import __version__
from service.realtime.endpoint import asyncapi_document

from .support.asyncapi import Contract, Transcript, official_schema
from .support.realtime import GUARD, Rt, close_code, realtime_server, ws

CLIENT_MESSAGES = {"subscribe", "unsubscribe"}
SERVER_MESSAGES = {
    "subscribed",
    "unsubscribed",
    "event",
    "error",
    "notification",
    "notifications_read",
}


@pytest.fixture(scope="module")
def asyncapi_schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The official AsyncAPI 3.0.0 JSON Schema (from npm, once per module)."""
    return official_schema(tmp_path_factory.mktemp("asyncapi-specs"))


@pytest.fixture
async def rt(database_url: str) -> AsyncIterator[Rt]:
    async with realtime_server(database_url) as rt:
        yield rt


async def served(rt: Rt) -> dict[str, Any]:
    """``GET /asyncapi.json``, without a token."""
    async with httpx.AsyncClient(base_url=rt.server.base_url, timeout=GUARD) as client:
        response = await client.get("/asyncapi.json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    document: dict[str, Any] = response.json()
    return document


def asyncapi_errors(schema: dict[str, Any], document: dict[str, Any]) -> list[str]:
    """Where ``document`` breaks the official schema (none for a valid document)."""
    validator = jsonschema.Draft7Validator(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


# ------------------------------------------------------------------ the document


async def test_the_served_document_is_valid_asyncapi_3(
    rt: Rt, asyncapi_schema: dict[str, Any]
) -> None:
    """``/asyncapi.json`` is served without a token and passes the official AsyncAPI 3.0.0
    schema; its payload schemas are valid JSON Schema; it takes the server's point of view
    and describes this instance, its version and its close codes."""
    document = await served(rt)
    assert asyncapi_errors(asyncapi_schema, document) == []
    for schema in document["components"]["schemas"].values():
        jsonschema.Draft7Validator.check_schema(schema)
        jsonschema.Draft202012Validator.check_schema(schema)
    contract = Contract(document)
    assert set(contract.messages("receive")) == CLIENT_MESSAGES
    assert set(contract.messages("send")) == SERVER_MESSAGES
    assert set(document["components"]["messages"]) == CLIENT_MESSAGES | SERVER_MESSAGES
    # The structs that refuse unknown fields say so.
    for name in ("Subscribe", "Unsubscribe"):
        assert document["components"]["schemas"][name]["additionalProperties"] is False
    assert document["info"]["version"] == __version__
    (server,) = document["servers"].values()
    assert f"ws://{server['host']}" == rt.server.ws_url.removesuffix("/v1/stream")
    (channel,) = document["channels"].values()
    assert channel["address"] == "/v1/stream"
    assert {c["code"] for c in channel["x-close-codes"]} == {1009, 1011, 1012, 4008, 4401, 4403}


def _asyncapi_2_action(document: dict[str, Any]) -> None:
    document["operations"]["receiveSubscribe"]["action"] = "publish"


def _inline_operation_message(document: dict[str, Any]) -> None:
    document["operations"]["sendEvent"]["messages"] = [document["components"]["messages"]["event"]]


def _msgspec_union_schema(document: dict[str, Any]) -> None:
    # What msgspec makes of the client frames' tagged union: an OpenAPI discriminator object.
    document["components"]["schemas"]["ClientFrame"] = {
        "anyOf": [{"$ref": "#/components/schemas/Subscribe"}],
        "discriminator": {"propertyName": "type", "mapping": {}},
    }


def _websocket_binding_method(document: dict[str, Any]) -> None:
    document["channels"]["stream"]["bindings"]["ws"]["method"] = "PUT"


@pytest.mark.parametrize(
    "spoil",
    [
        _asyncapi_2_action,
        _inline_operation_message,
        _msgspec_union_schema,
        _websocket_binding_method,
    ],
)
def test_the_official_schema_refuses_a_spoilt_document(
    asyncapi_schema: dict[str, Any], spoil: Callable[[dict[str, Any]], None]
) -> None:
    """The document as built passes the official schema and each mistake AsyncAPI 3 forbids
    (v2 actions, inline operation messages, msgspec's union discriminator, a WebSocket
    binding's method other than GET) fails it: the validation is not vacuous."""
    document = asyncapi_document(version=__version__, host="127.0.0.1:8000")
    assert asyncapi_errors(asyncapi_schema, document) == []
    spoilt = copy.deepcopy(document)
    spoil(spoilt)
    assert asyncapi_errors(asyncapi_schema, spoilt) != []


# ------------------------------------------------------------------ the frames


async def test_every_frame_of_a_scenario_matches_the_document(rt: Rt) -> None:
    """Every frame clients send and receive in a scenario reaching each server frame type,
    several event kinds (replayed ones too) and every error code but ``unavailable`` is valid
    against exactly the message its ``type`` names, with no undeclared field; frames the
    server refuses are valid against none; every close code seen is documented."""
    world, url = rt.world, rt.server.ws_url
    contract = Contract(await served(rt))
    person, token, _ = await world.person()
    project, hidden = await world.project(), await world.project()
    start = (await world.client.get("/v1/health")).json()["head_position"]
    transcripts: list[Transcript] = []
    closes: list[int | None] = []
    async with (
        ws(url, world.admin_token) as admin_conn,
        connect(f"{url}?access_token={token}", open_timeout=GUARD) as member_conn,
    ):
        admin, member = Transcript(admin_conn), Transcript(member_conn)
        transcripts += [admin, member]
        assert (await admin.ask({"type": "subscribe", "project_id": project}))["type"] == (
            "subscribed"
        )
        for refused in [
            {"type": "subscribe"},
            {"type": "subscribe", "project_id": project, "colour": "red"},
            {"type": "subscribe", "project_id": "all", "since": -1},
            {"type": "unsubscribe", "project_id": 7},
            {"type": "ping"},
            ["subscribe", project],
        ]:
            assert (await admin.ask(refused, refused=True))["code"] == "bad_frame"
        assert (await admin.ask("not json"))["code"] == "bad_frame"
        assert (await admin.ask({"type": "subscribe", "project_id": "all"}))["code"] == (
            "already_subscribed"
        )

        asked = {"type": "subscribe", "project_id": "all", "since": 999_999_999}
        assert (await member.ask(asked))["code"] == "unknown_position"
        asked = {"type": "subscribe", "project_id": hidden}
        assert (await member.ask(asked))["code"] == "not_found"
        asked = {"type": "unsubscribe", "project_id": "prj_nope"}
        assert (await member.ask(asked))["code"] == "not_subscribed"
        await world.add(project, person)
        await admin.until("person_added_to_project")
        assert (await member.ask({"type": "subscribe", "project_id": project}))["type"] == (
            "subscribed"
        )

        asked = {"type": "subscribe", "project_id": "notifications"}
        assert (await member.ask(asked))["type"] == "subscribed"
        await world.post(project, "Kick-off")
        todolist = await _created(world.client, f"/v1/projects/{project}/todolists", name="Plan")
        todos = [
            await _created(world.client, f"/v1/todolists/{todolist}/todos", content=content)
            for content in ("Ship", "Celebrate")
        ]
        await _ok(world.client.put(f"/v1/todos/{todos[0]}/position", json={"position": 2}))
        await _ok(world.client.post(f"/v1/todos/{todos[0]}/completion"))
        for conn in (admin, member):
            await conn.until("todo_completed")
        # The member was told of the message (subscribed by default) and reads it.
        while not any(f["type"] == "notification" for f in member.received):
            await member.recv()
        async with httpx.AsyncClient(
            base_url=rt.server.base_url, headers={"Authorization": f"Bearer {token}"}
        ) as as_member:
            await _ok(as_member.post("/v1/my/notifications/read_all"))
        while member.received[-1]["type"] != "notifications_read":
            await member.recv()

        await world.remove(project, person)
        await admin.until("person_removed_from_project")
        while (await member.recv()).get("code") != "access_revoked":
            pass
        assert (await admin.ask({"type": "unsubscribe", "project_id": project}))["type"] == (
            "unsubscribed"
        )
        live = [f for f in admin.received if f["type"] == "event"]
        await admin.ask({"type": "subscribe", "project_id": project, "since": start})
        replayed = [await admin.recv() for _ in live]
        assert [f["position"] for f in replayed] == [f["position"] for f in live]

        async with ws(url, world.admin_token) as crowded_conn:
            crowded = Transcript(crowded_conn)
            transcripts.append(crowded)
            many = await asyncio.gather(*(world.project() for _ in range(100)))
            for name in many:
                assert (await crowded.ask({"type": "subscribe", "project_id": name}))["type"] == (
                    "subscribed"
                )
            asked = {"type": "subscribe", "project_id": project}
            assert (await crowded.ask(asked))["code"] == "too_many_subscriptions"

        async with ws(url, "cairn_not_a_token") as stranger:
            closes.append(await close_code(stranger))
        await _ok(world.client.post(f"/v1/people/{person}/deactivate"))
        closes.append(await close_code(member_conn))
        await rt.server.stop()
        closes.append(await close_code(admin_conn))

    for transcript in transcripts:
        for sent in transcript.sent:
            assert contract.judge(sent, "receive") == [sent["type"]], (
                sent,
                contract.why_not(sent, sent["type"], "receive"),
            )
        for refused in transcript.refused:
            assert contract.judge(refused, "receive") == [], refused
        for got in transcript.received:
            assert contract.judge(got, "send") == [got["type"]], (
                got,
                contract.why_not(got, got["type"], "send"),
            )
    sent_types = {f["type"] for t in transcripts for f in t.sent}
    received = [f for t in transcripts for f in t.received]
    assert sent_types == CLIENT_MESSAGES
    assert {f["type"] for f in received} == SERVER_MESSAGES
    # Every error code the document lists but one: ``unavailable`` needs PostgreSQL gone
    # while subscribing.
    codes = contract.document["components"]["schemas"]["ErrorFrame"]["properties"]["code"]
    seen = {f["code"] for f in received if f["type"] == "error"}
    assert seen == set(codes["enum"]) - {"unavailable"}
    assert {
        "message_posted",
        "todolist_created",
        "todo_added",
        "todo_moved",
        "todo_completed",
        "person_added_to_project",
        "person_removed_from_project",
    } <= {f["kind"] for f in received if f["type"] == "event"}
    documented = {c["code"] for c in contract.document["channels"]["stream"]["x-close-codes"]}
    assert closes == [4401, 4403, 1012]
    assert set(closes) <= documented


async def _ok(request: Awaitable[httpx.Response]) -> dict[str, Any]:
    response = await request
    assert response.status_code < 300, response.text
    body: dict[str, Any] = response.json()
    return body


async def _created(client: httpx.AsyncClient, path: str, **body: Any) -> str:
    """POST ``body`` to ``path``; the new thing's id."""
    return str((await _ok(client.post(path, json=body)))["id"])

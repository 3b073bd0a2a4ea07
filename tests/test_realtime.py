"""The real-time hub over a real uvicorn and real WebSocket clients: authentication,
subscriptions, authorisation, replay with ``since``, one encoding per event, slow consumers.

Instances, PostgreSQL restarts, heartbeats and shutdown are in ``test_realtime_cluster.py``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from service.domain.access import Viewer
from service.domain.context import Context
from service.domain.messages import PostMessage, decide_post_message
from service.domain.projects import fold_project
from service.events.base import Metadata
from service.events.store import NO_STREAM, EventStore
from service.events.streams import project_stream, recording_stream

from .support.asyncapi import Contract
from .support.realtime import (
    RawClient,
    Rt,
    close_code,
    events,
    frame,
    log_positions,
    realtime_server,
    recording_events,
    subscribe,
    ws,
)


@pytest.fixture
async def rt(database_url: str) -> AsyncIterator[Rt]:
    async with realtime_server(database_url, ws_buffer_messages=50) as rt:
        yield rt


async def append_messages(
    store: EventStore, project_id: str, actor: str, count: int, body: str = "<p>x</p>"
) -> None:
    """Post ``count`` messages straight through the store (the domain decides them), one
    after the other."""
    events = await store.read_stream(project_stream(project_id))
    project = fold_project(e.event for e in events)
    assert project is not None
    viewer = Viewer(person_id=actor, role="admin")
    for i in range(count):
        recording_id = f"rec_{uuid.uuid4().hex}"
        decided = decide_post_message(
            project,
            PostMessage(recording_id=recording_id, subject=f"bulk {i}", body=body),
            Context(actor=viewer, now=datetime.now(UTC)),
        )
        await store.append(
            recording_stream(recording_id),
            decided,
            NO_STREAM,
            Metadata(actor=actor),
            project_id=project_id,
        )


BIG = "<p>" + "x" * 16384 + "</p>"
"""A 16 KiB message body."""


# ------------------------------------------------------------------ connecting


@pytest.mark.parametrize("how", ["none", "unknown", "basic", "query-unknown"])
async def test_bad_or_missing_token_closes_4401(rt: Rt, how: str) -> None:
    """Without a valid bearer token (header or query) the socket closes with 4401."""
    url, headers = rt.server.ws_url, {}
    if how == "unknown":
        headers = {"Authorization": "Bearer nope"}
    elif how == "basic":
        headers = {"Authorization": f"Basic {rt.world.admin_token}"}
    elif how == "query-unknown":
        url += "?access_token=nope"
    async with connect(url, additional_headers=headers) as conn:
        assert await close_code(conn) == 4401


async def test_query_token_and_bad_frames(rt: Rt) -> None:
    """A browser's ``?access_token=`` works; malformed frames get error frames, not a close."""
    async with connect(f"{rt.server.ws_url}?access_token={rt.world.admin_token}") as conn:
        await conn.send("not json")
        assert (await frame(conn))["code"] == "bad_frame"
        await conn.send(json.dumps({"type": "subscribe"}))
        assert (await frame(conn))["code"] == "bad_frame"
        await conn.send(json.dumps({"type": "unsubscribe", "project_id": "prj_x"}))
        error = await frame(conn)
        assert error == {
            "type": "error",
            "code": "not_subscribed",
            "detail": "no such subscription",
            "subscription": "prj_x",
        }
        await conn.send(json.dumps({"type": "subscribe", "project_id": "all", "since": 999999}))
        assert (await frame(conn))["code"] == "unknown_position"


# ------------------------------------------------------------------ events


async def test_project_events_arrive_in_log_order_with_their_fields(rt: Rt) -> None:
    """A subscriber gets the project's events in log order, each with the issue's fields."""
    world = rt.world
    project = await world.project()
    async with ws(rt.server.ws_url, world.admin_token) as conn:
        await subscribe(conn, project)
        ids = [await world.post(project, f"m{i}") for i in range(3)]
        got = await events(conn, 3)
    assert [f["recording"] for f in got] == ids
    first = got[0]
    assert set(first) == {
        "type", "position", "project_id", "kind", "recording", "actor", "data", "at"
    }  # fmt: skip
    assert first["kind"] == "message_posted"
    assert first["project_id"] == project
    assert first["actor"] == world.admin_id
    assert first["data"]["subject"] == "m0"
    log = await log_positions(rt.database_url, project)
    assert [f["position"] for f in got] == log[-3:]


async def test_unsubscribe_and_overlapping_subscriptions(rt: Rt) -> None:
    """``unsubscribe`` ends one subscription; overlapping ones are refused."""
    world = rt.world
    first, second = await world.project(), await world.project()
    async with ws(rt.server.ws_url, world.admin_token) as conn:
        await subscribe(conn, first)
        await subscribe(conn, second)
        await conn.send(json.dumps({"type": "subscribe", "project_id": "all"}))
        assert (await frame(conn))["code"] == "already_subscribed"
        await conn.send(json.dumps({"type": "unsubscribe", "project_id": first}))
        assert await frame(conn) == {"type": "unsubscribed", "subscription": first}
        await world.post(first, "not for you")
        await world.post(second, "for you")
        (got,) = await events(conn, 1)
        assert got["data"]["subject"] == "for you"


async def test_all_follows_every_visible_project(rt: Rt) -> None:
    """``all`` delivers events of every project the person sees, and none of the others."""
    world = rt.world
    person, token, _ = await world.person()
    mine, theirs = await world.project(), await world.project()
    await world.add(mine, person)
    async with ws(rt.server.ws_url, token) as conn:
        await subscribe(conn, "all")
        await world.post(theirs, "hidden")
        await world.post(mine, "seen")
        (got,) = await events(conn, 1)
        assert got["data"]["subject"] == "seen"
        # Joining a project brings its events into ``all`` from then on.
        await world.add(theirs, person)
        joined = await frame(conn)
        assert joined["kind"] == "person_added_to_project"
        await world.post(theirs, "now seen")
        (got,) = await events(conn, 1)
        assert got["data"]["subject"] == "now seen"


# ------------------------------------------------------------------ authorisation


async def test_non_member_gets_an_error_frame_and_no_events(rt: Rt) -> None:
    """Subscribing to a project one may not see is an error frame, and nothing leaks."""
    world = rt.world
    person, token, _ = await world.person()
    secret, own = await world.project(), await world.project()
    await world.add(own, person)
    async with ws(rt.server.ws_url, token) as conn:
        await conn.send(json.dumps({"type": "subscribe", "project_id": secret}))
        assert await frame(conn) == {
            "type": "error",
            "code": "not_found",
            "detail": "there is no such project",
            "subscription": secret,
        }
        await subscribe(conn, own)
        await world.post(secret, "secret")
        await world.post(own, "own")
        (got,) = await events(conn, 1)
        assert got["project_id"] == own


async def test_clients_receive_only_what_is_visible_to_clients(rt: Rt) -> None:
    """A client gets visible recordings only (comments inherit); staff get everything; a
    recording shown to clients later reaches them from then on."""
    world = rt.world
    client, client_token, _ = await world.person("client")
    project = await world.project(clients_enabled=True)
    await world.add(project, client, "client")
    async with (
        ws(rt.server.ws_url, client_token) as client_ws,
        ws(rt.server.ws_url, world.admin_token) as staff_ws,
    ):
        await subscribe(client_ws, project)
        await subscribe(staff_ws, "all")
        hidden = await world.post(project, "internal")
        response = await world.client.post(
            f"/v1/recordings/{hidden}/comments", json={"content": "<p>internal note</p>"}
        )
        assert response.status_code == 201, response.text
        comment = response.json()["id"]
        shown = await world.post(project, "for the client", visible=True)
        staff = await recording_events(staff_ws, 3)
        assert [f["recording"] for f in staff][0::2] == [hidden, shown]
        (seen,) = await events(client_ws, 1)
        assert seen["recording"] == shown
        response = await world.client.put(
            f"/v1/recordings/{hidden}/client_visibility", json={"visible_to_clients": True}
        )
        assert response.status_code == 200, response.text
        (now_seen,) = await events(client_ws, 1)
        assert (now_seen["recording"], now_seen["kind"]) == (hidden, "recording_shown_to_clients")
        # Replay judges with the same rules: the hidden-then-shown message's history is
        # visible now, the comment too (it inherits), nothing else was hidden.
        await client_ws.send(json.dumps({"type": "unsubscribe", "project_id": project}))
        assert (await frame(client_ws))["type"] == "unsubscribed"
        await subscribe(client_ws, project, since=0)
        replayed = []
        while len(replayed) < 1 or replayed[-1]["kind"] != "recording_shown_to_clients":
            replayed.append(await frame(client_ws))
        recordings = [f["recording"] for f in replayed if f["recording"]]
        assert recordings == [hidden, comment, shown, hidden]


async def test_removed_member_loses_the_subscription(rt: Rt) -> None:
    """Removing a person from a project ends their subscription with an error frame."""
    world = rt.world
    person, token, _ = await world.person()
    project = await world.project()
    await world.add(project, person)
    async with ws(rt.server.ws_url, token) as conn:
        await subscribe(conn, project)
        await world.remove(project, person)
        assert await frame(conn) == {
            "type": "error",
            "code": "access_revoked",
            "detail": "you may no longer see this project",
            "subscription": project,
        }
        await world.post(project, "after")
        await conn.send(json.dumps({"type": "unsubscribe", "project_id": project}))
        # The next frame answers the unsubscribe: the message never came.
        assert (await frame(conn))["code"] == "not_subscribed"
    stats = await world.stats()
    assert stats["subscriptions"] == 0


async def test_deactivation_and_revocation_close_sockets(rt: Rt) -> None:
    """A deactivated person's sockets close with 4403; a revoked token's with 4401."""
    world = rt.world
    person, token, _ = await world.person()
    _, other_token, other_token_id = await world.person()
    async with (
        ws(rt.server.ws_url, token) as conn,
        ws(rt.server.ws_url, other_token) as other_conn,
    ):
        response = await world.client.post(f"/v1/people/{person}/deactivate")
        assert response.status_code == 200, response.text
        assert await close_code(conn) == 4403
        response = await world.client.delete(f"/v1/tokens/{other_token_id}")
        assert response.status_code in (200, 204), response.text
        assert await close_code(other_conn) == 4401


# ------------------------------------------------------------------ replay


async def test_since_replays_then_goes_live_without_gap_or_duplicate(rt: Rt) -> None:
    """With ``since``, missed events replay in order and live ones follow with no gap and no
    duplicate, while writers append concurrently during the catch-up."""
    world = rt.world
    project = await world.project()
    store = await EventStore.open(rt.database_url, max_size=6)
    try:
        # More than one replay page (500) before anyone subscribes.
        await append_messages(store, project, world.admin_id, 1200)
        backlog = await log_positions(rt.database_url, project)
        since = backlog[10]

        async def writer() -> None:
            await append_messages(store, project, world.admin_id, 150)

        async with ws(rt.server.ws_url, world.admin_token) as conn:
            writers = [asyncio.create_task(writer()) for _ in range(3)]
            await asyncio.sleep(0)  # let the writers start before the subscription
            await subscribe(conn, project, since=since)
            await asyncio.gather(*writers)
            log = await log_positions(rt.database_url, project)
            expected = log[log.index(since) + 1 :]
            got = [f["position"] for f in await events(conn, len(expected))]
            assert got == expected
            # Nothing more: the next frame answers a request made now.
            await conn.send(json.dumps({"type": "unsubscribe", "project_id": project}))
            assert (await frame(conn))["type"] == "unsubscribed"
    finally:
        await store.close()


async def test_since_on_all_replays_every_visible_project(rt: Rt) -> None:
    """``all`` with ``since`` replays the visible projects' events only, in log order."""
    world = rt.world
    person, token, _ = await world.person()
    mine, theirs = await world.project(), await world.project()
    await world.add(mine, person)
    start = (await world.client.get("/v1/health")).json()["head_position"]
    await world.post(mine, "a")
    await world.post(theirs, "b")
    await world.post(mine, "c")
    async with ws(rt.server.ws_url, token) as conn:
        await subscribe(conn, "all", since=start)
        got = await events(conn, 2)
        assert [f["data"]["subject"] for f in got] == ["a", "c"]


# ------------------------------------------------------------------ fan-out


async def test_each_event_is_encoded_once_for_all_its_sockets(rt: Rt) -> None:
    """One event to several sockets (staff and client) is encoded once and sent to each."""
    world = rt.world
    client, client_token, _ = await world.person("client")
    project = await world.project(clients_enabled=True)
    await world.add(project, client, "client")
    async with (
        ws(rt.server.ws_url, world.admin_token) as a,
        ws(rt.server.ws_url, world.admin_token) as b,
        ws(rt.server.ws_url, client_token) as c,
    ):
        for conn in (a, b, c):
            await subscribe(conn, project)
        before = await world.stats()
        await world.post(project, "to all", visible=True)
        texts = [await conn.recv() for conn in (a, b, c)]
        after = await world.stats()
    assert texts[0] == texts[1] == texts[2]
    assert after["frames_encoded"] - before["frames_encoded"] == 1
    assert after["events_sent"] - before["events_sent"] == 3


async def test_a_stalled_client_is_dropped_without_delaying_others(rt: Rt) -> None:
    """A client that stops reading overflows its own buffer and is closed with 4008, while
    the others receive every event meanwhile; it can then resume with ``since``."""
    world = rt.world
    project = await world.project()
    stalled = RawClient(rt.server.ws_url, world.admin_token)
    await stalled.open()
    try:
        await stalled.send({"type": "subscribe", "project_id": project})
        async with ws(rt.server.ws_url, world.admin_token) as healthy:
            await subscribe(healthy, project)
            store = await EventStore.open(rt.database_url, max_size=4)
            try:
                # Large enough messages to fill the socket buffers, then the 50-frame buffer.
                _, got = await asyncio.gather(
                    append_messages(store, project, world.admin_id, 400, body=BIG),
                    events(healthy, 400),
                )
            finally:
                await store.close()
            stats = await world.stats()
            assert stats["slow_dropped"] == 1, stats
            # The healthy client got everything, in log order, while the stalled one sat.
            log = await log_positions(rt.database_url, project)
            assert [f["position"] for f in got] == log[-400:]
        texts, code = await stalled.read_until_close()
        assert code == 4008
        assert texts[0] == {"type": "subscribed", "subscription": project}
        received = [f["position"] for f in texts[1:]]
        assert received == log[-400 : -400 + len(received)]
        assert len(received) < 400
    finally:
        stalled.close()
    # Resuming with the last position received gives exactly the rest.
    async with ws(rt.server.ws_url, world.admin_token) as again:
        await subscribe(again, project, since=received[-1])
        rest = await events(again, 400 - len(received))
        assert [f["position"] for f in rest] == log[-400 + len(received) :]


# ------------------------------------------------------------------ stale screens


async def _until_marker(conn: ClientConnection, marker: str) -> list[dict[str, Any]]:
    """The frames up to and including the posting of message ``marker``."""
    got = [await frame(conn)]
    while (got[-1].get("recording"), got[-1].get("kind")) != (marker, "message_posted"):
        got.append(await frame(conn))
    return got


def _told(frames: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(f["kind"], f["recording"]) for f in frames]


async def _contract(rt: Rt) -> Contract:
    async with httpx.AsyncClient(base_url=rt.server.base_url) as anonymous:
        return Contract((await anonymous.get("/asyncapi.json")).json())


async def test_a_client_is_told_once_when_a_recording_is_hidden_live_and_on_resume(
    rt: Rt,
) -> None:
    """A client whose recording is hidden from them (shown to clients, then hidden; a to-do
    moved into a hidden list) gets one ``recording_hidden`` frame in the event's place, live
    and replayed with ``since`` alike, and the ordinary event (redacted) when it shows again;
    trashing is an ordinary event, and staff get every event as it is."""
    world = rt.world
    client, client_token, _ = await world.person("client")
    project = await world.project(clients_enabled=True)
    await world.add(project, client, "client")
    start = (await world.client.get("/v1/health")).json()["head_position"]

    async def call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = await world.client.request(method, path, json=body)
        assert response.status_code < 300, response.text
        return response.json()

    async with (
        ws(rt.server.ws_url, client_token) as client_ws,
        ws(rt.server.ws_url, world.admin_token) as staff_ws,
    ):
        await subscribe(client_ws, project)
        await subscribe(staff_ws, project)
        lists = f"/v1/projects/{project}/todolists"
        shop = (await call("POST", lists, {"name": "Shop", "visible_to_clients": True}))["id"]
        back = (await call("POST", lists, {"name": "Back", "visible_to_clients": False}))["id"]
        todo = (await call("POST", f"/v1/todolists/{shop}/todos", {"content": "Sign"}))["id"]
        for target in (back, shop):
            body = {"position": 1, "todolist_id": target}
            await call("PUT", f"/v1/todos/{todo}/position", body)
        for visible in (False, True):
            body = {"visible_to_clients": visible}
            await call("PUT", f"/v1/recordings/{shop}/client_visibility", body)
        await call("PUT", f"/v1/recordings/{todo}/status", {"status": "trashed"})
        marker = await world.post(project, "marker", visible=True)
        live = await _until_marker(client_ws, marker)
        staff = await _until_marker(staff_ws, marker)
    assert _told(live) == [
        ("todolist_created", shop),
        ("todo_added", todo),
        ("recording_hidden", todo),
        ("todo_moved", todo),
        ("recording_hidden", shop),
        ("recording_shown_to_clients", shop),
        ("recording_trashed", todo),
        ("message_posted", marker),
    ]
    hidden = live[2]
    assert hidden["actor"] is None
    assert hidden["data"] is None
    assert hidden["position"] == staff[3]["position"]
    assert staff[3]["kind"] == "todo_moved"
    assert "from_todolist_id" not in live[3]["data"]
    assert staff[4]["data"]["from_todolist_id"] == back
    assert back not in json.dumps(live)
    contract = await _contract(rt)
    assert all(contract.judge(f, "send") == ["event"] for f in live)
    # Resuming from before it all tells the same, in the same places.
    async with ws(rt.server.ws_url, client_token) as again:
        await subscribe(again, project, since=start)
        assert await _until_marker(again, marker) == live


async def test_an_all_subscription_is_told_once_when_a_project_is_hidden_from_it(
    rt: Rt,
) -> None:
    """On ``all``, a client gets one ``project_hidden`` frame when a project stops admitting
    clients and when they are removed from one, live and replayed with ``since`` alike, and
    nothing of those projects afterwards."""
    world = rt.world
    client, client_token, _ = await world.person("client")
    closing, leaving, staying = [await world.project(clients_enabled=True) for _ in range(3)]
    for project in (closing, leaving, staying):
        await world.add(project, client, "client")
    start = (await world.client.get("/v1/health")).json()["head_position"]
    async with ws(rt.server.ws_url, client_token) as conn:
        await subscribe(conn, "all")
        response = await world.client.patch(
            f"/v1/projects/{closing}", json={"clients_enabled": False}
        )
        assert response.status_code == 200, response.text
        await world.remove(leaving, client)
        for project in (closing, leaving):
            await world.post(project, "unseen", visible=True)
        marker = await world.post(staying, "marker", visible=True)
        live = await _until_marker(conn, marker)
    assert [(f["kind"], f["project_id"], f["recording"]) for f in live] == [
        ("project_hidden", closing, None),
        ("project_hidden", leaving, None),
        ("message_posted", staying, marker),
    ]
    contract = await _contract(rt)
    assert all(contract.judge(f, "send") == ["event"] for f in live)
    async with ws(rt.server.ws_url, client_token) as again:
        await subscribe(again, "all", since=start)
        assert await _until_marker(again, marker) == live


async def test_uploads_reach_the_live_stream_as_every_recording_does(rt: Rt) -> None:
    """An upload hidden from clients reaches staff only; one shown to clients, and its new
    version, reach the client too, with their files' facts in the frame."""
    world = rt.world
    client, client_token, _ = await world.person("client")
    project = await world.project(clients_enabled=True)
    await world.add(project, client, "client")

    async def upload(name: str, visible: bool) -> str:
        sent = await world.client.post(
            "/v1/attachments", params={"name": name}, content=name.encode() * 10
        )
        assert sent.status_code == 201, sent.text
        body = {"attachable_id": sent.json()["attachable_id"], "visible_to_clients": visible}
        made = await world.client.post(f"/v1/projects/{project}/uploads", json=body)
        assert made.status_code == 201, made.text
        return str(made.json()["id"])

    async with (
        ws(rt.server.ws_url, client_token) as client_ws,
        ws(rt.server.ws_url, world.admin_token) as staff_ws,
    ):
        await subscribe(client_ws, project)
        await subscribe(staff_ws, project)
        hidden = await upload("salaries.xlsx", False)
        shown = await upload("plan.pdf", True)
        sent = await world.client.post(
            "/v1/attachments", params={"name": "plan-v2.pdf"}, content=b"v2" * 10
        )
        version = await world.client.post(
            f"/v1/uploads/{shown}/versions", json={"attachable_id": sent.json()["attachable_id"]}
        )
        assert version.status_code == 200, version.text
        staff = await events(staff_ws, 3)
        assert [(f["recording"], f["kind"]) for f in staff] == [
            (hidden, "upload_created"),
            (shown, "upload_created"),
            (shown, "upload_version_added"),
        ]
        seen = await events(client_ws, 2)
        assert [(f["recording"], f["kind"]) for f in seen] == [
            (shown, "upload_created"),
            (shown, "upload_version_added"),
        ]
        assert "salaries" not in json.dumps(seen)
        assert "plan-v2.pdf" in json.dumps(seen[1])

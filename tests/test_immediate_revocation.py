"""A deactivation, a revocation, a role change or a removal from a project made through one
instance binds every instance at once for writes: no write that begins after it is accepted,
whatever another instance remembered about the token a moment before."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import websockets

from .support.api import Api, bearer, new_person
from .support.servers import serving
from .support.waiting import eventually


@pytest.fixture
async def second(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    """A second instance on the same database, and a client of it (no token of its own)."""
    async with (
        serving(api.server.database_url, rate_limit=0) as server,
        httpx.AsyncClient(base_url=server.base_url, timeout=30) as client,
    ):
        yield client


async def _project(api: Api, *members: str) -> str:
    created = await api.client.post("/v1/projects", json={"name": "Immediate"})
    assert created.status_code == 201, created.text
    project_id: str = created.json()["id"]
    for person_id in members:
        added = await api.client.put(
            f"/v1/projects/{project_id}/people/{person_id}", json={"project_role": "member"}
        )
        assert added.status_code == 201, added.text
    return project_id


async def _writes_after(
    write: Callable[[], Awaitable[httpx.Response]], change: Callable[[], Awaitable[None]]
) -> list[tuple[float, int]]:
    """Run ``write`` in a loop while ``change`` runs, and for a second after it is
    acknowledged; the status of every write that began after the acknowledgement, with how
    long after it began."""
    acknowledged: float | None = None
    stop = asyncio.Event()
    after: list[tuple[float, int]] = []

    async def writer() -> None:
        while not stop.is_set():
            began = time.monotonic()
            reply = await write()
            if acknowledged is not None and began > acknowledged:
                after.append((began - acknowledged, reply.status_code))

    task = asyncio.create_task(writer())
    await asyncio.sleep(0.2)
    await change()
    acknowledged = time.monotonic()
    await asyncio.sleep(1.2)
    stop.set()
    await task
    assert after, "no write began after the change"
    return after


async def test_a_deactivated_person_cannot_write_through_another_instance(
    api: Api, second: httpx.AsyncClient
) -> None:
    """Deactivated through instance 1 while writing through instance 2 without pause, a
    person gets no write accepted that began after the deactivation was acknowledged."""
    for trial in range(3):
        after = await _deactivation_trial(api, second, f"Dora {trial}")
        accepted = [(round(t, 3), s) for t, s in after if s < 400]
        assert accepted == [], (trial, accepted)
        assert {s for _, s in after} == {401}


def _change(
    api: Api, method: str, url: str, status: int, **kw: Any
) -> Callable[[], Awaitable[None]]:
    """A change of rights made through instance 1 (``method`` on ``url``), checked to answer
    ``status``."""

    async def change() -> None:
        reply = await api.client.request(method, url, **kw)
        assert reply.status_code == status, reply.text

    return change


async def _posting_member(
    api: Api, second: httpx.AsyncClient, name: str
) -> tuple[str, str, Callable[[], Awaitable[httpx.Response]]]:
    """A new member of a new project, and a write of theirs (a message) through instance 2."""
    person_id, token = await new_person(api, name)
    project_id = await _project(api, person_id)

    async def write() -> httpx.Response:
        return await second.post(
            f"/v1/projects/{project_id}/messages",
            json={"subject": "Still here?", "body": "<p>x</p>"},
            headers=bearer(token),
        )

    return person_id, project_id, write


async def _deactivation_trial(
    api: Api, second: httpx.AsyncClient, name: str
) -> list[tuple[float, int]]:
    person_id, _, write = await _posting_member(api, second, name)
    deactivate = _change(api, "POST", f"/v1/people/{person_id}/deactivate", 200)
    return await _writes_after(write, deactivate)


async def test_a_revoked_token_cannot_write_through_another_instance(
    api: Api, second: httpx.AsyncClient
) -> None:
    """A token revoked through instance 1 while writing through instance 2 gets no write
    accepted that began after the revocation; the person's other token still works."""
    person_id, token = await new_person(api, "Rex")
    spare = await api.client.post(f"/v1/people/{person_id}/tokens", json={"label": "spare"})
    assert spare.status_code == 201
    project_id = await _project(api, person_id)
    token_id = await _token_id(api, person_id, label="tests")

    async def write() -> httpx.Response:
        return await second.post(
            f"/v1/projects/{project_id}/todolists", json={"name": "late"}, headers=bearer(token)
        )

    after = await _writes_after(write, _change(api, "DELETE", f"/v1/tokens/{token_id}", 204))
    assert {s for _, s in after} == {401}, after
    still = await second.post(
        f"/v1/projects/{project_id}/todolists",
        json={"name": "spare works"},
        headers=bearer(spare.json()["token"]),
    )
    assert still.status_code == 201, still.text


async def _token_id(api: Api, person_id: str, *, label: str) -> str:
    listed = await api.client.get(f"/v1/people/{person_id}/tokens", params={"limit": 100})
    (found,) = [t["id"] for t in listed.json() if t["label"] == label]
    return str(found)


async def test_a_demoted_admin_loses_admin_writes_at_once_everywhere(
    api: Api, second: httpx.AsyncClient
) -> None:
    """An admin made a member through instance 1 while adding people through instance 2
    gets no addition accepted that began after the demotion."""
    person_id, token = await new_person(api, "Ada Two", "admin")
    added = 0

    async def write() -> httpx.Response:
        nonlocal added
        added += 1
        return await second.post(
            "/v1/people",
            json={"name": f"New {added}", "email": f"new{added}@example.com", "role": "member"},
            headers=bearer(token),
        )

    demote = _change(api, "PATCH", f"/v1/people/{person_id}", 200, json={"role": "member"})
    after = await _writes_after(write, demote)
    assert {s for _, s in after} == {403}, after


async def test_a_person_taken_off_a_project_cannot_write_to_it_elsewhere(
    api: Api, second: httpx.AsyncClient
) -> None:
    """Removed from a project through instance 1 while writing to it through instance 2, a
    member gets no write accepted that began after the removal (404: they may no longer
    know the project)."""
    person_id, project_id, write = await _posting_member(api, second, "Remy")

    remove = _change(api, "DELETE", f"/v1/projects/{project_id}/people/{person_id}", 204)
    after = await _writes_after(write, remove)
    assert {s for _, s in after} == {404}, after


async def test_reads_and_streams_end_within_a_second_everywhere(
    api: Api, second: httpx.AsyncClient
) -> None:
    """After a deactivation through instance 1, the person's reads through instance 2 are
    refused within a second, and their open WebSocket there is closed with 4403."""
    person_id, token = await new_person(api, "Rita")
    ws_url = str(second.base_url).replace("http", "ws", 1) + "/v1/stream"
    async with websockets.connect(ws_url, additional_headers=bearer(token)) as socket:
        me = await second.get("/v1/me", headers=bearer(token))
        assert me.status_code == 200
        done = await api.client.post(f"/v1/people/{person_id}/deactivate")
        assert done.status_code == 200, done.text
        began = time.monotonic()

        async def refused() -> None:
            reply = await second.get("/v1/me", headers=bearer(token))
            assert reply.status_code == 401, reply.text

        await eventually(refused, timeout=1.0)
        assert time.monotonic() - began < 1.0
        async with asyncio.timeout(1.0):
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await socket.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4403

"""PostgreSQL gone: every route answers 503 with ``Retry-After`` in bounded time, on a
connection kept alive, and normal answers come back by themselves with the database.

The server runs on an embedded PostgreSQL of the module's own, which the tests stop (as a
crash would: ``pg_ctl stop -m immediate``) or freeze (SIGSTOP: a hung server, which takes
connections and statements and never answers), then start or thaw again.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from service.database.migrate import migrate_url
from service.feeds.cache import CHECKPOINT_TTL

from .support.api import add_admin, bearer, known_token
from .support.postgres import OwnCluster, own_cluster
from .support.servers import Server, serving
from .support.waiting import eventually

DB_TIMEOUT = 1.0
"""The server's CAIRN_DB_TIMEOUT here: an answer is due within it plus 0.5 s."""
BOUND = DB_TIMEOUT + 0.5
# Only there to turn a hang into a failure.
GUARD = 60.0


@dataclass
class Site:
    """A server on a PostgreSQL the tests may stop, with an admin and some content."""

    cluster: OwnCluster
    server: Server
    token: str
    feed_token: str
    todolist_id: str


@pytest.fixture(scope="module")
async def site() -> AsyncIterator[Site]:
    with own_cluster() as cluster:
        url = cluster.url()
        await migrate_url(url)
        admin = await add_admin(url)
        async with (
            serving(url, db_timeout=DB_TIMEOUT) as server,
            httpx.AsyncClient(
                base_url=server.base_url, headers=bearer(admin.token), timeout=GUARD
            ) as client,
        ):
            await known_token(client, timeout=GUARD)
            project = await client.post("/v1/projects", json={"name": "Outage"})
            assert project.status_code == 201, project.text
            todolist = await client.post(
                f"/v1/projects/{project.json()['id']}/todolists", json={"name": "Plan"}
            )
            assert todolist.status_code == 201, todolist.text
            feed = await client.post("/v1/me/feed_token")
            assert feed.status_code in (200, 201), feed.text
            yield Site(cluster, server, admin.token, feed.json()["token"], todolist.json()["id"])


Request = Callable[[httpx.AsyncClient, Site], Any]


def _health(client: httpx.AsyncClient, site: Site) -> Any:
    return client.get("/v1/health")


def _projects(client: httpx.AsyncClient, site: Site) -> Any:
    return client.get("/v1/projects", headers=bearer(site.token))


def _new_todo(client: httpx.AsyncClient, site: Site) -> Any:
    return client.post(
        f"/v1/todolists/{site.todolist_id}/todos",
        json={"content": "Survive"},
        headers={**bearer(site.token), "Idempotency-Key": uuid.uuid4().hex},
    )


def _feed(client: httpx.AsyncClient, site: Site) -> Any:
    return client.get("/feeds/activity.atom", params={"token": site.feed_token})


ROUTES = {
    "health": _health,
    "list": _projects,
    "idempotent-post": _new_todo,
    "feed": _feed,
}


async def _timed(request: Request, client: httpx.AsyncClient, site: Site) -> httpx.Response:
    started = time.monotonic()
    response: httpx.Response = await request(client, site)
    elapsed = time.monotonic() - started
    assert elapsed < BOUND, f"answered {response.status_code} after {elapsed:.2f} s"
    return response


def _local_port(response: httpx.Response) -> int:
    """The client's port of the connection that carried ``response``."""
    return int(response.extensions["network_stream"].get_extra_info("client_addr")[1])


def _unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:cairn:problem:unavailable"
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers.get("connection") != "close"


async def _outage(site: Site, kind: str) -> None:
    if kind == "stopped":
        await asyncio.to_thread(site.cluster.stop, "immediate")
    else:
        await asyncio.to_thread(site.cluster.freeze)


async def _recovery(site: Site, kind: str) -> None:
    if kind == "stopped":
        await asyncio.to_thread(site.cluster.start)
    else:
        await asyncio.to_thread(site.cluster.thaw)


@pytest.mark.parametrize("kind", ["stopped", "hung"])
@pytest.mark.parametrize("route", ROUTES)
async def test_every_route_answers_503_while_postgres_is_gone(
    site: Site, route: str, kind: str
) -> None:
    """With PostgreSQL stopped or hung, a route answers 503 `unavailable` with Retry-After
    within CAIRN_DB_TIMEOUT + 0.5 s, twice on one kept-alive connection, then answers
    normally again once PostgreSQL is back."""
    request = ROUTES[route]
    async with httpx.AsyncClient(base_url=site.server.base_url, timeout=GUARD) as client:
        before = await request(client, site)
        assert before.status_code < 300, before.text
        await _outage(site, kind)
        try:
            if route == "feed":
                # Feeds answer from memory while the read models' checkpoint is fresh.
                await asyncio.sleep(CHECKPOINT_TTL)
            first = await _timed(request, client, site)
            _unavailable(first)
            second = await _timed(request, client, site)
            _unavailable(second)
            assert _local_port(second) == _local_port(first)
        finally:
            await _recovery(site, kind)

        async def answers() -> None:
            again = await request(client, site)
            assert again.status_code < 300, again.text

        await eventually(answers, timeout=GUARD, interval=0.1)

"""Shared fixtures: a real PostgreSQL (never a mock), fresh database per test."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from service.events.store import EventStore

from .pg import Cluster


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    # Not under pytest's basetemp: concurrent pytest sessions of one user prune old
    # pytest-N folders (deleting a running cluster's data) and reset the folder to 0700
    # (locking out the "pgserver" user PostgreSQL runs as when we are root).
    parent = Path(tempfile.mkdtemp(prefix="cairn-test-pg-"))
    cluster = Cluster(parent)
    try:
        yield cluster
    finally:
        cluster.close()
        shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture(scope="session")
async def _template(cluster: Cluster) -> AsyncIterator[None]:
    await cluster.prepare_template()
    yield
    await cluster.drop_template()


@pytest.fixture
async def database_url(cluster: Cluster, _template: None) -> AsyncIterator[str]:
    """A fresh, migrated database of its own for one test."""
    url = await cluster.create_database()
    yield url
    await cluster.drop_database(url)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[EventStore]:
    store = await EventStore.open(database_url, max_size=20, poll_interval=0.5)
    yield store
    await store.close()


class LiveServer:
    """A real uvicorn server on a free port, serving Cairn on the test database."""

    def __init__(self, url: str, base_url: str, app: object) -> None:
        self.database_url = url
        self.base_url = base_url
        self.app = app


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start_server(database_url: str, **settings: object) -> tuple[object, object, str]:
    """Start uvicorn in this event loop; return (server, task, base url)."""
    import asyncio

    import uvicorn

    from service.config import from_env
    from service.http.app import create_app

    port = free_port()
    app = create_app(from_env(database_url, port=port, **settings))
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", ws_per_message_deflate=False
    )
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn stopped during start-up")
        await asyncio.sleep(0.01)
    return server, task, f"http://127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def another_instance(database_url: str, token: str) -> AsyncIterator[Any]:
    """A second Cairn instance (a real uvicorn) on the same database, for as long as the
    block runs, and an httpx client sending ``token`` to it."""
    import httpx

    server, task, base = await start_server(database_url)
    try:
        async with httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {token}"}
        ) as client:
            yield client
    finally:
        server.should_exit = True  # type: ignore[attr-defined]
        await task  # type: ignore[misc]


@pytest.fixture
def server_settings() -> dict[str, object]:
    """Settings of the live server (a test may parametrize this name to change them)."""
    return {}


@pytest.fixture
async def live_server(
    database_url: str, server_settings: dict[str, object]
) -> AsyncIterator[LiveServer]:
    """Cairn served by a real uvicorn on a free port, on a fresh database."""
    server, task, base = await start_server(database_url, **server_settings)
    yield LiveServer(database_url, base, server)
    server.should_exit = True  # type: ignore[attr-defined]
    await task  # type: ignore[misc]


class Api:
    """An HTTP client on a live server, authenticated as the first admin."""

    def __init__(self, server: LiveServer, client: object, admin_id: str, admin_token: str) -> None:
        self.server = server
        self.client = client
        self.admin_id = admin_id
        self.admin_token = admin_token


@pytest.fixture
async def api(live_server: LiveServer) -> AsyncIterator[Api]:
    """A live server with a first admin; ``api.client`` is an httpx client sending their token."""
    import httpx

    from service.bootstrap import create_admin

    store = await EventStore.open(live_server.database_url, min_size=1, max_size=2)
    try:
        admin = await create_admin(store, "Ada Admin", "ada@example.com")
    finally:
        await store.close()
    async with httpx.AsyncClient(
        base_url=live_server.base_url,
        headers={"Authorization": f"Bearer {admin.token}"},
        timeout=30,
    ) as client:
        # The directory projection follows the log: wait until the token works.
        import asyncio

        for _ in range(500):
            if (await client.get("/v1/health")).status_code == 200:
                probe = await client.get("/v1/me")
                if probe.status_code != 401:
                    break
            await asyncio.sleep(0.01)
        yield Api(live_server, client, admin.person_id, admin.token)

"""Shared fixtures: a real PostgreSQL (never a mock), fresh database per test, and Cairn
served on it. The harness behind them is in ``tests/support/``."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from service.events.store import EventStore

from .support.api import Api, add_admin, bearer, known_token
from .support.postgres import Cluster
from .support.servers import Server, serving
from .support.smtp_sink import Sink, smtp_sink
from .support.teams import Team, make_team


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


@pytest.fixture
def server_settings() -> dict[str, object]:
    """Settings of the live server (a test may parametrize this name to change them), and
    ``clock``, what tells it "now" (see ``FixedClock`` in tests/support/servers.py)."""
    return {}


@pytest.fixture
async def live_server(
    database_url: str, server_settings: dict[str, object]
) -> AsyncIterator[Server]:
    """Cairn served by a real uvicorn on a free port, on a fresh database."""
    async with serving(database_url, **server_settings) as server:
        yield server


@pytest.fixture
async def api(live_server: Server) -> AsyncIterator[Api]:
    """A live server with a first admin; ``api.client`` is an httpx client sending their token."""
    admin = await add_admin(live_server.database_url)
    async with httpx.AsyncClient(
        base_url=live_server.base_url, headers=bearer(admin.token), timeout=30
    ) as client:
        await known_token(client, timeout=5.0)
        yield Api(live_server, client, admin.person_id, admin.token)


@pytest.fixture
async def team(api: Api) -> Team:
    """A project with clients enabled and its people (:class:`Team`), made over HTTP."""
    return await make_team(api)


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    """A real SMTP server (aiosmtpd) on a free port that keeps what it accepts
    (tests/support/smtp_sink.py), for the mail tests' servers to send to."""
    async with smtp_sink() as sink:
        yield sink

"""Shared fixtures: a real PostgreSQL (never a mock), fresh database per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from service.events.store import EventStore

from .pg import Cluster


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(Path(tmp_path_factory.mktemp("cluster")))
    try:
        yield cluster
    finally:
        cluster.close()


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

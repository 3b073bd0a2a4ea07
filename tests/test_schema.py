"""Versioned migrations and the readable ``schema.sql``, against a real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from service.database.migrate import load_migrations, migrate, migrate_url, schema_text
from service.errors import ConfigurationError

from .support.postgres import Cluster

SCHEMA_SQL = Path(__file__).resolve().parents[1] / "schema.sql"


@pytest.fixture
async def empty_database_url(cluster: Cluster) -> AsyncIterator[str]:
    """A database of its own with no schema at all (not cloned from the migrated template)."""
    url = await cluster.create_database(empty=True)
    yield url
    await cluster.drop_database(url)


async def _recorded(url: str) -> list[tuple[int, str, str]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT version, name, checksum FROM schema_migrations ORDER BY version"
        )
    finally:
        await conn.close()
    return [(r["version"], r["name"], r["checksum"]) for r in rows]


def test_schema_sql_is_the_migrations_concatenated() -> None:
    """schema.sql is exactly what the migrations add up to (regenerate it when this fails)."""
    assert SCHEMA_SQL.read_text(encoding="utf-8") == schema_text(), (
        "schema.sql is stale: run `python -m service.database.migrate --write-schema`"
    )


def test_migrations_are_numbered_from_one_without_holes() -> None:
    """Migration numbers run 1, 2, 3, ... so that a missing file cannot go unnoticed."""
    versions = [m.version for m in load_migrations()]
    assert versions == list(range(1, len(versions) + 1))


async def test_migrate_applies_everything_once_and_records_it(empty_database_url: str) -> None:
    """A first run applies every migration and records it; a second run applies nothing."""
    migrations = load_migrations()
    first = await migrate_url(empty_database_url)
    second = await migrate_url(empty_database_url)
    assert first == migrations
    assert second == []
    assert await _recorded(empty_database_url) == [
        (m.version, m.name, m.checksum) for m in migrations
    ]


async def test_concurrent_migrations_apply_each_step_once(empty_database_url: str) -> None:
    """Several instances starting at once on an empty database apply each migration exactly once."""
    results = await asyncio.gather(*(migrate_url(empty_database_url) for _ in range(4)))
    applied = [m for result in results for m in result]
    assert sorted(m.version for m in applied) == [m.version for m in load_migrations()]
    assert len(await _recorded(empty_database_url)) == len(load_migrations())


async def test_edited_applied_migration_is_refused(database_url: str) -> None:
    """A migration whose text changed after it was applied stops `migrate` with a clear error."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
        with pytest.raises(ConfigurationError, match=r"0001_\w+ changed after it was applied"):
            await migrate(conn)
        # Refusing must not leave the migration lock held against the next instance.
        locked = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        )
        assert locked == 0
    finally:
        await conn.close()

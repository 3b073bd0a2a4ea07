"""Backup and restore as docs/OPERATIONS.md tells them: ``pg_dump``, ``pg_restore`` into an
empty database, ``cairn verify``, and serving the restored log, on the same server and on a
new one (whose transaction counter must first be moved past the dump's)."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import asyncpg
import httpx
import pytest

from .support.api import add_admin, bearer, known_token
from .support.cli import child_env, run_cairn
from .support.postgres import Cluster, own_cluster, programs
from .support.servers import serving

GUARD = 30.0
TODOS = 20
XIDS_BEFORE = 5000
"""Transaction ids the source server has handed out at least before the data is made: more
than a new server's first restore uses (about a thousand)."""

pytestmark = pytest.mark.slow


async def _run(program: str, *args: str, folder: Path | None = None) -> None:
    """Run one of PostgreSQL's programs (from ``folder``, else the newest here), as the
    documentation does."""
    done = await asyncio.to_thread(
        subprocess.run,
        [str((folder or programs()) / program), *args],
        capture_output=True,
        text=True,
        timeout=GUARD,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


async def _programs_of(database_url: str) -> Path:
    """The programs of the server's own major version where Debian installed them, else the
    newest here: a newer pg_restore writes settings an older server refuses
    (``transaction_timeout``, PostgreSQL 17), as docs/OPERATIONS.md says."""
    conn = await asyncpg.connect(database_url)
    try:
        major = int(await conn.fetchval("SHOW server_version_num")) // 10000
    finally:
        await conn.close()
    debian = Path(f"/usr/lib/postgresql/{major}/bin")
    return debian if (debian / "pg_restore").exists() else programs()


async def _made(database_url: str) -> tuple[str, str]:
    """A log with a project, a to-do list and its to-dos, made through the API on a server
    whose transaction counter is past :data:`XIDS_BEFORE`: (admin token, list id)."""
    conn = await asyncpg.connect(database_url)
    try:
        while int(await conn.fetchval("SELECT pg_current_xact_id()::text")) < XIDS_BEFORE:
            pass
    finally:
        await conn.close()
    admin = await add_admin(database_url)
    async with (
        serving(database_url) as server,
        httpx.AsyncClient(
            base_url=server.base_url, headers=bearer(admin.token), timeout=GUARD
        ) as client,
    ):
        await known_token(client, timeout=GUARD)
        project = (await client.post("/v1/projects", json={"name": "Kept"})).json()["id"]
        made = await client.post(f"/v1/projects/{project}/todolists", json={"name": "Safe"})
        list_id = made.json()["id"]
        for n in range(TODOS):
            todo = await client.post(f"/v1/todolists/{list_id}/todos", json={"content": f"t{n}"})
            assert todo.status_code == 201, todo.text
    return admin.token, list_id


async def _verified(database_url: str) -> str:
    """``cairn verify`` on ``database_url``, which must pass; the log's digest."""
    code, output = await run_cairn("verify", env=child_env(database_url))
    assert code == 0, output
    assert "hash chain intact" in output
    [digest] = re.findall(r"log digest (\w+)", output)
    return digest


async def _serves(database_url: str, token: str, list_id: str) -> None:
    """A server on the restored log shows the to-dos and takes a new one."""
    async with (
        serving(database_url) as server,
        httpx.AsyncClient(base_url=server.base_url, headers=bearer(token), timeout=GUARD) as client,
    ):
        await known_token(client, timeout=GUARD)
        added = await client.post(f"/v1/todolists/{list_id}/todos", json={"content": "after"})
        assert added.status_code == 201, added.text
        listed = await client.get(f"/v1/todolists/{list_id}/todos", params={"limit": 100})
        assert [t["content"] for t in listed.json()] == [f"t{n}" for n in range(TODOS)] + ["after"]


async def test_a_dump_restores_on_the_same_server_and_on_a_new_one_once_its_counter_moves(
    cluster: Cluster, database_url: str, tmp_path: Path
) -> None:
    """``pg_dump --format=custom``, then ``pg_restore --no-owner`` into an empty database: on
    the same server ``cairn verify`` passes with the original's digest and Cairn serves the
    log; on a new server, whose transaction counter is behind the dump's, verify fails naming
    the ``pg_resetwal --epoch`` to run, and once it has run (server stopped) the same holds."""
    token, list_id = await _made(database_url)
    digest = await _verified(database_url)
    dump = tmp_path / "cairn.dump"
    own = await _programs_of(database_url)
    await _run("pg_dump", "--format=custom", f"--file={dump}", database_url, folder=own)

    restored = await cluster.create_database(empty=True)
    try:
        await _run("pg_restore", "--no-owner", f"--dbname={restored}", str(dump), folder=own)
        assert await _verified(restored) == digest
        await _serves(restored, token, list_id)
    finally:
        await cluster.drop_database(restored)

    with own_cluster() as new:
        conn = await asyncpg.connect(new.url())
        try:
            await conn.execute("CREATE DATABASE cairn")
        finally:
            await conn.close()
        restored = new.url("cairn")
        await _run("pg_restore", "--no-owner", f"--dbname={restored}", str(dump))
        conn = await asyncpg.connect(restored)
        try:
            behind = await conn.fetchval(
                "SELECT pg_snapshot_xmax(pg_current_snapshot()) <= max(tx_id) FROM events"
            )
        finally:
            await conn.close()
        assert behind, "the new server's counter is not behind the dump's: nothing to test"
        code, output = await run_cairn("verify", env=child_env(restored))
        assert code == 1, output
        [epoch] = re.findall(r"`pg_resetwal --epoch=(\d+) -D <its data folder>`", output)
        await asyncio.to_thread(new.stop)
        await asyncio.to_thread(new.as_owner, "pg_resetwal", f"--epoch={epoch}", str(new.data_dir))
        await asyncio.to_thread(new.start)
        assert await _verified(restored) == digest
        await _serves(restored, token, list_id)

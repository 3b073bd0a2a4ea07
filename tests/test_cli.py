"""The ``cairn`` command as people run it: real processes, real PostgreSQL, real HTTP.

The ``serve`` and ``migrate`` tests force the embedded PostgreSQL (``DATABASE_URL`` is removed
from the child's environment) and share one data folder, the way successive runs on one
machine share ``./cairn-data``. The ``verify`` tests hand each child a fresh database through
``DATABASE_URL``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import asyncpg
import httpx
import pytest

from service import __version__
from service.bootstrap import FIRST_ADMIN_EMAIL, FIRST_ADMIN_NAME
from service.cli import _first_run
from service.config import described
from service.database.location import Location
from service.events.base import Event, register
from service.events.store import NO_STREAM, EventStore

from .support.api import bearer, known_token
from .support.cli import CAIRN, child_env, run_cairn
from .support.postgres import embedded_data_dir
from .support.servers import free_port

STARTUP_TIMEOUT = 60.0


@register
class ProbeRecorded(Event, frozen=True, kw_only=True):
    note: str


def _postmaster(data_dir: Path) -> list[str] | None:
    """Lines of the embedded server's ``postmaster.pid``; None when no server runs there."""
    pid_file = data_dir / "pg" / "postmaster.pid"
    try:
        return pid_file.read_text().splitlines()
    except FileNotFoundError:
        return None


def _embedded_url(data_dir: Path) -> str:
    """Connection URL of the embedded server running in ``data_dir`` (without joining it)."""
    lines = _postmaster(data_dir)
    assert lines is not None, "no embedded PostgreSQL runs in this data folder"
    port, socket_dir = lines[3].strip(), lines[4].strip()
    return f"postgresql://postgres@/cairn?host={socket_dir}&port={port}"


async def _ends(pid: int) -> bool:
    """Whether process ``pid`` (not our child) ends within ten seconds; woken by a pidfd.

    PostgreSQL removes ``postmaster.pid`` a moment before its last process exits, so a
    stopped server's pid may still be alive right after ``pg_ctl stop`` returns.
    """
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    loop = asyncio.get_running_loop()
    ended = asyncio.Event()
    loop.add_reader(fd, ended.set)
    try:
        async with asyncio.timeout(10):
            await ended.wait()
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)
        os.close(fd)


class Service:
    """A running ``cairn serve`` child process and an HTTP client for it."""

    def __init__(self, process: asyncio.subprocess.Process, port: int, output: list[str]) -> None:
        self.process = process
        self.port = port
        self.output = output
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10)

    async def health(self) -> dict[str, Any]:
        response = await self.http.get("/v1/health")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Send ``sig`` and wait for the process to end; its exit code."""
        self.process.send_signal(sig)
        async with asyncio.timeout(STARTUP_TIMEOUT):
            return await self.process.wait()


@asynccontextmanager
async def serving(
    data_dir: Path, database_url: str | None = None, **env: str
) -> AsyncIterator[Service]:
    """Start ``cairn serve`` on the embedded server in ``data_dir`` (on ``database_url``
    instead if given), with ``env`` added to its environment; ready once uvicorn listens."""
    assert CAIRN is not None
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        CAIRN,
        *("serve", "--port", str(port), "--data-dir", str(data_dir), "--log-level", "info"),
        env={**child_env(database_url), **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    output: list[str] = []
    listening = asyncio.Event()

    async def collect() -> None:
        # Read everything the child prints, so that it never blocks on a full pipe.
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode(errors="replace")
            output.append(line)
            if "Uvicorn running on" in line:
                listening.set()
        listening.set()  # the child ended: stop waiting and let the check below fail

    reader = asyncio.create_task(collect())
    service = Service(process, port, output)
    try:
        async with asyncio.timeout(STARTUP_TIMEOUT):
            await listening.wait()
        assert process.returncode is None, "cairn serve ended early:\n" + "".join(output)
        yield service
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await reader
        await service.http.aclose()


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    """One data folder for the serve tests, as on a machine that runs Cairn again and again
    (its PostgreSQL stopped at the end if a failed test left it up)."""
    with embedded_data_dir() as path:
        yield path


def test_version() -> None:
    """`cairn --version` prints the package's version."""
    assert CAIRN is not None
    done = subprocess.run(
        [CAIRN, "--version"], capture_output=True, text=True, check=True, env=child_env()
    )
    assert done.stdout.strip() == f"cairn {__version__}"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_serve_answers_then_stops_its_postgres(data_dir: Path, sig: signal.Signals) -> None:
    """`cairn serve` answers /v1/health; SIGTERM or Ctrl-C ends it with 0 and stops PostgreSQL."""
    async with serving(data_dir) as service:
        health = await service.health()
        assert health["status"] == "ok"
        assert health["version"] == __version__
        lines = _postmaster(data_dir)
        assert lines is not None
        postgres = int(lines[0])
        assert await service.stop(sig) == 0, "".join(service.output)
    assert _postmaster(data_dir) is None
    assert await _ends(postgres)


async def test_restart_keeps_the_log(data_dir: Path) -> None:
    """An event appended while `cairn serve` runs is still there after a stop and a new start."""
    stream = f"probe-{uuid.uuid4().hex}"
    async with serving(data_dir) as service:
        store = await EventStore.open(_embedded_url(data_dir), min_size=1, max_size=2)
        try:
            appended = await store.append(stream, [ProbeRecorded(note="kept")], NO_STREAM)
        finally:
            await store.close()
        assert (await service.health())["head_position"] == appended.positions[0]
        assert await service.stop() == 0
    assert _postmaster(data_dir) is None

    async with serving(data_dir) as service:
        assert (await service.health())["head_position"] == appended.positions[0]
        store = await EventStore.open(_embedded_url(data_dir), min_size=1, max_size=2)
        try:
            [event] = await store.read_stream(stream)
        finally:
            await store.close()
        assert event.event == ProbeRecorded(note="kept")
        assert await service.stop() == 0


async def test_migrate_shares_a_running_serve(data_dir: Path) -> None:
    """`cairn migrate` beside `cairn serve` uses the same PostgreSQL and leaves it running."""
    async with serving(data_dir) as service:
        before = _postmaster(data_dir)
        assert before is not None
        code, output = await run_cairn("migrate", "--data-dir", str(data_dir), env=child_env())
        assert (code, output.strip()) == (0, "schema is up to date")
        assert _postmaster(data_dir) == before
        assert (await service.health())["status"] == "ok"
        assert await service.stop() == 0
    assert _postmaster(data_dir) is None
    assert await _ends(int(before[0]))


async def test_serve_stops_postgres_left_behind_by_a_killed_serve(data_dir: Path) -> None:
    """A `cairn serve` killed outright does not keep PostgreSQL alive after the next one stops."""
    async with serving(data_dir) as service:
        service.process.kill()
        await service.process.wait()
    assert _postmaster(data_dir) is not None
    async with serving(data_dir) as service:
        lines = _postmaster(data_dir)
        assert lines is not None
        assert await service.stop() == 0
    assert _postmaster(data_dir) is None
    assert await _ends(int(lines[0]))


# ------------------------------------------------------------------ cairn serve's settings


def test_serve_help_lists_every_setting() -> None:
    """`cairn serve --help` names every setting (its variable or argument) with its default
    and its description, all taken from the fields of Settings."""
    assert CAIRN is not None
    done = subprocess.run(
        [CAIRN, "serve", "--help"], capture_output=True, text=True, check=True, env=child_env()
    )
    flat = " ".join(done.stdout.split())
    for setting in described():
        assert setting.source in flat, setting
        assert f"(default: {setting.default})" in flat, setting
        assert " ".join(setting.description.split()) in flat, setting


@pytest.mark.parametrize(
    ("env", "args", "line"),
    [
        (
            {"CAIRN_DB_TIMEOUT": "abc"},
            [],
            "cairn: CAIRN_DB_TIMEOUT='abc': Expected `float`, got `str`",
        ),
        ({"CAIRN_RATE_LIMIT": "-1"}, [], "cairn: CAIRN_RATE_LIMIT='-1': Expected `float` >= 0.0"),
        ({}, ["--port", "http"], "cairn: --port='http': Expected `int`, got `str`"),
        ({}, ["--log-format", "xml"], "cairn: --log-format='xml': Invalid enum value 'xml'"),
    ],
    ids=["variable", "variable-out-of-bounds", "argument", "argument-choice"],
)
async def test_an_invalid_setting_stops_serve_before_anything_starts(
    tmp_path: Path, env: dict[str, str], args: list[str], line: str
) -> None:
    """A variable or an argument that does not fit its setting ends `cairn serve` with exit
    code 2 and one line naming it, before any PostgreSQL is started or any admin made."""
    data_dir = tmp_path / "cairn-data"
    code, output = await run_cairn(
        "serve", "--data-dir", str(data_dir), *args, env={**child_env(), **env}
    )
    assert (code, output) == (2, line + "\n")
    assert not data_dir.exists()


# ------------------------------------------------------------------ cairn serve's first run

_CURL_ME = re.compile(
    r'curl -H "Authorization: Bearer (cairn_[\w-]+)" http://127\.0\.0\.1:(\d+)/v1/me'
)


@pytest.fixture
def new_data_dir() -> Iterator[Path]:
    """A data folder of its own, where no Cairn has run yet."""
    with embedded_data_dir() as path:
        yield path


def _printed_token(service: Service) -> str:
    """The token of the one curl line ``cairn serve`` printed for its port."""
    [curl] = _CURL_ME.findall("".join(service.output))
    token, port = curl
    assert int(port) == service.port
    return token


async def _people(service: Service, token: str) -> list[dict[str, Any]]:
    """``GET /v1/people`` as the holder of ``token``, once the server knows it."""
    await known_token(service.http, bearer(token), timeout=10.0)
    response = await service.http.get("/v1/people", headers=bearer(token))
    assert response.status_code == 200, response.text
    people: list[dict[str, Any]] = response.json()
    return people


async def test_first_serve_prints_a_working_admin_token_once(new_data_dir: Path) -> None:
    """The first `cairn serve` on a new embedded data folder makes an admin and prints their
    token in a curl line for /v1/me, which lets them in; nothing else, logs included, shows it."""
    async with serving(new_data_dir) as service:
        token = _printed_token(service)
        me = await known_token(service.http, bearer(token), timeout=10.0)
        assert me.status_code == 200, me.text
        assert (me.json()["name"], me.json()["email"], me.json()["role"]) == (
            FIRST_ADMIN_NAME,
            FIRST_ADMIN_EMAIL,
            "admin",
        )
        assert f"PATCH /v1/people/{me.json()['id']}" in "".join(service.output)
        assert await service.stop() == 0
    # stdout and stderr together: uvicorn's log (requests included) and every logger's.
    output = "".join(service.output)
    assert '"GET /v1/me HTTP/1.1" 200' in output
    assert output.count(token) == 1, output


async def test_later_serves_print_no_token_and_create_nobody(new_data_dir: Path) -> None:
    """Once someone is in the embedded database, `cairn serve` prints no token and creates
    nobody."""
    async with serving(new_data_dir) as first:
        token = _printed_token(first)
        assert await first.stop() == 0
    async with serving(new_data_dir) as again:
        assert "Bearer" not in "".join(again.output)
        assert [p["email"] for p in await _people(again, token)] == [FIRST_ADMIN_EMAIL]
        assert await again.stop() == 0


async def test_serve_on_an_empty_database_url_prints_the_create_admin_command(
    database_url: str, tmp_path: Path
) -> None:
    """With DATABASE_URL on a database with nobody in it, `cairn serve` creates nobody and
    prints the `cairn people create-admin` command, which then lets the first admin in."""
    async with serving(tmp_path, database_url) as service:
        output = "".join(service.output)
        assert "cairn people create-admin --name" in output
        assert "Bearer" not in output
        code, made = await run_cairn(
            *("people", "create-admin", "--name", "Ada", "--email", "ada@example.com"),
            env=child_env(database_url),
        )
        assert code == 0, made
        token = made.strip().splitlines()[-1]
        assert [p["name"] for p in await _people(service, token)] == ["Ada"]
        assert await service.stop() == 0


async def test_serve_prints_the_first_run_message_in_the_default_language(
    database_url: str, tmp_path: Path
) -> None:
    """With CAIRN_LOCALE=fr, `cairn serve` on a database with nobody in it says in French how
    to make the first admin; the command itself stays a command."""
    async with serving(tmp_path, database_url, CAIRN_LOCALE="fr") as service:
        output = "".join(service.output)
        assert (
            "personne n’est encore dans cette base de données\u202f; créez le premier "
            "administrateur (la commande affiche son jeton d’API)\u00a0:"
        ) in output
        assert 'cairn people create-admin --name "Votre nom" --email vous@example.com' in output
        assert "nobody is in this database" not in output
        assert await service.stop() == 0


FIRST_RUN = {
    "en": (
        "first run: created the admin {name} <{email}> ({id}).",
        "Their API token is in this command, shown this once (only its hash is kept):",
        'Change their name and e-mail with PATCH /v1/people/{id} {{"name": "…", "email": "…"}}.',
    ),
    "fr": (
        "premier démarrage\u00a0: administrateur {name} <{email}> créé ({id}).",
        "Son jeton d’API figure dans cette commande, affichée cette seule fois (seule son "
        "empreinte est conservée)\u00a0:",
        "Changez son nom et son adresse e-mail avec PATCH /v1/people/{id} "
        '{{"name": "…", "email": "…"}}.',
    ),
}


@pytest.mark.parametrize("locale", ["en", "fr"])
async def test_the_first_run_on_the_embedded_database_speaks_the_default_language(
    database_url: str, locale: Literal["en", "fr"]
) -> None:
    """The first admin's lines in the default language: what was made, the token shown once
    in the same curl command, and how to rename them (English reads as it always did)."""
    lines = await _first_run(
        Location(url=database_url, embedded=True), "http://127.0.0.1:8000", locale=locale
    )
    [(token, _)] = _CURL_ME.findall("\n".join(lines))
    assert sum(line.count(token) for line in lines) == 1
    person_id = lines[0].rsplit("(", 1)[1].rstrip(").")
    made, shown, rename = (
        line.format(name=FIRST_ADMIN_NAME, email=FIRST_ADMIN_EMAIL, id=person_id)
        for line in FIRST_RUN[locale]
    )
    assert (lines[0], lines[1], lines[-1]) == (made, shown, rename)


async def test_first_run_logs_no_token(database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """The first run's token reaches only the lines printed, never a logger, at any level."""
    caplog.set_level(logging.DEBUG)
    lines = await _first_run(
        Location(url=database_url, embedded=True), "http://127.0.0.1:8000", locale="en"
    )
    [(token, _)] = _CURL_ME.findall("\n".join(lines))
    assert sum(line.count(token) for line in lines) == 1
    assert token not in caplog.text


# ------------------------------------------------------------------------------ cairn verify


async def _append_two_streams(store: EventStore) -> dict[str, list[int]]:
    """Three events in each of two interleaved streams; their positions by stream."""
    positions: dict[str, list[int]] = {"a": [], "b": []}
    for i in range(3):
        for stream in positions:
            result = await store.append(stream, [ProbeRecorded(note=f"{stream}{i}")], i)
            positions[stream] += result.positions
    return positions


async def _tamper(database_url: str, statements: list[str], victims: list[int]) -> None:
    """Run ``statements`` (each given the ``victims`` positions as $1) on the events table with
    its immutability triggers off, as an attacker with the table owner's rights could."""
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
            for sql in statements:
                await conn.execute(sql, victims)
            await conn.execute("ALTER TABLE events ENABLE TRIGGER USER")
    finally:
        await conn.close()


async def test_verify_passes_an_intact_log(store: EventStore, database_url: str) -> None:
    """`cairn verify` on an untouched log exits 0 and says the chain is intact."""
    await _append_two_streams(store)
    code, output = await run_cairn("verify", env=child_env(database_url))
    assert code == 0, output
    assert "checked 6 events in 2 streams" in output
    assert "hash chain intact" in output


_TAMPERINGS = {
    "changed data": (
        [
            "UPDATE events SET data = jsonb_set(data, '{note}', '\"forged\"') "
            "WHERE position = ANY($1::bigint[])"
        ],
        [("b", 1), ("a", 2)],
        ("b", 1),
    ),
    "changed metadata": (
        [
            'UPDATE events SET metadata = \'{"actor": "mallory"}\' WHERE position = ANY($1::bigint[])'
        ],
        [("a", 2)],
        ("a", 2),
    ),
    "removed middle event": (
        ["DELETE FROM events WHERE position = ANY($1::bigint[])"],
        [("a", 1)],
        ("a", 2),
    ),
    "reordered events": (
        # Swap versions 1 and 2 (through 1001/1002: the unique key is checked row by row).
        [
            "UPDATE events SET stream_version = stream_version + 1000 "
            "WHERE position = ANY($1::bigint[])",
            "UPDATE events SET stream_version = 1003 - stream_version "
            "WHERE position = ANY($1::bigint[])",
        ],
        [("a", 0), ("a", 1)],
        ("a", 0),
    ),
}


@pytest.mark.parametrize("tampering", list(_TAMPERINGS))
async def test_verify_names_the_first_broken_position(
    store: EventStore, database_url: str, tampering: str
) -> None:
    """After tampering with the log behind the triggers, `cairn verify` exits 1 naming the
    lowest position where the chain breaks."""
    statements, victims, broken = _TAMPERINGS[tampering]
    positions = await _append_two_streams(store)
    await _tamper(database_url, statements, [positions[s][i] for s, i in victims])
    code, output = await run_cairn("verify", env=child_env(database_url))
    assert code == 1, output
    assert "hash chain intact" not in output
    assert f"BROKEN at position {positions[broken[0]][broken[1]]}:" in output

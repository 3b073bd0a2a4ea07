"""Liveness (``GET /healthz``) and readiness (``GET /readyz``): the first answers whenever the
process does; the second says what it checked, and turns 503 naming what is not ready while
the database is down, a migration is missing or a read model is behind, and 200 again once
that is over."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from service.database.migrate import load_migrations, migrate_url
from service.events.base import Event, register
from service.events.store import NO_STREAM, EventStore
from service.projections import all_projections
from service.projections.projection import LOCK_SPACE, lock_key

from .support.api import Api, problem
from .support.postgres import own_cluster, with_database
from .support.servers import Server, serving
from .support.waiting import eventually

GUARD = 30.0
"""Only there to turn a hang into a failure."""

READ_MODELS = [p.name for p in all_projections()]


@register
class ReadinessProbeRecorded(Event, frozen=True, kw_only=True):
    note: str


async def _ready(client: httpx.AsyncClient) -> dict[str, Any]:
    answer = await client.get("/readyz")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def _not_ready(client: httpx.AsyncClient, *named: str) -> dict[str, Any]:
    answer = await client.get("/readyz")
    body = problem(answer, 503)
    assert body["type"] == "urn:cairn:problem:unavailable"
    assert int(answer.headers["retry-after"]) >= 1
    for name in named:
        assert name in body["detail"], body["detail"]
    return body


async def test_healthz_answers_without_a_token(live_server: Server) -> None:
    """``/healthz`` answers 200 ``{"status": "ok"}`` to anybody."""
    async with httpx.AsyncClient(base_url=live_server.base_url) as client:
        answer = await client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok"}


async def test_readyz_says_what_it_checked(live_server: Server) -> None:
    """A serving instance is ready, and says so of the database, the migrations, each read
    model, the real-time hub and mail (not configured here: ready, and saying so), without a
    token."""
    async with httpx.AsyncClient(base_url=live_server.base_url) as client:
        body = await eventually(lambda: _ready(client), timeout=GUARD)
    assert body["status"] == "ready"
    checks = {c["name"]: c for c in body["checks"]}
    expected = [
        "database",
        "migrations",
        *(f"projection:{n}" for n in READ_MODELS),
        "realtime",
        "mail",
    ]
    assert list(checks) == expected
    assert all(c["ready"] for c in checks.values()), checks
    assert checks["mail"]["detail"].startswith("not configured")


async def test_probes_are_in_the_openapi_document(api: Api) -> None:
    """``/healthz``, ``/readyz`` and ``/metrics`` are declared, outside ``/v1``, with no
    security requirement."""
    spec = (await api.client.get("/openapi.json")).json()
    for path in ("/healthz", "/readyz", "/metrics"):
        operation = spec["paths"][path]["get"]
        assert "security" not in operation
        assert operation["tags"] == ["operations"]


@pytest.mark.parametrize("server_settings", [{"ready_lag_seconds": 0.2}])
async def test_readyz_names_a_read_model_behind_the_log(
    live_server: Server, store: EventStore, database_url: str
) -> None:
    """While a read model cannot apply the log (another session holds its lock) and an
    event waits longer than ``CAIRN_READY_LAG_SECONDS``, readiness is 503 naming that read
    model; once it may apply again, 200."""
    stuck = READ_MODELS[-1]
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=GUARD) as client:
        await eventually(lambda: _ready(client), timeout=GUARD)
        holder = await asyncpg.connect(database_url)
        try:
            await holder.execute("SELECT pg_advisory_lock($1, $2)", LOCK_SPACE, lock_key(stuck))
            note = ReadinessProbeRecorded(note="waiting")
            await store.append(f"probe-{uuid.uuid4().hex}", [note], NO_STREAM)

            async def only_it_behind() -> None:
                detail = (await _not_ready(client, f"projection:{stuck}"))["detail"]
                others = [n for n in READ_MODELS if n != stuck and f"projection:{n}" in detail]
                assert not others, detail

            await eventually(only_it_behind, timeout=GUARD)
            assert (await client.get("/healthz")).status_code == 200
        finally:
            await holder.close()
        await eventually(lambda: _ready(client), timeout=GUARD)


async def test_readyz_names_a_migration_the_database_lacks(
    live_server: Server, database_url: str
) -> None:
    """A database without this code's last migration makes readiness 503 naming it; with
    the migration applied again, 200."""
    last = load_migrations()[-1]
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=GUARD) as client:
        await eventually(lambda: _ready(client), timeout=GUARD)
        conn = await asyncpg.connect(database_url)
        try:
            row = await conn.fetchrow(
                "DELETE FROM schema_migrations WHERE version = $1 RETURNING *", last.version
            )
            assert row is not None
            await _not_ready(client, "migrations", f"{last.version:04d}_{last.name}")
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum, applied_at) "
                "VALUES ($1, $2, $3, $4)",
                *row.values(),
            )
        finally:
            await conn.close()
        await _ready(client)


@pytest.mark.slow
async def test_readyz_follows_the_database_while_healthz_stays() -> None:
    """When PostgreSQL stops, readiness turns 503 naming the database (within the probe's
    timeout) while liveness stays 200; when it is back, readiness is 200 again."""
    with own_cluster() as cluster:
        admin = await asyncpg.connect(cluster.url())
        try:
            await admin.execute("CREATE DATABASE cairn")
        finally:
            await admin.close()
        url = with_database(cluster.url(), "cairn")
        await migrate_url(url)
        async with (
            serving(url) as server,
            httpx.AsyncClient(base_url=server.base_url, timeout=GUARD) as client,
        ):
            await eventually(lambda: _ready(client), timeout=GUARD)
            await asyncio.to_thread(cluster.stop)
            body = await eventually(lambda: _not_ready(client, "database"), timeout=GUARD)
            assert "unreachable" in body["detail"]
            assert (await client.get("/healthz")).json() == {"status": "ok"}
            await asyncio.to_thread(cluster.start)
            await eventually(lambda: _ready(client), timeout=GUARD, interval=0.1)
            assert (await client.get("/healthz")).status_code == 200

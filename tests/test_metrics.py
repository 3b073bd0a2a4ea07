"""Prometheus metrics (``GET /metrics``): a scenario moves each counter by exactly what it did,
requests are labelled by their route's template, the WebSocket gauge follows a connection,
workers added later report through one helper, and under ``cairn serve --workers 2``
whichever process answers a scrape counts the requests of both."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from service.errors import WrongExpectedVersion
from service.events.base import Event, register
from service.events.store import NO_STREAM, EventStore
from service.metrics import PROJECTION_LAG_SECONDS, Worker, exposition
from service.projections import all_projections

from .support.api import Api
from .support.cli import CAIRN
from .support.metrics import Scrape, scrape
from .support.realtime import ws
from .support.servers import free_port
from .support.waiting import eventually

GUARD = 60.0
"""Only there to turn a hang into a failure."""

READ_MODELS = sorted(p.name for p in all_projections())

_QUIET = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
"""A child process's standard streams, closed."""


@register
class MetricsProbeRecorded(Event, frozen=True, kw_only=True):
    note: str


async def _log(store: EventStore) -> tuple[int, int]:
    """(appends, events) in the log: an append writes one stream in one transaction."""
    row = await store.pool.fetchrow(
        "SELECT count(DISTINCT (tx_id, stream_id)) AS appends, count(*) AS events FROM events"
    )
    assert row is not None
    return int(row["appends"]), int(row["events"])


async def test_a_scenario_moves_each_counter_by_what_it_did(api: Api, store: EventStore) -> None:
    """Three to-dos created, a to-do not found and an append at a wrong version move the
    requests (by route template, method and status), the latency histogram's count, the
    appends, the events appended and the conflicts by exactly that, and every read model
    has one lag sample of each kind."""
    c = api.client
    project = (await c.post("/v1/projects", json={"name": "Measured"})).json()
    todolist = (await c.post(f"/v1/projects/{project['id']}/todolists", json={"name": "P"})).json()
    before, log_before = await scrape(c), await _log(store)

    for n in range(3):
        created = await c.post(f"/v1/todolists/{todolist['id']}/todos", json={"content": f"#{n}"})
        assert created.status_code == 201, created.text
    assert (await c.get("/v1/todos/rec_missing")).status_code == 404
    probe = f"probe-{uuid.uuid4().hex}"
    await store.append(probe, [MetricsProbeRecorded(note="first")], NO_STREAM)
    with pytest.raises(WrongExpectedVersion):
        await store.append(probe, [MetricsProbeRecorded(note="again")], NO_STREAM)

    after, log_after = await scrape(c), await _log(store)
    moved = after - before
    post, get = "/v1/todolists/{id}/todos", "/v1/todos/{id}"
    requests = "cairn_http_requests_total"
    assert moved.value(requests, route=post, method="POST", status="201") == 3
    assert moved.value(requests, route=get, method="GET", status="404") == 1
    latency = "cairn_http_request_duration_seconds_count"
    assert moved.value(latency, route=post, method="POST") == 3
    assert moved.value(latency, route=get, method="GET") == 1
    assert moved.value("cairn_appends_total") == log_after[0] - log_before[0] >= 4
    assert moved.value("cairn_events_appended_total") == log_after[1] - log_before[1]
    assert moved.value("cairn_append_conflicts_total") == 1
    routes = after.label_values(requests, "route")
    assert post in routes
    assert not [r for r in routes if "rec_" in r or "prj_" in r], routes
    for gauge in ("cairn_projection_lag_events", "cairn_projection_lag_seconds"):
        assert sorted(after.label_values(gauge, "projection")) == READ_MODELS
    assert after.value("cairn_db_pool_connections", pool="main") >= 1
    assert moved.value("cairn_db_pool_wait_seconds_count", pool="main") >= 1
    assert moved.value("cairn_db_pool_wait_seconds_count", pool="lane") >= 4


async def test_paths_no_route_answers_share_one_series(api: Api) -> None:
    """Requests for paths no route has are counted under ``unmatched``, whatever the path,
    and a method no route knows under ``other``."""
    before = await scrape(api.client)
    for path in ("/nothing/here", f"/nothing/{uuid.uuid4().hex}", "/v1/todos/x/y/z"):
        assert (await api.client.get(path)).status_code == 404
    assert (await api.client.request("BREW", "/healthz")).status_code == 405
    moved = await scrape(api.client) - before
    requests = "cairn_http_requests_total"
    assert moved.value(requests, route="unmatched", method="GET", status="404") == 3
    assert moved.value(requests, route="/healthz", method="other", status="405") == 1


async def test_the_websocket_gauge_follows_a_connection(api: Api) -> None:
    """``cairn_websocket_connections`` counts a socket once it is open and no longer once it
    has closed."""
    gauge = "cairn_websocket_connections"
    base = (await scrape(api.client)).value(gauge)

    async def counted(expected: float) -> None:
        assert (await scrape(api.client)).value(gauge) == expected

    async with ws(api.server.ws_url, api.admin_token):
        await eventually(lambda: counted(base + 1), timeout=GUARD)
    await eventually(lambda: counted(base), timeout=GUARD)


async def test_a_background_worker_reports_through_the_helper() -> None:
    """A worker's tries, failures and in-memory queue appear under its name, and a queue
    measured at scrape time appears once, as given."""
    mail = Worker("metrics-test-mail")
    before = Scrape.parse(exposition().decode())
    for _ in range(3):
        mail.attempted()
    mail.failed()
    mail.queued(5)
    text = exposition([PROJECTION_LAG_SECONDS.family({("elsewhere",): 2.5})]).decode()
    after = Scrape.parse(text)
    moved = after - before
    assert moved.value("cairn_worker_attempts_total", worker="metrics-test-mail") == 3
    assert moved.value("cairn_worker_failures_total", worker="metrics-test-mail") == 1
    assert after.value("cairn_worker_queue_length", worker="metrics-test-mail") == 5
    assert after.value("cairn_projection_lag_seconds", projection="elsewhere") == 2.5


# ------------------------------------------------------------------ several processes


@asynccontextmanager
async def _serve_workers(
    database_url: str, workers: int, tmp: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, Path]]:
    """``cairn serve --workers N`` on ``database_url``, once it is ready: an HTTP client
    that opens a new connection per request (so that the kernel hands requests to either
    process), and the folder holding the processes' metrics (made under ``tmp``). Stopped
    with SIGTERM when the block ends."""
    assert CAIRN is not None
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "TMPDIR": str(tmp)}
    args = ("serve", "--port", str(port), "--workers", str(workers), "--log-level", "warning")
    process = await asyncio.create_subprocess_exec(CAIRN, *args, env=env, **_QUIET)
    limits = httpx.Limits(max_keepalive_connections=0)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=GUARD
        ) as client:

            async def ready() -> None:
                assert process.returncode is None, "cairn serve ended during start-up"
                assert (await client.get("/readyz")).status_code == 200

            await eventually(
                ready, timeout=GUARD, interval=0.1, retry_on=(AssertionError, httpx.TransportError)
            )
            yield client, _metrics_folder(tmp)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(GUARD):
                await process.wait()


def _metrics_folder(tmp: Path) -> Path:
    """The one metrics folder ``cairn serve`` made in ``tmp``."""
    (folder,) = tmp.glob("cairn-metrics-*")
    return folder


def _healthz_by_process(folder: Path) -> dict[str, float]:
    """GET /healthz answered 200, by the process that answered, from its own file."""
    counts: dict[str, float] = {}
    for path in folder.glob("counter_*.db"):
        for family in MultiProcessCollector.merge([str(path)]):
            for sample in family.samples:
                if (
                    sample.labels.get("route") == "/healthz"
                    and sample.labels.get("status") == "200"
                ):
                    pid = path.stem.removeprefix("counter_")
                    counts[pid] = counts.get(pid, 0.0) + sample.value
    return counts


@pytest.mark.slow
async def test_metrics_add_up_over_worker_processes(database_url: str, tmp_path: Path) -> None:
    """Under ``cairn serve --workers 2`` requests are spread over both processes, every
    scrape (whichever process answers it) counts every request exactly once, each read
    model's lag is one sample (not one per process), and the metrics folder is gone once
    the command has stopped."""
    async with _serve_workers(database_url, 2, tmp_path) as (client, folder):
        before = await scrape(client)
        baseline = _healthz_by_process(folder)
        sent = 0

        async def burst() -> None:
            for _ in range(10):
                assert (await client.get("/healthz")).status_code == 200

        # The kernel chooses which process accepts each connection: send until both have
        # answered some (bounded: each round adds 80 requests).
        while True:
            await asyncio.gather(*(burst() for _ in range(8)))
            sent += 80
            answered = _healthz_by_process(folder)
            per_process = {p: n - baseline.get(p, 0.0) for p, n in answered.items()}
            if len([n for n in per_process.values() if n > 0]) == 2:
                break
            assert sent < 4000, f"one process answered everything: {per_process}"
        assert sum(per_process.values()) == sent

        for _ in range(6):
            after = await scrape(client)
            moved = after - before
            count = moved.value(
                "cairn_http_requests_total", route="/healthz", method="GET", status="200"
            )
            assert count == sent
            seconds = moved.value(
                "cairn_http_request_duration_seconds_count", route="/healthz", method="GET"
            )
            assert seconds == sent
            for gauge in ("cairn_projection_lag_events", "cairn_projection_lag_seconds"):
                assert sorted(after.label_values(gauge, "projection")) == READ_MODELS
            # Each process has its pool open; the gauges add them up.
            assert after.value("cairn_db_pool_max_connections", pool="main") == 2 * 20
    assert not folder.exists()

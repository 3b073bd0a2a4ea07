"""Webhooks out: 10,000 events delivered to one receiver, next to a bare loop of signed POSTs.

Run ``python -m bench.webhooks`` (about a minute) or ``python -m bench.webhooks --quick``
(1,000 events). Uses ``DATABASE_URL`` if set, else starts a throwaway embedded PostgreSQL.
Exits 1 when the target is missed.

Three processes: a receiver on 127.0.0.1 (``--serve receiver``: uvicorn and a bare ASGI
app that verifies every request with ``standardwebhooks`` and notes when each
``webhook-id`` arrived), Cairn (``--serve cairn``, one uvicorn worker as ``cairn serve``
runs it, allowed to reach 127.0.0.1 over http), and this one. In one run, rounds alternating:

* **bare**: ``n`` payloads of a webhook's size, each signed with ``standardwebhooks`` and
  POSTed with ``httpx`` (one connection, one after another) from this process: the floor of
  any design sending them one at a time. Rate: ``n`` / (last receipt − first send).
* **Cairn**: ``n`` events of the hook's project appended to the log by this process (8
  writers, one event per append); everything else is Cairn's: the ``webhooks`` delivery
  reader waits for the read models, judges each event for the hook's audience, builds and
  stores its payload in its checkpoint's transaction; the sender claims rows (at most
  ``CAIRN_WEBHOOK_CONCURRENCY`` = 4 in flight), signs and POSTs them through the SSRF-safe
  client and marks each with its attempt. Rate: ``n`` / (last receipt − first append);
  latency: receipt − the event's ``recorded_at``, p50 and p99 (the appends outrun delivery,
  so later events wait behind earlier ones: this is latency under a backlog of up to ``n``).

Target: Cairn's rate ≥ 0.5 × the bare rate (medians of the rounds).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx

from service.commands.caller import Caller, Services
from service.commands.webhooks import create
from service.database.migrate import migrate_url
from service.domain.access import Viewer
from service.events.base import Metadata
from service.events.store import EventStore
from service.events.webhooks import WebhookCreated

from ._common import (
    BenchCommentEdited,
    Payloads,
    arguments,
    first_admin,
    free_port,
    fresh_database,
    machine_facts,
    median,
    percentile,
    postgres_server,
    server_facts,
    server_process,
    table,
    verdict,
    wait_for_token,
)

TARGET = 0.5
WRITERS = 8

# ------------------------------------------------------------------ the receiver


def serve_receiver(port: int) -> None:
    """Verify and note every POST on 127.0.0.1:``port``; ``PUT /secret`` sets the secret,
    ``GET /arrivals`` answers ``{webhook-id: unix time}`` and forgets them."""
    import uvicorn
    from standardwebhooks import Webhook

    state: dict[str, object] = {"hook": None, "arrivals": {}}

    async def app(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()  # type: ignore[operator]
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        answer, status = b"", 204
        if scope["path"] == "/secret":
            state["hook"] = Webhook(body.decode())
        elif scope["path"] == "/arrivals":
            answer, status = json.dumps(state["arrivals"]).encode(), 200
            state["arrivals"] = {}
        else:
            headers = {k.decode(): v.decode() for k, v in scope["headers"]}
            hook = state["hook"]
            assert isinstance(hook, Webhook)
            hook.verify(body, headers, json_parse=False)
            arrivals = state["arrivals"]
            assert isinstance(arrivals, dict)
            arrivals[headers["webhook-id"]] = time.time()
        await send({"type": "http.response.start", "status": status, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": answer})  # type: ignore[operator]

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")


@contextlib.asynccontextmanager
async def receiver_process() -> AsyncIterator[str]:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.webhooks", "--serve", "receiver", "--port", str(port)
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as client:
            for _ in range(600):
                with contextlib.suppress(httpx.TransportError):
                    await client.get("/arrivals")
                    break
                await asyncio.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        await proc.wait()


async def arrivals(base: str, n: int) -> dict[str, float]:
    """Wait until ``n`` requests have arrived; their arrival times by webhook-id."""
    got: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=base) as client:
        while len(got) < n:
            got.update((await client.get("/arrivals")).json())
            if len(got) < n:
                await asyncio.sleep(0.05)
    return got


# ------------------------------------------------------------------ the rounds


async def bare_round(base: str, secret: str, bodies: list[bytes]) -> float:
    from standardwebhooks import Webhook

    hook = Webhook(secret)
    started = time.time()
    async with httpx.AsyncClient(timeout=10) as client:
        for i, body in enumerate(bodies):
            msg = f"bare_{i}_{uuid.uuid4().hex[:8]}"
            at = datetime.now(UTC)
            headers = {
                "content-type": "application/json",
                "webhook-id": msg,
                "webhook-timestamp": str(int(at.timestamp())),
                "webhook-signature": hook.sign(msg, at, body),
            }
            answer = await client.post(f"{base}/hooks", content=body, headers=headers)
            assert answer.status_code == 204, answer.status_code
    got = await arrivals(base, len(bodies))
    return max(got.values()) - started


async def cairn_round(
    store: EventStore, base: str, project_id: str, payloads: Payloads, n: int
) -> tuple[float, list[float]]:
    """Append ``n`` events of the project; seconds from the first append to the last
    receipt, and each event's latency (s) from its ``recorded_at`` to its receipt."""
    queue = list(range(n))
    meta = Metadata(actor="system", request_id="bench")

    async def writer() -> None:
        while queue:
            i = queue.pop()
            event = payloads.events[i % len(payloads.events)]
            event = BenchCommentEdited(
                recording_id=f"rec_{uuid.uuid4().hex[:20]}",
                project_id=project_id,
                parent_id=event.parent_id,
                author_id=event.author_id,
                changes=event.changes,
                mentions=event.mentions,
            )
            await store.append(
                f"recording-{event.recording_id}", [event], 0, meta, project_id=project_id
            )

    started = time.time()
    await asyncio.gather(*(writer() for _ in range(WRITERS)))
    got = await arrivals(base, n)
    positions = {int(m.split("_")[1]): t for m, t in got.items()}
    rows = await store.pool.fetch(
        "SELECT position, extract(epoch FROM recorded_at) AS at FROM events "
        "WHERE position = ANY($1::bigint[])",
        list(positions),
    )
    latencies = [positions[r["position"]] - float(r["at"]) for r in rows]
    # The sender keeps the newest 100 deliveries of a hook (older ones are pruned): the
    # last one planned is among them.
    planned = await store.pool.fetchval(
        "SELECT extract(epoch FROM max(created_at)) FROM webhook_deliveries"
    )
    PHASES.append(
        {
            "appended": max(float(r["at"]) for r in rows) - started,
            "planned": float(planned) - started,
            "received": max(got.values()) - started,
        }
    )
    return max(got.values()) - started, latencies


PHASES: list[dict[str, float]] = []
"""Per Cairn round, seconds from the first append to: the last append, the last delivery
planned, the last receipt."""


async def run(quick: bool) -> int:
    n = 1_000 if quick else 10_000
    rounds = 2
    print(f"# bench.webhooks: {n} events to one receiver, {rounds} rounds\n")
    payloads = Payloads.make()
    with postgres_server() as server:
        async with fresh_database(server, "webhooks") as url, receiver_process() as base:
            await migrate_url(url)
            facts = {**machine_facts(), **(await server_facts(url))}
            token = await first_admin(url, "Ada Admin", "ada@example.com")
            os.environ.update({"CAIRN_ALLOW_HTTP_URLS": "true", "CAIRN_URL_ALLOWLIST": "127.0.0.1"})
            bare: list[float] = []
            cairn: list[float] = []
            latencies: list[list[float]] = []
            async with (
                server_process("bench.webhooks", "cairn", url) as cairn_server,
                httpx.AsyncClient(
                    base_url=cairn_server.base,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=60,
                ) as client,
            ):
                await wait_for_token(client)
                me = (await client.get("/v1/me")).json()
                project = await client.post("/v1/projects", json={"name": "Bench"})
                assert project.status_code == 201, project.text
                project_id = project.json()["id"]
                store = await EventStore.open(url, min_size=WRITERS, max_size=WRITERS + 2)
                try:
                    caller = Caller(
                        services=Services(store=store),
                        actor=Viewer(person_id=me["id"], role="admin"),
                        metadata=Metadata(actor=me["id"], request_id="bench"),
                    )
                    secret = await create(
                        caller,
                        WebhookCreated(
                            webhook_id=f"whk_{uuid.uuid4().hex[:20]}",
                            project_id=project_id,
                            url=f"{base}/hooks",
                            owner_id=me["id"],
                        ),
                    )
                    async with httpx.AsyncClient(base_url=base) as r:
                        await r.put("/secret", content=secret)
                    # Bodies of a Cairn payload's size (about 1 KiB), built before the clock.
                    bodies = [
                        json.dumps({"position": i, "data": payloads.data[i % 512]}).encode()
                        for i in range(n)
                    ]
                    import psutil

                    proc = psutil.Process(cairn_server.popen.pid)
                    for _ in range(rounds):
                        bare.append(await bare_round(base, secret, bodies))
                        cpu = proc.cpu_times()
                        took, lat = await cairn_round(store, base, project_id, payloads, n)
                        after = proc.cpu_times()
                        PHASES[-1]["Cairn process CPU"] = (
                            after.user + after.system - cpu.user - cpu.system
                        )
                        cairn.append(took)
                        latencies.append(lat)
                finally:
                    await store.close()
    rows = [
        [
            f"round {i + 1}",
            f"{n / b:.0f}/s",
            f"{n / c:.0f}/s",
            f"{percentile(lat, 50) * 1000:.0f} ms",
            f"{percentile(lat, 99) * 1000:.0f} ms",
        ]
        for i, (b, c, lat) in enumerate(zip(bare, cairn, latencies, strict=True))
    ]
    mb, mc = median(bare), median(cairn)
    rows.append(["median", f"{n / mb:.0f}/s", f"{n / mc:.0f}/s", "", ""])
    print(
        table(
            ["", "bare signed POSTs", "Cairn (append → receipt)", "Cairn p50", "Cairn p99"],
            rows,
        )
    )
    ratio = mb / mc
    print(f"\nCairn / bare rate: {ratio:.2f} (target ≥ {TARGET})")
    print("\nwhere the time goes, from the first append (ms):")
    print(
        table(
            ["", *PHASES[0]],
            [
                [f"round {i + 1}", *(f"{v * 1000:.0f}" for v in phases.values())]
                for i, phases in enumerate(PHASES)
            ],
        )
    )
    print("\n" + ", ".join(f"{k}: {v}" for k, v in facts.items()))
    return verdict([] if ratio >= TARGET else [f"Cairn / bare rate {ratio:.2f} < {TARGET}"])


def main() -> None:
    import argparse

    parser = arguments("bench.webhooks", __doc__, "1,000 events")
    parser.add_argument("--serve", choices=["receiver", "cairn"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    if args.serve == "receiver":
        serve_receiver(args.port)
        return
    if args.serve == "cairn":
        from ._common import serve_cairn

        serve_cairn(args.port)
        return
    raise SystemExit(asyncio.run(run(args.quick)))


if __name__ == "__main__":
    main()

"""E-mail out: 1,000 subscribers of a project told of one message, next to 1,000 bare sends.

Run ``python -m bench.notify`` (about a minute) or ``python -m bench.notify --quick`` (100
subscribers). Uses ``DATABASE_URL`` if set, else starts a throwaway embedded PostgreSQL.

Three processes: a local SMTP sink (aiosmtpd, ``--serve sink``: it accepts every mail and
prints the time of each 100th and of the last), Cairn (``--serve cairn``, with
``CAIRN_SMTP_URL`` on the sink), and this one. In one run, rounds alternating:

* **bare**: 1,000 messages of a notification's size, written out before the clock starts,
  sent with ``aiosmtplib`` over one connection from this process, one after another: the
  floor of any design sending them one at a time.
* **Cairn**: one message posted over HTTP in a project of 1,000 members (all of them its
  subscribers, the default); everything else is Cairn's own: the ``notices`` worker waits
  for the read models, decides who is told and appends one ``PeopleNotified`` for the
  1,000; the ``mail`` delivery reader plans it into 1,000 outbox rows, which the sender
  claims, checks against access, composes in each recipient's language and sends over one
  reused SMTP connection. Time from the post to the sink's acceptance of the last mail;
  below the table, where that time went (the post's answer, the notice's append, the
  planning, the first and last mails marked sent).

Target: Cairn's rate ≥ 0.5 × the bare rate (medians of the rounds), the post and the
notice included in Cairn's time. The first Cairn round also folds the 1,000 people's
streams (preferences) for the first time; it is shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator
from email.message import EmailMessage

import aiosmtplib
import httpx

from service.database.migrate import migrate_url
from service.events.notices import PeopleNotified
from service.events.store import EventStore
from service.events.streams import notice_stream, recording_stream

from ._common import (
    arguments,
    first_admin,
    free_port,
    fresh_database,
    machine_facts,
    median,
    postgres_server,
    server_facts,
    server_process,
    table,
    verdict,
    wait_for_token,
)

TARGET = 0.5
DOMAIN = "bench.test"


# ------------------------------------------------------------------ the sink


def serve_sink(port: int) -> None:
    """Accept every mail on 127.0.0.1:``port``; print ``accepted <count> <unix time>`` at each
    100th mail and after a quiet 50 ms."""
    from aiosmtpd.smtp import SMTP

    class Count:
        def __init__(self) -> None:
            self.n = 0

        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            self.n += 1
            if self.n % 100 == 0:
                print(f"accepted {self.n} {time.time():.6f}", flush=True)
            return "250 OK"

    async def main() -> None:
        count = Count()
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(count, hostname="sink", loop=loop), "127.0.0.1", port
        )
        print("ready", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


@contextlib.asynccontextmanager
async def sink_process() -> AsyncIterator[tuple[int, asyncio.subprocess.Process]]:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.notify",
        "--serve",
        "sink",
        "--port",
        str(port),
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert (await proc.stdout.readline()).strip() == b"ready"
    try:
        yield port, proc
    finally:
        proc.terminate()
        await proc.wait()


async def accepted(proc: asyncio.subprocess.Process, total: int) -> float:
    """Wait until the sink has accepted ``total`` mails in all; the time it accepted the last."""
    assert proc.stdout is not None
    while True:
        line = (await proc.stdout.readline()).decode().split()
        if line and int(line[1]) >= total:
            return float(line[2])


# ------------------------------------------------------------------ the rounds


def bare_mail(i: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"Cairn <cairn@{DOMAIN}>"
    msg["To"] = f"Person {i} <p{i}@example.com>"
    msg["Subject"] = "[Bench] Kick-off"
    msg["Message-ID"] = f"<bare.{i}.{time.time_ns()}@{DOMAIN}>"
    msg.set_content("Ada posted a message in Bench: “Kick-off”.\n\n" + "Hello everyone. " * 20)
    msg.add_alternative("<p>" + "Hello everyone. " * 20 + "</p>", subtype="html")
    return msg


async def bare_round(port: int, proc: asyncio.subprocess.Process, n: int, before: int) -> float:
    # Written out before the clock starts: the floor is the sending alone.
    mails = [(f"p{i}@example.com", bare_mail(i).as_bytes()) for i in range(n)]
    started = time.time()
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False) as smtp:
        for to, raw in mails:
            await smtp.sendmail(f"cairn@{DOMAIN}", [to], raw)
    return await accepted(proc, before + n) - started


async def cairn_round(
    store: EventStore,
    client: httpx.AsyncClient,
    project_id: str,
    proc: asyncio.subprocess.Process,
    before: int,
    n: int,
) -> float:
    """Post one message (its subscribers: everyone in the project, ``n`` people besides the
    poster) and wait for the sink to accept the ``n`` mails; seconds from the post to the
    last. Where the time went is added to :data:`PHASES`."""
    started = time.time()
    posted = await client.post(
        f"/v1/projects/{project_id}/messages",
        json={"subject": "Kick-off", "body": "<p>" + "Hello everyone. " * 20 + "</p>"},
    )
    answered = time.time()
    assert posted.status_code == 201, posted.text
    took = await accepted(proc, before + n) - started
    [source] = await store.read_stream(recording_stream(posted.json()["id"]))
    [notice] = await store.read_stream(notice_stream(source.position))
    assert isinstance(notice.event, PeopleNotified)
    assert len(notice.event.recipient_ids) == n, len(notice.event.recipient_ids)
    while True:  # the last batch's "sent" mark commits after the sink's answer
        row = await store.pool.fetchrow(
            "SELECT extract(epoch FROM min(created_at)) AS planned, "
            "extract(epoch FROM min(sent_at)) AS first, extract(epoch FROM max(sent_at)) AS last, "
            "count(*) FILTER (WHERE state = 'sent') AS sent "
            "FROM mail_outbox WHERE notice_position = $1",
            source.position,
        )
        assert row is not None
        if row["sent"] == n:
            break
        await asyncio.sleep(0.01)
    PHASES.append(
        {
            "answered": answered - started,
            "noticed": notice.recorded_at.timestamp() - started,
            "planned": float(row["planned"]) - started,
            "first sent": float(row["first"]) - started,
            "last sent": float(row["last"]) - started,
        }
    )
    return took


PHASES: list[dict[str, float]] = []
"""Per Cairn round, seconds from the post to: its answer, the notice's append (the notice
worker's commit), the planning transaction's start, the first and the last mail marked sent
(the marks are per batch of 100: "first sent" is the end of the first batch)."""


async def _people(client: httpx.AsyncClient, project_id: str, n: int) -> list[str]:
    limit = asyncio.Semaphore(8)

    async def one(i: int) -> str:
        async with limit:
            made = await client.post(
                "/v1/people",
                json={
                    "name": f"Person {i}",
                    "email": f"p{i}@example.com",
                    "role": "member",
                    "locale": "fr" if i % 2 else "en",
                },
            )
            assert made.status_code == 201, made.text
            person_id: str = made.json()["id"]
            return person_id

    people = list(await asyncio.gather(*(one(i) for i in range(n))))
    for person_id in people:  # one at a time: each is a write to the project's stream
        added = await client.put(
            f"/v1/projects/{project_id}/people/{person_id}", json={"project_role": "member"}
        )
        assert added.status_code == 201, added.text
    return people


async def run(quick: bool) -> int:
    n = 100 if quick else 1000
    rounds = 2 if quick else 3
    print(f"# bench.notify: {n} subscribers, {rounds} rounds\n")
    with postgres_server() as server:
        async with fresh_database(server, "notify") as url, sink_process() as (port, sink):
            await migrate_url(url)
            facts = {**machine_facts(), **(await server_facts(url))}
            token = await first_admin(url, "Ada Admin", "ada@example.com")
            os.environ.update(
                {
                    "CAIRN_SMTP_URL": f"smtp://127.0.0.1:{port}?starttls=false",
                    "CAIRN_MAIL_DOMAIN": DOMAIN,
                }
            )
            total = 0
            bare: list[float] = []
            cairn: list[float] = []
            async with (
                server_process("bench.notify", "cairn", url) as cairn_server,
                httpx.AsyncClient(
                    base_url=cairn_server.base,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=60,
                ) as client,
            ):
                await wait_for_token(client)
                project = await client.post("/v1/projects", json={"name": "Bench"})
                assert project.status_code == 201, project.text
                project_id = project.json()["id"]
                people = await _people(client, project_id, n)
                store = await EventStore.open(url, min_size=1, max_size=2)
                try:
                    for _ in range(rounds):
                        bare.append(await bare_round(port, sink, n, total))
                        total += n
                        cairn.append(
                            await cairn_round(store, client, project_id, sink, total, len(people))
                        )
                        total += n
                finally:
                    await store.close()
    rows = [
        [
            f"round {i + 1}",
            f"{b * 1000:.0f} ms",
            f"{n / b:.0f}/s",
            f"{c * 1000:.0f} ms",
            f"{n / c:.0f}/s",
        ]
        for i, (b, c) in enumerate(zip(bare, cairn, strict=True))
    ]
    mb, mc = median(bare), median(cairn)
    rows.append(
        [
            "median",
            f"{mb * 1000:.0f} ms",
            f"{n / mb:.0f}/s",
            f"{mc * 1000:.0f} ms",
            f"{n / mc:.0f}/s",
        ]
    )
    print(
        table(
            ["", "bare aiosmtplib", "bare rate", "Cairn (post → last accepted)", "Cairn rate"],
            rows,
        )
    )
    ratio = mb / mc
    print(f"\nCairn / bare rate: {ratio:.2f} (target ≥ {TARGET})")
    print("\nwhere the time goes, from the post (ms):")
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
    parser = arguments("bench.notify", __doc__, "100 subscribers, 2 rounds")
    parser.add_argument("--serve", choices=["sink", "cairn"], help=argparse_hidden())
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    if args.serve == "sink":
        serve_sink(args.port)
        return
    if args.serve == "cairn":
        from ._common import serve_cairn

        serve_cairn(args.port)
        return
    raise SystemExit(asyncio.run(run(args.quick)))


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()

"""Webhook delivery (service/workers/webhooks.py, webhook_sender.py): every event of a
project after a hook's creation reaches it once, signed per Standard Webhooks, redacted for
the hook's audience; failures are retried on the schedule by the server's clock; a 410 or
the last failed retry disables the hook; a restart loses and repeats nothing; the
deliveries are listed and can be sent again.

A real receiver (tests/support/hook_receiver.py) on 127.0.0.1 verifies each request with
the ``standardwebhooks`` package; the server reaches it by the outbound policy's allow-list
(``LOCAL``). Hooks are made over HTTP; the receiver verifies with the secret the creation
answers.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from service.domain.webhook_payload import SCHEDULE, kind_of
from service.domain.webhooks import known_kinds
from service.events.base import RecordedEvent
from service.events.store import EventStore
from service.events.streams import webhook_stream
from service.events.webhooks import WebhookDisabled

from .support.api import Api, bearer, problem
from .support.hook_receiver import DRIP, HANG, Receiver, receiving
from .support.outbound import LOCAL
from .support.servers import FixedClock, serving
from .support.teams import Team, make_team
from .support.waiting import eventually

START = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


TIMEOUT = 2.0
"""The senders' ``CAIRN_WEBHOOK_TIMEOUT`` in these tests (seconds)."""


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def server_settings(clock: FixedClock) -> dict[str, object]:
    # The timeout bounds a whole request: short enough for the tests that wait it out, long
    # enough that a loaded machine (CI) answers an ordinary delivery within it.
    return {**LOCAL, "poll_interval": 0.05, "webhook_timeout": TIMEOUT, "clock": clock}


@pytest.fixture
async def team(api: Api) -> Team:
    return await make_team(api)


async def new_hook(
    store: EventStore,
    api: Api,
    receiver: Receiver,
    project_id: str,
    *,
    audience: str = "team",
    kinds: list[str] | None = None,
) -> str:
    """A hook of ``project_id`` sending to ``receiver`` (which learns its secret), made by
    the admin over HTTP."""
    created = await api.client.post(
        f"/v1/projects/{project_id}/webhooks",
        json={"url": receiver.url, "kinds": kinds, "audience": audience},
    )
    assert created.status_code == 201, created.text
    receiver.secrets.append(created.json()["secret"])
    webhook_id: str = created.json()["id"]
    return webhook_id


async def created_at(store: EventStore, webhook_id: str) -> int:
    (created,) = [
        e
        for e in await store.read_stream(webhook_stream(webhook_id))
        if e.event_type == "WebhookCreated"
    ]
    return created.position


async def project_events(store: EventStore, project_id: str, after: int) -> list[RecordedEvent]:
    """The events of ``project_id`` after ``after`` that hooks are told of."""
    kinds = known_kinds()
    found = []
    while batch := await store.read_all(after, 1000):
        found += [e for e in batch if e.project_id == project_id and kind_of(e.event_type) in kinds]
        after = batch[-1].position
    return found


async def one_row(store: EventStore, webhook_id: str) -> asyncpg.Record:
    """The hook's only delivery (an AssertionError while there is none: ``eventually``
    retries)."""
    found = await rows(store, webhook_id)
    assert len(found) == 1, found
    return found[0]


async def rows(store: EventStore, webhook_id: str) -> list[asyncpg.Record]:
    return list(
        await store.pool.fetch(
            "SELECT * FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY id", webhook_id
        )
    )


async def planned_past(store: EventStore, position: int) -> None:
    """Wait until the planner's checkpoint has passed ``position``."""

    async def check() -> None:
        at = await store.pool.fetchval(
            "SELECT position FROM delivery_checkpoints WHERE name = 'webhooks'"
        )
        assert at is not None
        assert at >= position

    await eventually(check, timeout=10)


async def test_every_event_after_creation_arrives_once_signed(
    api: Api, team: Team, store: EventStore
) -> None:
    """A project hook gets each event of its project after its creation exactly once by
    webhook-id, each verified by standardwebhooks, with the documented payload; nothing of
    before its creation, nothing of another project."""
    await team.message(subject="Before the hook")
    async with receiving() as receiver:
        webhook_id = await new_hook(store, api, receiver, team.project_id)
        since = await created_at(store, webhook_id)
        other = await api.client.post("/v1/projects", json={"name": "Elsewhere"})
        assert other.status_code == 201
        message = await team.message(subject="Kick-off")
        todolists = await team.post(f"/v1/projects/{team.project_id}/todolists", {"name": "Launch"})
        todo = await team.post(
            f"/v1/todolists/{todolists['id']}/todos",
            {"content": "Ship it", "assignee_ids": [team.mia_id]},
        )
        done = await api.client.post(f"/v1/todos/{todo['id']}/completion")
        assert done.status_code in (200, 201, 204), done.text
        expected = await project_events(store, team.project_id, since)
        assert len(expected) >= 4

        def arrived() -> None:
            assert receiver.positions() == sorted(e.position for e in expected)

        await eventually(arrived, timeout=15)
        assert not receiver.refused
        assert set(receiver.delivered_ids().values()) == {1}
        by_kind = {g.payload["kind"]: g for g in receiver.delivered()}
        posted = by_kind["message_posted"]
        assert posted.msg_id == f"msg_{posted.payload['position']}_{webhook_id}"
        body = posted.payload
        assert body["project"] == {"id": team.project_id, "name": "Launch"}
        assert body["actor"]["id"] == api.admin_id
        assert body["recording"]["id"] == message["id"]
        assert body["recording"]["type"] == "message"
        assert body["recording"]["title"] == "Kick-off"
        assert set(body) >= {"id", "kind", "position", "occurred_at", "changes", "recording"}
        assigned = [g for g in receiver.delivered() if g.payload["recording"]["id"] == todo["id"]]
        assert assigned
        assert assigned[-1].payload["recording"]["assignees"] == [
            {"id": team.mia_id, "name": "Mia"}
        ]
        assert all(g.headers["webhook-signature"].startswith("v1,") for g in receiver.got)


async def test_retries_on_the_schedule_by_the_clock_then_delivers(
    api: Api, team: Team, store: EventStore, clock: FixedClock
) -> None:
    """500, a hang past the timeout and 503 are retried after 5 s, 5 min and 30 min (with
    jitter) of the server's clock, with the same webhook-id; then the 2xx ends it; the
    deliveries API shows each attempt's outcome."""
    async with receiving(script=[500, HANG, 503]) as receiver:
        webhook_id = await new_hook(store, api, receiver, team.project_id, kinds=["message_posted"])
        await team.message(subject="Retry me")

        async def attempt_marked(n: int) -> asyncpg.Record:
            async def check() -> asyncpg.Record:
                row = await one_row(store, webhook_id)
                assert row["attempts"] == n, dict(row)
                assert row["state"] == "pending", dict(row)
                assert len(receiver.got) == n
                return row

            found: asyncpg.Record = await eventually(check, timeout=TIMEOUT + 15)
            return found

        for n, wait in enumerate(SCHEDULE[:3], start=1):
            row = await attempt_marked(n)
            delay = row["due_at"] - clock()
            assert wait * 0.89 <= delay <= wait * 1.11, (n, delay)
            clock.now += delay

        async def delivered() -> dict[str, Any]:
            assert len(receiver.delivered()) == 1
            listed = await api.client.get(f"/v1/webhooks/{webhook_id}/deliveries")
            assert listed.status_code == 200, listed.text
            (shown,) = listed.json()
            assert shown["state"] == "delivered", shown
            return shown  # type: ignore[no-any-return]

        shown = await eventually(delivered, timeout=10)
        assert len({g.msg_id for g in receiver.got}) == 1
        assert shown["attempts"] == 4
        assert shown["last_attempt"]["status"] == 200
        errors = await store.pool.fetch(
            "SELECT status, error, response FROM webhook_attempts WHERE webhook_id = $1 "
            "ORDER BY id",
            webhook_id,
        )
        assert [e["status"] for e in errors] == [500, None, 503, 200]
        assert "Timeout" in errors[1]["error"]
        assert errors[0]["response"] == '{"ok": false}'


async def test_a_410_disables_the_hook(api: Api, team: Team, store: EventStore) -> None:
    """A 410 fails the delivery and disables the hook (an event says so); later events are
    not sent to it."""
    async with receiving(script=[410]) as receiver:
        webhook_id = await new_hook(store, api, receiver, team.project_id)
        await team.message(subject="Gone?")

        async def disabled() -> WebhookDisabled:
            events = [e.event for e in await store.read_stream(webhook_stream(webhook_id))]
            assert isinstance(events[-1], WebhookDisabled), events
            return events[-1]

        event = await eventually(disabled, timeout=10)
        assert event.reason == "gone"
        (row,) = await rows(store, webhook_id)
        assert row["state"] == "failed"
        assert row["last_status"] == 410
        await team.message(subject="After")
        head = await store.head()
        await planned_past(store, head[1])
        assert len(await rows(store, webhook_id)) == 1
        assert len(receiver.got) == 1


async def test_the_last_failed_retry_disables_the_hook(
    api: Api, team: Team, store: EventStore, clock: FixedClock
) -> None:
    """Eight failed attempts (the first and seven retries, the clock moved past each wait)
    fail the delivery and disable the hook as failing."""
    async with receiving(script=[500] * 8) as receiver:
        webhook_id = await new_hook(store, api, receiver, team.project_id, kinds=["message_posted"])
        await team.message(subject="Doomed")
        for n in range(1, len(SCHEDULE) + 1):

            async def tried(n: int = n) -> None:
                row = await one_row(store, webhook_id)
                assert row["attempts"] == n, dict(row)
                assert row["state"] == "pending", dict(row)

            await eventually(tried, timeout=10)
            clock.now += SCHEDULE[n - 1] * 1.2

        async def disabled() -> WebhookDisabled:
            events = [e.event for e in await store.read_stream(webhook_stream(webhook_id))]
            assert isinstance(events[-1], WebhookDisabled), events
            return events[-1]

        event = await eventually(disabled, timeout=10)
        assert event.reason == "failing"
        assert "8 attempts" in event.detail
        (row,) = await rows(store, webhook_id)
        assert row["state"] == "failed"
        assert len(receiver.got) == 8


async def test_a_restart_loses_and_repeats_nothing(
    database_url: str, api: Api, team: Team, store: EventStore, clock: FixedClock
) -> None:
    """Events posted while a first server runs, stops (SIGTERM) mid-delivery and a second one
    takes over, all arrive, each webhook-id once."""
    async with receiving() as receiver:
        # Slow answers keep requests in flight when the first server stops.
        receiver.delay = 0.05
        webhook_id = await new_hook(store, api, receiver, team.project_id, kinds=["message_posted"])
        since = await created_at(store, webhook_id)
        for n in range(15):
            await team.message(subject=f"First {n}")
        await api.server.stop()
        settings: dict[str, Any] = {**LOCAL, "poll_interval": 0.05, "webhook_timeout": 5.0}
        async with serving(database_url, clock=clock, **settings) as second:
            async with httpx.AsyncClient(
                base_url=second.base_url, headers=bearer(api.admin_token), timeout=30
            ) as client:
                for n in range(15):
                    posted = await client.post(
                        f"/v1/projects/{team.project_id}/messages",
                        json={"subject": f"Second {n}", "body": "<p>x</p>"},
                    )
                    assert posted.status_code == 201, posted.text
            expected = [
                e.position
                for e in await project_events(store, team.project_id, since)
                if e.event_type == "MessagePosted"
            ]
            assert len(expected) == 30

            def arrived() -> None:
                assert receiver.positions() == expected

            await eventually(arrived, timeout=20)
        assert set(receiver.delivered_ids().values()) == {1}
        assert not receiver.refused


async def test_a_clients_hook_is_told_only_what_clients_see(
    api: Api, team: Team, store: EventStore
) -> None:
    """Of two hooks of one project, the team's hears of a message hidden from clients and
    its comments; the clients' hears only of the message visible to clients (and of nothing
    naming the hidden one)."""
    async with receiving() as team_side, receiving() as clients_side:
        team_hook = await new_hook(store, api, team_side, team.project_id)
        await new_hook(store, api, clients_side, team.project_id, audience="clients")
        since = await created_at(store, team_hook)
        hidden = await team.message(subject="Internal only")
        shown = await team.message(subject="For Acme", visible_to_clients=True)
        comment = await team.post(
            f"/v1/recordings/{hidden['id']}/comments", {"content": "<p>secret</p>"}
        )
        expected = await project_events(store, team.project_id, since)

        def both() -> None:
            assert team_side.positions() == sorted(e.position for e in expected)
            seen = {
                g.payload["recording"]["id"]
                for g in clients_side.delivered()
                if g.payload["recording"]
            }
            assert shown["id"] in seen

        await eventually(both, timeout=15)
        head = await store.head()
        await planned_past(store, head[1])
        text = " ".join(str(g.payload) for g in clients_side.delivered())
        assert hidden["id"] not in text
        assert comment["id"] not in text
        assert "Internal only" not in text
        assert "secret" not in text
        team_text = " ".join(str(g.payload) for g in team_side.delivered())
        assert hidden["id"] in team_text
        assert comment["id"] in team_text


async def test_deliveries_are_listed_and_redelivered_to_managers_only(
    api: Api, team: Team, store: EventStore
) -> None:
    """The deliveries API lists a hook's deliveries newest first; a redelivery sends the
    same payload with the same webhook-id; a member who does not manage the hook gets 404."""
    async with receiving() as receiver:
        webhook_id = await new_hook(store, api, receiver, team.project_id, kinds=["message_posted"])
        await team.message(subject="One")
        await team.message(subject="Two")
        await eventually(lambda: _count(receiver, 2), timeout=10)

        async def both_delivered() -> list[dict[str, Any]]:
            listed = await api.client.get(f"/v1/webhooks/{webhook_id}/deliveries")
            assert listed.status_code == 200, listed.text
            shown: list[dict[str, Any]] = listed.json()
            assert [d["state"] for d in shown] == ["delivered", "delivered"], shown
            return shown

        first, second = await eventually(both_delivered, timeout=10)
        assert first["position"] > second["position"]
        assert first["state"] == "delivered"
        again = await api.client.post(
            f"/v1/webhooks/{webhook_id}/deliveries/{second['id']}/redeliver"
        )
        assert again.status_code == 202, again.text
        await eventually(lambda: _count(receiver, 3), timeout=10)
        assert receiver.got[-1].msg_id == second["webhook_id"]
        assert receiver.got[-1].payload == next(
            g.payload for g in receiver.got if g.msg_id == second["webhook_id"]
        )
        as_mia = await api.client.get(f"/v1/webhooks/{webhook_id}/deliveries", headers=team.mia)
        problem(as_mia, 404)
        missing = await api.client.post(f"/v1/webhooks/{webhook_id}/deliveries/999999/redeliver")
        problem(missing, 404)


def _count(receiver: Receiver, n: int) -> None:
    assert len(receiver.delivered()) == n, len(receiver.delivered())


async def test_a_rebuild_or_a_new_planner_sends_no_history(
    api: Api, team: Team, store: EventStore
) -> None:
    """A hook created on an existing log starts at its creation: the events before it are
    never planned for it."""
    for n in range(3):
        await team.message(subject=f"Old {n}")
    async with receiving() as receiver:
        webhook_id = await new_hook(store, api, receiver, team.project_id)
        since = await created_at(store, webhook_id)
        head = await store.head()
        await planned_past(store, head[1])
        assert since > 0
        assert await rows(store, webhook_id) == []
        assert receiver.got == []


@pytest.mark.parametrize(
    "server_settings",
    [{**LOCAL, "poll_interval": 0.05, "webhook_concurrency": 2}],
)
async def test_at_most_the_cap_in_flight_per_endpoint_across_instances(
    database_url: str, api: Api, team: Team, store: EventStore
) -> None:
    """With two instances sending and a cap of 2, a slow receiver never holds more than 2
    requests of one hook at once, and gets every event once."""
    async with receiving() as receiver:
        receiver.delay = 0.15
        webhook_id = await new_hook(store, api, receiver, team.project_id, kinds=["message_posted"])
        async with serving(database_url, **LOCAL, poll_interval=0.05, webhook_concurrency=2):
            for n in range(10):
                await team.message(subject=f"Message {n}")

            def arrived() -> None:
                assert len(receiver.delivered()) == 10

            await eventually(arrived, timeout=20)
        assert receiver.most == 2
        assert set(receiver.delivered_ids().values()) == {1}
        assert len(await rows(store, webhook_id)) == 10


async def test_a_receiver_dripping_its_answer_is_cut_off_at_the_timeout(
    api: Api, team: Team, store: EventStore, clock: FixedClock
) -> None:
    """The timeout is the whole request's: a receiver answering its headers at once,
    then a byte every 50 ms (never a read timeout) is cut off at the timeout, the attempt recorded
    as a timeout and retried on the schedule, never left in flight past its lease (moving
    the clock 3 minutes, past the lease, brings no second copy), one request at a time."""
    async with receiving(script=[DRIP, DRIP]) as receiver:
        receiver.hang = 60.0
        webhook_id = await new_hook(store, api, receiver, team.project_id, kinds=["message_posted"])
        await team.message(subject="Drip")

        async def attempt_marked(n: int) -> asyncpg.Record:
            async def check() -> asyncpg.Record:
                row = await one_row(store, webhook_id)
                assert (row["attempts"], row["state"]) == (n, "pending"), dict(row)
                assert receiver.dripping == 0  # the sender hung up
                return row

            found: asyncpg.Record = await eventually(check, timeout=TIMEOUT + 15)
            return found

        row = await attempt_marked(1)
        clock.now += timedelta(minutes=3)  # past the lease and the first retry's delay
        row = await attempt_marked(2)
        assert SCHEDULE[1] * 0.89 <= row["due_at"] - clock() <= SCHEDULE[1] * 1.11
        clock.now = row["due_at"]
        await eventually(lambda: _count(receiver, 1), timeout=10)
        attempts = await store.pool.fetch(
            "SELECT status, error, duration_ms FROM webhook_attempts WHERE webhook_id = $1 "
            "ORDER BY id",
            webhook_id,
        )
        assert [a["status"] for a in attempts] == [None, None, 200]
        for timed_out in attempts[:2]:
            assert timed_out["error"].startswith("TimeoutError"), timed_out
            assert TIMEOUT * 900 <= timed_out["duration_ms"] < TIMEOUT * 5000, timed_out
        assert receiver.most_dripping == 1
        assert len(receiver.got) == 3
        assert len({g.msg_id for g in receiver.got}) == 1


class ResolverBug(Exception):
    """Not an OSError, not an httpx error: what no code path foresees."""


async def broken_resolver(host: str, port: int) -> list[str]:
    if host == "broken.example":
        raise ResolverBug("something unforeseen")
    return ["127.0.0.1"]


@pytest.mark.parametrize(
    "server_settings",
    [{**LOCAL, "poll_interval": 0.05, "webhook_timeout": 0.5, "resolver": broken_resolver}],
)
async def test_any_failure_of_a_send_is_a_failed_attempt(
    api: Api, team: Team, store: EventStore
) -> None:
    """An exception nobody foresaw while sending is recorded as the attempt's error and
    the delivery retried on the schedule: never left ``sending``."""
    created = await api.client.post(
        f"/v1/projects/{team.project_id}/webhooks",
        json={"url": "http://broken.example/hooks", "kinds": ["message_posted"]},
    )
    assert created.status_code == 201, created.text
    webhook_id = created.json()["id"]
    await team.message(subject="Unforeseen")

    async def retrying() -> asyncpg.Record:
        row = await one_row(store, webhook_id)
        assert (row["state"], row["attempts"]) == ("pending", 1), dict(row)
        return row

    row = await eventually(retrying, timeout=10)
    assert row["last_error"].startswith("ResolverBug"), row["last_error"]
    assert row["last_status"] is None


async def edit_hook(api: Api, webhook_id: str, **changes: object) -> None:
    shown = await api.client.get(f"/v1/webhooks/{webhook_id}")
    assert shown.status_code == 200, shown.text
    edited = await api.client.patch(
        f"/v1/webhooks/{webhook_id}", json=changes, headers={"If-Match": shown.headers["etag"]}
    )
    assert edited.status_code == 200, edited.text


@pytest.mark.parametrize("change", ["audience", "url"])
async def test_deliveries_planned_before_an_audience_or_url_change_are_skipped(
    api: Api, team: Team, store: EventStore, clock: FixedClock, change: str
) -> None:
    """A delivery retrying when its hook goes from the team to clients (or to another URL)
    is never sent: its payload was built for the team, for the old receiver. It is shown
    ``skipped`` with the reason, and its redelivery is refused (409); what happens after
    the change is planned and sent for the hook as it is now."""
    async with receiving(script=[500]) as receiver, receiving() as other:
        webhook_id = await new_hook(store, api, receiver, team.project_id, kinds=["message_posted"])
        other.secrets = receiver.secrets
        await team.message(subject="For the team only")

        async def retrying() -> asyncpg.Record:
            row = await one_row(store, webhook_id)
            assert (row["state"], row["attempts"]) == ("pending", 1), dict(row)
            return row

        row = await eventually(retrying, timeout=10)
        if change == "audience":
            await edit_hook(api, webhook_id, audience="clients")
        else:
            await edit_hook(api, webhook_id, url=other.url)
        clock.now = row["due_at"] + timedelta(seconds=1)

        async def skipped() -> dict[str, Any]:
            listed = await api.client.get(f"/v1/webhooks/{webhook_id}/deliveries")
            assert listed.status_code == 200, listed.text
            (shown,) = listed.json()
            assert shown["state"] == "skipped", shown
            return shown  # type: ignore[no-any-return]

        shown = await eventually(skipped, timeout=10)
        assert ("audience changed from team to clients" if change == "audience" else "URL") in (
            shown["reason"]
        )
        assert shown["attempts"] == 2  # claimed, then skipped without a request
        assert shown["last_attempt"]["status"] == 500
        refused = await api.client.post(
            f"/v1/webhooks/{webhook_id}/deliveries/{shown['id']}/redeliver"
        )
        problem(refused, 409)
        await team.message(subject="After the change", visible_to_clients=True)
        target = receiver if change == "audience" else other
        await eventually(lambda: _count(target, 1), timeout=10)
        assert len(receiver.got) + len(other.got) == 2
        assert target.got[-1].payload["position"] > shown["position"]

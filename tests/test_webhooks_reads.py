"""The read side of webhooks that delivery codes against (service/reads/webhooks.py) and the
command it calls (service/commands/webhooks.disable), on a live server's read models."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import standardwebhooks

from service.commands import webhooks as commands
from service.commands.caller import Caller, Services
from service.domain.access import Viewer
from service.errors import NotFound
from service.events.base import Metadata
from service.events.store import EventStore
from service.events.streams import webhook_stream
from service.events.webhooks import WebhookCreated, WebhookDisabled
from service.reads import webhooks as reads

from .support.api import Api, new_person
from .support.servers import FixedClock
from .support.waiting import eventually

NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
async def services(api: Api) -> AsyncIterator[Services]:
    store = await EventStore.open(api.server.database_url, min_size=1, max_size=4)
    try:
        yield Services(store=store, clock=FixedClock(NOON))
    finally:
        await store.close()


def _caller(services: Services, person_id: str) -> Caller:
    return Caller(
        services=services,
        actor=Viewer(person_id=person_id, role="admin"),
        metadata=Metadata(actor=person_id),
    )


async def _made(services: Services, owner_id: str, **fields: object) -> tuple[str, str]:
    webhook_id = f"whk_{owner_id[-6:]}{len(fields):014d}"
    event = WebhookCreated(
        webhook_id=webhook_id,
        url="https://hooks.example/in",
        owner_id=owner_id,
        **fields,  # type: ignore[arg-type]
    )
    return webhook_id, await commands.create(_caller(services, owner_id), event)


async def test_endpoints_secrets_and_disabling(api: Api, services: Services) -> None:
    """A new hook is an active endpoint from its creation's position on, with one secret
    that standardwebhooks accepts; a rotation keeps both secrets signing for 24 h by the
    clock; disabling (twice: once) takes it out of the active endpoints but keeps it."""
    webhook_id, secret = await _made(services, api.admin_id, kinds=["todo_completed"])
    standardwebhooks.Webhook(secret)  # accepted as a signing secret
    created = (await services.store.read_stream(webhook_stream(webhook_id)))[0]
    pool = services.store.pool

    async def listed() -> list[reads.Endpoint]:
        found = await reads.active_endpoints(pool)
        assert found, "not projected yet"
        return found

    [hook] = await eventually(listed, timeout=5)
    assert hook == reads.Endpoint(
        id=webhook_id,
        project_id=None,
        url="https://hooks.example/in",
        kinds=frozenset({"todo_completed"}),
        audience="team",
        owner_id=api.admin_id,
        created_position=created.position,
    )
    assert await reads.endpoint(pool, webhook_id) == hook
    assert await reads.endpoint(pool, "whk_00000000000000000000") is None
    assert await reads.signing_secrets(pool, webhook_id, NOON) == [secret]

    clock = services.clock
    assert isinstance(clock, FixedClock)
    clock.now = NOON + timedelta(hours=1)
    newer = await commands.rotate_secret(_caller(services, api.admin_id), webhook_id)
    assert newer != secret
    assert await reads.signing_secrets(pool, webhook_id, clock.now) == [newer, secret]
    last_hour = NOON + timedelta(hours=25) - timedelta(seconds=1)
    assert await reads.signing_secrets(pool, webhook_id, last_hour) == [newer, secret]
    assert await reads.signing_secrets(pool, webhook_id, NOON + timedelta(hours=25)) == [newer]
    async with pool.acquire() as conn:
        logged = await conn.fetchval("SELECT count(*) FROM events WHERE data::text LIKE '%whsec_%'")
    assert logged == 0, "a secret is in the log"

    await commands.disable(services, webhook_id, "gone", "the receiver answered 410")
    await commands.disable(services, webhook_id, "gone", "the receiver answered 410")
    stream = await services.store.read_stream(webhook_stream(webhook_id))
    assert [type(e.event) for e in stream][-1] is WebhookDisabled
    assert sum(isinstance(e.event, WebhookDisabled) for e in stream) == 1

    async def gone() -> None:
        assert await reads.active_endpoints(pool) == []

    await eventually(gone, timeout=5)
    assert await reads.endpoint(pool, webhook_id) == hook


async def test_deactivated_owner_disables_their_hooks(api: Api, services: Services) -> None:
    """The hooks of a person who is deactivated are no active endpoints until they are
    reactivated; the others' stay."""
    ada_id, _ = await new_person(api, "Grace", "admin")
    theirs, _ = await _made(services, ada_id)
    mine, _ = await _made(services, api.admin_id)
    pool = services.store.pool

    async def active(expected: set[str]) -> None:
        assert {e.id for e in await reads.active_endpoints(pool)} == expected

    await eventually(lambda: active({theirs, mine}), timeout=5)
    done = await api.client.post(f"/v1/people/{ada_id}/deactivate")
    assert done.status_code == 200, done.text
    await eventually(lambda: active({mine}), timeout=5)
    back = await api.client.post(f"/v1/people/{ada_id}/reactivate")
    assert back.status_code == 200, back.text
    await eventually(lambda: active({theirs, mine}), timeout=5)


async def test_disable_unknown_hook(api: Api, services: Services) -> None:
    """Disabling a hook that never existed appends nothing and says so."""
    with pytest.raises(NotFound):
        await commands.disable(services, "whk_00000000000000000000", "failing", "")
    found = await services.store.pool.fetchval(
        "SELECT count(*) FROM events WHERE stream_id ^@ 'webhook-'"
    )
    assert found == 0

"""The first admin of a first run (``service.bootstrap.create_first_admin``) on a real
PostgreSQL: made only while nobody is in the log, and only once when processes race."""

from __future__ import annotations

import asyncio

from service.bootstrap import (
    FIRST_ADMIN_EMAIL,
    FIRST_ADMIN_NAME,
    create_admin,
    create_first_admin,
    has_people,
)
from service.events.people import PersonCreated
from service.events.store import EventStore


async def _people(store: EventStore) -> list[PersonCreated]:
    return [e.event for e in await store.read_all(0) if isinstance(e.event, PersonCreated)]


async def test_a_first_run_on_an_empty_log_creates_the_admin_once(store: EventStore) -> None:
    """On a log with nobody in it the first admin is created with a token; asked again, it
    creates nobody."""
    assert await has_people(store) is False
    admin = await create_first_admin(store)
    assert admin is not None
    assert admin.token.startswith("cairn_")
    assert await has_people(store) is True
    [created] = await _people(store)
    assert (created.person_id, created.name, created.email, created.role) == (
        admin.person_id,
        FIRST_ADMIN_NAME,
        FIRST_ADMIN_EMAIL,
        "admin",
    )
    assert await create_first_admin(store) is None
    assert len(await _people(store)) == 1


async def test_a_first_run_creates_nobody_once_someone_exists(store: EventStore) -> None:
    """Someone in the log, whatever their address, means no first admin is made."""
    await create_admin(store, "Ada", "ada@example.com")
    assert await create_first_admin(store) is None
    assert [p.name for p in await _people(store)] == ["Ada"]


async def test_racing_first_runs_create_one_admin(database_url: str) -> None:
    """Several processes that all find nobody yet create one admin between them; the others
    create nothing and say so."""
    stores = [await EventStore.open(database_url, min_size=1, max_size=2) for _ in range(4)]
    try:
        made = await asyncio.gather(*(create_first_admin(s) for s in stores))
        assert len([m for m in made if m is not None]) == 1
        assert len(await _people(stores[0])) == 1
    finally:
        await asyncio.gather(*(s.close() for s in stores))

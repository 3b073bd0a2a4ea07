"""Files written the way the routes will write them: through :mod:`service.commands.files`
with resolved :class:`~service.blobs.store.FileRef` s, over the live server's database
(``api`` fixture), waiting for the read models after each write.

The bytes are never kept: the domain does not look at them, and what the read sides tested
with this (feeds, search) show only a file's name, size, type and key.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from service.blobs.store import FileRef
from service.commands.caller import Caller, Services
from service.domain.access import Viewer
from service.events.base import Metadata
from service.events.store import EventStore
from service.projections import all_projections
from service.projections.engine import ProjectionEngine

from .api import Api


def file(name: str, size: int = 100, content_type: str = "application/pdf") -> FileRef:
    """A file named ``name`` whose key is derived from the name (distinct names, distinct
    keys)."""
    digest = hashlib.sha256(name.encode()).hexdigest()
    return FileRef(sha256=digest, size=size, content_type=content_type, name=name)


@asynccontextmanager
async def services(api: Api) -> AsyncIterator[Services]:
    """Command services over ``api``'s database (the store closed on the way out)."""
    store = await EventStore.open(api.server.database_url, min_size=1, max_size=4)
    try:
        yield Services(store=store, engine=ProjectionEngine(store, all_projections()))
    finally:
        await store.close()


def caller(services: Services, person_id: str, role: str = "member") -> Caller:
    """A caller acting as ``person_id`` (global ``role``)."""
    return Caller(
        services=services,
        actor=Viewer(person_id=person_id, role=role),  # type: ignore[arg-type]
        metadata=Metadata(actor=person_id),
    )

"""What a projection is: the :class:`Projection` protocol, and what the engine's running
and rebuilding share about one: the events it reads, its generations' schemas, its lock."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Protocol

import asyncpg

from ..errors import CairnError
from ..events.base import RecordedEvent

LOCK_SPACE = 0x50524F4A  # "PROJ": advisory lock namespace (first key)


class Projection(Protocol):
    """A read model. Implementations must be deterministic: the same events in the same
    order give the same rows, however they are split into batches (rebuild equality)."""

    name: str
    """Lower-case identifier; also names the schema of each generation."""
    version: int
    """Bump to rebuild on the next start (changed tables or logic)."""
    tables: Sequence[str]
    """Table names exposed as views in ``public`` (must be unique across projections)."""

    # Optional: ``stream_prefixes: tuple[str, ...]``. When a projection has it, ``apply`` is
    # given only the events of streams starting with one of them (still in log order), and
    # is not called for a batch with none; the checkpoint moves on regardless. It spares
    # every projection a Python loop over events it ignores, which dominates rebuilds.
    #
    # Optional: ``bulk_fill(conn, log) -> bool`` (see bulk.py). When a projection has it, a
    # rebuild fills the new generation with it in SQL up to a cursor fixed first, then
    # applies the rest with ``apply``.

    def ddl(self) -> str:
        """CREATE statements for the tables, with unqualified names (run with the search
        path set to the generation's schema)."""
        ...

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        """Apply ``events`` (in log order) inside the caller's transaction; the search path
        is the generation's schema, so unqualified names reach this projection's tables.
        The transaction belongs to this projection alone: ``SET LOCAL`` settings may stay."""
        ...


class UnknownProjection(CairnError):
    """Raised when a command names a projection that is not registered."""


def lock_key(name: str) -> int:
    """The second key of ``name``'s advisory lock (the first is :data:`LOCK_SPACE`), taken
    by the follower's steps and by a rebuild's swap."""
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def relevant(projection: Projection, events: Sequence[RecordedEvent]) -> Sequence[RecordedEvent]:
    """The events ``projection`` wants: those of its ``stream_prefixes``, if it declares any."""
    prefixes: tuple[str, ...] | None = getattr(projection, "stream_prefixes", None)
    if prefixes is None:
        return events
    return [e for e in events if e.stream_id.startswith(prefixes)]


def schema_name(name: str, generation: int) -> str:
    """The schema holding the tables of ``generation`` of projection ``name``."""
    return f"p_{name}_{generation}"

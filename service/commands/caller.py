"""Who runs a command, and against what: the per-instance :class:`Services` and the
per-call :class:`Caller` (actor, metadata, idempotency).

HTTP builds a caller per request; the CLI, bootstrap and background workers (scheduler,
mail, webhooks, pollers, import) build theirs with their own actor and metadata. Nothing here
knows about Starlette or any other transport.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..domain.access import Viewer
from ..domain.calendar import Clock
from ..domain.context import Context
from ..errors import PreconditionFailed
from ..events.base import Metadata
from ..events.store import EventStore
from ..events.streams import ID_DIGITS
from ..outbound import OutboundPolicy

if TYPE_CHECKING:
    from ..domain.people import PersonState
    from ..domain.projects import ProjectState
    from ..projections.engine import ProjectionEngine
    from ..reads.tokens import TokenCache
    from .folds import StreamStates


def utc_now() -> datetime:
    """The system's clock: now, in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Services:
    """What commands run against, one set per process.

    Args:
        store: the event store.
        engine: the read models to wait for after a write (read-your-writes); None in a
            process that runs none (the CLI): writes then answer without waiting.
        project_states: this process's folds of project streams (see :mod:`.folds`); None
            folds every project stream afresh.
        person_states: the same for people's streams (who may write: :mod:`.actors`).
        wait_timeout: how long a write waits for the read models to show it.
        tokens: the token cache to tell when a change of a person shows in the read models.
        clock: what tells "now": the time commands record and the instant "today" is taken
            at (a fixed one in tests).
        time_zone: the zone of people who chose none (``CAIRN_TIME_ZONE``).
        outbound: what outbound requests (webhooks, external feeds) may reach, and the HTTP
            client they are sent with (:mod:`service.outbound`).
    """

    store: EventStore
    engine: ProjectionEngine | None = None
    project_states: StreamStates[ProjectState] | None = None
    person_states: StreamStates[PersonState] | None = None
    wait_timeout: float = 5.0
    tokens: TokenCache | None = None
    clock: Clock = utc_now
    time_zone: str = "UTC"
    outbound: OutboundPolicy = field(default_factory=OutboundPolicy)


@dataclass(frozen=True)
class Idempotency:
    """What makes a retried call the same call: the caller's key, scoped to who sent it and
    through which channel, and a fingerprint of the request (a retry with the same key and
    another fingerprint is refused)."""

    channel: str
    owner: str
    key: str
    fingerprint: bytes


@dataclass(frozen=True)
class Precondition:
    """The versions of the resource a write expects it to be at (HTTP ``If-Match``): the
    versions the caller last read, or any version (``*``)."""

    versions: frozenset[int] = frozenset()
    any_version: bool = False

    def check(self, version: int) -> None:
        """Raises:
        PreconditionFailed: the resource is at ``version``, not one the caller expects.
        """
        if not self.any_version and version not in self.versions:
            raise PreconditionFailed(
                f"the resource changed since you read it (it is at version {version}); "
                "read it again"
            )


@dataclass
class Caller:
    """One call's actor, metadata and (optional) idempotency, over ``services``.

    Under an idempotency key the ids a call makes are derived from the key
    (:meth:`new_id`) and every append carries a store key (:meth:`store_key`), so a retried
    call creates the very same ids and the store replays its appends instead of writing them
    twice.
    """

    services: Services
    actor: Viewer
    metadata: Metadata
    idempotency: Idempotency | None = None
    precondition: Precondition | None = None
    """What the resource a write changes must be at (checked by :func:`.execute.execute`
    once the decision is taken, so that a caller who may not see it gets its 404 first)."""
    _ids: int = field(default=0)

    @property
    def store(self) -> EventStore:
        return self.services.store

    def context(self) -> Context:
        """The domain context of this call: the actor, now."""
        return Context(actor=self.actor, now=self.services.clock())

    def new_id(self, prefix: str) -> str:
        """A new id like ``prj_3f2a…`` (``prefix``: one of :mod:`service.events.streams`'
        id prefixes, then :data:`~service.events.streams.ID_DIGITS` hex digits); derived
        from the idempotency key when there is one."""
        self._ids += 1
        once = self.idempotency
        if once is not None:
            seed = f"{once.owner}\x00{once.key}\x00{prefix}\x00{self._ids}"
            return (
                f"{prefix}_{hashlib.blake2b(seed.encode(), digest_size=ID_DIGITS // 2).hexdigest()}"
            )
        return f"{prefix}_{uuid.uuid4().hex[:ID_DIGITS]}"

    def store_key(self, suffix: str = "") -> str | None:
        """The event-store idempotency key of this call's appends (None without one)."""
        once = self.idempotency
        if once is None:
            return None
        return f"{once.channel}:{once.owner}:{once.key}:{suffix}"

    @property
    def fingerprint(self) -> bytes | None:
        """What makes a retry the same call (None without an idempotency key)."""
        return None if self.idempotency is None else self.idempotency.fingerprint

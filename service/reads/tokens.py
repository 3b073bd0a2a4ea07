"""Who holds a token: API tokens and feed tokens, read from the ``directory`` read model
(tables ``api_tokens``, ``feed_tokens``, ``people``).

Every channel that takes a token (HTTP, the WebSocket stream, feeds) asks here, so a revoked
token or a deactivated person is refused the same way everywhere. Secrets are looked up by
their hash (:func:`~service.domain.tokens.hash_secret`), never stored.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Final

import asyncpg

from ..domain.access import FULL_SCOPE, TokenScope, Viewer
from ..domain.tokens import hash_secret
from ..events.store import EventStore

_API_TOKEN: Final = (
    "SELECT p.person_id, p.role, p.active, t.scope_write, t.scope_projects, t.expires_at "
    "FROM api_tokens t JOIN people p USING (person_id) "
    "WHERE t.token_hash = $1 AND NOT t.revoked AND p.active "
    "AND (t.expires_at IS NULL OR t.expires_at > $2)"
)
_FEED_TOKEN: Final = (
    "SELECT p.person_id, p.role, p.active FROM feed_tokens f JOIN people p USING (person_id) "
    "WHERE f.token_hash = $1 AND p.active"
)
_TOKEN_HASH: Final = "SELECT token_hash FROM api_tokens WHERE token_id = $1"


class TokenCache:
    """Who holds which API token, remembered briefly so that most requests skip the look-up.

    An entry (keyed by the token's hash) is used only while (a) no other process appended
    to the log since it was read, as far as this one knows: the listener's remote
    generation moves with every NOTIFY of another process (and every reconnect), so a
    revocation, deactivation or role change made elsewhere drops every entry as soon as its
    NOTIFY arrives; (b) no change of a person made by this process finished waiting for the
    read models since (:meth:`written`): an entry read while the read models still lagged
    behind a revocation is dropped once they show it, before that write answers, while this
    process's other writes (messages, to-dos ...) keep the entries; and (c) for at most
    ``ttl`` seconds, which bounds the lag between another instance's NOTIFY and the read
    models showing its change (this process is not told when they do).

    So on the instance that handled it, a revocation holds from its response on, exactly as
    without the cache; on other instances at most ``ttl`` after their read models show it.
    Negative answers are not cached. An entry of a token that expires (OAuth access tokens)
    is used only before its expiry, on the clock of the caller's ``now``.
    """

    def __init__(self, ttl: float = 0.5, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._epoch = 0
        self._entries: dict[str, tuple[Viewer, int, int, float]] = {}

    def get(self, token_hash: str, generation: int, now: datetime) -> Viewer | None:
        """The cached holder of ``token_hash`` if still valid at wake-up ``generation`` and,
        for a token that expires (its scope says when), at ``now``."""
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        viewer, seen, epoch, expires = entry
        token_expires = viewer.scope.expires_at
        lapsed = token_expires is not None and now >= token_expires
        if seen != generation or epoch != self._epoch or time.monotonic() > expires or lapsed:
            del self._entries[token_hash]
            return None
        return viewer

    def put(self, token_hash: str, viewer: Viewer, generation: int, epoch: int) -> None:
        """Remember ``viewer`` as read at ``generation`` and ``epoch`` (taken before the
        read)."""
        if len(self._entries) >= self.size:
            self._entries.clear()
        deadline = time.monotonic() + self.ttl
        self._entries[token_hash] = (viewer, generation, epoch, deadline)

    @property
    def epoch(self) -> int:
        """Moves on every :meth:`written`; take it before a look-up, pass it to :meth:`put`."""
        return self._epoch

    def written(self) -> None:
        """A change of a person made by this process is now visible in the read models:
        forget every entry."""
        self._epoch += 1
        self._entries.clear()


def _viewer(row: asyncpg.Record) -> Viewer:
    return Viewer(person_id=row["person_id"], role=row["role"], active=row["active"])


def token_scope(row: asyncpg.Record) -> TokenScope:
    """The scope of an ``api_tokens`` row (columns ``scope_write``, ``scope_projects`` and
    ``expires_at``, if the row has it)."""
    projects = row["scope_projects"]
    expires_at = row.get("expires_at")
    if row["scope_write"] and projects is None and expires_at is None:
        return FULL_SCOPE
    return TokenScope(
        write=row["scope_write"],
        projects=None if projects is None else frozenset(projects),
        expires_at=expires_at,
    )


def token_viewer(row: asyncpg.Record) -> Viewer:
    """The holder of a token row (columns of ``people`` and the scope's), as a viewer."""
    return Viewer(
        person_id=row["person_id"],
        role=row["role"],
        active=row["active"],
        scope=token_scope(row),
    )


async def api_token_holder(
    store: EventStore, cache: TokenCache | None, token: str, now: datetime
) -> Viewer | None:
    """The active person holding API token ``token`` at ``now`` (None: unknown, revoked,
    expired or deactivated), with the token's scope, answered from ``cache`` while it is
    valid."""
    token_hash = hash_secret(token)
    # Taken before the read: a commit or write landing during it makes the entry stale.
    generation = store.wakeups.remote_generation
    epoch = cache.epoch if cache is not None else 0
    if cache is not None and (hit := cache.get(token_hash, generation, now)) is not None:
        return hit
    row = await store.pool.fetchrow(_API_TOKEN, token_hash, now)
    if row is None:
        return None
    viewer = token_viewer(row)
    if cache is not None:
        cache.put(token_hash, viewer, generation, epoch)
    return viewer


async def feed_token_holder(pool: asyncpg.Pool, token: str) -> Viewer | None:
    """The active person whose current feed token is ``token`` (None: unknown or replaced)."""
    if not token:
        return None
    row = await pool.fetchrow(_FEED_TOKEN, hash_secret(token))
    return None if row is None else _viewer(row)


async def api_token_hash(pool: asyncpg.Pool, token_id: str) -> str | None:
    """The stored hash of API token ``token_id`` (None: no such token)."""
    value: str | None = await pool.fetchval(_TOKEN_HASH, token_id)
    return value

"""The keys that sign short-lived links to files (table ``signing_keys``, migration 0007):
shared by every instance, so that a link minted by one is honoured by the others.

Not a read model: the table is not derived from the log (its first key is made by the
migration, later ones by :func:`rotate`). It lives on the read side because every channel
that mints or checks a link reads it here, as tokens are read in :mod:`.tokens`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Final

import asyncpg

from ..domain.signing import MAX_TTL, Keyring

_KEYS: Final = "SELECT key_id, secret FROM signing_keys ORDER BY created_at, key_id"
_INSERT: Final = "INSERT INTO signing_keys (key_id, secret) VALUES ($1, $2)"
# A key stops signing when a newer one is made; the links it signed die MAX_TTL later and
# every instance's cache has seen the newer one by then (KeyringCache.TTL): keep a retired
# key that long and a margin, so that a rotation refuses no link minted before it.
_RETIRE: Final = """
DELETE FROM signing_keys k
WHERE EXISTS (
    SELECT FROM signing_keys newer
    WHERE newer.created_at > k.created_at AND newer.created_at < now() - $1::interval
)
"""
RETIRED_AFTER: Final = 3600
"""Seconds after a newer key was made that :func:`rotate` deletes a key."""


async def keyring(pool: asyncpg.Pool | asyncpg.Connection) -> Keyring:
    """Every key kept, the newest signing.

    Raises:
        LookupError: the table is empty (migration 0007 makes the first key: a database
            without it is not migrated).
    """
    rows = await pool.fetch(_KEYS)
    if not rows:
        raise LookupError("no signing key: is the database migrated?")
    return Keyring(secrets={r["key_id"]: bytes(r["secret"]) for r in rows}, current=rows[-1][0])


async def rotate(pool: asyncpg.Pool) -> str:
    """Make a new key, which signs every link from now on (once instances' caches see it,
    within :attr:`KeyringCache.TTL`), and delete the keys retired more than
    :data:`RETIRED_AFTER` seconds ago; the new key's id.

    Rotating twice within :data:`RETIRED_AFTER` keeps every key; a leaked key is dropped by
    rotating, then deleting it by hand (its links die at once)."""
    key_id = secrets.token_hex(4)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(_INSERT, key_id, secrets.token_bytes(32))
        await conn.execute(_RETIRE, timedelta(seconds=RETIRED_AFTER))
    return key_id


class KeyringCache:
    """The keyring, read at most every :attr:`TTL` seconds, and again (at most every
    :attr:`RELOAD` seconds) when a link names a key this instance has not seen: minted by
    another instance that already uses a newer key. The bound on reloads keeps links with
    made-up key ids from becoming a query each.

    ``read`` reads the keyring (:func:`keyring`, the links' keys, unless given: the mail
    keys of :mod:`.mail_keys` are cached the same way)."""

    TTL: Final = 60.0
    RELOAD: Final = 1.0

    def __init__(self, read: Callable[[asyncpg.Pool], Awaitable[Keyring]] | None = None) -> None:
        self._load = keyring if read is None else read
        self._clock = time.monotonic
        self._keyring: Keyring | None = None
        self._read_at = float("-inf")

    async def get(self, pool: asyncpg.Pool) -> Keyring:
        """The keyring to sign with."""
        if self._keyring is None or self._clock() - self._read_at > self.TTL:
            await self._read(pool)
        assert self._keyring is not None
        return self._keyring

    async def checking(self, pool: asyncpg.Pool, key_id: str | None) -> Keyring:
        """The keyring to check a signature naming ``key_id`` (None: malformed) with."""
        known = await self.get(pool)
        if key_id is None or key_id in known.secrets:
            return known
        if self._clock() - self._read_at > self.RELOAD:
            await self._read(pool)
        assert self._keyring is not None
        return self._keyring

    async def _read(self, pool: asyncpg.Pool) -> None:
        self._keyring = await self._load(pool)
        self._read_at = self._clock()


assert KeyringCache.TTL + MAX_TTL < RETIRED_AFTER

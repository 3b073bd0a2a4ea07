"""The keys that sign mail addresses and unsubscribe links (table ``mail_keys``, migration
0009), shared by every instance. Never deleted by a rotation: a token is good as long as the
mail carrying it is kept. Not a read model (not derived from the log)."""

from __future__ import annotations

import secrets
import time
from typing import Final

import asyncpg

from ..domain.signing import Keyring

_KEYS: Final = "SELECT key_id, secret FROM mail_keys ORDER BY created_at, key_id"
_INSERT: Final = (
    "INSERT INTO mail_keys (key_id, secret) VALUES ($1, $2) ON CONFLICT (key_id) DO NOTHING"
)


async def keyring(pool: asyncpg.Pool | asyncpg.Connection) -> Keyring:
    """Every mail key, the newest signing.

    Raises:
        LookupError: the table is empty (the database is not migrated).
    """
    rows = await pool.fetch(_KEYS)
    if not rows:
        raise LookupError("no mail key: is the database migrated?")
    return Keyring(secrets={r["key_id"]: bytes(r["secret"]) for r in rows}, current=rows[-1][0])


async def rotate(pool: asyncpg.Pool) -> str:
    """Make a newer key, which signs from now on; older ones keep checking. Its id."""
    while True:
        key_id = secrets.token_hex(2)
        if await pool.execute(_INSERT, key_id, secrets.token_bytes(32)) == "INSERT 0 1":
            return key_id


class MailKeyCache:
    """The mail keyring, read at most every :attr:`TTL` seconds, and again (at most every
    :attr:`RELOAD` seconds) when a token names a key not seen yet."""

    TTL: Final = 60.0
    RELOAD: Final = 1.0

    def __init__(self) -> None:
        self._keyring: Keyring | None = None
        self._read_at = float("-inf")

    async def get(self, pool: asyncpg.Pool) -> Keyring:
        """The keyring to sign with."""
        if self._keyring is None or time.monotonic() - self._read_at > self.TTL:
            await self._read(pool)
        assert self._keyring is not None
        return self._keyring

    async def checking(self, pool: asyncpg.Pool, key_id: str | None) -> Keyring:
        """The keyring to check a token naming ``key_id`` (None: malformed) with."""
        known = await self.get(pool)
        if key_id is None or key_id in known.secrets:
            return known
        if time.monotonic() - self._read_at > self.RELOAD:
            await self._read(pool)
        assert self._keyring is not None
        return self._keyring

    async def _read(self, pool: asyncpg.Pool) -> None:
        self._keyring = await keyring(pool)
        self._read_at = time.monotonic()

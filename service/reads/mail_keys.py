"""The keys that sign mail addresses and unsubscribe links (table ``mail_keys``, migration
0009), shared by every instance. Never deleted by a rotation: a token is good as long as the
mail carrying it is kept. Not a read model (not derived from the log)."""

from __future__ import annotations

import secrets
from typing import Final

import asyncpg

from ..domain.signing import Keyring
from .signing_keys import KeyringCache

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


async def rotate(pool: asyncpg.Pool | asyncpg.Connection) -> str:
    """Make a newer key, which signs from now on; older ones keep checking. Its id."""
    while True:
        key_id = secrets.token_hex(2)
        if await pool.execute(_INSERT, key_id, secrets.token_bytes(32)) == "INSERT 0 1":
            return key_id


class MailKeyCache(KeyringCache):
    """The mail keyring, cached as the links' keys are (:class:`KeyringCache`)."""

    def __init__(self) -> None:
        super().__init__(keyring)

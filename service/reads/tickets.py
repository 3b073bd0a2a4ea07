"""WebSocket tickets: single-use, short-lived stand-ins for an API token in a handshake's URL
(table ``stream_tickets``, migration 0011).

A ticket names the API token or the sign-in session that minted it (by the hash of its
secret: column ``token_hash`` holds either, both SHA-256 of 256-bit secrets), so redeeming one
answers what :func:`~service.reads.tokens.api_token_holder` (or the session check of
:func:`~service.reads.sign_in.session_holder`) would now: its holder, with the token's scope,
or nobody once the token is revoked, the session ended or its holder deactivated. Tickets live in
PostgreSQL, so any instance redeems what another minted; only their SHA-256 is stored.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Final

import asyncpg

from ..domain.access import Viewer
from ..domain.tokens import hash_secret
from .tokens import token_viewer

TICKET_TTL: Final = timedelta(seconds=30)
"""How long a ticket may wait for its handshake."""

_MINT: Final = (
    "INSERT INTO stream_tickets (ticket_hash, token_hash, expires_at) VALUES ($1, $2, $3)"
)
# Tickets nobody redeemed: cleared as new ones are minted (a handful per browser page load).
_FORGET_EXPIRED: Final = "DELETE FROM stream_tickets WHERE expires_at <= $1"
# One statement: the DELETE is the redemption, so a ticket is used at most once, whichever
# instances race for it; an expired ticket is deleted too, and refused below.
_REDEEM: Final = """
WITH used AS (DELETE FROM stream_tickets WHERE ticket_hash = $1 RETURNING token_hash, expires_at)
SELECT p.person_id, p.role, p.active, t.scope_write, t.scope_projects, used.token_hash,
       used.expires_at AS ticket_expires_at, t.expires_at, s.session_id, s.last_seen_at
FROM used
LEFT JOIN api_tokens t ON t.token_hash = used.token_hash AND NOT t.revoked
LEFT JOIN sessions s ON s.secret_hash = used.token_hash
JOIN people p ON p.person_id = COALESCE(t.person_id, s.person_id)
WHERE p.active
"""


async def mint_ticket(pool: asyncpg.Pool, token_hash: str, now: datetime) -> tuple[str, datetime]:
    """A new ticket for the API token or the session whose secret hashes to ``token_hash``
    (its caller checked that it works) and when it expires; the secret is returned here
    only."""
    ticket = f"cairnws_{secrets.token_urlsafe(32)}"
    expires_at = now + TICKET_TTL
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(_FORGET_EXPIRED, now)
        await conn.execute(_MINT, hash_secret(ticket), token_hash, expires_at)
    return ticket, expires_at


async def redeem_ticket(
    pool: asyncpg.Pool, ticket: str, now: datetime, session_idle: timedelta
) -> tuple[Viewer, str] | None:
    """The holder of the token or session that minted ``ticket`` (with the token's scope; a
    session's is full) and that token's or session's secret hash, using the ticket up; None
    when it is unknown, used, expired, or its token or session no longer works (a session
    idle for ``session_idle`` has ended)."""
    row = await pool.fetchrow(_REDEEM, hash_secret(ticket))
    if row is None or row["ticket_expires_at"] <= now:
        return None
    if row["session_id"] is not None:
        if row["last_seen_at"] <= now - session_idle:
            return None
        viewer = Viewer(person_id=row["person_id"], role=row["role"], active=row["active"])
        return viewer, row["token_hash"]
    if row["expires_at"] is not None and row["expires_at"] <= now:
        return None
    return token_viewer(row), row["token_hash"]

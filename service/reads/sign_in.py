"""What signing in keeps besides the log (migration 0012): password hashes, sessions, the
lockout's counts of failures, single-use mailed tokens and the mail that carries them.

Secrets are looked up by their hash (:func:`~service.domain.tokens.hash_secret`); a session's
secret and a mailed token are never stored, save the token in :func:`queue_mail`'s row while
the mail waits to be sent (the mail must carry it).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final, Literal, TypeAlias

import asyncpg

from ..domain.access import Viewer

Purpose = Literal["sign_in", "reset"]

Executor: TypeAlias = "asyncpg.Pool | asyncpg.Connection"

LOCKED_FOR: Final = timedelta(minutes=15)
"""How long an address stays locked once it has failed ``CAIRN_SIGN_IN_LOCKOUT`` times."""

TOUCH_EVERY: Final = timedelta(minutes=1)
"""A session's last use is written at most this often (not on every request)."""


# ------------------------------------------------------------------ passwords


async def person_by_email(pool: asyncpg.Pool, email: str) -> asyncpg.Record | None:
    """``person_id``, ``role``, ``active`` and password ``hash`` (None: none set) of the person
    with address ``email`` (any case), from the directory read model."""
    return await pool.fetchrow(
        "SELECT p.person_id, p.role, p.active, p.email, w.hash FROM people p "
        "LEFT JOIN passwords w USING (person_id) WHERE lower(p.email) = lower($1) LIMIT 1",
        email,
    )


async def password_hash(db: Executor, person_id: str) -> str | None:
    """The stored hash of ``person_id``'s password (None: none set)."""
    value: str | None = await db.fetchval(
        "SELECT hash FROM passwords WHERE person_id = $1", person_id
    )
    return value


async def store_password(db: Executor, person_id: str, hashed: str, at: datetime) -> None:
    """Set ``person_id``'s password hash (with the event saying so, in one transaction)."""
    await db.execute(
        "INSERT INTO passwords (person_id, hash, changed_at) VALUES ($1, $2, $3) "
        "ON CONFLICT (person_id) DO UPDATE SET hash = $2, changed_at = $3",
        person_id,
        hashed,
        at,
    )


async def rehash(pool: asyncpg.Pool, person_id: str, before: str, after: str) -> None:
    """Replace a hash made with old parameters by ``after`` (same password: no event)."""
    await pool.execute(
        "UPDATE passwords SET hash = $3 WHERE person_id = $1 AND hash = $2",
        person_id,
        before,
        after,
    )


# ------------------------------------------------------------------ lockout


async def locked_until(pool: asyncpg.Pool, email: str, now: datetime) -> datetime | None:
    """Until when address ``email`` may not sign in with a password (None: it may)."""
    until: datetime | None = await pool.fetchval(
        "SELECT locked_until FROM sign_in_failures WHERE email = lower($1) AND locked_until > $2",
        email,
        now,
    )
    return until


async def failed(pool: asyncpg.Pool, email: str, now: datetime, lockout: int) -> None:
    """Count a failed password sign-in of ``email``; the ``lockout``-th in a row (0: never)
    locks the address for :data:`LOCKED_FOR` and starts the count again."""
    await pool.execute(
        "INSERT INTO sign_in_failures AS f (email, failures) VALUES (lower($1), 1) "
        "ON CONFLICT (email) DO UPDATE SET failures = f.failures + 1",
        email,
    )
    if lockout > 0:
        await pool.execute(
            "UPDATE sign_in_failures SET failures = 0, locked_until = $2 "
            "WHERE email = lower($1) AND failures >= $3",
            email,
            now + LOCKED_FOR,
            lockout,
        )


async def forget_failures(db: Executor, email: str) -> None:
    """A successful sign-in (or a reset) clears the address's failures and lock."""
    await db.execute("DELETE FROM sign_in_failures WHERE email = lower($1)", email)


# ------------------------------------------------------------------ sessions


async def create_session(
    db: Executor,
    *,
    session_id: str,
    secret_hash: str,
    person_id: str,
    now: datetime,
    user_agent: str,
) -> None:
    await db.execute(
        "INSERT INTO sessions (session_id, secret_hash, person_id, created_at, last_seen_at, "
        "user_agent) VALUES ($1, $2, $3, $4, $4, $5)",
        session_id, secret_hash, person_id, now, user_agent,
    )  # fmt: skip


async def session_holder(
    pool: asyncpg.Pool, secret_hash: str, now: datetime, idle: timedelta
) -> tuple[Viewer, str] | None:
    """The active person holding the session whose secret hashes to ``secret_hash``, and the
    session's id; None when there is none, it ended, it was idle longer than ``idle``, or
    its person is deactivated. Read from the database on every call (no cache): a session
    ended through any instance is refused by every instance from then on."""
    row = await pool.fetchrow(
        "SELECT s.session_id, s.last_seen_at, p.person_id, p.role, p.active FROM sessions s "
        "JOIN people p USING (person_id) WHERE s.secret_hash = $1 AND p.active",
        secret_hash,
    )
    if row is None:
        return None
    if row["last_seen_at"] <= now - idle:
        await pool.execute("DELETE FROM sessions WHERE session_id = $1", row["session_id"])
        return None
    if now - row["last_seen_at"] >= TOUCH_EVERY:
        await pool.execute(
            "UPDATE sessions SET last_seen_at = $2 WHERE session_id = $1",
            row["session_id"],
            now,
        )
    viewer = Viewer(person_id=row["person_id"], role=row["role"], active=row["active"])
    return viewer, row["session_id"]


async def sessions_of(
    pool: asyncpg.Pool, person_id: str, now: datetime, idle: timedelta
) -> list[asyncpg.Record]:
    """``person_id``'s live sessions, newest first."""
    return list(
        await pool.fetch(
            "SELECT session_id, created_at, last_seen_at, user_agent FROM sessions "
            "WHERE person_id = $1 AND last_seen_at > $2 ORDER BY created_at DESC, session_id",
            person_id,
            now - idle,
        )
    )


async def end_session(db: Executor, person_id: str, session_id: str) -> bool:
    """End ``person_id``'s session ``session_id``; whether there was one."""
    ended = await db.fetchval(
        "DELETE FROM sessions WHERE person_id = $1 AND session_id = $2 RETURNING session_id",
        person_id,
        session_id,
    )
    return ended is not None


async def end_sessions(db: Executor, person_id: str, *, keep: str | None = None) -> None:
    """End every session of ``person_id`` (but ``keep``)."""
    await db.execute(
        "DELETE FROM sessions WHERE person_id = $1 AND session_id IS DISTINCT FROM $2",
        person_id,
        keep,
    )


# ------------------------------------------------------------------ mailed tokens


async def issue_token(
    db: Executor,
    purpose: Purpose,
    person_id: str,
    token_hash: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    await db.execute(
        "INSERT INTO sign_in_tokens (token_hash, purpose, person_id, created_at, expires_at) "
        "VALUES ($1, $2, $3, $4, $5)",
        token_hash, purpose, person_id, now, expires_at,
    )  # fmt: skip


async def use_token(db: Executor, purpose: Purpose, token_hash: str, now: datetime) -> str | None:
    """Spend a single-use token: the person it was made for, once; None when it is unknown,
    of another purpose, used or expired."""
    person_id: str | None = await db.fetchval(
        "UPDATE sign_in_tokens SET used_at = $3 WHERE token_hash = $1 AND purpose = $2 "
        "AND used_at IS NULL AND expires_at > $3 RETURNING person_id",
        token_hash,
        purpose,
        now,
    )
    return person_id


async def token_person(
    db: Executor, purpose: Purpose, token_hash: str, now: datetime
) -> str | None:
    """The person a live token was made for (None: unknown, used or expired), not spending it."""
    person_id: str | None = await db.fetchval(
        "SELECT person_id FROM sign_in_tokens WHERE token_hash = $1 AND purpose = $2 "
        "AND used_at IS NULL AND expires_at > $3",
        token_hash,
        purpose,
        now,
    )
    return person_id


async def queue_mail(
    db: Executor,
    *,
    purpose: Purpose,
    person_id: str,
    email: str,
    token: str,
    expires_at: datetime,
    now: datetime,
) -> None:
    """The seam to mail out: record that ``email`` must get a mail carrying ``token`` (a
    sign-in link or a reset link, by ``purpose``) before ``expires_at``. The mail side sends
    the rows of table ``sign_in_mail`` and deletes each once sent (docs/OPERATIONS.md)."""
    await db.execute(
        "INSERT INTO sign_in_mail (purpose, person_id, email, token, expires_at, created_at) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        purpose, person_id, email, token, expires_at, now,
    )  # fmt: skip

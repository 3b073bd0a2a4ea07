"""What invitations keep besides the log (migration 0014): table ``invitations``, one row
per invitation with the SHA-256 of its live token, written in the same transaction as the
event that tells of each change (:mod:`service.events.invitations`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final, TypeAlias

import asyncpg

Executor: TypeAlias = "asyncpg.Pool | asyncpg.Connection"

_COLUMNS: Final = (
    "invitation_id, email, name, role, company, project_id, project_role, inviter_id, "
    "created_at, sent_at, expires_at, accepted_at, person_id, revoked_at"
)


async def insert(
    db: Executor,
    *,
    invitation_id: str,
    token_hash: str,
    email: str,
    name: str | None,
    role: str,
    company: str | None,
    project_id: str | None,
    project_role: str | None,
    inviter_id: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    await db.execute(
        "INSERT INTO invitations (invitation_id, token_hash, email, name, role, company, "
        "project_id, project_role, inviter_id, created_at, sent_at, expires_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11)",
        invitation_id, token_hash, email, name, role, company, project_id, project_role,
        inviter_id, now, expires_at,
    )  # fmt: skip


async def one(db: Executor, invitation_id: str) -> asyncpg.Record | None:
    """The invitation ``invitation_id`` (any state), None when there is none."""
    row: asyncpg.Record | None = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM invitations WHERE invitation_id = $1", invitation_id
    )
    return row


async def listed(
    db: Executor, project_ids: Sequence[str] | None, *, limit: int
) -> list[asyncpg.Record]:
    """Invitations, newest first: every one (``project_ids`` None) or those to these
    projects; up to ``limit + 1`` (the extra one says there are more)."""
    return list(
        await db.fetch(
            f"SELECT {_COLUMNS} FROM invitations "
            "WHERE ($1::text[] IS NULL OR project_id = ANY($1)) "
            "ORDER BY created_at DESC, invitation_id DESC LIMIT $2",
            None if project_ids is None else list(project_ids),
            limit + 1,
        )
    )


async def live_by_token(db: Executor, token_hash: str, now: datetime) -> asyncpg.Record | None:
    """The invitation whose live token hashes to ``token_hash``: not accepted, not
    revoked, not expired (None: none such)."""
    row: asyncpg.Record | None = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM invitations WHERE token_hash = $1 AND accepted_at IS NULL "
        "AND revoked_at IS NULL AND expires_at > $2",
        token_hash,
        now,
    )
    return row


async def accept(
    conn: asyncpg.Connection, invitation_id: str, token_hash: str, person_id: str, now: datetime
) -> bool:
    """Spend the invitation's token for ``person_id``: whether it was still live (two
    accepts racing: one wins, the other's transaction is rolled back)."""
    done = await conn.fetchval(
        "UPDATE invitations SET accepted_at = $4, person_id = $3 WHERE invitation_id = $1 "
        "AND token_hash = $2 AND accepted_at IS NULL AND revoked_at IS NULL "
        "AND expires_at > $4 RETURNING invitation_id",
        invitation_id, token_hash, person_id, now,
    )  # fmt: skip
    return done is not None


async def renew(
    conn: asyncpg.Connection,
    invitation_id: str,
    token_hash: str,
    now: datetime,
    expires_at: datetime,
) -> bool:
    """Give a pending invitation a new token (the old one dies) and a new expiry; whether
    it was pending (not accepted nor revoked). Its mail not sent yet is dropped."""
    done = await conn.fetchval(
        "UPDATE invitations SET token_hash = $2, sent_at = $3, expires_at = $4 "
        "WHERE invitation_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL "
        "RETURNING invitation_id",
        invitation_id, token_hash, now, expires_at,
    )  # fmt: skip
    await conn.execute("DELETE FROM sign_in_mail WHERE invitation_id = $1", invitation_id)
    return done is not None


async def revoke(conn: asyncpg.Connection, invitation_id: str, now: datetime) -> bool:
    """Revoke a pending invitation (its mail not sent yet is dropped); whether it was
    pending."""
    done = await conn.fetchval(
        "UPDATE invitations SET revoked_at = $2 WHERE invitation_id = $1 "
        "AND accepted_at IS NULL AND revoked_at IS NULL RETURNING invitation_id",
        invitation_id,
        now,
    )
    await conn.execute("DELETE FROM sign_in_mail WHERE invitation_id = $1", invitation_id)
    return done is not None


async def queue_mail(
    conn: asyncpg.Connection,
    *,
    invitation_id: str,
    email: str,
    name: str | None,
    token: str,
    locale: str,
    inviter: str,
    project: str | None,
    expires_at: datetime,
    now: datetime,
) -> None:
    """Record that ``email`` must get the invitation's mail carrying ``token`` (the mail
    side sends the rows of ``sign_in_mail``: docs/OPERATIONS.md "Sign-in mail")."""
    await conn.execute(
        "INSERT INTO sign_in_mail (purpose, invitation_id, email, name, token, locale, "
        "inviter, project, expires_at, created_at) "
        "VALUES ('invitation', $1, $2, $3, $4, $5, $6, $7, $8, $9)",
        invitation_id, email, name, token, locale, inviter, project, expires_at, now,
    )  # fmt: skip

"""The read side of webhooks: endpoints (the ``webhooks`` read model, with ``people`` for
their owners) and their signing secrets (table ``webhook_secrets``, migration 0015: not
derived from the log).

An endpoint whose owner is deactivated is disabled with them: :func:`active_endpoints`
leaves it out, and the API shows it as ``owner_deactivated``; reactivating the owner brings
it back.
"""

from __future__ import annotations

import base64
import secrets as _secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, TypeAlias

import asyncpg

ROTATION_OVERLAP: Final = timedelta(hours=24)
"""How long a rotated secret keeps signing beside the new one."""
_SECRET_BYTES: Final = 24

Queryable: TypeAlias = "asyncpg.Pool | asyncpg.Connection"


@dataclass(frozen=True)
class Endpoint:
    """A webhook endpoint as delivery needs it. ``kinds`` None: every kind;
    ``created_position``: deliver only events after it."""

    id: str
    project_id: str | None
    url: str
    kinds: frozenset[str] | None
    audience: str
    owner_id: str
    created_position: int


_ENDPOINT: Final = (
    "SELECT w.webhook_id, w.project_id, w.url, w.kinds, w.audience, w.owner_id, "
    "w.created_position FROM webhooks w"
)


def _endpoint(row: asyncpg.Record) -> Endpoint:
    kinds = row["kinds"]
    return Endpoint(
        id=row["webhook_id"],
        project_id=row["project_id"],
        url=row["url"],
        kinds=frozenset(kinds) if kinds is not None else None,
        audience=row["audience"],
        owner_id=row["owner_id"],
        created_position=row["created_position"],
    )


async def active_endpoints(conn: Queryable) -> list[Endpoint]:
    """Every endpoint to deliver to: active, not deleted, its owner active. In creation order."""
    rows = await conn.fetch(
        f"{_ENDPOINT} JOIN people p ON p.person_id = w.owner_id "
        "WHERE w.active AND p.active ORDER BY w.created_position"
    )
    return [_endpoint(row) for row in rows]


async def endpoint(conn: Queryable, webhook_id: str) -> Endpoint | None:
    """Endpoint ``webhook_id`` (None when there is none or it is deleted), active or not."""
    row = await conn.fetchrow(f"{_ENDPOINT} WHERE w.webhook_id = $1", webhook_id)
    return _endpoint(row) if row is not None else None


async def signing_secrets(conn: Queryable, webhook_id: str, now: datetime) -> list[str]:
    """The secrets that sign a delivery at ``now``, newest first: the current one and any
    rotated out less than :data:`ROTATION_OVERLAP` ago."""
    rows = await conn.fetch(
        "SELECT secret FROM webhook_secrets WHERE webhook_id = $1 "
        "AND (retired_at IS NULL OR retired_at > $2) ORDER BY created_at DESC",
        webhook_id,
        now,
    )
    return [row["secret"] for row in rows]


# ---------------------------------------------------------------- management


def new_secret() -> str:
    """A new signing secret: ``whsec_`` and the base64 of 24 random bytes (what
    ``standardwebhooks.Webhook`` takes)."""
    return "whsec_" + base64.b64encode(_secrets.token_bytes(_SECRET_BYTES)).decode()


async def add_secret(conn: asyncpg.Connection, webhook_id: str, secret: str, now: datetime) -> None:
    """Store ``secret`` as the current one of ``webhook_id``, retiring the secrets still
    current :data:`ROTATION_OVERLAP` from ``now``. Run in the transaction of the event."""
    await conn.execute(
        "UPDATE webhook_secrets SET retired_at = $2 WHERE webhook_id = $1 AND retired_at IS NULL",
        webhook_id,
        now + ROTATION_OVERLAP,
    )
    await conn.execute(
        "INSERT INTO webhook_secrets (webhook_id, secret, created_at) VALUES ($1, $2, $3)",
        webhook_id,
        secret,
        now,
    )


async def drop_secrets(conn: Queryable, webhook_id: str) -> None:
    """Forget every secret of ``webhook_id`` (deleted)."""
    await conn.execute("DELETE FROM webhook_secrets WHERE webhook_id = $1", webhook_id)


_ROW: Final = (
    "SELECT w.*, coalesce(p.active, false) AS owner_active FROM webhooks w "
    "LEFT JOIN people p ON p.person_id = w.owner_id"
)


async def one(conn: Queryable, webhook_id: str) -> asyncpg.Record | None:
    """The read model's row of ``webhook_id`` with ``owner_active`` (None: none, or deleted)."""
    row: asyncpg.Record | None = await conn.fetchrow(f"{_ROW} WHERE w.webhook_id = $1", webhook_id)
    return row


async def of_projects(
    conn: Queryable, project_ids: list[str] | None, *, account: bool
) -> list[asyncpg.Record]:
    """Hooks of ``project_ids`` (None: of every project) and, with ``account``, the
    account-wide ones; in creation order."""
    clauses: list[str] = []
    args: list[Any] = []
    if project_ids is None:
        clauses.append("w.project_id IS NOT NULL")
    else:
        args.append(project_ids)
        clauses.append(f"w.project_id = ANY(${len(args)}::text[])")
    if account:
        clauses.append("w.project_id IS NULL")
    rows = await conn.fetch(
        f"{_ROW} WHERE {' OR '.join(clauses)} ORDER BY w.created_position", *args
    )
    return list(rows)


async def count(conn: Queryable, project_id: str | None) -> int:
    """How many hooks (not deleted) ``project_id`` has (None: account-wide ones)."""
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM webhooks WHERE project_id IS NOT DISTINCT FROM $1", project_id
        )
    )


async def owned_by(
    conn: Queryable, person_id: str, projects: frozenset[str] | None
) -> list[asyncpg.Record]:
    """Hooks of the projects ``person_id`` owns (within ``projects`` when given), in creation
    order."""
    rows = await conn.fetch(
        f"{_ROW} JOIN project_members m ON m.project_id = w.project_id "
        "WHERE m.person_id = $1 AND m.project_role = 'owner' "
        "AND ($2::text[] IS NULL OR w.project_id = ANY($2::text[])) "
        "ORDER BY w.created_position",
        person_id,
        sorted(projects) if projects is not None else None,
    )
    return list(rows)

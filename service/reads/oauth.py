"""OAuth 2's own tables (migration 0013, not derived from the log): registered apps, the grants
people made to them, single-use authorization codes, rotating refresh tokens, and which grant
issued which access token (an API token of the person's stream).

Only hashes of secrets are stored (:func:`~service.domain.tokens.hash_secret`). Every
single-use step is one statement that both checks and uses (``UPDATE ... WHERE used_at IS
NULL RETURNING``), so two instances racing for one code or one refresh token cannot both win.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

import asyncpg

from ..domain.tokens import hash_secret


@dataclass(frozen=True)
class OAuthApp:
    """A registered app (its secret's hash never leaves this module)."""

    app_id: str
    name: str
    redirect_uris: tuple[str, ...]
    confidential: bool
    created_at: datetime


@dataclass(frozen=True)
class Grant:
    """What a person granted an app: the scope strings of its tokens."""

    grant_id: str
    app_id: str
    person_id: str
    scopes: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True)
class Redeemed:
    """The outcome of presenting a code or a refresh token: its grant (None: unknown or
    expired), and whether it had been used before (a replay: the grant must be revoked)."""

    grant: Grant | None
    replayed: bool = False
    redirect_uri: str = ""
    code_challenge: str = ""


_APP_COLUMNS: Final = "app_id, name, redirect_uris, confidential, created_at"
_GRANT_COLUMNS: Final = "g.grant_id, g.app_id, g.person_id, g.scopes, g.created_at"


def _app(row: asyncpg.Record) -> OAuthApp:
    return OAuthApp(
        app_id=row["app_id"],
        name=row["name"],
        redirect_uris=tuple(row["redirect_uris"]),
        confidential=row["confidential"],
        created_at=row["created_at"],
    )


def _grant(row: asyncpg.Record) -> Grant:
    return Grant(
        grant_id=row["grant_id"],
        app_id=row["app_id"],
        person_id=row["person_id"],
        scopes=tuple(row["scopes"]),
        created_at=row["created_at"],
    )


async def register_app(
    pool: asyncpg.Pool,
    app_id: str,
    name: str,
    redirect_uris: list[str],
    secret: str | None,
    created_by: str,
    now: datetime,
) -> OAuthApp:
    """Register an app; ``secret`` None: a public app (PKCE alone)."""
    row = await pool.fetchrow(
        "INSERT INTO oauth_apps (app_id, name, redirect_uris, confidential, secret_hash, "
        f"created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_APP_COLUMNS}",
        app_id, name, redirect_uris, secret is not None,
        None if secret is None else hash_secret(secret), created_by, now,
    )  # fmt: skip
    return _app(row)


async def apps(pool: asyncpg.Pool) -> list[OAuthApp]:
    """Every registered app not deleted, oldest first."""
    rows = await pool.fetch(
        f"SELECT {_APP_COLUMNS} FROM oauth_apps WHERE deleted_at IS NULL ORDER BY created_at, app_id"
    )
    return [_app(r) for r in rows]


async def app(pool: asyncpg.Pool, app_id: str) -> OAuthApp | None:
    """The registered app ``app_id`` (None: none, or deleted)."""
    row = await pool.fetchrow(
        f"SELECT {_APP_COLUMNS} FROM oauth_apps WHERE app_id = $1 AND deleted_at IS NULL", app_id
    )
    return None if row is None else _app(row)


async def app_secret_matches(pool: asyncpg.Pool, app_id: str, secret: str) -> bool:
    """Whether ``secret`` is the client secret of confidential app ``app_id``."""
    found = await pool.fetchval(
        "SELECT 1 FROM oauth_apps WHERE app_id = $1 AND deleted_at IS NULL AND secret_hash = $2",
        app_id,
        hash_secret(secret),
    )
    return found is not None


async def delete_app(pool: asyncpg.Pool, app_id: str, now: datetime) -> list[str]:
    """Delete app ``app_id`` and revoke its grants; the ids of the grants revoked now."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE oauth_apps SET deleted_at = $2 WHERE app_id = $1 AND deleted_at IS NULL",
            app_id,
            now,
        )
        rows = await conn.fetch(
            "UPDATE oauth_grants SET revoked_at = $2 WHERE app_id = $1 AND revoked_at IS NULL "
            "RETURNING grant_id",
            app_id,
            now,
        )
    return [r["grant_id"] for r in rows]


async def issue_code(
    pool: asyncpg.Pool,
    *,
    grant_id: str,
    app_id: str,
    person_id: str,
    scopes: list[str],
    code: str,
    redirect_uri: str,
    code_challenge: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    """A new grant and its single-use authorization code (stored hashed)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO oauth_grants (grant_id, app_id, person_id, scopes, created_at) "
            "VALUES ($1, $2, $3, $4, $5)",
            grant_id, app_id, person_id, scopes, now,
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO oauth_codes (code_hash, grant_id, redirect_uri, code_challenge, "
            "expires_at) VALUES ($1, $2, $3, $4, $5)",
            hash_secret(code), grant_id, redirect_uri, code_challenge, expires_at,
        )  # fmt: skip


# One statement: the UPDATE both finds and uses the code; "used" tells a replay apart.
_USE_CODE: Final = f"""
WITH found AS (
    SELECT c.code_hash, c.grant_id, c.used_at, c.expires_at, c.redirect_uri, c.code_challenge
    FROM oauth_codes c JOIN oauth_grants g USING (grant_id) JOIN oauth_apps a USING (app_id)
    WHERE c.code_hash = $1 AND g.app_id = $2 AND a.deleted_at IS NULL
    FOR UPDATE OF c
), used AS (
    UPDATE oauth_codes c SET used_at = $3 FROM found
    WHERE c.code_hash = found.code_hash AND found.used_at IS NULL
    RETURNING c.code_hash
)
SELECT {_GRANT_COLUMNS}, g.revoked_at, found.used_at, found.expires_at, found.redirect_uri,
       found.code_challenge
FROM found JOIN oauth_grants g USING (grant_id)
"""


async def use_code(pool: asyncpg.Pool, code: str, app_id: str, now: datetime) -> Redeemed:
    """Use authorization code ``code`` of app ``app_id`` up. ``replayed``: it had been used
    (its grant must be revoked); ``grant`` None: unknown, of another app, expired or revoked."""
    row = await pool.fetchrow(_USE_CODE, hash_secret(code), app_id, now)
    if row is None:
        return Redeemed(grant=None)
    if row["used_at"] is not None:
        return Redeemed(grant=_grant(row), replayed=True)
    if row["expires_at"] <= now or row["revoked_at"] is not None:
        return Redeemed(grant=None)
    return Redeemed(
        grant=_grant(row), redirect_uri=row["redirect_uri"], code_challenge=row["code_challenge"]
    )


_USE_REFRESH: Final = f"""
WITH found AS (
    SELECT r.token_hash, r.grant_id, r.used_at FROM oauth_refresh_tokens r
    JOIN oauth_grants g USING (grant_id)
    WHERE r.token_hash = $1 AND g.app_id = $2
    FOR UPDATE OF r
), used AS (
    UPDATE oauth_refresh_tokens r SET used_at = $3 FROM found
    WHERE r.token_hash = found.token_hash AND found.used_at IS NULL
    RETURNING r.token_hash
)
SELECT {_GRANT_COLUMNS}, g.revoked_at, found.used_at
FROM found JOIN oauth_grants g USING (grant_id)
"""


async def use_refresh_token(pool: asyncpg.Pool, token: str, app_id: str, now: datetime) -> Redeemed:
    """Use refresh token ``token`` of app ``app_id`` up (rotation: each works once)."""
    row = await pool.fetchrow(_USE_REFRESH, hash_secret(token), app_id, now)
    if row is None:
        return Redeemed(grant=None)
    if row["used_at"] is not None:
        return Redeemed(grant=_grant(row), replayed=True)
    if row["revoked_at"] is not None:
        return Redeemed(grant=None)
    return Redeemed(grant=_grant(row))


async def record_tokens(
    pool: asyncpg.Pool,
    grant_id: str,
    token_id: str,
    access_token: str,
    refresh_token: str,
    now: datetime,
) -> bool:
    """Remember that grant ``grant_id`` issued access token ``token_id`` and a refresh token;
    False (nothing recorded) when the grant is revoked.

    The grant's row is locked (shared) while recording, so a revocation
    (:func:`revoke_grant`) either comes after, and :func:`grant_tokens` names the new token,
    or before, and nothing is recorded."""
    async with pool.acquire() as conn, conn.transaction():
        live = await conn.fetchval(
            "SELECT true FROM oauth_grants WHERE grant_id = $1 AND revoked_at IS NULL FOR SHARE",
            grant_id,
        )
        if not live:
            return False
        await conn.execute(
            "INSERT INTO oauth_access_tokens (token_id, token_hash, grant_id) VALUES ($1, $2, $3)",
            token_id,
            hash_secret(access_token),
            grant_id,
        )
        await conn.execute(
            "INSERT INTO oauth_refresh_tokens (token_hash, grant_id, created_at) "
            "VALUES ($1, $2, $3)",
            hash_secret(refresh_token),
            grant_id,
            now,
        )
    return True


async def grant_revoked(pool: asyncpg.Pool, grant_id: str) -> bool:
    """Whether grant ``grant_id`` is revoked (or gone)."""
    live = await pool.fetchval(
        "SELECT true FROM oauth_grants WHERE grant_id = $1 AND revoked_at IS NULL", grant_id
    )
    return not live


async def live_grants(pool: asyncpg.Pool, person_id: str) -> list[str]:
    """The ids of every grant of ``person_id`` not revoked, to any app."""
    rows = await pool.fetch(
        "SELECT grant_id FROM oauth_grants WHERE person_id = $1 AND revoked_at IS NULL "
        "ORDER BY grant_id",
        person_id,
    )
    return [r["grant_id"] for r in rows]


async def revoke_grant(pool: asyncpg.Pool, grant_id: str, now: datetime) -> None:
    """Mark grant ``grant_id`` revoked (its refresh tokens stop working at once; its access
    tokens are revoked in the log by the caller: :func:`grant_tokens`)."""
    await pool.execute(
        "UPDATE oauth_grants SET revoked_at = $2 WHERE grant_id = $1 AND revoked_at IS NULL",
        grant_id,
        now,
    )


async def grant_tokens(pool: asyncpg.Pool, grant_id: str) -> list[str]:
    """The ids of every access token grant ``grant_id`` issued."""
    rows = await pool.fetch(
        "SELECT token_id FROM oauth_access_tokens WHERE grant_id = $1 ORDER BY token_id", grant_id
    )
    return [r["token_id"] for r in rows]


async def grant_of_token(pool: asyncpg.Pool, app_id: str, token: str) -> str | None:
    """The grant of app ``app_id`` that issued ``token``, an access or a refresh token."""
    token_hash = hash_secret(token)
    found: str | None = await pool.fetchval(
        "SELECT t.grant_id FROM oauth_access_tokens t JOIN oauth_grants g USING (grant_id) "
        "WHERE t.token_hash = $1 AND g.app_id = $2 "
        "UNION ALL SELECT r.grant_id FROM oauth_refresh_tokens r JOIN oauth_grants g "
        "USING (grant_id) WHERE r.token_hash = $1 AND g.app_id = $2 LIMIT 1",
        token_hash,
        app_id,
    )
    return found


async def authorizations(pool: asyncpg.Pool, person_id: str) -> list[tuple[OAuthApp, Grant]]:
    """The live grants of ``person_id`` with their apps, oldest first."""
    rows = await pool.fetch(
        f"SELECT {_GRANT_COLUMNS}, a.name, a.redirect_uris, a.confidential, "
        "a.created_at AS app_created_at FROM oauth_grants g JOIN oauth_apps a USING (app_id) "
        "WHERE g.person_id = $1 AND g.revoked_at IS NULL AND a.deleted_at IS NULL "
        "AND EXISTS (SELECT 1 FROM oauth_refresh_tokens r WHERE r.grant_id = g.grant_id) "
        "ORDER BY g.created_at, g.grant_id",
        person_id,
    )
    return [
        (
            OAuthApp(
                app_id=r["app_id"],
                name=r["name"],
                redirect_uris=tuple(r["redirect_uris"]),
                confidential=r["confidential"],
                created_at=r["app_created_at"],
            ),
            _grant(r),
        )
        for r in rows
    ]


async def person_grants(pool: asyncpg.Pool, person_id: str, app_id: str) -> list[str]:
    """The ids of the live grants ``person_id`` made to app ``app_id``."""
    rows = await pool.fetch(
        "SELECT grant_id FROM oauth_grants WHERE person_id = $1 AND app_id = $2 "
        "AND revoked_at IS NULL",
        person_id,
        app_id,
    )
    return [r["grant_id"] for r in rows]


async def grant_person(pool: asyncpg.Pool, grant_id: str) -> str:
    """The person who made grant ``grant_id`` (which exists)."""
    person_id: str = await pool.fetchval(
        "SELECT person_id FROM oauth_grants WHERE grant_id = $1", grant_id
    )
    return person_id

"""People, their API tokens, projects and memberships as the ``directory`` read model holds
them (tables ``people``, ``api_tokens``, ``feed_tokens``, ``projects``,
``project_members``).

Lists are paged by the tables' ``seq`` (creation order): a page is the rows after a ``seq``,
fetched one longer than asked so that the extra row says there is more (see
:class:`~.rows.Page`). Who may see what is decided by the callers, with the access facts of
:mod:`.access`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

import asyncpg

from ..events.projects import ProjectRole
from .rows import Page

# Each row carries the version of the stream it reflects (a token's and a membership's are
# their person's and project's): what the API's ETags name.
_PERSON: Final = (
    "SELECT person_id, name, email, role, company, title, locale, time_zone, avatar_sha256, "
    "avatar_type, active, created_at, updated_at, seq, version, owner_id, assignable FROM people"
)
_TOKEN: Final = (
    "SELECT t.token_id, t.person_id, t.label, t.revoked, t.created_at, t.revoked_at, t.seq, "
    "t.scope_write, t.scope_projects, p.version FROM api_tokens t JOIN people p USING (person_id)"
)
_PROJECT: Final = """
SELECT p.project_id, p.name, p.description, p.clients_enabled, p.language, p.alert_hours,
       p.status,
       p.created_at, p.updated_at, p.seq, p.creator_id, c.name AS creator_name, p.version
FROM projects p LEFT JOIN people c ON c.person_id = p.creator_id
"""
_MEMBER: Final = """
SELECT m.person_id, m.project_role, m.added_at, m.seq,
       p.name, p.email, p.role, p.company, p.title, p.active, pr.version
FROM project_members m JOIN people p USING (person_id)
JOIN projects pr ON pr.project_id = m.project_id
"""
# The SQL form of can_see_person for a client: themselves, and the members of the projects
# they see ($2).
_CLIENT_SEES: Final = (
    "(person_id = $1 OR person_id IN "
    "(SELECT person_id FROM project_members WHERE project_id = ANY($2::text[])))"
)


# ------------------------------------------------------------------ people


async def person(pool: asyncpg.Pool, person_id: str) -> asyncpg.Record | None:
    """A person's row (None: no such person)."""
    row: asyncpg.Record | None = await pool.fetchrow(f"{_PERSON} WHERE person_id = $1", person_id)
    return row


async def time_zone(pool: asyncpg.Pool, person_id: str) -> str | None:
    """The time zone a person chose (None: they chose none, or there is no such person)."""
    value: str | None = await pool.fetchval(
        "SELECT time_zone FROM people WHERE person_id = $1", person_id
    )
    return value


async def locale(pool: asyncpg.Pool, person_id: str) -> str | None:
    """The language a person chose (None: they chose none, or there is no such person)."""
    value: str | None = await pool.fetchval(
        "SELECT locale FROM people WHERE person_id = $1", person_id
    )
    return value


async def people(
    pool: asyncpg.Pool, *, after: int, limit: int, client: tuple[str, Sequence[str]] | None
) -> Page:
    """Everyone, or with ``client`` (a client's person id and the projects they see) the
    people that client may see."""
    if client is None:
        where, args = "true", []
    else:
        where, args = _CLIENT_SEES, [client[0], list(client[1])]
    n = len(args)
    rows = await pool.fetch(
        f"{_PERSON} WHERE {where} AND seq > ${n + 1} ORDER BY seq LIMIT ${n + 2}",
        *args,
        after,
        limit + 1,
    )
    total = await pool.fetchval(f"SELECT count(*) FROM people WHERE {where}", *args)
    return Page(rows, total)


async def names(pool: asyncpg.Pool, person_ids: Sequence[str]) -> dict[str, str]:
    """The names of the people among ``person_ids`` the directory knows."""
    rows = await pool.fetch(
        "SELECT person_id, name FROM people WHERE person_id = ANY($1::text[])", list(person_ids)
    )
    return {r["person_id"]: r["name"] for r in rows}


async def memberships(pool: asyncpg.Pool, person_id: str) -> dict[str, ProjectRole]:
    """The projects a person is on, with their role there."""
    rows = await pool.fetch(
        "SELECT project_id, project_role FROM project_members WHERE person_id = $1", person_id
    )
    return {r["project_id"]: r["project_role"] for r in rows}


# ------------------------------------------------------------------ tokens


async def api_token(pool: asyncpg.Pool, token_id: str) -> asyncpg.Record | None:
    """An API token's row, without its secret (None: no such token)."""
    row: asyncpg.Record | None = await pool.fetchrow(f"{_TOKEN} WHERE t.token_id = $1", token_id)
    return row


async def api_tokens(pool: asyncpg.Pool, person_id: str, *, after: int, limit: int) -> Page:
    """A person's API tokens."""
    rows = await pool.fetch(
        f"{_TOKEN} WHERE t.person_id = $1 AND t.seq > $2 ORDER BY t.seq LIMIT $3",
        person_id,
        after,
        limit + 1,
    )
    total = await pool.fetchval("SELECT count(*) FROM api_tokens WHERE person_id = $1", person_id)
    return Page(rows, total)


async def feed_token_rotated_at(pool: asyncpg.Pool, person_id: str) -> datetime | None:
    """When the person's feed token was last made (None: they have none)."""
    value: datetime | None = await pool.fetchval(
        "SELECT rotated_at FROM feed_tokens WHERE person_id = $1", person_id
    )
    return value


# ------------------------------------------------------------------ projects


async def project(pool: asyncpg.Pool, project_id: str) -> asyncpg.Record | None:
    """A project's row with its creator's name (None: no such project)."""
    row: asyncpg.Record | None = await pool.fetchrow(
        _PROJECT + "WHERE p.project_id = $1", project_id
    )
    return row


async def projects(
    pool: asyncpg.Pool, project_ids: Sequence[str], *, after: int, limit: int
) -> list[asyncpg.Record]:
    """The rows of the projects among ``project_ids``, in creation order, after ``seq``
    ``after`` (up to ``limit + 1``)."""
    rows: list[asyncpg.Record] = await pool.fetch(
        _PROJECT + "WHERE p.project_id = ANY($1::text[]) AND p.seq > $2 ORDER BY p.seq LIMIT $3",
        list(project_ids),
        after,
        limit + 1,
    )
    return rows


async def member(pool: asyncpg.Pool, project_id: str, person_id: str) -> asyncpg.Record | None:
    """A person's membership of a project with their directory entry (None: not on it)."""
    row: asyncpg.Record | None = await pool.fetchrow(
        _MEMBER + "WHERE m.project_id = $1 AND m.person_id = $2", project_id, person_id
    )
    return row


async def members(pool: asyncpg.Pool, project_id: str, *, after: int, limit: int) -> Page:
    """The people on a project, in the order they joined."""
    rows = await pool.fetch(
        _MEMBER + "WHERE m.project_id = $1 AND m.seq > $2 ORDER BY m.seq LIMIT $3",
        project_id,
        after,
        limit + 1,
    )
    total = await pool.fetchval(
        "SELECT count(*) FROM project_members WHERE project_id = $1", project_id
    )
    return Page(rows, total)

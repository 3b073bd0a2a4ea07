"""The directory: people, their tokens, projects and memberships.

Every authorisation check reads these tables (through the public views), so they are kept
small and indexed for the look-ups the access rules make. Times come from the events, never
from the clock, so a rebuild gives the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from ..events import people as pe
from ..events import projects as pr
from ..events.base import RecordedEvent

_PERSON_FIELDS = {"name", "email", "role", "company", "title"}
_PROJECT_FIELDS = {"name", "description", "clients_enabled"}


class Directory:
    """Projection ``directory``: tables ``people``, ``api_tokens``, ``feed_tokens``,
    ``projects`` and ``project_members``."""

    name = "directory"
    version = 2
    tables: Sequence[str] = ("people", "api_tokens", "feed_tokens", "projects", "project_members")

    def ddl(self) -> str:
        return """
        CREATE TABLE people (
            person_id   text PRIMARY KEY,
            name        text NOT NULL,
            email       text NOT NULL,
            role        text NOT NULL,
            company     text,
            title       text,
            active      boolean NOT NULL,
            created_at  timestamptz NOT NULL,
            updated_at  timestamptz NOT NULL,
            seq         bigint NOT NULL
        );
        CREATE INDEX people_seq ON people (seq);
        CREATE TABLE api_tokens (
            token_id    text PRIMARY KEY,
            person_id   text NOT NULL,
            token_hash  text NOT NULL UNIQUE,
            label       text NOT NULL,
            revoked     boolean NOT NULL,
            created_at  timestamptz NOT NULL,
            revoked_at  timestamptz,
            seq         bigint NOT NULL
        );
        CREATE INDEX api_tokens_person ON api_tokens (person_id, seq);
        CREATE TABLE feed_tokens (
            person_id   text PRIMARY KEY,
            token_hash  text NOT NULL UNIQUE,
            rotated_at  timestamptz NOT NULL
        );
        CREATE TABLE projects (
            project_id      text PRIMARY KEY,
            name            text NOT NULL,
            description     text,
            clients_enabled boolean NOT NULL,
            status          text NOT NULL,
            creator_id      text,
            created_at      timestamptz NOT NULL,
            updated_at      timestamptz NOT NULL,
            seq             bigint NOT NULL
        );
        CREATE INDEX projects_seq ON projects (seq);
        CREATE TABLE project_members (
            project_id   text NOT NULL,
            person_id    text NOT NULL,
            project_role text NOT NULL,
            added_at     timestamptz NOT NULL,
            seq          bigint NOT NULL,
            PRIMARY KEY (project_id, person_id)
        );
        CREATE INDEX project_members_person ON project_members (person_id, project_id);
        """

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        for recorded in events:
            await self._apply_one(conn, recorded)

    async def _apply_one(self, conn: asyncpg.Connection, r: RecordedEvent) -> None:
        e = r.event
        at = r.recorded_at
        person_id = r.stream_id.removeprefix("person-")
        project_id = r.stream_id.removeprefix("project-")
        match e:
            case pe.PersonCreated():
                await conn.execute(
                    "INSERT INTO people (person_id, name, email, role, company, title, active, "
                    "created_at, updated_at, seq) VALUES ($1, $2, $3, $4, $5, $6, true, $7, $7, $8)",
                    e.person_id, e.name, e.email, e.role, e.company, e.title, at, r.position,
                )  # fmt: skip
            case pe.PersonEdited():
                await _patch(conn, "people", "person_id", person_id, e.changes, _PERSON_FIELDS, at)
            case pe.PersonDeactivated():
                await conn.execute(
                    "UPDATE people SET active = false, updated_at = $2 WHERE person_id = $1",
                    person_id,
                    at,
                )
                await conn.execute(
                    "UPDATE api_tokens SET revoked = true, revoked_at = $2 WHERE person_id = $1 AND NOT revoked",
                    person_id,
                    at,
                )
                await conn.execute("DELETE FROM feed_tokens WHERE person_id = $1", person_id)
            case pe.PersonReactivated():
                await conn.execute(
                    "UPDATE people SET active = true, updated_at = $2 WHERE person_id = $1",
                    person_id,
                    at,
                )
            case pe.TokenIssued():
                await conn.execute(
                    "INSERT INTO api_tokens (token_id, person_id, token_hash, label, revoked, created_at, seq) "
                    "VALUES ($1, $2, $3, $4, false, $5, $6)",
                    e.token_id, person_id, e.token_hash, e.label, at, r.position,
                )  # fmt: skip
            case pe.TokenRevoked():
                await conn.execute(
                    "UPDATE api_tokens SET revoked = true, revoked_at = $2 WHERE token_id = $1 AND NOT revoked",
                    e.token_id,
                    at,
                )
            case pe.FeedTokenRotated():
                await conn.execute(
                    "INSERT INTO feed_tokens (person_id, token_hash, rotated_at) VALUES ($1, $2, $3) "
                    "ON CONFLICT (person_id) DO UPDATE SET token_hash = $2, rotated_at = $3",
                    person_id, e.token_hash, at,
                )  # fmt: skip
            case pr.ProjectCreated():
                await conn.execute(
                    "INSERT INTO projects (project_id, name, description, clients_enabled, status, "
                    "creator_id, created_at, updated_at, seq) VALUES ($1, $2, $3, $4, 'active', $5, $6, $6, $7)",
                    e.project_id, e.name, e.description, e.clients_enabled, r.metadata.actor, at, r.position,
                )  # fmt: skip
            case pr.ProjectEdited():
                await _patch(
                    conn, "projects", "project_id", project_id, e.changes, _PROJECT_FIELDS, at
                )
            case (
                pr.ProjectArchived()
                | pr.ProjectUnarchived()
                | pr.ProjectTrashed()
                | pr.ProjectRestored()
            ):
                status = {
                    pr.ProjectArchived: "archived",
                    pr.ProjectUnarchived: "active",
                    pr.ProjectTrashed: "trashed",
                    pr.ProjectRestored: "active",
                }[type(e)]
                await conn.execute(
                    "UPDATE projects SET status = $2, updated_at = $3 WHERE project_id = $1",
                    project_id,
                    status,
                    at,
                )
            case pr.ProjectMemberAdded():
                await conn.execute(
                    "INSERT INTO project_members (project_id, person_id, project_role, added_at, seq) "
                    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (project_id, person_id) "
                    "DO UPDATE SET project_role = $3",
                    project_id, e.person_id, e.project_role, at, r.position,
                )  # fmt: skip
            case pr.ProjectMemberRoleChanged():
                await conn.execute(
                    "UPDATE project_members SET project_role = $3 WHERE project_id = $1 AND person_id = $2",
                    project_id,
                    e.person_id,
                    e.after,
                )
            case pr.ProjectMemberRemoved():
                await conn.execute(
                    "DELETE FROM project_members WHERE project_id = $1 AND person_id = $2",
                    project_id,
                    e.person_id,
                )
            case _:
                pass


async def _patch(
    conn: asyncpg.Connection,
    table: str,
    key: str,
    key_value: str,
    changes: Sequence[Any],
    allowed: set[str],
    at: Any,
) -> None:
    sets = []
    values: list[Any] = [key_value, at]
    for change in changes:
        if change.field in allowed:
            values.append(change.after)
            sets.append(f"{change.field} = ${len(values)}")
    sets.append("updated_at = $2")
    await conn.execute(f"UPDATE {table} SET {', '.join(sets)} WHERE {key} = $1", *values)

"""The directory: people, their tokens, projects and memberships.

Every authorisation check reads these tables (through the public views), so they are kept
small and indexed for the look-ups the access rules make. Times come from the events, never
from the clock, so a rebuild gives the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from ..events import people as pe
from ..events import projects as pr
from ..events import streams
from ..events.base import Event, RecordedEvent, decode_event

_PERSON_FIELDS = {"name", "email", "role", "company", "title", "locale", "time_zone"}
_PROJECT_FIELDS = {"name", "description", "clients_enabled", "language", "alert_hours"}


class Directory:
    """Projection ``directory``: tables ``people``, ``api_tokens``, ``feed_tokens``,
    ``projects`` and ``project_members``."""

    name = "directory"
    # 4: people's locale and time zone; 5: projects' language; 6: people's pictures;
    # 7: projects' alert_hours; 8: tokens' scopes, service accounts' owner and assignable;
    # 9: tokens' expiry (OAuth access tokens).
    version = 9
    tables: Sequence[str] = ("people", "api_tokens", "feed_tokens", "projects", "project_members")
    stream_prefixes = (streams.PERSON, streams.PROJECT)
    """E-mail claims and recordings change nothing here."""

    def ddl(self) -> str:
        return """
        CREATE TABLE people (
            person_id   text PRIMARY KEY,
            name        text NOT NULL,
            email       text NOT NULL,
            role        text NOT NULL,
            company     text,
            title       text,
            locale      text,
            time_zone   text,
            avatar_sha256 text,
            avatar_type text,
            active      boolean NOT NULL,
            created_at  timestamptz NOT NULL,
            updated_at  timestamptz NOT NULL,
            seq         bigint NOT NULL,
            version     integer NOT NULL DEFAULT 0,
            owner_id    text,
            assignable  boolean NOT NULL DEFAULT true
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
            seq         bigint NOT NULL,
            scope_write boolean NOT NULL DEFAULT true,
            scope_projects text[],
            expires_at  timestamptz
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
            language        text NOT NULL,
            alert_hours     integer NOT NULL DEFAULT 48,
            status          text NOT NULL,
            creator_id      text,
            created_at      timestamptz NOT NULL,
            updated_at      timestamptz NOT NULL,
            seq             bigint NOT NULL,
            version         integer NOT NULL DEFAULT 0
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

    async def bulk_fill(self, conn: asyncpg.Connection, log: str) -> bool:
        """The whole directory from ``log`` (see bulk.py): the few per cent of the log in
        people's and projects' streams, read in log order and folded in memory by
        :class:`_Fold` (the statements of :meth:`apply`, on dictionaries), then copied in."""
        rows = await conn.fetch(
            "SELECT position, stream_id, stream_version, event_type, schema_version, data, "
            f"metadata->>'actor' AS actor, recorded_at FROM {log} e "
            f"WHERE stream_id ^@ '{streams.PERSON}' OR stream_id ^@ '{streams.PROJECT}' "
            "ORDER BY tx_id, position"
        )
        fold = _Fold()
        for row in rows:
            event = decode_event(row["event_type"], row["schema_version"], row["data"])
            if not fold.apply(
                row["stream_id"],
                row["position"],
                row["stream_version"],
                row["actor"],
                row["recorded_at"],
                event,
            ):
                return False
        for table, records in fold.tables().items():
            if records:
                await conn.copy_records_to_table(table, records=records, columns=_COLUMNS[table])
        return True

    async def _apply_one(self, conn: asyncpg.Connection, r: RecordedEvent) -> None:
        e = r.event
        at = r.recorded_at
        person_id = r.stream_id.removeprefix(streams.PERSON)
        project_id = r.stream_id.removeprefix(streams.PROJECT)
        match e:
            case pe.PersonCreated():
                await conn.execute(
                    "INSERT INTO people (person_id, name, email, role, company, title, locale, "
                    "time_zone, active, created_at, updated_at, seq, owner_id, assignable) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, true, $9, $9, $10, $11, $12)",
                    e.person_id, e.name, e.email, e.role, e.company, e.title, e.locale,
                    e.time_zone, at, r.position, e.owner_id, _assignable(e),
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
            case pe.AvatarChanged():
                avatar = e.avatar
                await conn.execute(
                    "UPDATE people SET avatar_sha256 = $2, avatar_type = $3, updated_at = $4 "
                    "WHERE person_id = $1",
                    person_id,
                    None if avatar is None else avatar.sha256,
                    None if avatar is None else avatar.content_type,
                    at,
                )
            case pe.TokenIssued():
                await conn.execute(
                    "INSERT INTO api_tokens (token_id, person_id, token_hash, label, revoked, created_at, seq, "
                    "scope_write, scope_projects, expires_at) VALUES ($1, $2, $3, $4, false, $5, $6, $7, $8, $9)",
                    e.token_id, person_id, e.token_hash, e.label, at, r.position, e.write,
                    None if e.projects is None else list(e.projects), e.expires_at,
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
                    "INSERT INTO projects (project_id, name, description, clients_enabled, language, "
                    "alert_hours, status, creator_id, created_at, updated_at, seq) "
                    "VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $8, $8, $9)",
                    e.project_id, e.name, e.description, e.clients_enabled, e.language,
                    e.alert_hours, r.metadata.actor, at, r.position,
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
                await conn.execute(
                    "UPDATE projects SET status = $2, updated_at = $3 WHERE project_id = $1",
                    project_id,
                    _STATUS[type(e)],
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
        # The stream version the row reflects: what the API's ETags name, so that If-Match
        # means "nobody changed it since I read it" (see service.http.conditions).
        if streams.is_person_stream(r.stream_id):
            await conn.execute(_PERSON_VERSION, person_id, r.stream_version)
        elif streams.is_project_stream(r.stream_id):
            await conn.execute(_PROJECT_VERSION, project_id, r.stream_version)


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


def _assignable(e: pe.PersonCreated) -> bool:
    """People are always assignable; a service account only when created so."""
    return e.assignable or e.role != "service"


_PERSON_VERSION = "UPDATE people SET version = $2 WHERE person_id = $1"
_PROJECT_VERSION = "UPDATE projects SET version = $2 WHERE project_id = $1"
_COLUMNS: dict[str, tuple[str, ...]] = {
    "people": (
        "person_id", "name", "email", "role", "company", "title", "locale", "time_zone",
        "avatar_sha256", "avatar_type", "active", "created_at", "updated_at", "seq", "version",
        "owner_id", "assignable",
    ),
    "api_tokens": (
        "token_id", "person_id", "token_hash", "label", "revoked", "created_at", "revoked_at",
        "seq", "scope_write", "scope_projects", "expires_at",
    ),
    "feed_tokens": ("person_id", "token_hash", "rotated_at"),
    "projects": (
        "project_id", "name", "description", "clients_enabled", "language", "alert_hours",
        "status", "creator_id", "created_at", "updated_at", "seq", "version",
    ),
    "project_members": ("project_id", "person_id", "project_role", "added_at", "seq"),
}  # fmt: skip
_STATUS: dict[type[Event], str] = {
    pr.ProjectArchived: "archived",
    pr.ProjectUnarchived: "active",
    pr.ProjectTrashed: "trashed",
    pr.ProjectRestored: "active",
}


class _Fold:
    """The directory's tables as dictionaries, changed as :meth:`Directory.apply`'s
    statements change the tables (same keys, same conflicts, same no-ops on missing rows)."""

    def __init__(self) -> None:
        self.people: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, dict[str, Any]] = {}
        self.hashes: set[str] = set()
        self.feed: dict[str, dict[str, Any]] = {}
        self.projects: dict[str, dict[str, Any]] = {}
        self.members: dict[tuple[str, str], dict[str, Any]] = {}

    def apply(
        self,
        stream_id: str,
        position: int,
        version: int,
        actor: str | None,
        at: datetime,
        e: Event,
    ) -> bool:
        """Fold one event; False where a statement of ``apply`` would fail (a duplicate key
        or a column set twice): the bulk fill then declines, leaving it to ``apply``."""
        if not self._apply(stream_id, position, actor, at, e):
            return False
        if (person := self.people.get(stream_id.removeprefix(streams.PERSON))) is not None:
            person["version"] = version
        if (project := self.projects.get(stream_id.removeprefix(streams.PROJECT))) is not None:
            project["version"] = version
        return True

    def _apply(
        self, stream_id: str, position: int, actor: str | None, at: datetime, e: Event
    ) -> bool:
        person_id = stream_id.removeprefix(streams.PERSON)
        project_id = stream_id.removeprefix(streams.PROJECT)
        match e:
            case pe.PersonCreated():
                if e.person_id in self.people:
                    return False
                self.people[e.person_id] = {
                    "person_id": e.person_id, "name": e.name, "email": e.email, "role": e.role,
                    "company": e.company, "title": e.title, "locale": e.locale,
                    "time_zone": e.time_zone, "avatar_sha256": None, "avatar_type": None,
                    "active": True, "created_at": at, "updated_at": at, "seq": position,
                    "version": 0, "owner_id": e.owner_id, "assignable": _assignable(e),
                }  # fmt: skip
            case pe.PersonEdited():
                return _patch_row(self.people.get(person_id), e.changes, _PERSON_FIELDS, at)
            case pe.PersonDeactivated():
                if (person := self.people.get(person_id)) is not None:
                    person.update(active=False, updated_at=at)
                for token in self.tokens.values():
                    if token["person_id"] == person_id and not token["revoked"]:
                        token.update(revoked=True, revoked_at=at)
                self.feed.pop(person_id, None)
            case pe.PersonReactivated():
                if (person := self.people.get(person_id)) is not None:
                    person.update(active=True, updated_at=at)
            case pe.AvatarChanged():
                if (person := self.people.get(person_id)) is not None:
                    avatar = e.avatar
                    person.update(
                        avatar_sha256=None if avatar is None else avatar.sha256,
                        avatar_type=None if avatar is None else avatar.content_type,
                        updated_at=at,
                    )
            case pe.TokenIssued():
                if e.token_id in self.tokens or e.token_hash in self.hashes:
                    return False
                self.hashes.add(e.token_hash)
                self.tokens[e.token_id] = {
                    "token_id": e.token_id, "person_id": person_id,
                    "token_hash": e.token_hash, "label": e.label, "revoked": False,
                    "created_at": at, "revoked_at": None, "seq": position,
                    "scope_write": e.write,
                    "scope_projects": None if e.projects is None else list(e.projects),
                    "expires_at": e.expires_at,
                }  # fmt: skip
            case pe.TokenRevoked():
                issued = self.tokens.get(e.token_id)
                if issued is not None and not issued["revoked"]:
                    issued.update(revoked=True, revoked_at=at)
            case pe.FeedTokenRotated():
                if any(
                    f["token_hash"] == e.token_hash and p != person_id for p, f in self.feed.items()
                ):
                    return False
                self.feed[person_id] = {
                    "person_id": person_id,
                    "token_hash": e.token_hash,
                    "rotated_at": at,
                }
            case pr.ProjectCreated():
                if e.project_id in self.projects:
                    return False
                self.projects[e.project_id] = {
                    "project_id": e.project_id, "name": e.name, "description": e.description,
                    "clients_enabled": e.clients_enabled, "language": e.language,
                    "alert_hours": e.alert_hours,
                    "status": "active", "creator_id": actor,
                    "created_at": at, "updated_at": at, "seq": position, "version": 0,
                }  # fmt: skip
            case pr.ProjectEdited():
                return _patch_row(self.projects.get(project_id), e.changes, _PROJECT_FIELDS, at)
            case (
                pr.ProjectArchived()
                | pr.ProjectUnarchived()
                | pr.ProjectTrashed()
                | pr.ProjectRestored()
            ):
                if (project := self.projects.get(project_id)) is not None:
                    project.update(status=_STATUS[type(e)], updated_at=at)
            case pr.ProjectMemberAdded():
                member = self.members.get((project_id, e.person_id))
                if member is not None:
                    member["project_role"] = e.project_role
                else:
                    self.members[(project_id, e.person_id)] = {
                        "project_id": project_id, "person_id": e.person_id,
                        "project_role": e.project_role, "added_at": at, "seq": position,
                    }  # fmt: skip
            case pr.ProjectMemberRoleChanged():
                if (member := self.members.get((project_id, e.person_id))) is not None:
                    member["project_role"] = e.after
            case pr.ProjectMemberRemoved():
                self.members.pop((project_id, e.person_id), None)
            case _:
                pass
        return True

    def tables(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every table's rows, as records in :data:`_COLUMNS` order."""
        sources: dict[str, Any] = {
            "people": self.people,
            "api_tokens": self.tokens,
            "feed_tokens": self.feed,
            "projects": self.projects,
            "project_members": self.members,
        }
        return {
            table: [tuple(row[c] for c in _COLUMNS[table]) for row in rows.values()]
            for table, rows in sources.items()
        }


def _patch_row(
    row: dict[str, Any] | None, changes: Sequence[Any], allowed: set[str], at: datetime
) -> bool:
    """:func:`_patch` on a dictionary (False where its UPDATE would set a column twice)."""
    fields = [c.field for c in changes if c.field in allowed]
    if len(fields) != len(set(fields)):
        return False
    if row is not None:
        for change in changes:
            if change.field in allowed:
                row[change.field] = change.after
        row["updated_at"] = at
    return True

"""Facts for the access rules, read from the read models.

The rules themselves live in :mod:`service.domain.access` (one place for HTTP, WebSocket,
feeds and webhooks); this module only gathers the facts they need from the directory
projection, and turns "may not see" into the same 404 as "does not exist".
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final

import asyncpg

from ..domain.access import ProjectFacts, RecordingFacts, Viewer, can_see_project, sees_everyone
from ..domain.activity import KnownRecording
from ..domain.redaction import EVERYTHING, Mentions, Sight, known_people, sees_all, sight
from ..errors import NotFound
from .rows import columns

_FACTS = """
SELECT p.project_id, p.status, p.clients_enabled,
       coalesce(array_agg(m.person_id) FILTER (WHERE m.person_id IS NOT NULL), '{}') AS people,
       coalesce(array_agg(m.project_role) FILTER (WHERE m.person_id IS NOT NULL), '{}') AS roles
FROM projects p LEFT JOIN project_members m ON m.project_id = p.project_id
WHERE p.project_id = ANY($1::text[])
GROUP BY p.project_id, p.status, p.clients_enabled
"""


_RECORDING_FACTS: Final = (
    "recording_id",
    "project_id",
    "kind",
    "status",
    "visible_to_clients",
    "creator_id",
)


def recording_facts(row: asyncpg.Record | Mapping[str, Any]) -> RecordingFacts:
    """The access facts of a ``recordings`` read-model row (visibility already effective)."""
    return RecordingFacts(
        **columns(row, *_RECORDING_FACTS), assignee_ids=frozenset(row["assignee_ids"])
    )


def _facts(row: asyncpg.Record) -> ProjectFacts:
    return ProjectFacts(
        project_id=row["project_id"],
        status=row["status"],
        clients_enabled=row["clients_enabled"],
        members=dict(zip(row["people"], row["roles"], strict=True)),
    )


async def projects_facts(pool: asyncpg.Pool, project_ids: Sequence[str]) -> dict[str, ProjectFacts]:
    """Facts of the given projects (missing ids are left out)."""
    rows = await pool.fetch(_FACTS, list(project_ids))
    return {row["project_id"]: _facts(row) for row in rows}


async def project_facts(pool: asyncpg.Pool, project_id: str) -> ProjectFacts | None:
    """Facts of one project, or None if there is no such project."""
    return (await projects_facts(pool, [project_id])).get(project_id)


async def visible_project(pool: asyncpg.Pool, viewer: Viewer, project_id: str) -> ProjectFacts:
    """Facts of a project ``viewer`` may see.

    Raises:
        NotFound: no such project, or the viewer may not know it exists.
    """
    facts = await project_facts(pool, project_id)
    if facts is None or not can_see_project(viewer, facts):
        raise NotFound("there is no such project")
    return facts


async def visible_projects(pool: asyncpg.Pool, viewer: Viewer) -> dict[str, ProjectFacts]:
    """Every project ``viewer`` may see (admins: all of them; a token limited to some
    projects: those of them the holder sees)."""
    if viewer.scope.projects is not None:
        ids = sorted(viewer.scope.projects)
    elif viewer.role == "admin":
        ids = [r["project_id"] for r in await pool.fetch("SELECT project_id FROM projects")]
    else:
        ids = [
            r["project_id"]
            for r in await pool.fetch(
                "SELECT project_id FROM project_members WHERE person_id = $1", viewer.person_id
            )
        ]
    facts = await projects_facts(pool, ids)
    return {pid: f for pid, f in facts.items() if can_see_project(viewer, f)}


async def viewer_by_id(pool: asyncpg.Pool, person_id: str) -> Viewer | None:
    """The person ``person_id`` as a viewer (for feeds, hubs and notifiers acting for them)."""
    row = await pool.fetchrow(
        "SELECT person_id, role, active FROM people WHERE person_id = $1", person_id
    )
    if row is None:
        return None
    return Viewer(person_id=row["person_id"], role=row["role"], active=row["active"])


_RECORDINGS: Final = (
    "SELECT recording_id, kind, project_id, parent_id, status, visible_to_clients, "
    "creator_id, assignee_ids FROM recordings WHERE recording_id = ANY($1::text[])"
)


async def recordings_by_id(
    pool: asyncpg.Pool, recording_ids: Collection[str]
) -> dict[str, tuple[RecordingFacts, KnownRecording]]:
    """The given recordings' access facts, and what their activities need to know of them
    (the commented recording of a comment), from the ``recordings`` read model; missing
    ids are left out."""
    found: dict[str, tuple[RecordingFacts, KnownRecording]] = {}
    for row in await pool.fetch(_RECORDINGS, list(recording_ids)):
        facts = recording_facts(row)
        found[facts.recording_id] = (
            facts,
            KnownRecording(
                recording_id=facts.recording_id,
                kind=facts.kind,
                project_id=facts.project_id,
                parent_id=row["parent_id"],
            ),
        )
    return found


# ----------------------------------------------------------------- redaction


async def projects_of(pool: asyncpg.Pool, person_ids: Collection[str]) -> dict[str, list[str]]:
    """The projects each of ``person_ids`` is on (people on none are left out)."""
    rows = await pool.fetch(
        "SELECT person_id, project_id FROM project_members WHERE person_id = ANY($1::text[])",
        list(person_ids),
    )
    found: dict[str, list[str]] = {}
    for row in rows:
        found.setdefault(row["person_id"], []).append(row["project_id"])
    return found


async def people_known_to(pool: asyncpg.Pool, viewer: Viewer) -> frozenset[str] | None:
    """The people ``viewer`` may be told about (None: everyone, with no query): a client,
    themselves and the people of every project they see."""
    if sees_everyone(viewer):
        return None
    return known_people(viewer, (await visible_projects(pool, viewer)).values())


async def sight_of(
    pool: asyncpg.Pool, viewer: Viewer, project: ProjectFacts, named: Mentions
) -> Sight:
    """``viewer``'s sight (:mod:`service.domain.redaction`) over things of ``project`` that
    name ``named``, from the read models. Staff cost no query."""
    if sees_all(viewer, project):
        return EVERYTHING
    recordings: list[RecordingFacts] = []
    if named.recordings:
        recordings = [f for f, _ in (await recordings_by_id(pool, named.recordings)).values()]
    people = await people_known_to(pool, viewer)
    return sight(viewer, project, recordings=recordings, people=people)

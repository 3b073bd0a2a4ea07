"""What a feed shows a viewer: the activity items they may see, as feed entries.

**Visibility** is the activity streams' (``service/http/activity.py``, docs/ACCESS.md): the
projects come from :func:`~service.http.access.visible_projects` /
:func:`~service.http.access.visible_project`; whether the viewer sees every recording of a
project or only the client-visible ones is asked of
:func:`~service.domain.access.can_see_recording`; the SQL filter is the same as the activity
endpoints', and every row that reaches a feed is checked once more with
:func:`~service.domain.access.can_see_recording` on facts from the ``recordings`` read model.

**Stamps.** Whether a feed changed is answered without reading its entries: for a viewer who
sees whole projects, rows never leave their feed, so the newest row's ``seq`` is enough; for
a client, rows can leave (an item hidden from clients), so the stamp is the newest visible
``seq`` together with the number of visible rows, computed over what the client may see only,
so that the stamp does not move when something the client cannot see happens. Names are read
at render time (a rename shows in past sentences), so the people table's size and newest
change are part of the stamp too; recordings' and projects' renames are activity items of
the feed itself.

**Archive pages** (RFC 5005) are counted from the oldest entry the viewer may see: page ``n``
holds the viewer's visible entries ``50(n-1)+1 .. 50n`` (oldest first), and exists once it is
full. New events only ever add entries after the last one, so a full page never changes as
new events arrive. What can change a page: an item hidden from clients later (privacy wins:
a client's later pages shift by the entries they no longer see), a person joining or leaving
a project (their cross-project feed counts over a different set), and renames (sentences
use current names). Counting over the viewer's own visible set, rather than over everything,
is deliberate: pages of a fixed size in a set that includes hidden items would tell a
client how many hidden items there are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import asyncpg

from ..domain.access import ProjectFacts, RecordingFacts, Viewer, can_see_recording
from ..domain.activity import sentence
from ..http.access import visible_project, visible_projects
from .render import PAGE_SIZE, Entry, sanitise_html, tag_uri, text_html

# The same filter as the activity endpoints (service/http/activity.py, _VISIBLE): clients see
# recording items of client-visible recordings (under a client-visible parent), membership
# items about people still on the project, and every other project item.
_CLIENT_VISIBLE: Final = """
(a.project_id = ANY($1::text[])
 OR (a.project_id = ANY($2::text[]) AND CASE
        WHEN a.recording_id IS NOT NULL THEN coalesce(r.visible_to_clients, false)
             AND (a.parent_id IS NULL OR coalesce(rp.visible_to_clients, false))
        WHEN a.person_id IS NOT NULL THEN EXISTS (
            SELECT 1 FROM project_members m
            WHERE m.project_id = a.project_id AND m.person_id = a.person_id)
        ELSE true END))
"""
_JOINS: Final = (
    "LEFT JOIN recordings r ON r.recording_id = a.recording_id "
    "LEFT JOIN recordings rp ON rp.recording_id = a.parent_id "
)
_NAMES: Final = "SELECT count(*) AS people, max(updated_at) AS renamed FROM people"
_RENDER: Final = """
SELECT page.seq, page.position, page.project_id, page.recording_id, page.recording_kind,
       page.parent_id, page.person_id, page.kind, page.actor_id, page.at, page.excerpt,
       r.kind AS r_kind, r.status AS r_status, r.visible_to_clients AS r_visible,
       r.creator_id AS r_creator, r.title, r.content, rp.title AS parent_title,
       p.name AS project_name, ac.name AS actor_name, pe.name AS person_name
FROM ({inner}) page
LEFT JOIN recordings r ON r.recording_id = page.recording_id
LEFT JOIN recordings rp ON rp.recording_id = page.parent_id
LEFT JOIN projects p ON p.project_id = page.project_id
LEFT JOIN people ac ON ac.person_id = page.actor_id
LEFT JOIN people pe ON pe.person_id = page.person_id
ORDER BY page.seq DESC
"""
# Kinds whose entry content is the recording's (sanitised) body rather than the excerpt.
_BODY_KINDS: Final = frozenset({"message_posted", "comment_added"})


@dataclass(frozen=True)
class Scope:
    """What one viewer may read in one feed: the projects, split by whether the viewer sees
    every recording in them (``full``) or only the client-visible ones (``clients_only``).

    ``everything`` marks an admin's cross-project feed (every project, no filter needed).
    ``people`` are the people a client may be told about (themselves and the people of the
    projects they see); None for viewers who see everyone.
    """

    viewer: Viewer
    projects: dict[str, ProjectFacts]
    full: tuple[str, ...]
    clients_only: tuple[str, ...]
    everything: bool
    people: frozenset[str] | None

    def visibility_class(self) -> str:
        """A string equal for two viewers exactly when their feeds hold the same entries
        named the same way (part of the ETag)."""
        if self.everything:
            return "all"
        parts = ["f:" + ",".join(sorted(self.full)), "c:" + ",".join(sorted(self.clients_only))]
        if self.people is not None:
            parts.append("p:" + ",".join(sorted(self.people)))
        return "|".join(parts)

    def _where(self) -> tuple[str, list[Any], bool]:
        """(WHERE clause over ``activity a``, its arguments, whether it needs the joins)."""
        if self.clients_only:
            return _CLIENT_VISIBLE, [list(self.full), list(self.clients_only)], True
        if self.everything:
            return "true", [], False
        return "a.project_id = ANY($1::text[])", [list(self.full)], False


def _probe(project_id: str) -> RecordingFacts:
    # A recording hidden from clients: whoever may see it sees everything in the project.
    return RecordingFacts(
        recording_id="",
        project_id=project_id,
        kind="message",
        status="active",
        visible_to_clients=False,
        creator_id="",
    )


def scope_for(viewer: Viewer, projects: dict[str, ProjectFacts], *, everything: bool) -> Scope:
    """The scope of ``viewer`` over ``projects`` (projects they may see)."""
    full: list[str] = []
    clients_only: list[str] = []
    for pid, facts in projects.items():
        (full if can_see_recording(viewer, facts, _probe(pid)) else clients_only).append(pid)
    people: frozenset[str] | None = None
    if clients_only:
        # docs/ACCESS.md: a client is told about themselves and the people of their projects.
        people = frozenset({viewer.person_id}.union(*(f.members for f in projects.values())))
    return Scope(
        viewer=viewer,
        projects=projects,
        full=tuple(full),
        clients_only=tuple(clients_only),
        everything=everything and not clients_only,
        people=people,
    )


async def project_scope(pool: asyncpg.Pool, viewer: Viewer, project_id: str) -> Scope:
    """The scope of a project's feed.

    Raises:
        NotFound: no such project, or the viewer may not see it.
    """
    facts = await visible_project(pool, viewer, project_id)
    return scope_for(viewer, {project_id: facts}, everything=False)


async def personal_scope(pool: asyncpg.Pool, viewer: Viewer) -> Scope:
    """The scope of a person's cross-project feed: everything they may see."""
    projects = await visible_projects(pool, viewer)
    return scope_for(viewer, projects, everything=viewer.role == "admin")


# ------------------------------------------------------------------ stamps


@dataclass(frozen=True)
class Stamp:
    """Whether a feed changed, known without reading its entries.

    ``last_seq``: the newest visible row's ``seq`` (0 for none). ``visible``: the number of
    visible rows (clients only; None otherwise). ``last_at``: the newest time among the
    newest page of visible rows (None for none). ``names``: the people table's state.
    """

    last_seq: int
    visible: int | None
    last_at: datetime | None
    names: str


async def stamp(pool: asyncpg.Pool, scope: Scope) -> Stamp:
    """The stamp of ``scope``'s feed: one query."""
    where, args, joins = scope._where()
    n = len(args) + 1
    if joins:
        sql = f"""
        WITH v AS MATERIALIZED (SELECT a.seq, a.at FROM activity a {_JOINS} WHERE {where}),
             newest AS (SELECT seq, at FROM v ORDER BY seq DESC LIMIT ${n})
        SELECT (SELECT max(seq) FROM newest) AS last_seq,
               (SELECT max(at) FROM newest) AS last_at,
               (SELECT count(*) FROM v) AS visible,
               names.people, names.renamed
        FROM ({_NAMES}) names
        """
    else:
        sql = f"""
        WITH newest AS (SELECT a.seq, a.at FROM activity a WHERE {where}
                        ORDER BY a.seq DESC LIMIT ${n})
        SELECT (SELECT max(seq) FROM newest) AS last_seq,
               (SELECT max(at) FROM newest) AS last_at,
               NULL::bigint AS visible,
               names.people, names.renamed
        FROM ({_NAMES}) names
        """
    row = await pool.fetchrow(sql, *args, PAGE_SIZE)
    assert row is not None
    renamed = row["renamed"].isoformat() if row["renamed"] is not None else "-"
    return Stamp(
        last_seq=row["last_seq"] or 0,
        visible=row["visible"],
        last_at=row["last_at"],
        names=f"{row['people']}@{renamed}",
    )


async def count(pool: asyncpg.Pool, scope: Scope, known: Stamp | None = None) -> int:
    """How many entries ``scope``'s viewer may see in the feed (all pages)."""
    if known is not None and known.visible is not None:
        return known.visible
    where, args, joins = scope._where()
    sql = f"SELECT count(*) FROM activity a {_JOINS if joins else ''}WHERE {where}"
    return int(await pool.fetchval(sql, *args))


# ------------------------------------------------------------------ entries


async def newest(pool: asyncpg.Pool, scope: Scope) -> list[asyncpg.Record]:
    """The newest :data:`PAGE_SIZE` visible rows, newest first."""
    return await _rows(pool, scope, "DESC", 0)


async def archive_page(pool: asyncpg.Pool, scope: Scope, page: int) -> list[asyncpg.Record]:
    """Archive page ``page`` (1-based): visible rows ``50(page-1)+1 .. 50 page`` counted
    from the oldest, newest first."""
    return await _rows(pool, scope, "ASC", (page - 1) * PAGE_SIZE)


async def _rows(pool: asyncpg.Pool, scope: Scope, order: str, offset: int) -> list[asyncpg.Record]:
    where, args, joins = scope._where()
    n = len(args)
    inner = (
        f"SELECT a.* FROM activity a {_JOINS if joins else ''}WHERE {where} "
        f"ORDER BY a.seq {order} LIMIT ${n + 1} OFFSET ${n + 2}"
    )
    rows = await pool.fetch(_RENDER.format(inner=inner), *args, PAGE_SIZE, offset)
    return [row for row in rows if _may_see(scope, row)]


def _may_see(scope: Scope, row: asyncpg.Record) -> bool:
    # The SQL filter decided already; this asks the one authorisation once more, per entry,
    # so that a feed can never show what can_see_recording refuses.
    if row["recording_id"] is None:
        return True
    facts = scope.projects.get(row["project_id"])
    if facts is None:
        return scope.everything
    if row["r_kind"] is None:
        return row["project_id"] in scope.full
    recording = RecordingFacts(
        recording_id=row["recording_id"],
        project_id=row["project_id"],
        kind=row["r_kind"],
        status=row["r_status"],
        visible_to_clients=row["r_visible"],
        creator_id=row["r_creator"],
    )
    return can_see_recording(scope.viewer, facts, recording)


@dataclass(frozen=True)
class Links:
    """What entries link to and how their ids are made."""

    authority: str
    app_url_template: str


def entry_of(scope: Scope, row: asyncpg.Record, links: Links) -> Entry:
    """A feed entry for an activity row (a row of :func:`newest` or :func:`archive_page`)."""
    actor_id = row["actor_id"]
    if actor_id is None or row["actor_name"] is None:
        actor = "Cairn" if actor_id == "system" else "Someone"
    elif scope.people is not None and actor_id not in scope.people:
        actor = "Someone"
    else:
        actor = row["actor_name"]
    kind = row["kind"]
    recording_kind = row["recording_kind"]
    project_id = row["project_id"]
    title = sentence(
        kind,
        actor=actor,
        title=row["title"],
        recording_kind=recording_kind,
        parent=row["parent_title"],
        person=row["person_name"],
        project=row["project_name"],
    )
    if row["recording_id"] is not None:
        link = links.app_url_template.format(
            type=recording_kind, id=row["recording_id"], project_id=project_id
        )
    else:
        link = links.app_url_template.format(type="project", id=project_id, project_id=project_id)
    if kind in _BODY_KINDS and row["content"]:
        content = sanitise_html(row["content"])
    else:
        content = text_html(row["excerpt"])
    return Entry(
        id=tag_uri(links.authority, row["at"], f"event/{row['position']}"),
        title=title,
        content_html=content,
        author=actor,
        link=link,
        category=kind,
        at=row["at"],
    )


def entries_of(scope: Scope, rows: Sequence[asyncpg.Record], links: Links) -> list[Entry]:
    """Entries for ``rows``, in their order."""
    return [entry_of(scope, row, links) for row in rows]

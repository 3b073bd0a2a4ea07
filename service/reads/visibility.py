"""What a viewer may read of the activity read model: scopes, SQL filters and names.

The rules are :mod:`service.domain.access`'s (docs/ACCESS.md, "Activity streams"); this
module only gathers the facts they need and builds the SQL filters that mirror them, for the
activity streams (:mod:`service.http.activity`), the overview and the feeds
(:mod:`service.feeds.query`). Every row a filter lets through is asked once more of
:func:`~service.domain.access.can_see_recording` (:meth:`Scope.may_see`), so a stale filter
cannot leak what the rule refuses.

* **Projects**: from :func:`~service.reads.access.visible_projects` /
  :func:`~service.reads.access.visible_project`. Whether a viewer sees every recording of a
  project or only the client-visible ones is :func:`client_view`: the rule asked about a
  hidden probe.
* **Items** (:data:`CLIENT_VISIBLE`): in a project seen whole, every item. In a project seen
  as a client: items about a recording that is visible to clients now (its effective
  visibility) and, when they name a second recording (the commented one, the list a to-do
  was added or moved to), only while that one is too; membership items while the person is on
  the project; every other project item but webhooks' (``webhook_…``: team only).
* **Actors and what items name** (:meth:`Scope.actor`, :func:`sights`): redacted by
  :mod:`service.domain.redaction`, as on every channel: a client is told who acted only about
  themselves and the people of their projects (anyone else reads "Someone", Cairn itself
  "Cairn"), and a change naming a recording they may not see (the list a to-do moved from)
  is left out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

import asyncpg
import msgspec

from ..domain import redaction
from ..domain.access import (
    ProjectFacts,
    RecordingFacts,
    Viewer,
    can_see_recording,
    hidden_probe,
    sees_everyone,
)
from ..domain.activity import TEAM_ONLY
from ..domain.i18n import Locale
from ..domain.redaction import Sight, changes_mentions, known_people
from ..domain.sentences import sentence
from ..errors import NotFound
from ..events.base import FieldChange
from .access import recordings_by_id, visible_project, visible_projects
from .rows import columns

STAFF_VISIBLE: Final = "a.project_id = ANY($1::text[])"
"""Items of the projects seen whole (``$1``): every one of them."""

CLIENT_VISIBLE: Final = """
(a.project_id = ANY($1::text[])
 OR (a.project_id = ANY($2::text[]) AND CASE
        WHEN a.recording_id IS NOT NULL THEN coalesce(r.visible_to_clients, false)
             AND (a.parent_id IS NULL OR coalesce(rp.visible_to_clients, false))
        WHEN a.kind ^@ 'webhook_' THEN false
        WHEN a.person_id IS NOT NULL THEN EXISTS (
            SELECT 1 FROM project_members m
            WHERE m.project_id = a.project_id AND m.person_id = a.person_id)
        ELSE true END))
"""
"""Items of the projects seen whole (``$1``), and what clients see of those seen as a client
(``$2``); needs :data:`JOINS`."""

JOINS: Final = (
    "LEFT JOIN recordings r ON r.recording_id = a.recording_id "
    "LEFT JOIN recordings rp ON rp.recording_id = a.parent_id "
)
"""The recordings :data:`CLIENT_VISIBLE` reads (``r`` the target, ``rp`` the second one)."""

_NAMED = """
SELECT page.*, r.kind AS r_kind, r.status AS r_status, r.visible_to_clients AS r_visible,
       r.creator_id AS r_creator, r.title, rp.title AS parent_title, rp.kind AS parent_kind,
       p.name AS project_name, ac.name AS actor_name, ac.role = 'service' AS actor_service,
       pe.name AS person_name{extra}
FROM ({inner}) page
LEFT JOIN recordings r ON r.recording_id = page.recording_id
LEFT JOIN recordings rp ON rp.recording_id = page.parent_id
LEFT JOIN projects p ON p.project_id = page.project_id
LEFT JOIN people ac ON ac.person_id = page.actor_id
LEFT JOIN people pe ON pe.person_id = page.person_id
ORDER BY page.seq {order}
"""


def named(inner: str, order: str, *, content: bool = False) -> str:
    """The rows of ``inner`` (a query over ``activity``) with the current names and titles
    they mention and the facts :meth:`Scope.may_see` needs, ordered by ``seq`` ``order``;
    ``content`` adds the target's body (column ``content``)."""
    return _NAMED.format(inner=inner, order=order, extra=", r.content" if content else "")


def client_view(viewer: Viewer, facts: ProjectFacts) -> bool:
    """Whether ``viewer`` sees only client-visible recordings of the project: the shared rule
    :func:`~service.domain.access.can_see_recording`, asked about a hidden probe."""
    return not can_see_recording(viewer, facts, hidden_probe(facts.project_id))


def split_projects(
    viewer: Viewer, projects: Mapping[str, ProjectFacts]
) -> tuple[list[str], list[str]]:
    """The ids of ``projects`` where ``viewer`` sees everything, and where only what clients see."""
    full: list[str] = []
    clients: list[str] = []
    for project_id, facts in projects.items():
        (clients if client_view(viewer, facts) else full).append(project_id)
    return full, clients


@dataclass(frozen=True)
class Actor:
    """Who did it, as the viewer is told: ``id`` None for Cairn and for someone the viewer
    may not be told about (or the directory lacks); ``service`` for a service account, whose
    ``name`` then says so ("Deploy bot (via integration)")."""

    id: str | None
    name: str
    service: bool = False


@dataclass(frozen=True)
class Scope:
    """What one viewer may read: the projects, split by whether the viewer sees every
    recording in them (``full``) or only the client-visible ones (``clients_only``).

    ``everything`` marks an admin's cross-project view (every project, no filter needed).
    ``people`` are the people a client may be told about (themselves and the people of the
    projects they see); None for viewers who see everyone.
    """

    viewer: Viewer
    projects: dict[str, ProjectFacts]
    full: tuple[str, ...]
    clients_only: tuple[str, ...]
    everything: bool
    people: frozenset[str] | None

    def narrowed(self, project_id: str) -> Scope:
        """The same viewer's scope over one of its projects (the people they may be told
        about stay those of every project they see).

        Raises:
            NotFound: ``project_id`` is not one of the scope's projects.
        """
        if project_id not in self.projects:
            raise NotFound("there is no such project")
        return replace(
            self,
            full=tuple(p for p in self.full if p == project_id),
            clients_only=tuple(p for p in self.clients_only if p == project_id),
            everything=False,
        )

    def visibility_class(self) -> str:
        """A string equal for two viewers exactly when they see the same items named the same
        way (part of feed ETags)."""
        if self.everything:
            return "all"
        parts = ["f:" + ",".join(sorted(self.full)), "c:" + ",".join(sorted(self.clients_only))]
        if self.people is not None:
            parts.append("p:" + ",".join(sorted(self.people)))
        return "|".join(parts)

    def where(self) -> tuple[str, list[Any], str]:
        """(a WHERE clause over ``activity a`` keeping what the viewer may see, its arguments
        from ``$1``, the joins it needs: :data:`JOINS` or nothing)."""
        if self.clients_only:
            return CLIENT_VISIBLE, [list(self.full), list(self.clients_only)], JOINS
        if self.everything:
            return "true", [], ""
        return STAFF_VISIBLE, [list(self.full)], ""

    def may_see(self, row: asyncpg.Record) -> bool:
        """Whether the viewer may see the item of a :func:`named` row: the one authorisation,
        asked once more per row, so that nothing can show what ``can_see_recording`` refuses."""
        if row["recording_id"] is None:
            # Items only a project's team is told of (webhooks): never to a client's view.
            return (
                row["kind"] not in TEAM_ONLY or self.everything or (row["project_id"] in self.full)
            )
        facts = self.projects.get(row["project_id"])
        if facts is None:
            return self.everything
        if row["r_kind"] is None:
            return row["project_id"] in self.full
        recording = RecordingFacts(
            **columns(
                row,
                "recording_id",
                "project_id",
                kind="r_kind",
                status="r_status",
                visible_to_clients="r_visible",
                creator_id="r_creator",
            )
        )
        return can_see_recording(self.viewer, facts, recording)

    def actor(self, row: asyncpg.Record, locale: Locale) -> Actor:
        """Who did the item of a :func:`named` row, as the viewer may be told (the names
        Cairn gives, "Someone" and "Cairn", in ``locale``)."""
        actor_id = row["actor_id"]
        if actor_id == redaction.CAIRN_ID:
            return Actor(None, redaction.cairn(locale))
        shown, name = redaction.named(
            Sight(people=self.people), actor_id, row["actor_name"], locale
        )
        if shown is None or name is None:
            return Actor(None, redaction.someone(locale))
        if row["actor_service"]:
            return Actor(shown, redaction.via_integration(name, locale), service=True)
        return Actor(shown, name)

    def sentence(self, row: asyncpg.Record, actor: Actor, locale: Locale) -> str:
        """The human sentence of the item of a :func:`named` row, with current names, in
        ``locale``."""
        return sentence(
            row["kind"],
            locale=locale,
            actor=actor.name,
            title=row["title"],
            recording_kind=row["recording_kind"],
            parent=row["parent_title"],
            person=row["person_name"],
            project=row["project_name"],
            due_in=_due_in(row),
        )


def _due_in(row: asyncpg.Record) -> dt.timedelta | None:
    """How long was left until the due date ended when a "due soon" row's alert was raised
    (its change ``due_at``, from its ``at``); None for other rows."""
    if not row["kind"].endswith("_due_soon"):
        return None
    for change in changes_of(row):
        if change.field == "due_at" and isinstance(change.after, str):
            raised: dt.datetime = row["at"]
            return dt.datetime.fromisoformat(change.after) - raised
    return None


def scope_for(
    viewer: Viewer, projects: dict[str, ProjectFacts], *, everything: bool = False
) -> Scope:
    """The scope of ``viewer`` over ``projects`` (projects they may see); ``everything`` when
    they are all the projects there are and no filter is wanted (it holds only if the viewer
    sees all of each)."""
    full, clients_only = split_projects(viewer, projects)
    people = known_people(viewer, projects.values())
    return Scope(
        viewer=viewer,
        projects=projects,
        full=tuple(full),
        clients_only=tuple(clients_only),
        everything=everything and not clients_only,
        people=people,
    )


async def project_scope(pool: asyncpg.Pool, viewer: Viewer, project_id: str) -> Scope:
    """The viewer's scope over one project (a client's knows the people of every project
    they see, as :func:`~service.domain.access.can_see_person` does).

    Raises:
        NotFound: no such project, or the viewer may not see it.
    """
    if not sees_everyone(viewer):
        return (await viewer_scope(pool, viewer)).narrowed(project_id)
    facts = await visible_project(pool, viewer, project_id)
    return scope_for(viewer, {project_id: facts})


async def viewer_scope(pool: asyncpg.Pool, viewer: Viewer, *, everything: bool = False) -> Scope:
    """The viewer's scope over every project they may see (``everything``: see
    :func:`scope_for`; given to admins only)."""
    projects = await visible_projects(pool, viewer)
    # A token limited to some projects is no cross-project view, whoever holds it.
    unlimited = viewer.role == "admin" and viewer.scope.projects is None
    return scope_for(viewer, projects, everything=everything and unlimited)


def changes_of(row: asyncpg.Record) -> list[FieldChange]:
    """The changes an activity row records (before/after values)."""
    return msgspec.json.decode(row["changes"], type=list[FieldChange])


async def sights(
    pool: asyncpg.Pool, scope: Scope, rows: Sequence[asyncpg.Record]
) -> dict[str, Sight]:
    """The viewer's sight (:mod:`service.domain.redaction`) over the items of ``rows``
    (:func:`named` rows it may see), by project: the recordings they name, looked up for the
    projects seen as a client (one query), and the people the scope knows."""
    named: set[str] = set()
    for row in rows:
        if row["project_id"] in scope.clients_only:
            named.update(r for r in (row["recording_id"], row["parent_id"]) if r is not None)
            named |= changes_mentions(changes_of(row)).recordings
    facts = [f for f, _ in (await recordings_by_id(pool, named)).values()] if named else []
    found: dict[str, Sight] = {}
    for project_id in {row["project_id"] for row in rows}:
        project = scope.projects.get(project_id)
        if project is None:
            found[project_id] = Sight(people=scope.people)
        else:
            mine = (f for f in facts if f.project_id == project_id)
            found[project_id] = redaction.sight(
                scope.viewer, project, recordings=mine, people=scope.people
            )
    return found

"""Recordings as the ``recordings`` read model holds them (tables ``recordings`` and
``subscriptions``), with the names they mention, for a viewer.

Every row handed out has been through :func:`~service.domain.access.can_see_recording`: a
hidden item is a :class:`~service.errors.NotFound`, the same as one that does not exist.
Lists are :class:`Selection`\\ s (one per kind of list, made by the functions below) paged
by their sort key, never by an offset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

import asyncpg

from ..domain.access import ProjectFacts, Viewer, can_see_recording, kind_label
from ..errors import NotFound
from ..events.recordings import RecordingKind
from .access import recording_facts

# A recording row with everything its envelope names: the parent's title, the project's name
# and the names of the people it refers to (assignee names in assignee order), so rendering
# needs no further queries.
_SELECT: Final = """
SELECT r.*, p.title AS parent_title, pr.name AS project_name, cp.name AS creator_name,
       cp.role = 'service' AS creator_service,
       xp.name AS completer_name, rp.name AS responsible_name,
       CASE WHEN cardinality(r.assignee_ids) > 0 THEN ARRAY(
           SELECT a.name FROM unnest(r.assignee_ids) WITH ORDINALITY u(person_id, n)
           LEFT JOIN people a ON a.person_id = u.person_id ORDER BY u.n
       ) END AS assignee_names
FROM recordings r
LEFT JOIN recordings p ON p.recording_id = r.parent_id
LEFT JOIN projects pr ON pr.project_id = r.project_id
LEFT JOIN people cp ON cp.person_id = r.creator_id
LEFT JOIN people xp ON xp.person_id = r.completer_id
LEFT JOIN people rp ON rp.person_id = r.responsible_id
"""
# One recording with the access facts of its project for one viewer ($2): the project's
# status and client setting, and the viewer's own role there (NULL: not a member). The
# access rules consult no other member, so this stands in for the whole member list.
_VISIBLE: Final = f"""
SELECT * FROM ({_SELECT} WHERE r.recording_id = $1) one
CROSS JOIN LATERAL (
    SELECT pf.status AS project_status, pf.clients_enabled AS project_clients_enabled,
           (SELECT m.project_role FROM project_members m
            WHERE m.project_id = pf.project_id AND m.person_id = $2) AS viewer_role
    FROM projects pf WHERE pf.project_id = one.project_id
) facts
"""
_SUBSCRIBERS: Final = (
    "SELECT s.person_id, p.name FROM subscriptions s LEFT JOIN people p USING (person_id) "
    "WHERE s.recording_id = $1 ORDER BY p.name, s.person_id"
)
_LIST_SIZE: Final = "SELECT count(*) FROM recordings WHERE parent_id = $1 AND kind = 'todo'"
_ASSIGNED: Final = (
    "SELECT DISTINCT unnest(assignee_ids) AS person_id FROM recordings "
    "WHERE parent_id = $1 AND kind = 'todo'"
)


async def visible_row(
    pool: asyncpg.Pool, viewer: Viewer, recording_id: str, kind: RecordingKind | None = None
) -> asyncpg.Record:
    """The row of a recording ``viewer`` may see, of ``kind`` if given, with its project's
    facts as far as the viewer is concerned (:func:`viewer_facts`).

    Raises:
        NotFound: no such recording (of that kind), or the viewer may not see it.
    """
    row = await pool.fetchrow(_VISIBLE, recording_id, viewer.person_id)
    missing = NotFound(f"there is no such {kind_label(kind)}")
    if row is None or (kind is not None and row["kind"] != kind):
        raise missing
    if not can_see_recording(viewer, viewer_facts(viewer, row), recording_facts(row)):
        raise missing
    return row


async def rows_by_id(pool: asyncpg.Pool, recording_ids: Sequence[str]) -> dict[str, asyncpg.Record]:
    """The rows of the given recordings (like :func:`visible_row`'s, without the project
    facts), by id; missing ids are left out. Who may see them is the caller's to ask."""
    if not recording_ids:
        return {}
    rows = await pool.fetch(
        f"{_SELECT} WHERE r.recording_id = ANY($1::text[])", list(recording_ids)
    )
    return {r["recording_id"]: r for r in rows}


def viewer_facts(viewer: Viewer, row: asyncpg.Record) -> ProjectFacts:
    """The project facts of a :func:`visible_row` row as far as ``viewer`` is concerned:
    ``members`` holds the viewer's own membership only (all the access rules look at)."""
    role = row["viewer_role"]
    return ProjectFacts(
        project_id=row["project_id"],
        status=row["project_status"],
        clients_enabled=row["project_clients_enabled"],
        members={} if role is None else {viewer.person_id: role},
    )


async def active_todos(
    pool: asyncpg.Pool, list_ids: Sequence[str]
) -> dict[str, list[asyncpg.Record]]:
    """The active to-dos of each list, in position order (rows like :func:`visible_row`'s,
    without the project facts)."""
    todos: dict[str, list[asyncpg.Record]] = {list_id: [] for list_id in list_ids}
    if list_ids:
        for todo in await pool.fetch(
            f"{_SELECT} WHERE r.parent_id {_one_or_any(list_ids)} AND r.kind = 'todo' "
            "AND r.status = 'active' ORDER BY r.parent_id, r.position, r.seq",
            _one_or_all(list_ids),
        ):
            todos[todo["parent_id"]].append(todo)
    return todos


async def progress(pool: asyncpg.Pool, list_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Completed and total active to-dos of each list that has any."""
    if not list_ids:
        return {}
    rows = await pool.fetch(
        "SELECT parent_id, count(*) FILTER (WHERE completed) AS done, count(*) AS total "
        f"FROM recordings WHERE parent_id {_one_or_any(list_ids)} AND kind = 'todo' "
        "AND status = 'active' GROUP BY parent_id",
        _one_or_all(list_ids),
    )
    return {r["parent_id"]: (r["done"], r["total"]) for r in rows}


def _one_or_any(ids: Sequence[str]) -> str:
    """SQL comparing a column with the ids of :func:`_one_or_all` (parameter ``$1``).

    One id is compared with ``=``: PostgreSQL then settles on a generic plan for the prepared
    statement after a few runs, while ``= ANY($1)`` with a one-element array kept it planning
    every run (the estimate of a custom plan, which sees the array's size, always wins), which
    cost a to-do list's GET ~0.5 ms of the server's CPU: two thirds of its database time.
    """
    return "= $1::text" if len(ids) == 1 else "= ANY($1::text[])"


def _one_or_all(ids: Sequence[str]) -> str | list[str]:
    return ids[0] if len(ids) == 1 else list(ids)


async def subscribers(pool: asyncpg.Pool, recording_id: str) -> list[tuple[str, str | None]]:
    """Who is subscribed to a recording: (person id, name or None), by name."""
    rows = await pool.fetch(_SUBSCRIBERS, recording_id)
    return [(r["person_id"], r["name"]) for r in rows]


async def list_size(pool: asyncpg.Pool, list_id: str) -> int:
    """How many to-dos a list holds, whatever their status or completion."""
    return int(await pool.fetchval(_LIST_SIZE, list_id))


async def assigned_under(pool: asyncpg.Pool, list_id: str) -> set[str]:
    """The people assigned to any to-do of a list, whatever its status (none for a
    recording that is not a list)."""
    return {r["person_id"] for r in await pool.fetch(_ASSIGNED, list_id)}


# ----------------------------------------------------------------- lists


@dataclass(frozen=True)
class Key:
    """One column of a list's sort key: its SQL expression over ``r`` and its SQL type."""

    column: str
    sql_type: str


_SEQ: Final = (Key("r.seq", "bigint"),)
_POSITION: Final = (Key("r.position", "integer"), Key("r.seq", "bigint"))
_DUE: Final = (Key("r.due_on", "date"), Key("r.seq", "bigint"))


@dataclass(frozen=True)
class Selection:
    """Which recordings a list holds (SQL over ``r`` with its parameters from ``$1``) and
    its order: the sort key's columns, and whether descending."""

    where: str
    args: tuple[Any, ...]
    keys: tuple[Key, ...]
    descending: bool = False

    def cursor_of(self, row: asyncpg.Record) -> list[str]:
        """The sort key of ``row``, as a page cursor carries it."""
        return [str(row[k.column.removeprefix("r.")]) for k in self.keys]


RECORDING_STATUSES: Final = ("active", "archived", "trashed")
"""What ``?status=`` may ask for in a list of recordings."""
TODO_FILTERS: Final = {
    "open": "r.status = 'active' AND NOT r.completed",
    "completed": "r.status = 'active' AND r.completed",
    "all": "r.status = 'active'",
    "archived": "r.status = 'archived'",
    "trashed": "r.status = 'trashed'",
}
"""The to-dos of a list each filter keeps (``?status=`` of a list's to-dos)."""
MILESTONE_FILTERS: Final = {
    "all": "true",
    "upcoming": "NOT r.completed AND r.due_on >= $3",
    "late": "NOT r.completed AND r.due_on < $3",
    "completed": "r.completed",
}
"""The milestones each filter keeps (``$3``: today)."""


def messages(project_id: str, status: str) -> Selection:
    """A project's messages of ``status``, newest first."""
    where = "r.project_id = $1 AND r.kind = 'message' AND r.status = $2"
    return Selection(where, (project_id, status), _SEQ, descending=True)


def todolists(project_id: str, status: str) -> Selection:
    """A project's to-do lists of ``status``, oldest first."""
    where = "r.project_id = $1 AND r.kind = 'todolist' AND r.status = $2"
    return Selection(where, (project_id, status), _SEQ)


def todos(list_id: str, which: str, assignee_id: str | None = None) -> Selection:
    """A list's to-dos kept by filter ``which`` (:data:`TODO_FILTERS`), assigned to
    ``assignee_id`` if given, in the list's order."""
    where = f"r.parent_id = $1 AND r.kind = 'todo' AND {TODO_FILTERS[which]}"
    args: tuple[Any, ...] = (list_id,)
    if assignee_id is not None:
        args = (*args, [assignee_id])
        where += f" AND r.assignee_ids @> ${len(args)}::text[]"
    return Selection(where, args, _POSITION)


def comments(parent_id: str, status: str) -> Selection:
    """The comments of ``status`` under a recording, oldest first."""
    where = "r.parent_id = $1 AND r.kind = 'comment' AND r.status = $2"
    return Selection(where, (parent_id, status), _SEQ)


def uploads(
    project_id: str, status: str, folder: str | None = None, content_type: str | None = None
) -> Selection:
    """A project's uploads of ``status``, newest first; in ``folder`` only if given; of
    ``content_type`` only if given (``type/subtype``, or ``type/*`` for every subtype)."""
    where = "r.project_id = $1 AND r.kind = 'upload' AND r.status = $2"
    args: tuple[Any, ...] = (project_id, status)
    if folder is not None:
        args = (*args, folder)
        where += f" AND r.folder = ${len(args)}"
    if content_type is not None and content_type.endswith("/*"):
        args = (*args, content_type.removesuffix("*"))
        where += f" AND starts_with(r.content_type, ${len(args)})"
    elif content_type is not None:
        args = (*args, content_type)
        where += f" AND r.content_type = ${len(args)}"
    return Selection(where, args, _SEQ, descending=True)


_VERSIONS: Final = (
    "SELECT v.*, p.name AS creator_name FROM upload_versions v "
    "LEFT JOIN people p ON p.person_id = v.created_by WHERE v.recording_id = $1 ORDER BY v.n"
)


async def versions(pool: asyncpg.Pool, upload_id: str) -> list[asyncpg.Record]:
    """Every version of an upload, oldest (1) first, with its creator's name
    (``creator_name``, None for a person the directory lacks). Who may see the upload is
    the caller's to ask (:func:`visible_row`)."""
    return list(await pool.fetch(_VERSIONS, upload_id))


def milestones(project_id: str, status: str, which: str, today: date) -> Selection:
    """A project's milestones of ``status`` kept by filter ``which``
    (:data:`MILESTONE_FILTERS`, late and upcoming as of ``today``), soonest due first."""
    where = f"r.project_id = $1 AND r.kind = 'milestone' AND r.status = $2 AND {MILESTONE_FILTERS[which]}"
    args: tuple[Any, ...] = (project_id, status)
    if "$3" in where:
        args = (*args, today)
    return Selection(where, args, _DUE)


async def page(
    pool: asyncpg.Pool,
    viewer: Viewer,
    project: ProjectFacts,
    selection: Selection,
    *,
    after: Sequence[Any] | None,
    limit: int,
    clients_only: bool,
) -> tuple[list[asyncpg.Record], int, list[str] | None]:
    """One page of ``selection`` as ``viewer`` may see it in ``project``: the rows after sort
    key ``after`` (None: the first page; else a value of each key's SQL type: an ``int``
    for ``bigint`` and ``integer``, a ``date`` for ``date``), at most ``limit``, in order;
    how many the whole list holds; and the sort key the next page starts after, as text
    (:meth:`Selection.cursor_of`; None: this is the last page).

    ``clients_only``: the viewer sees only what clients see in the project.

    Raises:
        ValueError: ``after`` is not a sort key of this selection.
    """
    keys = selection.keys
    params = list(selection.args)
    where = selection.where
    if clients_only:
        where = f"({where}) AND r.visible_to_clients"
    total = int(await pool.fetchval(f"SELECT count(*) FROM recordings r WHERE {where}", *params))
    condition = where
    if after is not None:
        if len(after) != len(keys):
            raise ValueError("not a sort key of this list")
        slots = []
        for key, value in zip(keys, after, strict=True):
            params.append(value)
            slots.append(f"${len(params)}::{key.sql_type}")
        columns = ", ".join(k.column for k in keys)
        condition = (
            f"({where}) AND ({columns}) {'<' if selection.descending else '>'} ({', '.join(slots)})"
        )
    direction = " DESC" if selection.descending else ""
    sort = ", ".join(f"{k.column}{direction}" for k in keys)
    params.append(limit + 1)
    rows = await pool.fetch(
        f"{_SELECT} WHERE {condition} ORDER BY {sort} LIMIT ${len(params)}", *params
    )
    following = selection.cursor_of(rows[limit - 1]) if len(rows) > limit else None
    # The SQL filter above already keeps clients to what they see; the access rule has the
    # last word anyway, so a change of the rule cannot leak through a stale SQL filter.
    shown = [r for r in rows[:limit] if can_see_recording(viewer, project, recording_facts(r))]
    return shown, total, following

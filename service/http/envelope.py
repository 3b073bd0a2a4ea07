"""The one JSON envelope of recordings, and reading recordings from the read model.

Every recording answers with the same envelope (``id``, ``type``, ``status``,
``visible_to_clients``, ``created_at``, ``updated_at``, ``creator``, ``parent``, ``project``,
``url``, ``app_url``) plus the fields of its kind; ``type`` is the tag of the union
:data:`Recording`. Reads come from the ``recordings`` projection and every row goes through
:func:`~service.domain.access.can_see_recording` before it leaves: a hidden item is a 404, the
same as one that does not exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any, Final

import asyncpg
import msgspec

from ..domain.access import ProjectFacts, can_see_recording, kind_label
from ..errors import NotFound
from ..events.recordings import RecordingKind
from ..reads.access import recording_facts, visible_project
from ..reads.visibility import client_view
from .api import Reply
from .context import Ctx
from .paging import cursor, page_headers
from .problems import ApiError

UNSET = msgspec.UNSET

PATHS: Final[dict[str, str]] = {
    "message": "messages",
    "comment": "comments",
    "todolist": "todolists",
    "todo": "todos",
    "milestone": "milestones",
}
"""The collection of each kind's flat route: ``/v1/<collection>/{id}``."""


def api_url(ctx: Ctx, path: str) -> str:
    """The absolute URL of API path ``path`` on the server the request came to."""
    return str(ctx.request.base_url).rstrip("/") + path


def recording_url(ctx: Ctx, kind: str, recording_id: str) -> str:
    """The API URL of a recording: its kind's flat route (``/v1/recordings/{id}`` for a kind
    without one)."""
    return api_url(ctx, f"/v1/{PATHS.get(kind, 'recordings')}/{recording_id}")


def recording_app_url(ctx: Ctx, kind: str, recording_id: str, project_id: str) -> str:
    """The front end's URL of a recording (``app_url_template``)."""
    return ctx.settings.app_url_template.format(type=kind, id=recording_id, project_id=project_id)


class PersonRef(msgspec.Struct, frozen=True, kw_only=True):
    """Someone named in a recording (``name`` is null for a person the directory lacks)."""

    id: str
    name: str | None


class ProjectRef(msgspec.Struct, frozen=True, kw_only=True):
    """The project a recording belongs to."""

    id: str
    name: str | None
    url: str


class ParentRef(msgspec.Struct, frozen=True, kw_only=True):
    """What a comment is under, or the list a to-do is in."""

    id: str
    type: str
    title: str | None
    url: str


class Progress(msgspec.Struct, frozen=True, kw_only=True):
    """Completed and total active to-dos of a list."""

    completed: int
    total: int


class Envelope(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """The fields every recording has; ``type`` names the kind.

    ``status`` is the recording's own (``active``, ``archived``, ``trashed``);
    ``visible_to_clients`` is effective: a comment's or to-do's is its parent's or list's
    (``inherits_visibility`` is then true).
    """

    id: str
    status: str
    visible_to_clients: bool
    inherits_visibility: bool
    created_at: datetime
    updated_at: datetime
    creator: PersonRef
    parent: ParentRef | None
    project: ProjectRef
    url: str
    app_url: str
    comments_count: int
    subscription_url: str


class Message(Envelope, frozen=True, kw_only=True, tag="message"):
    """A message on a project's message board; ``body`` is sanitised HTML."""

    subject: str
    body: str | None
    category: str | None
    comments_url: str


class Comment(Envelope, frozen=True, kw_only=True, tag="comment"):
    """A comment under another recording (its ``parent``); ``content`` is sanitised HTML."""

    content: str | None


class Todo(Envelope, frozen=True, kw_only=True, tag="todo"):
    """A to-do; ``position`` is its 1-based place in its list (``parent``)."""

    content: str
    notes: str | None
    todolist_id: str
    position: int
    assignees: list[PersonRef]
    starts_on: date | None
    due_on: date | None
    completed: bool
    completed_at: datetime | None
    completer: PersonRef | None
    comments_url: str
    completion_url: str


class Todolist(Envelope, frozen=True, kw_only=True, tag="todolist"):
    """A to-do list with its progress; ``todos`` only when the list itself is asked for."""

    name: str
    description: str | None
    progress: Progress
    todos_url: str
    comments_url: str
    todos: list[Todo] | msgspec.UnsetType = UNSET


class Milestone(Envelope, frozen=True, kw_only=True, tag="milestone"):
    """A dated goal; ``late`` means due before today (UTC) and not completed."""

    title: str
    notes: str | None
    due_on: date
    late: bool
    responsible: PersonRef | None
    completed: bool
    completed_at: datetime | None
    completer: PersonRef | None
    comments_url: str
    completion_url: str


Recording = Message | Comment | Todolist | Todo | Milestone
"""Any recording, tagged by ``type``."""

# A recording row with everything its envelope names: the parent's title, the project's name
# and the names of the people it refers to (assignee names in assignee order), so rendering
# needs no further queries.
_SELECT: Final = """
SELECT r.*, p.title AS parent_title, pr.name AS project_name, cp.name AS creator_name,
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
_VISIBLE = f"""
SELECT * FROM ({_SELECT} WHERE r.recording_id = $1) one
CROSS JOIN LATERAL (
    SELECT pf.status AS project_status, pf.clients_enabled AS project_clients_enabled,
           (SELECT m.project_role FROM project_members m
            WHERE m.project_id = pf.project_id AND m.person_id = $2) AS viewer_role
    FROM projects pf WHERE pf.project_id = one.project_id
) facts
"""


def sees_hidden(ctx: Ctx, project: ProjectFacts) -> bool:
    """Whether the caller sees the project's recordings hidden from clients (not a client)."""
    return not client_view(ctx.me, project)


async def visible_row(
    ctx: Ctx, recording_id: str, kind: RecordingKind | None = None
) -> asyncpg.Record:
    """The read-model row of a recording the caller may see, of ``kind`` if given.

    Raises:
        NotFound: no such recording (of that kind), or the caller may not see it.
    """
    row = await ctx.store.pool.fetchrow(_VISIBLE, recording_id, ctx.me.person_id)
    missing = NotFound(f"there is no such {kind_label(kind)}")
    if row is None or (kind is not None and row["kind"] != kind):
        raise missing
    if not can_see_recording(ctx.me, viewer_facts(ctx, row), recording_facts(row)):
        raise missing
    return row


def viewer_facts(ctx: Ctx, row: asyncpg.Record) -> ProjectFacts:
    """The project facts of a :func:`visible_row` row as far as the caller is concerned:
    ``members`` holds the caller's own membership only (all the access rules look at)."""
    role = row["viewer_role"]
    return ProjectFacts(
        project_id=row["project_id"],
        status=row["project_status"],
        clients_enabled=row["project_clients_enabled"],
        members={} if role is None else {ctx.me.person_id: role},
    )


async def show(
    ctx: Ctx,
    recording_id: str,
    *,
    kind: RecordingKind | None = None,
    status: int = 200,
    with_todos: bool = False,
) -> Reply:
    """A reply with one visible recording (of ``kind``, if given); ``Location`` too when
    ``status`` is 201. ``with_todos`` adds a list's to-dos.

    Raises:
        NotFound: see :func:`visible_row`.
    """
    row = await visible_row(ctx, recording_id, kind)
    body = (await render(ctx, [row], with_todos=with_todos))[0]
    headers = {"Location": body.url} if status == 201 else {}
    return Reply(body, status=status, headers=headers)


async def render(
    ctx: Ctx, rows: Sequence[asyncpg.Record], *, with_todos: bool = False
) -> list[Recording]:
    """The envelopes of ``rows`` (already checked to be visible), in the same order.

    ``with_todos`` adds each list's active to-dos (in position order) to to-do lists.
    """
    pool = ctx.store.pool
    lists = [r["recording_id"] for r in rows if r["kind"] == "todolist"]
    todos: dict[str, list[asyncpg.Record]] = {list_id: [] for list_id in lists}
    progress: dict[str, Progress] = {}
    if with_todos and lists:
        for todo in await pool.fetch(
            f"{_SELECT} WHERE r.parent_id {_one_or_any(lists)} AND r.kind = 'todo' "
            "AND r.status = 'active' ORDER BY r.parent_id, r.position, r.seq",
            _one_or_all(lists),
        ):
            todos[todo["parent_id"]].append(todo)
        # Progress counts exactly the to-dos just read (the list's active ones).
        for list_id, group in todos.items():
            done = sum(1 for t in group if t["completed"])
            progress[list_id] = Progress(completed=done, total=len(group))
    elif lists:
        for r in await pool.fetch(
            "SELECT parent_id, count(*) FILTER (WHERE completed) AS done, count(*) AS total "
            f"FROM recordings WHERE parent_id {_one_or_any(lists)} AND kind = 'todo' "
            "AND status = 'active' GROUP BY parent_id",
            _one_or_all(lists),
        ):
            progress[r["parent_id"]] = Progress(completed=r["done"], total=r["total"])
    out = _Renderer(ctx)
    result: list[Recording] = []
    for row in rows:
        item = out.one(row, progress)
        if with_todos and isinstance(item, Todolist):
            todo_items = [out.one(t, progress) for t in todos[row["recording_id"]]]
            item = msgspec.structs.replace(
                item, todos=[t for t in todo_items if isinstance(t, Todo)]
            )
        result.append(item)
    return result


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


class _Renderer:
    def __init__(self, ctx: Ctx) -> None:
        self.base = str(ctx.request.base_url).rstrip("/")
        self.template = ctx.settings.app_url_template
        self.today = datetime.now(UTC).date()

    @staticmethod
    def person(person_id: str | None, name: str | None) -> PersonRef | None:
        if person_id is None:
            return None
        return PersonRef(id=person_id, name=name)

    def url(self, kind: str, recording_id: str) -> str:
        return f"{self.base}/v1/{PATHS[kind]}/{recording_id}"

    def one(self, row: asyncpg.Record, progress: dict[str, Progress]) -> Recording:
        kind: str = row["kind"]
        rid: str = row["recording_id"]
        pid: str = row["project_id"]
        parent = None
        if row["parent_id"] is not None:
            parent = ParentRef(
                id=row["parent_id"],
                type=row["parent_kind"],
                title=row["parent_title"],
                url=self.url(row["parent_kind"], row["parent_id"]),
            )
        generic = f"{self.base}/v1/recordings/{rid}"
        common: dict[str, Any] = {
            "id": rid,
            "status": row["status"],
            "visible_to_clients": row["visible_to_clients"],
            "inherits_visibility": row["own_visible_to_clients"] is None,
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
            "creator": PersonRef(id=row["creator_id"], name=row["creator_name"]),
            "parent": parent,
            "project": ProjectRef(
                id=pid, name=row["project_name"], url=f"{self.base}/v1/projects/{pid}"
            ),
            "url": self.url(kind, rid),
            "app_url": self.template.format(type=kind, id=rid, project_id=pid),
            "comments_count": row["comments_count"],
            "subscription_url": f"{generic}/subscription",
        }
        comments_url = f"{generic}/comments"
        if kind == "message":
            return Message(
                **common,
                subject=row["title"],
                body=row["content"],
                category=row["category"],
                comments_url=comments_url,
            )
        if kind == "comment":
            return Comment(**common, content=row["content"])
        if kind == "todolist":
            return Todolist(
                **common,
                name=row["title"],
                description=row["content"],
                progress=progress.get(rid, Progress(completed=0, total=0)),
                todos_url=f"{self.url(kind, rid)}/todos",
                comments_url=comments_url,
            )
        if kind == "todo":
            return Todo(
                **common,
                content=row["title"],
                notes=row["content"],
                todolist_id=row["parent_id"],
                position=row["position"] or 0,
                assignees=[
                    PersonRef(id=p, name=n)
                    for p, n in zip(row["assignee_ids"], row["assignee_names"] or (), strict=True)
                ],
                starts_on=row["starts_on"],
                due_on=row["due_on"],
                completed=row["completed"],
                completed_at=row["completed_at"],
                completer=self.person(row["completer_id"], row["completer_name"]),
                comments_url=comments_url,
                completion_url=f"{self.url(kind, rid)}/completion",
            )
        return Milestone(
            **common,
            title=row["title"],
            notes=row["content"],
            due_on=row["due_on"],
            late=not row["completed"] and row["due_on"] < self.today,
            responsible=self.person(row["responsible_id"], row["responsible_name"]),
            completed=row["completed"],
            completed_at=row["completed_at"],
            completer=self.person(row["completer_id"], row["completer_name"]),
            comments_url=comments_url,
            completion_url=f"{self.url(kind, rid)}/completion",
        )


# ----------------------------------------------------------------- lists


class Key(msgspec.Struct, frozen=True):
    """One column of a list's sort key: its SQL expression over ``r`` and its SQL type."""

    column: str
    sql_type: str


SEQ_DESC: Final = ((Key("r.seq", "bigint"),), True)
"""Newest first (creation order, reversed)."""
SEQ_ASC: Final = ((Key("r.seq", "bigint"),), False)
"""Oldest first."""
POSITION: Final = ((Key("r.position", "integer"), Key("r.seq", "bigint")), False)
"""A list's order."""
DUE: Final = ((Key("r.due_on", "date"), Key("r.seq", "bigint")), False)
"""Soonest due first."""


async def page(
    ctx: Ctx,
    where: str,
    args: Sequence[Any],
    order: tuple[tuple[Key, ...], bool],
    *,
    project: ProjectFacts,
) -> Reply:
    """One page of the recordings matching ``where`` (SQL over ``r``, parameters ``$1``...),
    visible to the caller, sorted by ``order``; ``?limit=`` and ``?cursor=`` apply.

    The cursor is the last item's sort key, so items added meanwhile never shift a page.
    Answers with ``X-Total-Count`` and, when there is more, ``Link: <...>; rel="next"``.
    """
    keys, descending = order
    params = list(args)
    if not sees_hidden(ctx, project):
        where = f"({where}) AND r.visible_to_clients"
    total = await ctx.store.pool.fetchval(
        f"SELECT count(*) FROM recordings r WHERE {where}", *params
    )
    limit = ctx.limit()
    condition = where
    after = cursor(ctx, list[str])
    if after is not None:
        if len(after) != len(keys):
            raise ApiError(400, "?cursor= is not a cursor of this list")
        slots = []
        for key, value in zip(keys, after, strict=True):
            params.append(value)
            slots.append(f"${len(params)}::text::{key.sql_type}")
        columns = ", ".join(k.column for k in keys)
        condition = f"({where}) AND ({columns}) {'<' if descending else '>'} ({', '.join(slots)})"
    direction = " DESC" if descending else ""
    sort = ", ".join(f"{k.column}{direction}" for k in keys)
    params.append(limit + 1)
    rows = await ctx.store.pool.fetch(
        f"{_SELECT} WHERE {condition} ORDER BY {sort} LIMIT ${len(params)}", *params
    )
    headers = page_headers(
        ctx, rows, limit, total, lambda last: [str(last[k.column.removeprefix("r.")]) for k in keys]
    )
    # The SQL filter above already keeps clients to what they see; the access rule has the
    # last word anyway, so a change of the rule cannot leak through a stale SQL filter.
    rows = [r for r in rows[:limit] if can_see_recording(ctx.me, project, recording_facts(r))]
    return Reply(await render(ctx, rows), headers=headers)


async def project_for_list(ctx: Ctx) -> ProjectFacts:
    """The project of ``{project_id}``, if the caller may see it.

    Raises:
        NotFound: no such project, or the caller may not see it.
    """
    return await visible_project(ctx.store.pool, ctx.me, ctx.path("project_id"))


async def parent_for_list(
    ctx: Ctx, kind: RecordingKind | None = None
) -> tuple[asyncpg.Record, ProjectFacts]:
    """The recording of ``{id}`` (of ``kind`` if given) and its project, if the caller may
    see it.

    Raises:
        NotFound: no such recording, or the caller may not see it.
    """
    row = await visible_row(ctx, ctx.path("id"), kind)
    return row, viewer_facts(ctx, row)


def status_filter(ctx: Ctx) -> str:
    """``?status=active|archived|trashed`` (default ``active``: trashed items are not listed)."""
    return ctx.query_choice("status", ("active", "archived", "trashed"), "active")

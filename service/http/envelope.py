"""The one JSON envelope of recordings, and answering with recordings.

Every recording answers with the same envelope (``id``, ``type``, ``status``,
``visible_to_clients``, ``created_at``, ``updated_at``, ``creator``, ``parent``, ``project``,
``url``, ``app_url``) plus the fields of its kind; ``type`` is the tag of the union
:data:`Recording`. Rows come from :mod:`service.reads.recordings`, which lets through only
what the caller may see: a hidden item is a 404, the same as one that does not exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any, Final

import asyncpg
import msgspec

from ..domain import redaction
from ..domain.access import ProjectFacts
from ..domain.context import Timestamp
from ..domain.i18n import SOURCE, Locale
from ..domain.redaction import Mentions, Sight
from ..events.recordings import RecordingKind
from ..reads import recordings
from ..reads.access import sight_of, visible_project
from ..reads.visibility import client_view
from .api import Reply
from .context import Ctx
from .paging import next_page, sort_key

UNSET = msgspec.UNSET
_FILES: Final = msgspec.json.Decoder(list[dict[str, Any]])
"""The ``attachments`` column (jsonb, which asyncpg hands over as text)."""

PATHS: Final[dict[str, str]] = {
    "message": "messages",
    "comment": "comments",
    "todolist": "todolists",
    "todo": "todos",
    "milestone": "milestones",
    "upload": "uploads",
    "external_item": "recordings",
}
"""The collection of each kind's flat route: ``/v1/<collection>/{id}``."""


def api_url(ctx: Ctx, path: str) -> str:
    """The absolute URL of API path ``path`` on the server the request came to."""
    return str(ctx.request.base_url).rstrip("/") + path


def base_url(ctx: Ctx) -> str:
    """The absolute URL of the server the request came to, without a trailing slash."""
    return str(ctx.request.base_url).rstrip("/")


def avatar_url(base: str, person_id: str) -> str:
    """Where a person's picture is (the default one while they have none), on the server
    at ``base`` (:func:`base_url`): ``GET /v1/people/{id}/avatar``."""
    return f"{base}/v1/people/{person_id}/avatar"


def upload_download_url(base: str, upload_id: str, n: int | None = None) -> str:
    """Where an upload's current file (``n`` None) or version ``n`` is downloaded, on the
    server at ``base`` (:func:`base_url`)."""
    if n is None:
        return f"{base}/v1/uploads/{upload_id}/download"
    return f"{base}/v1/uploads/{upload_id}/versions/{n}/download"


def attachment_url(base: str, recording_id: str, sha256: str) -> str:
    """Where a message's or comment's attached file is downloaded, on the server at
    ``base`` (:func:`base_url`)."""
    return f"{base}/v1/recordings/{recording_id}/attachments/{sha256}/download"


def recording_url(ctx: Ctx, kind: str, recording_id: str) -> str:
    """The API URL of a recording: its kind's flat route (``/v1/recordings/{id}`` for a kind
    without one)."""
    return api_url(ctx, f"/v1/{PATHS.get(kind, 'recordings')}/{recording_id}")


def recording_app_url(ctx: Ctx, kind: str, recording_id: str, project_id: str) -> str:
    """The front end's URL of a recording (the ``app_url`` setting, ``CAIRN_APP_URL``)."""
    return ctx.settings.app_url.format(type=kind, id=recording_id, project_id=project_id)


class PersonRef(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Someone named in a recording (``name`` is null for a person the directory lacks).

    A person the caller may not be told about (a client is told about the people of their
    projects only) reads ``{"id": null, "name": "Someone"}`` (docs/ACCESS.md, "Redaction").
    """

    id: str | None
    name: str | None
    avatar_url: str | None = None
    """Their picture (:func:`avatar_url`); left out with a null ``id``."""
    service: bool = False
    """``true`` for a service account (an integration, not a human); left out otherwise."""


class RecordingProject(msgspec.Struct, frozen=True, kw_only=True):
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
    created_at: Timestamp
    updated_at: Timestamp
    creator: PersonRef
    parent: ParentRef | None
    project: RecordingProject
    url: str
    app_url: str
    comments_count: int
    subscription_url: str


class Attachment(msgspec.Struct, frozen=True, kw_only=True):
    """A file attached to a message or comment; ``sha256`` (lowercase hex) names it among
    the recording's attachments (:func:`attachment_url`)."""

    name: str
    size: int
    content_type: str
    sha256: str
    download_url: str


class Message(Envelope, frozen=True, kw_only=True, tag="message"):
    """A message on a project's message board; ``body`` is sanitised HTML."""

    subject: str
    body: str | None
    category: str | None
    comments_url: str
    attachments: list[Attachment]


class Comment(Envelope, frozen=True, kw_only=True, tag="comment"):
    """A comment under another recording (its ``parent``); ``content`` is sanitised HTML."""

    content: str | None
    attachments: list[Attachment]


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
    completed_at: Timestamp | None
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
    """A dated goal; ``late`` means due before today (in the caller's time zone) and not
    completed."""

    title: str
    notes: str | None
    due_on: date
    late: bool
    responsible: PersonRef | None
    completed: bool
    completed_at: Timestamp | None
    completer: PersonRef | None
    comments_url: str
    completion_url: str


class Upload(Envelope, frozen=True, kw_only=True, tag="upload"):
    """A file kept on a project with every version it had; ``name``, ``content_type``,
    ``size`` and ``sha256`` are its current (last) version's (``name`` as renamed since),
    ``description`` sanitised HTML, ``folder`` the name uploads are grouped by."""

    name: str
    description: str | None
    folder: str | None
    content_type: str
    size: int
    sha256: str
    versions_count: int
    download_url: str
    versions_url: str
    comments_url: str


class FeedRef(msgspec.Struct, frozen=True, kw_only=True):
    """The external feed subscription an item came from (its name when the item was
    posted)."""

    id: str
    title: str
    url: str


class ExternalItem(Envelope, frozen=True, kw_only=True, tag="external_item"):
    """An entry of an external RSS/Atom feed the project subscribes to, brought in by
    Cairn: its ``title``, ``link`` (the entry's address), ``summary`` (sanitised HTML) and
    ``published_at`` (as the feed gave it; None when it gave none). Commentable like any
    recording."""

    title: str
    link: str | None
    summary: str | None
    published_at: Timestamp | None
    feed: FeedRef
    comments_url: str


class Version(msgspec.Struct, frozen=True, kw_only=True):
    """One version of an upload (``n`` from 1), as its ``creator`` added it."""

    n: int
    name: str
    size: int
    content_type: str
    sha256: str
    creator: PersonRef
    created_at: Timestamp
    download_url: str


Recording = Message | Comment | Todolist | Todo | Milestone | Upload | ExternalItem
"""Any recording, tagged by ``type``."""


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
    return await recordings.visible_row(ctx.store.pool, ctx.me, recording_id, kind)


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
    project = recordings.viewer_facts(ctx.me, row)
    body = (await render(ctx, [row], project, with_todos=with_todos))[0]
    headers = {"Location": body.url} if status == 201 else {}
    return Reply(body, status=status, headers=headers, version=row["version"])


async def render(
    ctx: Ctx, rows: Sequence[asyncpg.Record], project: ProjectFacts, *, with_todos: bool = False
) -> list[Recording]:
    """The envelopes of ``rows`` (of ``project``, already checked to be visible), in the
    same order, with what they name redacted for the caller (:mod:`service.domain.redaction`:
    a parent they may not see is null, a person they may not be told about "Someone").

    ``with_todos`` adds each list's active to-dos (in position order) to to-do lists.
    """
    pool = ctx.store.pool
    lists = [r["recording_id"] for r in rows if r["kind"] == "todolist"]
    todos: dict[str, list[asyncpg.Record]] = {}
    progress: dict[str, Progress] = {}
    if with_todos and lists:
        todos = await recordings.active_todos(pool, lists)
        # Progress counts exactly the to-dos just read (the list's active ones).
        for list_id, group in todos.items():
            done = sum(1 for t in group if t["completed"])
            progress[list_id] = Progress(completed=done, total=len(group))
    elif lists:
        for list_id, (done, total) in (await recordings.progress(pool, lists)).items():
            progress[list_id] = Progress(completed=done, total=total)
    every = [*rows, *(t for group in todos.values() for t in group)]
    parents = frozenset(r["parent_id"] for r in every if r["parent_id"] is not None)
    sight = await sight_of(pool, ctx.me, project, Mentions(recordings=parents))
    # A milestone's "late" needs the caller's today, which costs a read: only answers with
    # a milestone pay for it.
    today = (await ctx.today()).date if any(r["kind"] == "milestone" for r in rows) else None
    out = _Renderer(ctx, sight, today)
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


def person_ref(
    sight: Sight, person_id: str, name: str | None, locale: Locale = SOURCE, *, base: str
) -> PersonRef:
    """A :class:`PersonRef` as the viewer of ``sight`` may be told it.

    ``locale``: the language of the name Cairn gives a person the viewer may not be told
    about. Resources (recordings, projects, subscribers) are data, the same in every
    language: they keep the source language's "Someone"; views written in the reader's
    language (the overview) give theirs (docs/API.md, "Languages").
    """
    shown, shown_name = redaction.named(sight, person_id, name, locale)
    picture = None if shown is None else avatar_url(base, shown)
    return PersonRef(id=shown, name=shown_name, avatar_url=picture)


def _service(ref: PersonRef, service: bool | None) -> PersonRef:
    """``ref`` marked as a service account's when it is one (and shown)."""
    if service and ref.id is not None:
        return msgspec.structs.replace(ref, service=True)
    return ref


class _Renderer:
    def __init__(self, ctx: Ctx, sight: Sight, today: date | None) -> None:
        self.base = str(ctx.request.base_url).rstrip("/")
        self.template = ctx.settings.app_url
        self.today = today  # the caller's (None: there is no milestone to render)
        self.sight = sight

    def _late(self, row: asyncpg.Record) -> bool:
        assert self.today is not None, "render() reads today when it renders a milestone"
        late: bool = not row["completed"] and row["due_on"] < self.today
        return late

    def person(self, person_id: str | None, name: str | None) -> PersonRef | None:
        if person_id is None:
            return None
        return person_ref(self.sight, person_id, name, base=self.base)

    def url(self, kind: str, recording_id: str) -> str:
        return f"{self.base}/v1/{PATHS[kind]}/{recording_id}"

    def attachments(self, row: asyncpg.Record) -> list[Attachment]:
        rid = row["recording_id"]
        return [
            Attachment(
                name=f["name"],
                size=f["size"],
                content_type=f["content_type"],
                sha256=f["sha256"],
                download_url=attachment_url(self.base, rid, f["sha256"]),
            )
            for f in _FILES.decode(row["attachments"])
        ]

    def one(self, row: asyncpg.Record, progress: dict[str, Progress]) -> Recording:
        kind: str = row["kind"]
        rid: str = row["recording_id"]
        pid: str = row["project_id"]
        parent = None
        if row["parent_id"] is not None and self.sight.shows_recording(row["parent_id"]):
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
            "creator": _service(
                person_ref(self.sight, row["creator_id"], row["creator_name"], base=self.base),
                row["creator_service"],
            ),
            "parent": parent,
            "project": RecordingProject(
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
                attachments=self.attachments(row),
            )
        if kind == "comment":
            return Comment(**common, content=row["content"], attachments=self.attachments(row))
        if kind == "upload":
            return Upload(
                **common,
                name=row["title"],
                description=row["content"],
                folder=row["folder"],
                content_type=row["content_type"],
                size=row["file_size"],
                sha256=row["file_sha256"],
                versions_count=row["versions_count"],
                download_url=upload_download_url(self.base, rid),
                versions_url=f"{self.url(kind, rid)}/versions",
                comments_url=comments_url,
            )
        if kind == "external_item":
            return ExternalItem(
                **common,
                title=row["title"],
                link=row["link"],
                summary=row["content"],
                published_at=row["published_at"],
                feed=FeedRef(
                    id=row["feed_id"],
                    title=row["category"] or "",
                    url=f"{self.base}/v1/external_feeds/{row['feed_id']}",
                ),
                comments_url=comments_url,
            )
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
                    person_ref(self.sight, p, n, base=self.base)
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
            late=self._late(row),
            responsible=self.person(row["responsible_id"], row["responsible_name"]),
            completed=row["completed"],
            completed_at=row["completed_at"],
            completer=self.person(row["completer_id"], row["completer_name"]),
            comments_url=comments_url,
            completion_url=f"{self.url(kind, rid)}/completion",
        )


# ----------------------------------------------------------------- lists


async def page(ctx: Ctx, selection: recordings.Selection, *, project: ProjectFacts) -> Reply:
    """One page of the recordings of ``selection`` visible to the caller; ``?limit=`` and
    ``?cursor=`` apply.

    The cursor is the last item's sort key, so items added meanwhile never shift a page.
    Answers with ``X-Total-Count`` and, when there is more, ``Link: <...>; rel="next"``.
    """
    after = sort_key(ctx, [k.sql_type for k in selection.keys])
    rows, total, following = await recordings.page(
        ctx.store.pool,
        ctx.me,
        project,
        selection,
        after=after,
        limit=ctx.limit(),
        clients_only=not sees_hidden(ctx, project),
    )
    headers = {"X-Total-Count": str(total), **next_page(ctx, following)}
    return Reply(await render(ctx, rows, project), headers=headers)


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
    return row, recordings.viewer_facts(ctx.me, row)


def status_filter(ctx: Ctx) -> str:
    """``?status=active|archived|trashed`` (default ``active``: trashed items are not listed)."""
    status: str = ctx.param("status", "active")
    return status

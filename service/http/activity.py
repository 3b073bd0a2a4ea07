"""Activity streams over HTTP: per project, per person, and everything the caller may see.

``GET /v1/projects/{id}/activity``, ``GET /v1/people/{id}/activity`` (what that person did),
``GET /v1/activity``. Newest first, paged by the activity read model's ``seq`` (stable while
items are added): ``Link`` rel=next (older) and rel=prev (newer). Filters: ``kind``
(repeatable or a comma list), ``type`` (a recording kind, or ``project`` for project-level
items), ``actor_id``, ``since`` (inclusive) and ``until`` (exclusive), RFC 3339.

Sentences, names and titles are the current ones (people, projects and recordings read
models), whatever they were when it happened; the excerpt is from the event itself. Sentences
and the words Cairn writes in excerpts are in the language ``Accept-Language`` prefers
(:meth:`Ctx.locale`), said by ``Content-Language``.

**Visibility** (docs/ACCESS.md, "Activity streams") is :mod:`service.reads.visibility`'s, shared
with the overview and the feeds: the SQL filter mirrors the access rules and every row is
asked once more of :func:`~service.domain.access.can_see_recording`. Client-visibility is the
target's current effective value, so hiding a list hides its whole past from clients.
:func:`entry` renders the items of other views (the overview).

With ``Accept: application/activity+json`` the page is a W3C Activity Streams 2.0
``OrderedCollectionPage`` (see :mod:`service.domain.as2` for the types).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Final, Literal

import asyncpg
import msgspec
from starlette.responses import Response

from ..domain import redaction
from ..domain.access import can_see_person
from ..domain.activity import excerpt_for
from ..domain.as2 import KINDS, OBJECT_TYPES, undone_type
from ..domain.context import Timestamp
from ..domain.i18n import Locale
from ..domain.redaction import Sight
from ..errors import NotFound
from ..events.base import FieldChange
from ..reads import activity, directory
from ..reads.visibility import Scope, changes_of, sights, viewer_scope
from .api import Api, Ctx, Reply
from .envelope import api_url, avatar_url, base_url, recording_url
from .paging import decode_cursor, encode_cursor
from .params import INT64_MAX, LIMIT, SINCE, UNTIL, Cursor, Param, PersonIdText
from .problems import ApiError, FieldError
from .reports import ProjectRef

api = Api()

AS2_CONTEXT: Final = "https://www.w3.org/ns/activitystreams"
AS2_MEDIA: Final = "application/activity+json"
_TAGS = ["activity"]
_QUERY: Final = {
    "kind": Param(
        "activity kinds, repeatable or comma-separated (e.g. todo_completed)",
        Annotated[str, msgspec.Meta(extra_json_schema={"enum": sorted(KINDS)})],
        repeated=True,
    ),
    "type": Param(
        "target type: message, comment, todolist, todo, milestone, upload, or project",
        Literal[
            "message",
            "comment",
            "todolist",
            "todo",
            "milestone",
            "upload",
            "external_item",
            "project",
        ],
    ),
    "actor_id": Param("only what this person did", PersonIdText),
    "since": SINCE,
    "until": UNTIL,
    "limit": LIMIT,
    "cursor": Param("from a Link rel=next or rel=prev", Cursor),
}
_Cursor = tuple[Literal["next", "prev"], Annotated[int, msgspec.Meta(ge=-1, le=INT64_MAX)]]
"""An activity cursor: the direction and the ``seq`` it starts from (-1: a ``prev`` page
above an empty one)."""


# ------------------------------------------------------------------ representations


class ActorRef(msgspec.Struct, frozen=True, kw_only=True):
    """Who did it. ``id`` and ``url`` are null for someone the caller may not see (a client
    is not told about people outside their projects) and for Cairn itself."""

    id: str | None
    name: str
    url: str | None
    avatar_url: str | None = None
    """Their picture (the default one while they have none); null with ``id``."""
    service: bool | msgspec.UnsetType = msgspec.UNSET
    """``true`` for a service account (an integration, not a human; its ``name`` says so);
    left out otherwise."""


class TargetRef(msgspec.Struct, frozen=True, kw_only=True):
    """What it was done to: a recording (``type`` its kind), a person, or the project."""

    id: str
    type: str
    title: str
    url: str


class ActivityEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One activity: ``kind`` for machines, ``sentence`` for people, ``changes`` the
    before/after values of the fields it changed."""

    kind: str
    sentence: str
    actor: ActorRef
    target: TargetRef
    parent: TargetRef | None
    project: ProjectRef
    at: Timestamp
    excerpt: str | None
    changes: list[FieldChange]
    position: int
    seq: int


# ------------------------------------------------------------------ routes


@api.get(
    "/v1/activity",
    summary="Everything the caller may see, newest first",
    response=list[ActivityEntry],
    query=_QUERY,
    tags=_TAGS,
)
async def all_activity(ctx: Ctx) -> Reply | Response:
    scope = await viewer_scope(ctx.store.pool, ctx.me)
    return await _page(ctx, scope, actor_id=None)


@api.get(
    "/v1/projects/{project_id}/activity",
    summary="A project's activity, newest first",
    response=list[ActivityEntry],
    query=_QUERY,
    tags=_TAGS,
)
async def project_activity(ctx: Ctx) -> Reply | Response:
    scope = (await viewer_scope(ctx.store.pool, ctx.me)).narrowed(ctx.path("project_id"))
    return await _page(ctx, scope, actor_id=None)


@api.get(
    "/v1/people/{person_id}/activity",
    summary="What a person did, newest first (in what the caller may see)",
    response=list[ActivityEntry],
    query={k: v for k, v in _QUERY.items() if k != "actor_id"},
    tags=_TAGS,
)
async def person_activity(ctx: Ctx) -> Reply | Response:
    person_id = ctx.path("person_id")
    scope = await viewer_scope(ctx.store.pool, ctx.me)
    if not can_see_person(ctx.me, person_id, scope.projects.values()):
        raise NotFound("there is no such person")
    if await directory.person(ctx.store.pool, person_id) is None:
        raise NotFound("there is no such person")
    return await _page(ctx, scope, actor_id=person_id)


# ------------------------------------------------------------------ the page


async def _page(ctx: Ctx, scope: Scope, *, actor_id: str | None) -> Reply | Response:
    wanted = activity.Filter(
        kinds=tuple(_kinds(ctx)),
        target_type=_target_type(ctx),
        actor_id=actor_id if actor_id is not None else ctx.param("actor_id"),
        since=ctx.param("since"),
        until=ctx.param("until"),
    )
    limit = ctx.limit()
    direction, at = _cursor(ctx)
    found = await activity.page(
        ctx.store.pool, scope, wanted, direction=direction, at=at, limit=limit
    )
    # The body depends on Accept (AS2 or not) and on the language it is written in.
    headers = {
        "X-Total-Count": str(found.total),
        "Content-Language": await ctx.locale(),
        "Vary": "Accept, Accept-Language",
    }
    next_url = None
    if found.oldest is not None and found.older:
        next_url = _url(ctx, "next", found.oldest)
    prev_url = None
    if found.newer:
        prev_url = _url(ctx, "prev", found.newest if found.newest is not None else (at or 0) - 1)
    links = [f'<{u}>; rel="{rel}"' for u, rel in ((next_url, "next"), (prev_url, "prev")) if u]
    if links:
        headers["Link"] = ", ".join(links)
    shown = await entries(ctx, scope, found.rows)
    if _wants_as2(ctx):
        return _as2_response(ctx, shown, found.rows, next_url, prev_url, headers)
    return Reply(shown, headers=headers)


# ------------------------------------------------------------------ query parameters


def _bad(name: str, detail: str) -> ApiError:
    return ApiError(400, detail, field_errors=[FieldError(field=name, detail=detail)])


def _kinds(ctx: Ctx) -> list[str]:
    kinds = [k.strip() for raw in ctx.param("kind", []) for k in raw.split(",") if k.strip()]
    unknown = sorted(set(kinds) - KINDS)
    if unknown:
        raise _bad("kind", f"unknown activity kind {', '.join(unknown)}")
    return kinds


def _target_type(ctx: Ctx) -> str | None:
    kind: str | None = ctx.param("type")
    return kind


def _cursor(ctx: Ctx) -> tuple[Literal["next", "prev"], int | None]:
    raw: str | None = ctx.param("cursor")
    if raw is None:
        return "next", None
    direction, seq = decode_cursor(raw, _Cursor)
    return direction, seq


def _url(ctx: Ctx, direction: str, seq: int) -> str:
    return str(ctx.request.url.include_query_params(cursor=encode_cursor([direction, seq])))


# ------------------------------------------------------------------ rendering


async def entries(ctx: Ctx, scope: Scope, rows: Sequence[asyncpg.Record]) -> list[ActivityEntry]:
    """Activity rows (of :mod:`service.reads.activity`) as the streams show them to
    ``scope``'s viewer, redacted (:func:`~service.reads.visibility.sights`), in the
    request's language (:meth:`Ctx.locale`)."""
    found = await sights(ctx.store.pool, scope, rows)
    locale = await ctx.locale()
    return [entry(ctx, scope, row, found[row["project_id"]], locale) for row in rows]


def entry(
    ctx: Ctx, scope: Scope, row: asyncpg.Record, sight: Sight, locale: Locale
) -> ActivityEntry:
    """An activity row (of :mod:`service.reads.activity`) as the streams show it to
    ``scope``'s viewer, whose sight over it is ``sight``, in ``locale``."""
    named_actor = scope.actor(row, locale)
    actor_url = None if named_actor.id is None else api_url(ctx, f"/v1/people/{named_actor.id}")
    picture = None if named_actor.id is None else avatar_url(base_url(ctx), named_actor.id)
    actor = ActorRef(
        id=named_actor.id,
        name=named_actor.name,
        url=actor_url,
        avatar_url=picture,
        service=True if named_actor.service else msgspec.UNSET,
    )
    project_id = row["project_id"]
    project_name = row["project_name"] or ""
    project = ProjectRef(
        id=project_id, name=project_name, url=api_url(ctx, f"/v1/projects/{project_id}")
    )
    recording_kind = row["recording_kind"]
    parent: TargetRef | None = None
    if row["parent_id"] is not None and sight.shows_recording(row["parent_id"]):
        parent_kind = row["parent_kind"] or "recording"
        parent = _recording(ctx, row["parent_id"], parent_kind, row["parent_title"])
    if row["recording_id"] is not None:
        target = _recording(ctx, row["recording_id"], recording_kind, row["title"])
    elif row["person_id"] is not None:
        target = TargetRef(
            id=row["person_id"],
            type="person",
            title=row["person_name"] or "",
            url=api_url(ctx, f"/v1/people/{row['person_id']}"),
        )
    else:
        target = TargetRef(id=project_id, type="project", title=project_name, url=project.url)
    text = scope.sentence(row, named_actor, locale)
    derived = changes_of(row)
    # The list a to-do moved from may be hidden from the viewer: then not even its id.
    changes = redaction.changes(sight, derived)
    return ActivityEntry(
        kind=row["kind"],
        sentence=text,
        actor=actor,
        target=target,
        parent=parent,
        project=project,
        at=row["at"],
        excerpt=excerpt_for(row["kind"], row["excerpt"], derived, locale),
        changes=changes,
        position=row["position"],
        seq=row["seq"],
    )


def _recording(ctx: Ctx, recording_id: str, kind: str, title: str | None) -> TargetRef:
    return TargetRef(
        id=recording_id, type=kind, title=title or "", url=recording_url(ctx, kind, recording_id)
    )


# ------------------------------------------------------------------ Activity Streams 2.0


def _wants_as2(ctx: Ctx) -> bool:
    accept = ctx.request.headers.get("accept", "").lower()
    return AS2_MEDIA in accept or ("application/ld+json" in accept and "activitystreams" in accept)


def _as2_response(
    ctx: Ctx,
    entries: Sequence[ActivityEntry],
    rows: Sequence[asyncpg.Record],
    next_url: str | None,
    prev_url: str | None,
    headers: dict[str, str],
) -> Reply:
    page_url = str(ctx.request.url)
    collection = str(ctx.request.url.remove_query_params("cursor"))
    body: dict[str, Any] = {
        "@context": AS2_CONTEXT,
        "type": "OrderedCollectionPage",
        "id": page_url,
        "partOf": collection,
        "totalItems": int(headers["X-Total-Count"]),
        "orderedItems": [
            _as2_activity(ctx, e, r["as_type"]) for e, r in zip(entries, rows, strict=True)
        ],
    }
    if next_url:
        body["next"] = next_url
    if prev_url:
        body["prev"] = prev_url
    return Reply(body, headers=headers, media_type=AS2_MEDIA)


def as2_activity(entry: ActivityEntry, as_type: str, base_url: str) -> dict[str, Any]:
    """One activity as an AS2 object (``base_url``: the API's origin, for ids)."""
    actor: dict[str, Any] = {"type": "Person", "name": entry.actor.name}
    if entry.actor.url:
        actor["id"] = entry.actor.url
    project = {"type": "Group", "id": entry.project.url, "name": entry.project.name}
    obj: dict[str, Any] = {
        "type": OBJECT_TYPES[entry.target.type],
        "id": entry.target.url,
        "name": entry.target.title,
    }
    if entry.parent is not None and entry.target.type == "comment":
        obj["inReplyTo"] = entry.parent.url
    if entry.excerpt and entry.target.type in ("message", "comment"):
        obj["summary"] = entry.excerpt
    activity: dict[str, Any] = {
        "id": f"{base_url}/v1/activity#{entry.seq}",
        "type": as_type,
        "summary": entry.sentence,
        "actor": actor,
        "published": entry.at.isoformat(),
        "context": project,
    }
    if as_type == "Undo":
        activity["object"] = {"type": undone_type(entry.changes), "object": obj}
    else:
        activity["object"] = obj
    if as_type == "Move" and entry.parent is not None:
        moved = next((c for c in entry.changes if c.field == "todolist_id"), None)
        if moved is not None and moved.before:
            activity["origin"] = {
                "type": "OrderedCollection",
                "id": f"{base_url}/v1/todolists/{moved.before}",
            }
        activity["target"] = {"type": "OrderedCollection", "id": entry.parent.url}
    elif entry.target.type == "todo" and as_type == "Create" and entry.parent is not None:
        activity["target"] = {
            "type": "OrderedCollection",
            "id": entry.parent.url,
            "name": entry.parent.title,
        }
    elif as_type in ("Add", "Remove") and entry.target.type == "person":
        key = "target" if as_type == "Add" else "origin"
        activity[key] = project
    return activity


def _as2_activity(ctx: Ctx, entry: ActivityEntry, as_type: str) -> dict[str, Any]:
    return as2_activity(entry, as_type, str(ctx.request.base_url).rstrip("/"))

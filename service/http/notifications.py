"""The notifications inbox over HTTP: ``GET /v1/my/notifications``,
``POST /v1/my/notifications/{notification_id}/read``, ``POST /v1/my/notifications/read_all``.

A notification is one person's share of a notice (:mod:`service.domain.notices`): a message
they were subscribed to, a comment, an assignment, an alert. Unread ones come first, then
read ones, each newest first; pages follow ``Link: rel=next``. Each is shown with a sentence
in the reader's language (``Accept-Language``, else their own) and the recording as every
route shows it (:mod:`.envelope`, redacted for the reader). The access rules are asked again
at every read: a notification whose recording the reader may no longer see (hidden from
clients since, a project they left) is left out of the page, so a page may hold fewer than
``limit`` items while a ``next`` link still follows.

:func:`items` is also what the WebSocket's ``notification`` frames carry (the app hands
:func:`for_socket` to the real-time hub), so both show a notification the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Final

import asyncpg
import msgspec
from starlette.requests import Request

from ..commands import inbox as commands
from ..domain import redaction
from ..domain.access import Viewer, can_see_recording, in_scope
from ..domain.context import Timestamp
from ..domain.notices import summary
from ..domain.redaction import Mentions, Sight
from ..errors import NotFound
from ..events.notices import NoticeKind
from ..events.streams import NOTIFICATION_ID, id_pattern
from ..reads import directory, inbox, recordings
from ..reads.access import projects_facts, recording_facts, sight_of
from .activity import ActorRef
from .api import Api, Ctx, Reply
from .envelope import Recording, api_url, avatar_url, base_url, render
from .paging import cursor, next_page
from .params import PAGING, Param
from .reports import ProjectRef
from .state import state_of

api = Api()
_TAGS: Final = ["notifications"]

NotificationIdText = Annotated[str, msgspec.Meta(pattern=id_pattern(NOTIFICATION_ID))]
_ID: Final = {"notification_id": Param("a notification's id", NotificationIdText)}
_Key = tuple[bool, Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]]
"""A page starts after this notification: (read, source position), as a cursor carries it."""


class Notification(msgspec.Struct, frozen=True, kw_only=True):
    """One notification: ``kind`` says why the reader is told, ``summary`` says it in their
    language, ``recording`` is what it is about as every route shows it; ``thread_id`` is the
    recording whose thread it belongs to (what a comment comments on; else the recording
    itself); ``position`` is the log position of the event told of."""

    id: str
    kind: NoticeKind
    read: bool
    read_at: Timestamp | None
    at: Timestamp
    summary: str
    actor: ActorRef
    project: ProjectRef
    recording: Recording
    thread_id: str | None
    position: int
    read_url: str


class ReadAll(msgspec.Struct, frozen=True, kw_only=True):
    """What ``read_all`` did: ``unread_notifications`` is how many are left unread (0, unless
    notifications arrived meanwhile)."""

    unread_notifications: int


# ------------------------------------------------------------------ routes


@api.get(
    "/v1/my/notifications",
    summary="The caller's notifications: unread first, then read, each newest first",
    response=list[Notification],
    query=PAGING,
    tags=_TAGS,
)
async def list_notifications(ctx: Ctx) -> Reply:
    limit = ctx.limit()
    after = cursor(ctx, _Key)
    rows = await inbox.page(
        ctx.store.pool, ctx.me.person_id, None if after is None else tuple(after), limit + 1
    )
    following = None
    if len(rows) > limit:
        last = rows[limit - 1]
        following = [last["read_at"] is not None, last["source_position"]]
    shown = await items(ctx, rows[:limit])
    total = await inbox.total(ctx.store.pool, ctx.me.person_id)
    headers = {
        "X-Total-Count": str(total),
        **next_page(ctx, following),
        **await ctx.language_headers(),
    }
    return Reply(shown, headers=headers)


@api.post(
    "/v1/my/notifications/{notification_id}/read",
    summary="Mark one of the caller's notifications read (404 for anyone else's); its "
    "ETag names version 1 while unread, 2 once read",
    response=Notification,
    path_params=_ID,
    tags=_TAGS,
)
async def read_notification(ctx: Ctx) -> Reply:
    notification_id = ctx.path("notification_id")
    before = await inbox.notification(ctx.store.pool, notification_id)
    if before is not None and not in_scope(ctx.me, before["project_id"]):
        # Of a project outside the token's: as absent, and left unread.
        raise NotFound("there is no such notification")
    version = await commands.read_notification(ctx.caller, notification_id)
    row = await inbox.notification(ctx.store.pool, notification_id)
    shown = await items(ctx, [row] if row is not None else [])
    if not shown:
        # Read, but about something the caller may no longer see: nothing to show of it.
        raise NotFound("there is no such notification")
    return Reply(shown[0], headers=await ctx.language_headers(), version=version)


@api.post(
    "/v1/my/notifications/read_all",
    summary="Mark every notification of the caller read; the ETag names the version of "
    "the caller's reads (If-Match: 412 if others were marked since)",
    response=ReadAll,
    tags=_TAGS,
)
async def read_all(ctx: Ctx) -> Reply:
    version = await commands.read_all(ctx.caller)
    unread = await inbox.unread_count(ctx.store.pool, ctx.me.person_id)
    return Reply(ReadAll(unread_notifications=unread), version=version)


# ------------------------------------------------------------------ rendering


async def items(ctx: Ctx, rows: Sequence[asyncpg.Record]) -> list[Notification]:
    """Notification rows (of :mod:`service.reads.inbox`, the caller's) as the inbox shows
    them to the caller, in order, leaving out those whose recording the caller may not
    see now."""
    if not rows:
        return []
    pool = ctx.store.pool
    viewer = ctx.me
    recs = await recordings.rows_by_id(
        pool, [r["recording_id"] for r in rows if r["recording_id"] is not None]
    )
    projects = await projects_facts(pool, list({r["project_id"] for r in rows}))
    actors = [r["actor_id"] for r in rows if r["actor_id"] is not None]
    names = await directory.names(pool, actors) if actors else {}
    locale = await ctx.locale()
    base = base_url(ctx)
    # What the caller may see now, grouped by project: one rendering (and one sight over
    # the actors) per project, not per notification.
    visible: dict[str, list[asyncpg.Record]] = {}
    for row in rows:
        rec = recs.get(row["recording_id"]) if row["recording_id"] is not None else None
        project = projects.get(row["project_id"])
        if rec is None or project is None:
            continue
        if can_see_recording(viewer, project, recording_facts(rec)):
            visible.setdefault(project.project_id, []).append(row)
    envelopes: dict[str, Recording] = {}
    sights: dict[str, Sight] = {}
    for project_id, group in visible.items():
        project = projects[project_id]
        rendered = await render(ctx, [recs[r["recording_id"]] for r in group], project)
        envelopes.update((e.id, e) for e in rendered)
        named = frozenset(r["actor_id"] for r in group if r["actor_id"] is not None)
        sights[project_id] = await sight_of(pool, viewer, project, Mentions(people=named))
    shown: list[Notification] = []
    for row in rows:
        envelope = envelopes.get(row["recording_id"])
        if envelope is None:
            continue
        rec = recs[row["recording_id"]]
        project = projects[row["project_id"]]
        actor_id: str | None = row["actor_id"]
        if actor_id is None:
            actor = ActorRef(id=None, name=redaction.cairn(locale), url=None)
        else:
            sight = sights[project.project_id]
            shown_id, name = redaction.named(sight, actor_id, names.get(actor_id), locale)
            actor = ActorRef(
                id=shown_id,
                name=name or redaction.someone(locale),
                url=None if shown_id is None else api_url(ctx, f"/v1/people/{shown_id}"),
                avatar_url=None if shown_id is None else avatar_url(base, shown_id),
            )
        thread_title = rec["parent_title"] if rec["kind"] == "comment" else None
        nid = row["notification_id"]
        shown.append(
            Notification(
                id=nid,
                kind=row["kind"],
                read=row["read_at"] is not None,
                read_at=row["read_at"],
                at=row["at"],
                summary=summary(
                    row["kind"],
                    locale=locale,
                    actor=actor.name,
                    recording_kind=rec["kind"],
                    title=rec["title"],
                    thread_title=thread_title,
                    project=rec["project_name"],
                ),
                actor=actor,
                project=ProjectRef(
                    id=project.project_id,
                    name=rec["project_name"] or "",
                    url=api_url(ctx, f"/v1/projects/{project.project_id}"),
                ),
                recording=envelope,
                thread_id=row["thread_id"],
                position=row["source_position"],
                read_url=api_url(ctx, f"/v1/my/notifications/{nid}/read"),
            )
        )
    return shown


async def for_socket(
    scope: Mapping[str, Any], viewer: Viewer, notification_ids: Sequence[str]
) -> list[bytes]:
    """The JSON of each of ``viewer``'s notifications ``notification_ids`` that they may see
    now (others left out), as :func:`items` shows them, for a WebSocket of handshake
    ``scope``: in the language it asked for (else the person's), with the URLs of the server
    it connected to. What the real-time hub sends in ``notification`` frames."""
    # The URLs of the server the socket connected to, over HTTP(S).
    scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "ws"), "http")
    request = Request({**scope, "type": "http", "method": "GET", "scheme": scheme})
    ctx = Ctx(request=request, viewer=viewer, state=state_of(request))
    rows = [
        r
        for r in await inbox.notifications(ctx.store.pool, notification_ids)
        if r["person_id"] == viewer.person_id
    ]
    return [msgspec.json.encode(item) for item in await items(ctx, rows)]

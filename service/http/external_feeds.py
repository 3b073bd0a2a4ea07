"""External feeds over HTTP: ``/v1/projects/{project_id}/external_feeds`` and
``/v1/external_feeds/{id}`` (docs/API.md "External feeds").

A project's team (whoever may post in it, clients excepted) subscribes it to RSS/Atom
feeds; the poller (:mod:`service.workers.feeds_poller`) posts each new entry as an
``external_item`` recording. A subscription shows where its polling is: ``status``
(``pending`` until the first poll, then ``ok`` or ``error`` with ``error`` saying why),
``last_polled_at`` and ``next_poll_at``.
"""

from __future__ import annotations

from typing import Annotated, Final

import asyncpg
import msgspec
from starlette.responses import Response

from ..commands import external_feeds as commands
from ..domain.context import Timestamp
from ..domain.external_feeds import EditExternalFeed, NewExternalFeed, describe_error
from ..domain.i18n import Locale
from ..events.streams import EXTERNAL_FEED_ID, id_pattern
from ..reads import external_feeds as rows
from .api import Api, Ctx, Reply
from .envelope import api_url
from .params import Param

api = Api()
_TAGS: Final = ["external feeds"]
_ID: Final = {
    "id": Param(
        "an external feed's id",
        Annotated[str, msgspec.Meta(pattern=id_pattern(EXTERNAL_FEED_ID))],
    )
}


class ExternalFeed(msgspec.Struct, frozen=True, kw_only=True):
    """A project's subscription to an RSS/Atom feed. ``title`` is the name given, else the
    feed's own (once polled), else its address; ``status``: ``pending`` (not polled yet),
    ``ok``, or ``error`` with ``error`` saying what went wrong at the last poll (the poller
    tries again later, backing off); ``interval`` in seconds."""

    id: str
    url: str
    title: str
    visible_to_clients: bool
    interval: int
    status: str
    error: str | None
    last_polled_at: Timestamp | None
    next_poll_at: Timestamp
    created_at: Timestamp
    project_id: str
    project_url: str
    self_url: str


def _shown(ctx: Ctx, row: asyncpg.Record, locale: Locale) -> ExternalFeed:
    feed_id = row["feed_id"]
    return ExternalFeed(
        id=feed_id,
        url=row["url"],
        title=row["title"] or row["feed_title"] or row["url"],
        visible_to_clients=row["visible_to_clients"],
        interval=row["interval_seconds"],
        status=row["status"],
        error=describe_error(row["error"], locale),
        last_polled_at=row["last_polled_at"],
        next_poll_at=row["next_poll_at"],
        created_at=row["created_at"],
        project_id=row["project_id"],
        project_url=api_url(ctx, f"/v1/projects/{row['project_id']}"),
        self_url=api_url(ctx, f"/v1/external_feeds/{feed_id}"),
    )


async def _one(ctx: Ctx, feed_id: str, status: int = 200) -> Reply:
    row = await rows.one(ctx.store.pool, feed_id)
    assert row is not None
    shown = _shown(ctx, row, await ctx.locale())
    headers = {"Location": shown.self_url} if status == 201 else {}
    return Reply(shown, status, headers)


@api.post(
    "/v1/projects/{project_id}/external_feeds",
    summary="Subscribe a project to an RSS/Atom feed: its new entries are posted in the "
    "project as external items",
    response=ExternalFeed,
    status=201,
    tags=_TAGS,
    versioned=False,
)
async def subscribe(ctx: Ctx, body: NewExternalFeed) -> Reply:
    feed_id = await commands.subscribe(ctx.caller, ctx.path("project_id"), body)
    return await _one(ctx, feed_id, 201)


@api.get(
    "/v1/projects/{project_id}/external_feeds",
    summary="A project's external feeds, oldest first (its team only)",
    response=list[ExternalFeed],
    tags=_TAGS,
)
async def list_feeds(ctx: Ctx) -> Reply:
    project_id = ctx.path("project_id")
    await commands.authorized(ctx.caller, project_id, write=False)
    found = await rows.of_project(ctx.store.pool, project_id)
    locale = await ctx.locale()
    return Reply([_shown(ctx, r, locale) for r in found])


@api.get(
    "/v1/external_feeds/{id}",
    summary="An external feed, with where its polling is",
    response=ExternalFeed,
    tags=_TAGS,
    path_params=_ID,
)
async def get_feed(ctx: Ctx) -> Reply:
    await commands.visible_project(ctx.caller, ctx.path("id"))
    return await _one(ctx, ctx.path("id"))


@api.patch(
    "/v1/external_feeds/{id}",
    summary="Change an external feed's address, title, client visibility or interval",
    response=ExternalFeed,
    tags=_TAGS,
    path_params=_ID,
    versioned=False,
)
async def patch_feed(ctx: Ctx, body: EditExternalFeed) -> Reply:
    await commands.edit(ctx.caller, ctx.path("id"), body)
    return await _one(ctx, ctx.path("id"))


@api.delete(
    "/v1/external_feeds/{id}",
    summary="Stop following an external feed (the items it brought stay)",
    status=204,
    tags=_TAGS,
    path_params=_ID,
    versioned=False,
)
async def delete_feed(ctx: Ctx) -> Response:
    await commands.unsubscribe(ctx.caller, ctx.path("id"))
    return Response(status_code=204)

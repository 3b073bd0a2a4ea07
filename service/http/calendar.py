"""Calendar feeds: ``GET /feeds/projects/{id}.ics`` (a project's milestones and to-dos with
due dates) and ``GET /feeds/calendar.ics`` (the reader's: milestones of their projects and
the to-dos assigned to them), as iCalendar (:mod:`service.feeds.calendar` reads and renders
them).

Authenticated, scoped and cached as the Atom/RSS feeds are (:mod:`.feeds`): the feed token
(``?token=``, or Basic with it as password) or a Bearer API token (:mod:`.feed_auth`: 401
otherwise), the one access rule (404 for a project the reader may not see), written in the
reader's language. The strong ETag is a digest of the bytes: a matching ``If-None-Match``
answers 304, and the ETag moves only when something the reader sees changes. The feeds'
per-instance cache (:mod:`service.feeds.cache`) remembers each (credential, URL)'s answer
while the read models stand still, and the bytes by ETag: a repeated poll then costs no
query and no rendering (rendering is the expensive part: about 0.3 s for 1,000 items).
"""

from __future__ import annotations

import hashlib
import time
from typing import Final

from starlette.responses import Response

from ..domain.i18n import Locale
from ..errors import NotFound
from ..feeds import calendar
from ..feeds.cache import Answer, FeedCache
from ..feeds.query import checkpoint as read_checkpoint
from ..feeds.query import person_named, project_named
from ..reads.access import visible_project, visible_projects
from ..reads.locales import locale_of
from .api import Api, Ctx
from .auth import rate_limit
from .conditions import if_none_match
from .feed_auth import authenticate, credential_of
from .params import Param

api = Api()

_TAGS = ["feeds"]
_TOKEN: Final = {"token": Param("the feed token (or HTTP Basic with it as password, or Bearer)")}
_CACHE: Final = "private, no-cache"


@api.get(
    "/feeds/calendar.ics",
    summary="The caller's calendar (iCalendar): their projects' milestones, their to-dos",
    auth="none",
    query=_TOKEN,
    strict_query=False,
    tags=_TAGS,
)
async def person_calendar(ctx: Ctx) -> Response:
    return await _serve(ctx, project_id=None)


@api.get(
    "/feeds/projects/{project_id}.ics",
    summary="A project's milestones and to-dos with due dates, as iCalendar",
    auth="none",
    query=_TOKEN,
    strict_query=False,
    tags=_TAGS,
)
async def project_calendar(ctx: Ctx) -> Response:
    return await _serve(ctx, project_id=ctx.path("project_id"))


async def _serve(ctx: Ctx, *, project_id: str | None) -> Response:
    pool = ctx.store.pool
    request = ctx.request
    credential = credential_of(request)
    cache: FeedCache = ctx.state["feeds"]
    key = (credential.digest, credential.kind, "ics", request.scope["path"])
    # Read first: whatever is read after is at least this new (service.feeds.cache).
    checkpoint = await _checkpoint(ctx, cache)
    known = cache.answers.get(key, checkpoint)
    if known is not None:
        if if_none_match(request, known.etag):
            rate_limit(request, known.person_id)
            return Response(status_code=304, headers=known.headers_304)
        body = cache.bodies.get(known.etag)
        if body is not None:
            rate_limit(request, known.person_id)
            return Response(body, 200, headers=known.headers, media_type=calendar.MEDIA_TYPE)
    viewer = await authenticate(request, pool, credential)
    settings = ctx.settings
    locale = await locale_of(pool, viewer, settings.locale)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        if project_id is None:
            projects = calendar.person_projects(viewer, await visible_projects(pool, viewer))
            person = await person_named(conn, viewer.person_id)
            if person is None:
                raise NotFound("there is no such person")
            name, description = calendar.person_calendar_name(person[0], locale)
            found = await calendar.items(conn, viewer, projects, assigned_to=viewer.person_id)
        else:
            projects = {project_id: await visible_project(pool, viewer, project_id)}
            project = await project_named(conn, project_id)
            if project is None:
                raise NotFound("there is no such project")
            name, description = calendar.project_calendar_name(project[0], locale)
            found = await calendar.items(conn, viewer, projects)
    doc = calendar.Calendar(
        name=name,
        description=description,
        uid_domain=calendar.uid_domain(settings.mail_domain, settings.feed_authority),
        app_url_template=settings.app_url,
        locale=locale,
    )
    body = calendar.render(doc, found)
    etag = _etag(body, locale)
    headers_304 = {"ETag": etag, "Cache-Control": _CACHE, "Vary": "Authorization"}
    headers = headers_304 | {"Content-Language": locale}
    cache.answers.put(key, Answer(checkpoint, viewer.person_id, etag, None, headers, headers_304))
    cache.bodies.put(etag, body)
    if if_none_match(request, etag):
        return Response(status_code=304, headers=headers_304)
    return Response(body, 200, headers=headers, media_type=calendar.MEDIA_TYPE)


async def _checkpoint(ctx: Ctx, cache: FeedCache) -> str:
    """The read models' state, remembered for a moment as the Atom/RSS feeds do."""
    generation = ctx.store.wakeups.generation
    now = time.monotonic()
    known = cache.checkpoint.get(now, generation)
    if known is not None:
        return known
    value = await read_checkpoint(ctx.store.pool)
    cache.checkpoint.put(value, now, generation)
    return value


def _etag(body: bytes, locale: Locale) -> str:
    digest = hashlib.blake2b(body + locale.encode(), digest_size=16)
    return f'"ics-{digest.hexdigest()}"'

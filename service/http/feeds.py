"""Atom and RSS feeds of the activity stream.

``GET /feeds/projects/{id}.atom|.rss`` (a project's activity) and ``GET
/feeds/activity.atom|.rss`` (everything the person may see), the newest 50 entries each;
older entries in RFC 5005 archive pages ``/feeds/projects/{id}/archive/{n}.atom|.rss`` and
``/feeds/activity/archive/{n}.atom|.rss`` (see :mod:`service.feeds.query` for how pages are
cut and why they hold still). Not under ``/v1``: feed URLs are handed to feed readers, not
to API clients.

**Authentication**, read-only: ``?token=<feed token>``, or HTTP Basic with the feed token as
the password (any user name), or ``Authorization: Bearer <API token>``
(:mod:`.feed_auth`); ``POST /v1/me/feed_token`` (:mod:`.feed_token`) makes a new feed token,
and the old one stops working when the response is sent (read-your-writes). Tokens
never reach logs: :class:`RedactTokens` blanks ``token=`` and ``access_token=`` in uvicorn's
access and error log records (:func:`install_log_redaction`, called by the app's factory).

**Caching.** ``Cache-Control: private`` always; archive pages get a long lifetime. The
strong ETag is derived, before any entry is read or rendered, from the feed, the viewer's
visibility class, the feed's stamp (last visible position ...: :mod:`service.feeds.query`),
the renderer version and what the links are made of; a matching ``If-None-Match`` answers
304. ``If-Modified-Since`` is honoured when there is no ``If-None-Match``. While the read
models stand still, each instance remembers its answers and rendered bytes
(:mod:`service.feeds.cache`): a repeated poll then costs no query and no rendering.

**Language.** A feed is read by a feed reader, which says nothing useful about its owner's
language: it is written in the language of the person whose token reads it
(:func:`~service.reads.locales.locale_of`: the person's ``locale``, else the ``locale`` setting),
declared in the document and by ``Content-Language``, and part of the ETag.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Annotated, Final, Literal
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec
from starlette.requests import Request
from starlette.responses import Response

from ..config import Settings
from ..domain.access import Viewer
from ..domain.i18n import Locale, translator
from ..errors import NotFound
from ..feeds import query
from ..feeds.cache import Answer, FeedCache
from ..feeds.render import MEDIA_TYPES, PAGE_SIZE, RENDERER_VERSION, Document, render, tag_uri
from ..reads.locales import locale_of
from ..reads.visibility import Scope, project_scope, viewer_scope
from .api import Api, Ctx
from .auth import rate_limit
from .conditions import if_none_match
from .feed_auth import Credential, authenticate, credential_of
from .params import Param

api = Api()

_TAGS = ["feeds"]
_FEED: Final = {"fmt": Param("the format: atom or rss", Literal["atom", "rss"])}
_LAST_PAGE: Final = 999_999_999
"""The highest archive page number an address may hold (far beyond any log)."""
_ARCHIVE: Final = {
    **_FEED,
    "page": Param(
        "the archive page, from 1 (the oldest)",
        Annotated[int, msgspec.Meta(ge=1, le=_LAST_PAGE)],
    ),
}
_CURRENT_CACHE: Final = "private, no-cache"
# Archive pages hold still (service.feeds.query); a reader may keep them for a long time.
_ARCHIVE_CACHE: Final = "private, max-age=2592000"


# ------------------------------------------------------------------ feeds


@api.get(
    "/feeds/activity.{fmt}",
    summary="Everything the caller may see, as Atom (.atom) or RSS (.rss): newest 50",
    auth="none",
    query={"token": Param("the feed token (or HTTP Basic with it as password, or Bearer)")},
    path_params=_FEED,
    strict_query=False,
    tags=_TAGS,
)
async def activity_feed(ctx: Ctx) -> Response:
    return await _serve(ctx, project_id=None, page=None)


@api.get(
    "/feeds/activity/archive/{page}.{fmt}",
    summary="An RFC 5005 archive page of the caller's feed (50 entries, oldest page 1)",
    auth="none",
    query={"token": Param("the feed token (or HTTP Basic with it as password, or Bearer)")},
    path_params=_ARCHIVE,
    strict_query=False,
    tags=_TAGS,
)
async def activity_archive(ctx: Ctx) -> Response:
    return await _serve(ctx, project_id=None, page=_page_number(ctx))


@api.get(
    "/feeds/projects/{project_id}.{fmt}",
    summary="A project's activity as Atom (.atom) or RSS (.rss): newest 50",
    auth="none",
    query={"token": Param("the feed token (or HTTP Basic with it as password, or Bearer)")},
    path_params=_FEED,
    strict_query=False,
    tags=_TAGS,
)
async def project_feed(ctx: Ctx) -> Response:
    return await _serve(ctx, project_id=ctx.path("project_id"), page=None)


@api.get(
    "/feeds/projects/{project_id}/archive/{page}.{fmt}",
    summary="An RFC 5005 archive page of a project's feed (50 entries, oldest page 1)",
    auth="none",
    query={"token": Param("the feed token (or HTTP Basic with it as password, or Bearer)")},
    path_params=_ARCHIVE,
    strict_query=False,
    tags=_TAGS,
)
async def project_archive(ctx: Ctx) -> Response:
    return await _serve(ctx, project_id=ctx.path("project_id"), page=_page_number(ctx))


def _page_number(ctx: Ctx) -> int:
    """The archive page of the path, checked as every path parameter is (ASCII digits,
    1 to :data:`_LAST_PAGE`); written with a leading zero, it is no page's address."""
    raw = ctx.path("page")
    if raw.startswith("0"):
        raise NotFound("there is no such archive page")
    return int(raw)


def _answer(
    checkpoint: str, feed: _Feed, etag: str, last_modified: datetime | None, cache: str
) -> Answer:
    return Answer(
        checkpoint=checkpoint,
        person_id=feed.viewer.person_id,
        etag=etag,
        last_modified=last_modified,
        headers=_headers(etag, last_modified, cache, feed.locale),
        # RFC 9110 §15.4.5: a 304 carries the validators' ETag, Cache-Control and Vary; a
        # Last-Modified next to an ETag guides no cache, so it is left out.
        headers_304=_headers(etag, None, cache),
    )


async def _checkpoint(ctx: Ctx, cache: FeedCache) -> str:
    """The read models' state: every projection's generation and checkpoint (remembered
    for a moment: see :mod:`service.feeds.cache`)."""
    generation = ctx.store.wakeups.generation
    now = time.monotonic()
    known = cache.checkpoint.get(now, generation)
    if known is not None:
        return known
    value = await query.checkpoint(ctx.store.pool)
    cache.checkpoint.put(value, now, generation)
    return value


async def _serve(ctx: Ctx, *, project_id: str | None, page: int | None) -> Response:
    fmt = ctx.path("fmt")
    request = ctx.request
    credential = credential_of(request)
    pool: asyncpg.Pool = ctx.store.pool
    cache = ctx.state["feeds"]
    scope_ = request.scope
    # What the links in the document are made of (see Starlette's Request.base_url), cheaply.
    origin = (scope_["scheme"], request.headers.get("host", ""), scope_.get("root_path", ""))
    key = (credential.digest, credential.kind, *origin, scope_["path"])
    cache_control = _CURRENT_CACHE if page is None else _ARCHIVE_CACHE
    # Read first: whatever is read after is at least this new (service.feeds.cache).
    checkpoint = await _checkpoint(ctx, cache)
    known = cache.answers.get(key, checkpoint)
    if known is not None:
        if _not_modified(request, known.etag, known.last_modified):
            rate_limit(request, known.person_id)
            return Response(status_code=304, headers=known.headers_304)
        body = cache.bodies.get(known.etag)
        if body is not None:
            rate_limit(request, known.person_id)
            return Response(body, 200, headers=known.headers, media_type=MEDIA_TYPES[fmt])
    feed = await _Feed.open(ctx, credential, project_id, fmt)

    def remember(etag: str, last_modified: datetime | None) -> None:
        cache.answers.put(key, _answer(checkpoint, feed, etag, last_modified, cache_control))

    if page is None:
        # The common poll: answered from the stamp alone, before reading any entry.
        stamp = await query.stamp(pool, feed.scope)
        etag = feed.etag(stamp, "current")
        if _not_modified(request, etag, stamp.last_at):
            remember(etag, stamp.last_at)
            return Response(status_code=304, headers=_headers(etag, None, cache_control))
    # One snapshot for the validators and the entries, so that the ETag names these bytes.
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        stamp = await query.stamp(conn, feed.scope)
        full_pages = await query.count(conn, feed.scope, stamp) // PAGE_SIZE
        if page is None:
            etag, last_modified = feed.etag(stamp, "current"), stamp.last_at
            rows = await query.newest(conn, feed.scope)
            links = _Links(
                feed.urls.current(), feed.urls.archive(full_pages) if full_pages else None
            )
        else:
            if page > full_pages:
                raise NotFound("there is no such archive page")
            rows = await query.archive_page(conn, feed.scope, page)
            last_modified = max((row["at"] for row in rows), default=None)
            # Whether a newer page exists is part of the page (its next-archive link).
            etag = feed.etag(stamp, "archive", page, page < full_pages)
            if _not_modified(request, etag, last_modified):
                remember(etag, last_modified)
                return Response(status_code=304, headers=_headers(etag, None, cache_control))
            links = _Links(
                self_url=feed.urls.archive(page),
                prev_archive=feed.urls.archive(page - 1) if page > 1 else None,
                next_archive=feed.urls.archive(page + 1) if page < full_pages else None,
                current=feed.urls.current(),
            )
        about = await _about(conn, ctx.settings.app_url, feed.viewer, project_id, feed.locale)
    remember(etag, last_modified)
    body = cache.bodies.get(etag)
    if body is None:
        body = feed.render(rows, about, links, archive=page is not None)
        cache.bodies.put(etag, body)
    headers = _headers(etag, last_modified, cache_control, feed.locale)
    return Response(body, 200, headers=headers, media_type=MEDIA_TYPES[fmt])


@dataclass(frozen=True)
class _Links:
    """A document's own and RFC 5005 links."""

    self_url: str
    prev_archive: str | None
    next_archive: str | None = None
    current: str | None = None


@dataclass(frozen=True)
class _About:
    """What a feed is about: title, subtitle, its own date (for an empty feed and its id)
    and the front end's page."""

    title: str
    subtitle: str
    since: datetime
    alternate_url: str


@dataclass(frozen=True)
class _Feed:
    """One reader's view of one feed: who, what they may see, how links are made, and the
    language it is written in (the reader's own: :func:`~service.reads.locales.locale_of`)."""

    fmt: str
    viewer: Viewer
    scope: Scope
    key: str
    base: str
    link_query: str
    urls: _Urls
    settings: Settings
    locale: Locale

    @classmethod
    async def open(
        cls, ctx: Ctx, credential: Credential, project_id: str | None, fmt: str
    ) -> _Feed:
        """Authenticate and scope (401, 404 and 429 as the routes say)."""
        pool = ctx.store.pool
        viewer = await authenticate(ctx.request, pool, credential)
        if project_id is None:
            # Everything the reader may see; an admin's needs no filter.
            scope = await viewer_scope(pool, viewer, everything=True)
            path, key = "/feeds/activity", f"person:{viewer.person_id}"
        else:
            scope = await project_scope(pool, viewer, project_id)
            path, key = f"/feeds/projects/{project_id}", f"project:{project_id}"
        base = str(ctx.request.base_url).rstrip("/")
        link_query = credential.link_query()
        urls = _Urls(base, path, fmt, link_query)
        locale = await locale_of(pool, viewer, ctx.settings.locale)
        return cls(fmt, viewer, scope, key, base, link_query, urls, ctx.settings, locale)

    def etag(self, stamp: query.Stamp, *extra: object) -> str:
        """The strong ETag: everything the bytes are made of, before they are made."""
        parts = (
            RENDERER_VERSION,
            self.fmt,
            self.key,
            self.base,
            self.link_query,
            self.settings.feed_authority,
            self.settings.app_url,
            self.scope.visibility_class(),
            self.locale,
            stamp.last_seq,
            stamp.visible,
            stamp.names,
            *extra,
        )
        digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=16)
        return f'"feed-{digest.hexdigest()}"'

    def render(
        self, rows: Sequence[asyncpg.Record], about: _About, links: _Links, *, archive: bool
    ) -> bytes:
        settings = self.settings
        entry_links = query.Links(
            authority=settings.feed_authority,
            app_url_template=settings.app_url,
            api_base=self.base,
            download_query=self.link_query,
        )
        doc = Document(
            id=tag_uri(settings.feed_authority, about.since, self.key.replace(":", "/")),
            title=about.title,
            subtitle=about.subtitle,
            alternate_url=about.alternate_url,
            updated=about.since,
            entries=query.entries_of(self.scope, rows, entry_links, self.locale),
            self_url=links.self_url,
            prev_archive=links.prev_archive,
            next_archive=links.next_archive,
            current=links.current,
            archive=archive,
            language=self.locale,
        )
        return render(doc, "atom" if self.fmt == "atom" else "rss")


class _Urls:
    def __init__(self, base: str, path: str, fmt: str, auth_query: str) -> None:
        self.base = base
        self.path = path
        self.fmt = fmt
        self.suffix = f"?{auth_query}" if auth_query else ""

    def current(self) -> str:
        return f"{self.base}{self.path}.{self.fmt}{self.suffix}"

    def archive(self, page: int) -> str:
        return f"{self.base}{self.path}/archive/{page}.{self.fmt}{self.suffix}"


def _headers(
    etag: str, last_modified: datetime | None, cache: str, language: Locale | None = None
) -> dict[str, str]:
    headers = {"ETag": etag, "Cache-Control": cache, "Vary": "Authorization"}
    if language is not None:
        headers["Content-Language"] = language
    if last_modified is not None:
        headers["Last-Modified"] = format_datetime(
            last_modified.astimezone(UTC).replace(microsecond=0), usegmt=True
        )
    return headers


def _not_modified(request: Request, etag: str, last_modified: datetime | None) -> bool:
    """RFC 9110 §13.2.2: If-None-Match decides when present; else If-Modified-Since."""
    if request.headers.get("if-none-match") is not None:
        return if_none_match(request, etag)
    since = request.headers.get("if-modified-since")
    if since is None or last_modified is None:
        return False
    try:
        when = parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False
    if when.tzinfo is None:
        return False
    return last_modified.replace(microsecond=0) <= when


async def _about(
    conn: asyncpg.Connection,
    template: str,
    viewer: Viewer,
    project_id: str | None,
    locale: Locale,
) -> _About:
    """What a feed is about (see :class:`_About`), written in ``locale``."""
    t = translator(locale)
    if project_id is not None:
        found = await query.project_named(conn, project_id)
        if found is None:
            raise NotFound("there is no such project")
        name, since = found
        url = template.format(type="project", id=project_id, project_id=project_id)
        # TRANSLATORS: the subtitle of a project's feed.
        subtitle = t.gettext("Activity in the project {name}").format(name=name)
        return _About(name, subtitle, since, url)
    found = await query.person_named(conn, viewer.person_id)
    if found is None:
        raise NotFound("there is no such person")
    name, since = found
    # The front end's home: the origin of its URL template.
    parts = urlsplit(template.format(type="project", id="", project_id=""))
    home = urlunsplit((parts.scheme, parts.netloc, "/", "", ""))
    # TRANSLATORS: the title of a person's feed of everything they may see.
    title = t.gettext("Activity for {name}").format(name=name)
    # TRANSLATORS: the subtitle of a person's feed of everything they may see.
    subtitle = t.gettext("Everything {name} can see in Cairn").format(name=name)
    return _About(title, subtitle, since, home)

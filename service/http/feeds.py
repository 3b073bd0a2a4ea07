"""Atom and RSS feeds of the activity stream, and the feed token.

``GET /feeds/projects/{id}.atom|.rss`` (a project's activity) and ``GET
/feeds/activity.atom|.rss`` (everything the person may see), the newest 50 entries each;
older entries in RFC 5005 archive pages ``/feeds/projects/{id}/archive/{n}.atom|.rss`` and
``/feeds/activity/archive/{n}.atom|.rss`` (see :mod:`service.feeds.query` for how pages are
cut and why they hold still). Not under ``/v1``: feed URLs are handed to feed readers, not
to API clients.

**Authentication**, read-only: ``?token=<feed token>``, or HTTP Basic with the feed token as
the password (any user name), or ``Authorization: Bearer <API token>``. ``POST
/v1/me/feed_token`` (bearer) makes a new feed token, shows it once with the two personal feed
URLs, and the old one stops working when the response is sent (read-your-writes). Tokens
never reach logs: :class:`RedactTokens` blanks ``token=`` and ``access_token=`` in uvicorn's
access and error log records (:func:`install_log_redaction`, called by the app's factory).

**Caching.** ``Cache-Control: private`` always; archive pages get a long lifetime. The
strong ETag is derived, before any entry is read or rendered, from the feed, the viewer's
visibility class, the feed's stamp (last visible position ...: :mod:`service.feeds.query`),
the renderer version and what the links are made of; a matching ``If-None-Match`` answers
304. ``If-Modified-Since`` is honoured when there is no ``If-None-Match``. While the read
models stand still, each instance remembers its answers and rendered bytes
(:mod:`service.feeds.cache`): a repeated poll then costs no query and no rendering.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Final
from urllib.parse import unquote_plus, urlencode, urlsplit, urlunsplit

import asyncpg
import msgspec
from starlette.requests import Request
from starlette.responses import Response

from ..commands.execute import execute
from ..config import Settings
from ..domain.access import Viewer
from ..domain.people import PersonState, fold_person
from ..domain.tokens import RotateFeedToken, decide_rotate_feed_token, hash_secret
from ..errors import NotFound
from ..events.base import Event
from ..events.streams import person_stream
from ..feeds import query
from ..feeds.cache import Answer, FeedCache
from ..feeds.render import MEDIA_TYPES, PAGE_SIZE, RENDERER_VERSION, Document, render, tag_uri
from ..reads import directory
from ..reads.tokens import feed_token_holder
from ..reads.visibility import Scope, project_scope, viewer_scope
from .api import Api, Ctx, Reply, if_none_match
from .auth import rate_limit, token_holder
from .idempotency import REPLAYED_HEADERS
from .problems import ApiError

api = Api()

_TAGS = ["feeds"]
_FORMATS: Final = ("atom", "rss")
_CURRENT_CACHE: Final = "private, no-cache"
# Archive pages hold still (service.feeds.query); a reader may keep them for a long time.
_ARCHIVE_CACHE: Final = "private, max-age=2592000"
_CHALLENGE: Final = {"WWW-Authenticate": 'Basic realm="Cairn feeds", charset="UTF-8"'}
_TOKEN_PARAM = re.compile(rb"(?:^|&)token=([^&]*)")
_CHECKPOINTS = "SELECT name, generation, tx_id, position FROM projections ORDER BY name"


# ------------------------------------------------------------------ representations


class FeedToken(msgspec.Struct, frozen=True, kw_only=True):
    """A new feed token: ``token`` is the secret, shown in this response only, and the feed
    URLs carry it (all three are ``null`` when an idempotent retry replays the response).
    Project feeds are at ``/feeds/projects/{id}.atom|.rss`` with the same ``?token=``."""

    token: str | None
    activity_atom_url: str | None
    activity_rss_url: str | None
    rotated_at: datetime


# ------------------------------------------------------------------ feed token


@api.post(
    "/v1/me/feed_token",
    summary="Make a new feed token (the old one stops working); the secret is shown only here",
    response=FeedToken,
    tags=_TAGS,
)
async def rotate_feed_token(ctx: Ctx) -> Reply:
    secret = f"cairnfeed_{secrets.token_urlsafe(32)}"
    cmd = RotateFeedToken(token_hash=hash_secret(secret))
    context = ctx.caller.context()

    def decide(person: PersonState | None) -> list[Event]:
        if person is None:
            raise NotFound("there is no such person")
        return decide_rotate_feed_token(person, cmd, context)

    # execute() waits for the read models: when this answers, the old token no longer works
    # (and this instance's feeds re-read the read models' state, not trusting a moment-old read).
    _, result = await execute(
        ctx.caller, person_stream(ctx.me.person_id), fold_person, decide, project_id=None
    )
    ctx.state["feeds"].checkpoint.forget()
    rotated_at = await directory.feed_token_rotated_at(ctx.store.pool, ctx.me.person_id)
    assert rotated_at is not None  # the read models show the rotation (read-your-writes)
    base = str(ctx.request.base_url).rstrip("/")
    query_string = urlencode({"token": secret})
    issued = FeedToken(
        token=secret,
        activity_atom_url=f"{base}/feeds/activity.atom?{query_string}",
        activity_rss_url=f"{base}/feeds/activity.rss?{query_string}",
        rotated_at=rotated_at,
    )
    # What an idempotent retry replays: no secret (see service.http.people, issue_token).
    without_secret = msgspec.structs.replace(
        issued, token=None, activity_atom_url=None, activity_rss_url=None
    )
    ctx.replay_body = msgspec.json.encode(without_secret)
    if result is not None and result.replayed:
        # A retry whose first run died before saving its response: the secret then made is
        # the one in force, and this run never saw it.
        return Reply(without_secret, headers=dict(REPLAYED_HEADERS))
    return Reply(issued)


# ------------------------------------------------------------------ feeds


@api.get(
    "/feeds/activity.{fmt}",
    summary="Everything the caller may see, as Atom (.atom) or RSS (.rss): newest 50",
    auth="none",
    query={"token": "the feed token (or HTTP Basic with it as password, or Bearer)"},
    tags=_TAGS,
)
async def activity_feed(ctx: Ctx) -> Response:
    return await _serve(ctx, project_id=None, page=None)


@api.get(
    "/feeds/activity/archive/{page}.{fmt}",
    summary="An RFC 5005 archive page of the caller's feed (50 entries, oldest page 1)",
    auth="none",
    query={"token": "the feed token"},
    tags=_TAGS,
)
async def activity_archive(ctx: Ctx) -> Response:
    return await _serve(ctx, project_id=None, page=_page_number(ctx))


@api.get(
    "/feeds/projects/{project_id}.{fmt}",
    summary="A project's activity as Atom (.atom) or RSS (.rss): newest 50",
    auth="none",
    query={"token": "the feed token (or HTTP Basic with it as password, or Bearer)"},
    tags=_TAGS,
)
async def project_feed(ctx: Ctx) -> Response:
    return await _serve(ctx, project_id=ctx.path("project_id"), page=None)


@api.get(
    "/feeds/projects/{project_id}/archive/{page}.{fmt}",
    summary="An RFC 5005 archive page of a project's feed (50 entries, oldest page 1)",
    auth="none",
    query={"token": "the feed token"},
    tags=_TAGS,
)
async def project_archive(ctx: Ctx) -> Response:
    return await _serve(ctx, project_id=ctx.path("project_id"), page=_page_number(ctx))


def _page_number(ctx: Ctx) -> int:
    raw = ctx.path("page")
    if not raw.isdigit() or raw.startswith("0") or len(raw) > 9:
        raise NotFound("there is no such archive page")
    return int(raw)


def _answer(
    checkpoint: str, viewer: Viewer, etag: str, last_modified: datetime | None, cache: str
) -> Answer:
    return Answer(
        checkpoint=checkpoint,
        person_id=viewer.person_id,
        etag=etag,
        last_modified=last_modified,
        headers=_headers(etag, last_modified, cache),
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
    rows = await ctx.store.pool.fetch(_CHECKPOINTS)
    value = ";".join(f"{r['name']}:{r['generation']}:{r['tx_id']}:{r['position']}" for r in rows)
    cache.checkpoint.put(value, now, generation)
    return value


async def _serve(ctx: Ctx, *, project_id: str | None, page: int | None) -> Response:
    fmt = ctx.path("fmt")
    if fmt not in _FORMATS:
        raise NotFound(f"feeds are .atom or .rss, not .{fmt}")
    request = ctx.request
    credential = _credential(request)
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
        cache.answers.put(key, _answer(checkpoint, feed.viewer, etag, last_modified, cache_control))

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
        about = await _about(conn, ctx.settings.app_url_template, feed.viewer, project_id)
    remember(etag, last_modified)
    body = cache.bodies.get(etag)
    if body is None:
        body = feed.render(rows, about, links, archive=page is not None)
        cache.bodies.put(etag, body)
    headers = _headers(etag, last_modified, cache_control)
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
    """One reader's view of one feed: who, what they may see, and how links are made."""

    fmt: str
    viewer: Viewer
    scope: Scope
    key: str
    base: str
    link_query: str
    urls: _Urls
    settings: Settings

    @classmethod
    async def open(
        cls, ctx: Ctx, credential: _Credential, project_id: str | None, fmt: str
    ) -> _Feed:
        """Authenticate and scope (401, 404 and 429 as the routes say)."""
        pool = ctx.store.pool
        viewer = await _authenticate(ctx.request, pool, credential)
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
        return cls(fmt, viewer, scope, key, base, link_query, urls, ctx.settings)

    def etag(self, stamp: query.Stamp, *extra: object) -> str:
        """The strong ETag: everything the bytes are made of, before they are made."""
        parts = (
            RENDERER_VERSION,
            self.fmt,
            self.key,
            self.base,
            self.link_query,
            self.settings.feed_authority,
            self.settings.app_url_template,
            self.scope.visibility_class(),
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
            authority=settings.feed_authority, app_url_template=settings.app_url_template
        )
        doc = Document(
            id=tag_uri(settings.feed_authority, about.since, self.key.replace(":", "/")),
            title=about.title,
            subtitle=about.subtitle,
            alternate_url=about.alternate_url,
            updated=about.since,
            entries=query.entries_of(self.scope, rows, entry_links),
            self_url=links.self_url,
            prev_archive=links.prev_archive,
            next_archive=links.next_archive,
            current=links.current,
            archive=archive,
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


async def _about(
    conn: asyncpg.Connection, template: str, viewer: Viewer, project_id: str | None
) -> _About:
    """What a feed is about (see :class:`_About`)."""
    if project_id is not None:
        row = await conn.fetchrow(
            "SELECT name, created_at FROM projects WHERE project_id = $1", project_id
        )
        if row is None:
            raise NotFound("there is no such project")
        url = template.format(type="project", id=project_id, project_id=project_id)
        return _About(row["name"], f"Activity in the project {row['name']}", row["created_at"], url)
    row = await conn.fetchrow(
        "SELECT name, created_at FROM people WHERE person_id = $1", viewer.person_id
    )
    if row is None:
        raise NotFound("there is no such person")
    # The front end's home: the origin of its URL template.
    parts = urlsplit(template.format(type="project", id="", project_id=""))
    home = urlunsplit((parts.scheme, parts.netloc, "/", "", ""))
    return _About(
        f"Activity for {row['name']}", f"Everything {row['name']} can see in Cairn",
        row["created_at"], home,
    )  # fmt: skip


def _headers(etag: str, last_modified: datetime | None, cache: str) -> dict[str, str]:
    headers = {"ETag": etag, "Cache-Control": cache, "Vary": "Authorization"}
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


# ------------------------------------------------------------------ authentication


@dataclass(frozen=True)
class _Credential:
    """What a feed request presents: ``kind`` is ``feed`` (a feed token, from ``?token=`` or
    Basic) or ``api`` (Bearer); ``in_query`` when it came as ``?token=``."""

    kind: str
    secret: str
    in_query: bool

    @property
    def digest(self) -> str:
        return hash_secret(self.secret)

    def link_query(self) -> str:
        """What links in the feed must carry for the reader to follow them."""
        return urlencode({"token": self.secret}) if self.in_query else ""


def _credential(request: Request) -> _Credential:
    """The credential of a feed request; 401 when there is none or it is malformed."""
    found = _TOKEN_PARAM.search(request.scope["query_string"])
    if found is not None:
        # What Starlette's query_params would give, for the one parameter feeds read.
        return _Credential("feed", unquote_plus(found.group(1).decode("latin-1")), True)
    header = request.headers.get("authorization")
    if not header:
        raise ApiError(401, "feeds need ?token=<feed token> or HTTP Basic", headers=_CHALLENGE)
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return _Credential("api", value.strip(), False)
    if scheme.lower() == "basic":
        return _Credential("feed", _basic_password(value), False)
    raise ApiError(401, "use ?token=, HTTP Basic or Bearer", headers=_CHALLENGE)


async def _authenticate(request: Request, pool: asyncpg.Pool, credential: _Credential) -> Viewer:
    """The reader holding ``credential``: 401 when the token is unknown, replaced or its
    holder deactivated; 429 over the rate limit."""
    if credential.kind == "api":
        viewer = await token_holder(request, credential.secret)
    else:
        viewer = await feed_token_holder(pool, credential.secret)
    if viewer is None:
        raise ApiError(401, "the token is unknown or was replaced", headers=_CHALLENGE)
    rate_limit(request, viewer.person_id)
    return viewer


def _basic_password(credentials: str) -> str:
    try:
        decoded: str = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ApiError(401, "malformed Basic credentials", headers=_CHALLENGE) from None
    return decoded.partition(":")[2]

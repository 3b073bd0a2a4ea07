"""The external feed poller: every ``CAIRN_FEED_POLL_INTERVAL`` seconds, poll the feeds
that are due and post their new entries as ``external_item`` recordings (rules:
:mod:`service.domain.external_feeds`; subscriptions: :mod:`service.commands.external_feeds`).

A tick claims up to :data:`BATCH` due feeds with a lease in one statement
(:func:`service.reads.external_feeds.claim`: ``FOR UPDATE SKIP LOCKED``), so every instance
runs a poller and no two poll one feed at once. Each is fetched with **no transaction
open** (log readers wait on the oldest open transaction) through the outbound policy's
client (``services.outbound``: SSRF checks on every connection, redirects followed and
checked too), with a conditional GET (``If-None-Match``/``If-Modified-Since`` from the last
200), a deadline on the whole exchange (``CAIRN_FEED_TIMEOUT``) and a size cap checked
while the body streams in (``CAIRN_FEED_MAX_BYTES``). Then each new entry is appended, and
the outcome recorded (status, error, validators, the next poll: the interval, doubled per
failure in a row).

**Exactly once.** An item's recording id is derived from (feed, entry key) and its append
expects no stream: a second instance, or this one after a crash between the appends and
the bookkeeping, fails that append (``WrongExpectedVersion``) and moves on. A feed that
fails (unreachable, slow, huge, malformed, an error status, refused by the policy) gets an
``error`` status and message; the other feeds of the tick go on.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta
from typing import Any, Final
from xml.sax import SAXException

import asyncpg
import feedparser
import httpx

from ..commands.caller import Services
from ..domain.access import SYSTEM
from ..domain.external_feeds import MAX_ITEMS_PER_POLL, entries, feed_title, item_id, next_poll
from ..errors import WrongExpectedVersion
from ..events.base import Metadata
from ..events.recordings import ExternalItemPosted
from ..events.streams import recording_stream
from ..events.wakeup import TRANSIENT_ERRORS
from ..outbound import Refused, TooLarge, read_limited
from ..reads import external_feeds as rows
from .ticking import Ticking

_log = logging.getLogger(__name__)

BATCH: Final = 20
"""Feeds one tick claims at most."""
CONCURRENCY: Final = 4
"""Feeds fetched at once by one instance."""
_ACCEPT: Final = (
    "application/atom+xml, application/rss+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.8, text/xml;q=0.8, */*;q=0.1"
)


class FeedError(Exception):
    """A poll failed; ``code`` names why (``error`` of the subscription: see
    :func:`describe`), ``detail`` gives the specifics."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


class FeedPoller(Ticking):
    """Polls due external feeds every ``interval`` seconds until stopped.

    Args:
        services: the process's services: store, clock, outbound policy.
        interval: seconds between ticks (how soon a due feed is seen).
        timeout: seconds one fetch may take in all.
        max_bytes: the largest feed body taken; larger ones are refused as they arrive.
    """

    name = "feeds"

    def __init__(
        self, services: Services, *, interval: float, timeout: float, max_bytes: int
    ) -> None:
        super().__init__(services, interval)
        self.timeout = timeout
        self.max_bytes = max_bytes

    async def tick(self) -> int:
        """Poll every feed due now (up to :data:`BATCH`); the number of items posted."""
        now = self.services.clock()
        # The lease outlives the fetch's deadline and the appends by a margin.
        lease = timedelta(seconds=self.timeout * 3 + 60)
        claimed = await rows.claim(self.services.store.pool, now, lease, BATCH)
        if not claimed:
            return 0
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(row: asyncpg.Record) -> int:
            async with gate:
                return await self.poll(row)

        return sum(await asyncio.gather(*(one(r) for r in claimed)))

    async def poll(self, row: asyncpg.Record) -> int:
        """Fetch one claimed feed, post its new entries and record the outcome; the number
        of items posted. Never raises for the feed's own failures."""
        services = self.services
        pool = services.store.pool
        feed_id = row["feed_id"]
        now = services.clock()
        self._metrics.attempted()
        try:
            fetched = await self._fetch(row)
            if fetched is None:
                await rows.record(
                    pool, feed_id, now=now, ok=True, keep_validators=True,
                    next_poll_at=next_poll(now, row["interval_seconds"], 0),
                )  # fmt: skip
                return 0
            body, etag, last_modified = fetched
            parsed = await asyncio.to_thread(feedparser.parse, body)
            problem = parsed.get("bozo_exception")
            # Not well-formed XML: feedparser's lenient parser would still make entries of
            # the pieces, with whatever titles the breakage gives them; refused instead.
            # (A charset announced wrongly is only a warning.)
            if isinstance(problem, SAXException) or (problem and not parsed.get("entries")):
                raise FeedError("malformed", str(problem)[:200])
            if not parsed.get("version") and not parsed.get("entries"):
                raise FeedError("malformed", "no RSS or Atom document")
            posted = await self._post(row, parsed)
        except Exception as exc:
            if not isinstance(exc, FeedError):
                if isinstance(exc, TRANSIENT_ERRORS):
                    raise  # PostgreSQL lost: the lease runs out, the feed is polled again
                # Anything else is this feed's failure too: recorded, never retried in a
                # loop by lease expiry; the other feeds of the tick go on.
                _log.exception("feeds: %s failed unexpectedly", feed_id)
                exc = FeedError("unreachable", "unexpected error")
            self._metrics.failed()
            failures = row["failures"] + 1
            _log.info("feeds: %s failed (%s)", feed_id, exc)
            await rows.record(
                pool, feed_id, now=now, ok=False, error=str(exc),
                next_poll_at=next_poll(now, row["interval_seconds"], failures),
            )  # fmt: skip
            return 0
        await rows.record(
            pool, feed_id, now=now, ok=True, etag=etag, last_modified=last_modified,
            feed_title=feed_title(parsed), next_poll_at=next_poll(now, row["interval_seconds"], 0),
        )  # fmt: skip
        return posted

    async def _fetch(self, row: asyncpg.Record) -> tuple[bytes, str | None, str | None] | None:
        """The feed's body and validators; None on 304 (unchanged).

        Raises:
            FeedError: the fetch failed (see :func:`describe` for the codes).
        """
        headers = {"Accept": _ACCEPT, "User-Agent": "Cairn feed poller"}
        if row["etag"]:
            headers["If-None-Match"] = row["etag"]
        if row["last_modified"]:
            headers["If-Modified-Since"] = row["last_modified"]
        client = self.services.outbound.client(timeout=self.timeout, follow_redirects=True)
        try:
            async with (
                asyncio.timeout(self.timeout),
                client,
                client.stream("GET", row["url"], headers=headers) as reply,
            ):
                if reply.status_code == 304:
                    return None
                if not 200 <= reply.status_code < 300:
                    raise FeedError("status", str(reply.status_code))
                declared = reply.headers.get("Content-Length")
                if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
                    raise FeedError("too_large", str(self.max_bytes))
                # Counted as sent and as decoded, never more in memory (a compression bomb).
                body = await read_limited(reply, self.max_bytes)
                return body, reply.headers.get("ETag"), reply.headers.get("Last-Modified")
        except TooLarge:
            raise FeedError("too_large", str(self.max_bytes)) from None
        except (TimeoutError, httpx.TimeoutException):
            raise FeedError("timeout", f"{self.timeout:g}") from None
        except httpx.HTTPError as exc:
            # Members read this: the policy's refusals are generic already; other errors
            # (whose messages may name the addresses tried) are only named, detail logged.
            _log.info("feeds: fetching %s failed: %r", row["feed_id"], exc)
            detail = str(exc) if isinstance(exc, Refused) else _generic(exc)
            raise FeedError("unreachable", detail[:200]) from None

    async def _post(self, row: asyncpg.Record, parsed: Any) -> int:
        """Append an item per entry not posted yet (the newest :data:`MAX_ITEMS_PER_POLL`),
        oldest first; how many were appended."""
        services = self.services
        store = services.store
        feed_id = row["feed_id"]
        found = entries(parsed, row["url"])[-MAX_ITEMS_PER_POLL:]
        ids = [item_id(feed_id, e.key) for e in found]
        known = await rows.known_items(store.pool, ids)
        name = row["title"] or feed_title(parsed) or row["url"]
        meta = Metadata(actor=SYSTEM.person_id, request_id=f"feeds-{uuid.uuid4().hex[:12]}")
        posted = 0
        for entry, recording_id in zip(found, ids, strict=True):
            if recording_id in known:
                continue
            event = ExternalItemPosted(
                recording_id=recording_id,
                project_id=row["project_id"],
                creator_id=row["creator_id"],
                at=services.clock(),
                feed_id=feed_id,
                feed_title=name,
                title=entry.title,
                link=entry.link,
                summary=entry.summary,
                published_at=entry.published_at,
                entry_key=entry.key[:2048],
                visible_to_clients=row["visible_to_clients"],
            )
            try:
                await store.append(
                    recording_stream(recording_id), [event], 0, meta,
                    project_id=row["project_id"],
                )  # fmt: skip
            except WrongExpectedVersion:
                continue  # posted by another instance, or before a restart
            posted += 1
        return posted


def _generic(exc: httpx.HTTPError) -> str:
    """What a failed fetch says to members: the kind of failure, no address."""
    if isinstance(exc, httpx.ConnectError):
        return "connection failed"
    if isinstance(exc, httpx.TooManyRedirects):
        return "too many redirects"
    if isinstance(exc, httpx.DecodingError):
        return "undecodable body"
    return type(exc).__name__

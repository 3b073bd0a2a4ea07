"""External feeds (the mashup): a real local feed server (uvicorn, Starlette) that changes
between polls, answers 304 to the conditional GET, breaks (500, too slow, malformed, 10 MiB)
while other feeds go on; items in the activity, the project's Atom feed, the live stream,
commentable; clients see only the items of client-visible subscriptions; one item per entry
across instances and restarts. The poller's clock is moved, never waited for."""

from __future__ import annotations

import asyncio
import functools
import gzip
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import feedparser
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from service.domain.external_feeds import entries
from service.events.store import EventStore
from service.events.streams import recording_stream
from service.projections import all_projections
from service.projections.engine import ProjectionEngine

from .support.api import Api, problem
from .support.outbound import LOCAL
from .support.projections import rebuilt_differences
from .support.realtime import frame, subscribe, ws
from .support.servers import FixedClock, Server, serving, serving_other
from .support.teams import Team
from .support.waiting import eventually

NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)
TICK = 0.05
"""The poller's tick (s): short, so that a due feed is seen soon; nothing waits for it."""
LATER = timedelta(minutes=16)
"""Past the default interval (15 min): every feed is due again."""
SETTINGS: dict[str, Any] = {"feed_poll_interval": TICK, "feed_timeout": 1.0, **LOCAL}


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def server_settings(clock: FixedClock) -> dict[str, object]:
    return {"clock": clock, **SETTINGS}


# ------------------------------------------------------------------ the feed server


def atom(title: str, entries: list[tuple[str, str]]) -> bytes:
    """An Atom feed named ``title`` with ``entries`` (id, title), newest first."""
    items = "".join(
        f"<entry><id>urn:x:{eid}</id><title>{name}</title>"
        f'<link href="https://news.example/{eid}"/>'
        f"<updated>2026-03-01T0{i % 10}:00:00Z</updated>"
        f'<summary type="html">&lt;p&gt;About {name}&lt;script&gt;x()&lt;/script&gt;&lt;/p&gt;'
        f"</summary></entry>"
        for i, (eid, name) in enumerate(entries)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>{title}</title><id>urn:x:feed</id><updated>2026-03-01T09:00:00Z</updated>"
        f"{items}</feed>"
    ).encode()


@functools.cache
def _bombs() -> tuple[bytes, bytes]:
    """64 MiB of zeros gzipped once (64 KiB), and that gzipped again (a few hundred bytes)."""
    once = gzip.compress(bytes(64 * 1024 * 1024), compresslevel=9)
    return once, gzip.compress(once, compresslevel=9)


@dataclass
class FeedServer:
    """What the local feed server serves and what reached it: ``/news`` is ``body`` with
    ``etag`` and ``last_modified`` (304 when the request's validators match), ``/broken``
    500, ``/slow`` waits for ``release``, ``/malformed`` is not XML, ``/huge`` streams
    10 MiB with no length, ``/bomb`` is 64 MiB gzipped into 64 KiB, ``/bomb2`` the same gzipped
    twice (``Content-Encoding: gzip, gzip``) into a few hundred bytes."""

    url: str = ""
    body: bytes = b""
    etag: str = '"v1"'
    last_modified: str = "Sun, 01 Mar 2026 09:00:00 GMT"
    honour_validators: bool = True
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    huge_sent: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def hits(self, path: str) -> list[dict[str, str]]:
        return [headers for p, headers in self.requests if p == path]

    def app(self) -> Starlette:
        async def news(request: Request) -> Response:
            self.requests.append(("/news", dict(request.headers)))
            if self.honour_validators and (
                request.headers.get("if-none-match") == self.etag
                or request.headers.get("if-modified-since") == self.last_modified
            ):
                return Response(status_code=304, headers={"ETag": self.etag})
            headers = {"ETag": self.etag, "Last-Modified": self.last_modified}
            return Response(self.body, media_type="application/atom+xml", headers=headers)

        async def broken(request: Request) -> Response:
            self.requests.append(("/broken", dict(request.headers)))
            return Response("oops", status_code=500)

        async def slow(request: Request) -> Response:
            self.requests.append(("/slow", dict(request.headers)))
            await self.release.wait()
            return Response(atom("Slow", []), media_type="application/atom+xml")

        async def malformed(request: Request) -> Response:
            self.requests.append(("/malformed", dict(request.headers)))
            return Response(b"<feed><entry><title>no end", media_type="application/atom+xml")

        async def huge(request: Request) -> Response:
            self.requests.append(("/huge", dict(request.headers)))

            async def chunks() -> AsyncIterator[bytes]:
                chunk = b"<!-- " + b"x" * (64 * 1024 - 9) + b" -->"
                for _ in range(160):  # 10 MiB
                    self.huge_sent += len(chunk)
                    yield chunk

            return StreamingResponse(chunks(), media_type="application/atom+xml")

        async def bomb(request: Request) -> Response:
            self.requests.append((request.url.path, dict(request.headers)))
            double = request.url.path == "/bomb2"
            headers = {"Content-Encoding": "gzip, gzip" if double else "gzip"}
            return Response(_bombs()[double], media_type="application/atom+xml", headers=headers)

        return Starlette(
            routes=[
                Route("/bomb", bomb),
                Route("/bomb2", bomb),
                Route("/news", news),
                Route("/broken", broken),
                Route("/slow", slow),
                Route("/malformed", malformed),
                Route("/huge", huge),
            ]
        )


@pytest.fixture
async def feeds() -> AsyncIterator[FeedServer]:
    server = FeedServer(body=atom("Daily News", [("b", "Beta"), ("a", "Alpha")]))
    async with serving_other(server.app()) as url:
        server.url = url
        yield server
        server.release.set()


def _poller_ticks(server: Server) -> int:
    app: Any = server.uvicorn.config.app
    ticks: int = app.state.feeds_poller.ticks
    return ticks


async def _polled(*servers: Server) -> None:
    """Until each server's poller has ended a tick begun after this call."""
    started = [(s, _poller_ticks(s)) for s in servers]

    def ticked() -> None:
        for s, ticks in started:
            assert _poller_ticks(s) >= ticks + 2

    await eventually(ticked, timeout=10)


async def _subscribe(c: httpx.AsyncClient, project_id: str, **body: Any) -> dict[str, Any]:
    reply = await c.post(f"/v1/projects/{project_id}/external_feeds", json=body)
    assert reply.status_code == 201, reply.text
    created: dict[str, Any] = reply.json()
    assert reply.headers["location"] == created["self_url"]
    return created


async def _items(
    c: httpx.AsyncClient, project_id: str, headers: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    reply = await c.get(
        f"/v1/projects/{project_id}/activity", params={"type": "external_item"}, headers=headers
    )
    assert reply.status_code == 200, reply.text
    found: list[dict[str, Any]] = reply.json()
    return found


def _titles(items: list[dict[str, Any]]) -> list[str]:
    return sorted(i["target"]["title"] for i in items)


async def _posted(store: EventStore) -> list[str]:
    """The recording ids of every ExternalItemPosted in the log."""
    async with store.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT data->>'recording_id' AS id FROM events "
            "WHERE event_type = 'ExternalItemPosted' ORDER BY position"
        )
    return [r["id"] for r in rows]


# ------------------------------------------------------------------ tests


async def test_a_feed_is_polled_conditionally_and_its_new_entries_show_everywhere(
    api: Api, team: Team, feeds: FeedServer, clock: FixedClock, store: EventStore
) -> None:
    """The first poll posts both entries (activity, Atom feed, commentable); the next one
    sends the validators and gets 304; a changed feed posts only its new entry, live."""
    c = api.client
    pid = team.project_id
    feed = await _subscribe(c, pid, url=f"{feeds.url}/news")
    assert (feed["status"], feed["title"], feed["interval"]) == (
        "pending",
        feeds.url + "/news",
        900,
    )

    async def two_items() -> list[dict[str, Any]]:
        items = await _items(c, pid)
        assert _titles(items) == ["Alpha", "Beta"]
        return items

    items = await eventually(two_items, timeout=10)
    assert {i["kind"] for i in items} == {"external_item_posted"}
    assert "New from “Daily News”: “Alpha”" in {i["sentence"] for i in items}
    shown = (await c.get(feed["self_url"])).json()
    assert (shown["status"], shown["error"], shown["title"]) == ("ok", None, "Daily News")
    first = feeds.hits("/news")[0]
    assert "if-none-match" not in first
    assert "if-modified-since" not in first

    # The item, as the API shows it: sanitised summary, link, commentable.
    alpha = next(i for i in items if i["target"]["title"] == "Alpha")["target"]["id"]
    item = (await c.get(f"/v1/recordings/{alpha}")).json()
    assert item["type"] == "external_item"
    assert item["link"] == "https://news.example/a"
    assert item["summary"] == "<p>About Alpha</p>"
    assert item["feed"]["id"] == feed["id"]
    assert item["published_at"].startswith("2026-03-01T01:00:00")
    comment = await c.post(
        f"/v1/recordings/{alpha}/comments", json={"content": "<p>Worth a read</p>"},
        headers=team.mia,
    )  # fmt: skip
    assert comment.status_code == 201, comment.text
    assert (await c.get(f"/v1/recordings/{alpha}")).json()["comments_count"] == 1

    # The project's overview (its latest activity).
    overview = (await c.get(f"/v1/projects/{pid}/overview")).json()
    assert "external_item_posted" in {a["kind"] for a in overview["activity"]}

    # The project's Atom feed, parsed.
    token = (await c.post("/v1/me/feed_token")).json()["token"]
    atom_reply = await c.get(f"/feeds/projects/{pid}.atom", params={"token": token})
    assert atom_reply.status_code == 200
    parsed = feedparser.parse(atom_reply.content)
    assert not parsed.bozo
    assert {"New from “Daily News”: “Alpha”", "New from “Daily News”: “Beta”"} <= {
        e.title for e in parsed.entries
    }

    # 15 min later: the conditional GET, answered 304, posts nothing.
    async with ws(api.server.ws_url, api.admin_token) as conn:
        await subscribe(conn, pid)
        clock.now += LATER
        await eventually(lambda: len(feeds.hits("/news")) == 2 or _fail(), timeout=10)
        second = feeds.hits("/news")[1]
        assert second["if-none-match"] == '"v1"'
        assert second["if-modified-since"] == "Sun, 01 Mar 2026 09:00:00 GMT"
        await _polled(api.server)
        assert len(await _posted(store)) == 2

        # The feed changes: only its new entry is posted, and reaches the live stream.
        feeds.body = atom("Daily News", [("c", "Gamma"), ("b", "Beta"), ("a", "Alpha")])
        feeds.etag = '"v2"'
        feeds.last_modified = "Mon, 02 Mar 2026 09:00:00 GMT"
        clock.now += LATER
        while True:
            got = await frame(conn)
            if got.get("kind") == "external_item_posted":
                break
        assert got["recording"] not in {i["target"]["id"] for i in items}
    assert _titles(await _items(c, pid)) == ["Alpha", "Beta", "Gamma"]
    assert len(await _posted(store)) == 3
    # The read models a rebuild makes of this log (items, a comment on one) are the same.
    assert await rebuilt_differences(store, ProjectionEngine(store, all_projections())) == {}
    shown = (await c.get(feed["self_url"])).json()
    assert shown["last_polled_at"].startswith("2026-03-02T09:32")


def _fail() -> None:
    raise AssertionError("not yet")


async def test_clients_see_items_of_client_visible_feeds_only(
    api: Api, team: Team, feeds: FeedServer
) -> None:
    """A hidden subscription's items are hidden from the client (404, not in activity);
    a client-visible one's show; clients see no subscription at all."""
    c = api.client
    pid = team.project_id
    hidden = await _subscribe(c, pid, url=f"{feeds.url}/news", title="Internal")
    feeds.body = atom("Public", [("p", "Press release")])
    # Another address for the same server, so the second feed has entries of its own.
    shown = await _subscribe(
        c, pid, url=f"{feeds.url}/news?public=1", title="Public", visible_to_clients=True
    )

    async def posted() -> list[dict[str, Any]]:
        items = await _items(c, pid)
        assert len(items) >= 2
        return items

    staff = await eventually(posted, timeout=10)
    by_feed: dict[str, list[str]] = {}
    for i in staff:
        record = (await c.get(f"/v1/recordings/{i['target']['id']}")).json()
        by_feed.setdefault(record["feed"]["id"], []).append(record["id"])
    assert set(by_feed) == {hidden["id"], shown["id"]}
    client_items = await _items(c, pid, headers=team.cleo)
    assert {i["target"]["id"] for i in client_items} == set(by_feed[shown["id"]])
    for rid in by_feed[hidden["id"]]:
        assert (await c.get(f"/v1/recordings/{rid}", headers=team.cleo)).status_code == 404
    for rid in by_feed[shown["id"]]:
        assert (await c.get(f"/v1/recordings/{rid}", headers=team.cleo)).status_code == 200
    listed = await c.get(f"/v1/projects/{pid}/external_feeds", headers=team.cleo)
    assert listed.status_code == 404
    assert (await c.get(hidden["self_url"], headers=team.cleo)).status_code == 404
    assert (await c.get(hidden["self_url"], headers=team.otto)).status_code == 404
    assert (await c.get(hidden["self_url"], headers=team.mia)).status_code == 200


async def test_broken_feeds_get_an_error_and_the_others_go_on(
    api: Api, team: Team, feeds: FeedServer, clock: FixedClock
) -> None:
    """A 500, a feed slower than the timeout, malformed XML and 10 MiB each set an error
    status and message (and back off); the good feed beside them is posted all the same."""
    c = api.client
    pid = team.project_id
    _bombs()  # made before the feed server is asked for them (it would stall meanwhile)
    broken = {
        path: await _subscribe(c, pid, url=f"{feeds.url}/{path}")
        for path in ("broken", "slow", "malformed", "huge", "bomb", "bomb2")
    }
    good = await _subscribe(c, pid, url=f"{feeds.url}/news")

    async def settled() -> dict[str, dict[str, Any]]:
        found = {}
        for path, feed in broken.items():
            shown = (await c.get(feed["self_url"])).json()
            assert shown["status"] == "error", shown
            found[path] = shown
        assert _titles(await _items(c, pid)) == ["Alpha", "Beta"]
        return found

    errors = await eventually(settled, timeout=15)
    assert errors["broken"]["error"] == "the feed's server answered HTTP 500"
    assert errors["slow"]["error"] == "the feed did not arrive within 1 s"
    assert errors["malformed"]["error"].startswith("this is not an RSS or Atom feed")
    assert errors["huge"]["error"] == "the feed is larger than 5242880 bytes"
    assert feeds.huge_sent > 5 * 1024 * 1024  # it did send more than the cap
    # Compression bombs: decoded no further than the cap (64 MiB would have been), and two
    # layers of gzip refused without decoding.
    assert errors["bomb"]["error"] == "the feed is larger than 5242880 bytes"
    assert errors["bomb2"]["error"].startswith("the feed could not be reached"), errors["bomb2"]
    assert len(feeds.hits("/huge")) == 1  # refused, then left alone until due again
    assert (await c.get(good["self_url"])).json()["status"] == "ok"
    # In French for a French reader.
    await c.patch(f"/v1/people/{team.mia_id}", json={"locale": "fr"})
    fr = (await c.get(broken["broken"]["self_url"], headers=team.mia)).json()
    assert fr["error"] == "le serveur du flux a répondu HTTP 500"
    # Backing off: after one failure, twice the interval; the good one keeps its interval.
    polled = datetime.fromisoformat(errors["broken"]["last_polled_at"])
    assert datetime.fromisoformat(errors["broken"]["next_poll_at"]) == polled + timedelta(
        seconds=1800
    )
    # Repaired, and due again: the error clears.
    hits = len(feeds.hits("/broken"))
    clock.now += timedelta(minutes=31)
    await eventually(lambda: len(feeds.hits("/broken")) > hits or _fail(), timeout=10)
    await c.patch(broken["malformed"]["self_url"], json={"url": f"{feeds.url}/news?again"})

    async def repaired() -> None:
        shown = (await c.get(broken["malformed"]["self_url"])).json()
        assert (shown["status"], shown["error"]) == ("ok", None)

    await eventually(repaired, timeout=10)


async def test_each_entry_is_posted_once_across_instances_and_restarts(
    api: Api, team: Team, feeds: FeedServer, clock: FixedClock, store: EventStore
) -> None:
    """Two instances poll together, then a new instance after a restart polls a feed that
    ignores validators: every entry is posted once."""
    c = api.client
    pid = team.project_id
    feeds.honour_validators = False
    async with serving(api.server.database_url, clock=clock, **SETTINGS) as second:
        for i in range(3):
            await _subscribe(c, pid, url=f"{feeds.url}/news?n={i}")
        await eventually(lambda: _count(store, 6), timeout=10)
        clock.now += LATER
        await _polled(api.server, second)
        await _polled(api.server, second)
    posted = await _posted(store)
    assert len(posted) == len(set(posted)) == 6
    async with serving(api.server.database_url, clock=clock, **SETTINGS) as restarted:
        clock.now += LATER
        hits = len(feeds.hits("/news"))
        await eventually(lambda: len(feeds.hits("/news")) >= hits + 3 or _fail(), timeout=10)
        await _polled(restarted, api.server)
    assert sorted(await _posted(store)) == sorted(posted)
    for rid in posted:
        assert len(await store.read_stream(recording_stream(rid))) == 1


async def _count(store: EventStore, n: int) -> None:
    assert len(await _posted(store)) == n


async def test_subscriptions_are_checked_and_removed(
    api: Api, team: Team, feeds: FeedServer
) -> None:
    """Unsafe addresses and bad fields are 422 problems; a removed feed is 404 and its items
    stay; members manage feeds, clients cannot create them."""
    c = api.client
    pid = team.project_id
    for url in ("ftp://feeds.example/x", "http://10.0.0.1/feed", "http://[::1]/x"):
        reply = await c.post(f"/v1/projects/{pid}/external_feeds", json={"url": url})
        problem(reply, 422)
    reply = await c.post(
        f"/v1/projects/{pid}/external_feeds", json={"url": f"{feeds.url}/news", "interval": 60}
    )
    assert problem(reply, 422)
    created = await c.post(
        f"/v1/projects/{pid}/external_feeds", json={"url": f"{feeds.url}/news"}, headers=team.cleo
    )
    assert created.status_code in (403, 404)
    feed = await _subscribe(c, pid, url=f"{feeds.url}/news")
    await eventually(lambda: _has_items(c, pid), timeout=10)
    edited = await c.patch(
        feed["self_url"], json={"title": "Renamed", "interval": 600}, headers=team.mia
    )
    assert edited.status_code == 200, edited.text
    assert (edited.json()["title"], edited.json()["interval"]) == ("Renamed", 600)
    listed = (await c.get(f"/v1/projects/{pid}/external_feeds", headers=team.mia)).json()
    assert [f["id"] for f in listed] == [feed["id"]]
    assert (await c.delete(feed["self_url"], headers=team.mia)).status_code == 204
    assert (await c.get(feed["self_url"])).status_code == 404
    assert (await c.get(f"/v1/projects/{pid}/external_feeds")).json() == []
    assert len(await _items(c, pid)) == 2


async def _has_items(c: httpx.AsyncClient, pid: str) -> None:
    assert len(await _items(c, pid)) == 2


def test_only_http_links_are_kept_relative_ones_resolved() -> None:
    """An entry's javascript: or data: link is dropped (stored XSS for every front end);
    http(s) links are kept, relative ones resolved against the feed's URL."""
    body = atom("Links", [("a", "A")]).replace(
        b'<link href="https://news.example/a"/>',
        b'<link href="javascript:alert(1)"/></entry><entry><id>urn:x:b</id><title>B</title>'
        b'<link href="data:text/html,&lt;script&gt;x()&lt;/script&gt;"/></entry>'
        b'<entry><id>urn:x:c</id><title>C</title><link href="/posts/c"/></entry>'
        b'<entry><id>urn:x:d</id><title>D</title><link href="https://news.example/d"/>',
    )
    found = {
        e.title: e.link for e in entries(feedparser.parse(body), "https://feeds.example/a.xml")
    }
    assert found == {
        "A": None,
        "B": None,
        "C": "https://feeds.example/posts/c",
        "D": "https://news.example/d",
    }

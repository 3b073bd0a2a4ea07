"""Atom and RSS feeds: pure rendering, and the feeds over real HTTP (auth, visibility,
conditional GET, RFC 5005 archives, log redaction)."""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

import feedparser
import httpx
import pytest
from lxml import etree

from service.feeds.cache import Answer, Answers, Bodies, Checkpoint
from service.feeds.render import Document, Entry, clean, render, tag_uri, text_html
from service.http.logs import RedactTokens, redact

from .support.api import Api, add_admin, bearer
from .support.scenario import Apollo, post
from .support.servers import access_log, serving
from .support.waiting import eventually

ATOM = "{http://www.w3.org/2005/Atom}"
FH = "{http://purl.org/syndication/history/1.0}"
T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
RFC822 = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d [+-]\d{4}")  # fmt: skip
TAG = re.compile(r"tag:[a-z0-9.-]+,\d{4}(-\d\d(-\d\d)?)?:[\x21-\x7e]+")


# ------------------------------------------------------------------ structural checks


def check_feed(body: bytes, fmt: str) -> tuple[Any, etree._Element]:
    """Parse ``body`` with feedparser (no bozo) and lxml, and check the structure every feed
    must have: unique tag: ids, one rel=self, RFC 3339 / RFC 822 dates, one link per entry
    besides its enclosures."""
    parsed = feedparser.parse(body)
    assert not parsed.bozo, parsed.get("bozo_exception")
    root = etree.fromstring(body)
    if fmt == "atom":
        assert root.tag == f"{ATOM}feed"
        ids = [e.findtext(f"{ATOM}id") for e in root.iter(f"{ATOM}entry")]
        selfs = [ln for ln in root.findall(f"{ATOM}link") if ln.get("rel") == "self"]
        dates = [d.text for tag in ("updated", "published") for d in root.iter(f"{ATOM}{tag}")]
        assert all(RFC3339.fullmatch(d or "") for d in dates), dates
        for entry in root.iter(f"{ATOM}entry"):
            links = [ln for ln in entry.findall(f"{ATOM}link") if ln.get("rel") != "enclosure"]
            assert len(links) == 1
            assert entry.findtext(f"{ATOM}updated") == entry.findtext(f"{ATOM}published")
        assert TAG.fullmatch(root.findtext(f"{ATOM}id") or "")
    else:
        assert root.tag == "rss"
        assert root.get("version") == "2.0"
        channel = root.find("channel")
        assert channel is not None
        ids = [i.findtext("guid") for i in channel.iter("item")]
        selfs = [ln for ln in channel.findall(f"{ATOM}link") if ln.get("rel") == "self"]
        dates = [d.text for tag in ("pubDate", "lastBuildDate") for d in channel.iter(tag)]
        assert all(RFC822.fullmatch(d or "") for d in dates), dates
        for item in channel.iter("item"):
            assert len(item.findall("link")) == 1
            assert len(item.findall("enclosure")) <= 1
    assert len(selfs) == 1
    assert len(ids) == len(set(ids))
    assert all(TAG.fullmatch(i or "") for i in ids), ids
    return parsed, root


# ------------------------------------------------------------------ pure rendering


def _doc(entries: list[Entry], **kw: Any) -> Document:
    fields: dict[str, Any] = {
        "id": "tag:cairn.example,2026:project/prj_1",
        "title": "Apollo",
        "subtitle": "Activity in Apollo",
        "self_url": "https://cairn.example/feeds/projects/prj_1.atom?token=t&x=1",
        "alternate_url": "https://app.example/projects/prj_1",
        "updated": T0 - timedelta(days=1),
        "entries": entries,
    }
    return Document(**(fields | kw))


def _entry(n: int, title: str = "Ana completed “Ship”", content: str = "done") -> Entry:
    return Entry(
        id=tag_uri("Cairn.Example:8443", T0, f"event/{n}"),
        title=title,
        content_html=text_html(content),
        author="Ana",
        link=f"https://app.example/todos/rec_{n}",
        category="todo_completed",
        at=T0 + timedelta(minutes=n),
    )


@pytest.mark.parametrize("fmt", ["atom", "rss"])
def test_rendering_is_byte_identical_and_ordered(fmt: str) -> None:
    entries = [_entry(n) for n in (3, 2, 1)]
    first = render(_doc(entries), fmt)  # type: ignore[arg-type]
    assert render(_doc(entries), fmt) == first  # type: ignore[arg-type]
    parsed, _ = check_feed(first, fmt)
    assert [e.id for e in parsed.entries] == [
        "tag:cairn.example,2026:event/3",
        "tag:cairn.example,2026:event/2",
        "tag:cairn.example,2026:event/1",
    ]
    # The feed's time is its newest entry's; every entry is published = updated = its time.
    assert parsed.feed.updated_parsed[:6] == (2026, 5, 1, 9, 3, 0)
    for entry, n in zip(parsed.entries, (3, 2, 1), strict=True):
        assert entry.published_parsed[:6] == (2026, 5, 1, 9, n, 0)
        assert entry.link == f"https://app.example/todos/rec_{n}"
        assert entry.tags[0].term == "todo_completed"


def test_an_empty_feed_takes_its_date_from_the_document() -> None:
    body = render(_doc([]), "atom")
    parsed, _ = check_feed(body, "atom")
    assert parsed.feed.updated_parsed[:3] == (2026, 4, 30)


def test_the_rss_channel_link_is_the_front_end_and_archive_links_are_atom_links() -> None:
    doc = _doc([_entry(1)], prev_archive="https://c/p/1", current="https://c/c", archive=True)
    _, root = check_feed(render(doc, "rss"), "rss")
    channel = root.find("channel")
    assert channel is not None
    assert channel.findtext("link") == "https://app.example/projects/prj_1"
    rels = {ln.get("rel"): ln.get("href") for ln in channel.findall(f"{ATOM}link")}
    assert rels["prev-archive"] == "https://c/p/1"
    assert rels["current"] == "https://c/c"
    assert channel.find(f"{FH}archive") is not None
    _, atom = check_feed(render(doc, "atom"), "atom")
    assert atom.find(f"{FH}archive") is not None


HOSTILE = [
    "Ana added \x00\x01\x08\x0b\x0c\x1b\x7f\ufffe\uffff “x” to \ud800 list",
    "<script>alert('x')</script> & <b>bold</b> ]]> <![CDATA[ x ]]>",
    "Ана добавила «Запуск» — 東京で会議 — مرحبا بالعالم — 🚀" * 3,
    "a" * 5000,
]


@pytest.mark.parametrize("fmt", ["atom", "rss"])
@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_renders_valid_xml(fmt: str, text: str) -> None:
    entry = Entry(
        id=tag_uri("cairn.example", T0, "event/1"),
        title=text,
        content_html=text_html(text),
        author=text,
        link="https://app.example/todos/rec_1?a=1&b=<2>",
        category="todo_added",
        at=T0,
    )
    body = render(_doc([entry], title=text, subtitle=text), fmt)  # type: ignore[arg-type]
    parsed, _ = check_feed(body, fmt)
    title = parsed.entries[0].title
    assert title == clean(title)
    assert len(title) <= 300
    assert "<script>" not in body.decode()
    if text.startswith("Ана"):
        assert "東京で会議" in title


def test_tag_ids_have_a_lowercase_authority_and_the_events_year() -> None:
    assert tag_uri("Cairn.Example:8000", datetime(2025, 12, 31, 23, 30, tzinfo=UTC), "e/1") == (
        "tag:cairn.example,2025:e/1"
    )
    with pytest.raises(ValueError, match="authority"):
        tag_uri("not a host", T0, "e/1")


def test_log_redaction_blanks_tokens_in_uvicorn_records() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/feeds/activity.atom?x=1&token=s3cret&access_token=abc", "1.1", 200),
        None,
    )  # fmt: skip
    RedactTokens().filter(record)
    message = record.getMessage()
    assert "s3cret" not in message
    assert "abc" not in message
    assert "token=[redacted]" in message
    assert "x=1" in message
    assert redact("/v1/stream?access_token=zzz") == "/v1/stream?access_token=[redacted]"


# ------------------------------------------------------------------ pure: what is remembered


def test_an_answer_holds_only_at_the_checkpoint_it_was_computed_at() -> None:
    answers = Answers(limit=2)
    answer = Answer(
        checkpoint="a:1",
        person_id="per_1",
        etag='"e"',
        last_modified=None,
        headers={},
        headers_304={},
    )
    answers.put(("k",), answer)
    assert answers.get(("k",), "a:1") is answer
    assert answers.get(("k",), "a:2") is None
    answers.put(("k2",), answer)
    answers.put(("k3",), answer)
    assert answers.get(("k",), "a:1") is None  # least recently used, dropped


def test_bodies_stay_within_their_byte_budget() -> None:
    bodies = Bodies(limit=10)
    bodies.put('"a"', b"12345")
    bodies.put('"b"', b"123456")
    assert bodies.get('"a"') is None
    assert bodies.get('"b"') == b"123456"
    bodies.put('"c"', b"x" * 11)
    assert bodies.get('"c"') is None
    assert bodies.size == 6


def test_a_checkpoint_read_is_trusted_briefly_and_never_past_a_wake_up() -> None:
    checkpoint = Checkpoint(ttl=0.5)
    checkpoint.put("a:1", read_at=10.0, generation=3)
    assert checkpoint.get(10.4, 3) == "a:1"
    assert checkpoint.get(10.6, 3) is None
    assert checkpoint.get(10.1, 4) is None
    checkpoint.forget()
    assert checkpoint.get(10.1, 3) is None


# ------------------------------------------------------------------ over HTTP


async def _feed_token(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.post("/v1/me/feed_token")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


class Scenario(Apollo):
    """Apollo (tests/support/scenario.py) with its kick-off, and a feed token for the admin, Ana and
    Cleo; ``anon`` is a client without credentials."""

    async def build(self, api: Api) -> Scenario:
        await super().build(api)
        self.base = api.server.base_url
        self.anon = httpx.AsyncClient(base_url=self.base, timeout=30)
        self.clients.append(self.anon)
        await self.kick_off("<p>Hello <strong>all</strong></p>")
        self.tokens = {
            "admin": (await _feed_token(self.admin))["token"],
            "ana": (await _feed_token(self.ana))["token"],
            "cleo": (await _feed_token(self.cleo))["token"],
        }
        return self

    async def feed(self, path: str, who: str = "admin", **headers: str) -> httpx.Response:
        return await self.anon.get(path, params={"token": self.tokens[who]}, headers=headers)


@pytest.fixture
async def scenario(api: Api) -> AsyncIterator[Scenario]:
    s = await Scenario().build(api)
    yield s
    await s.close()


EVERYTHING = [*Scenario.KICK_OFF, *Scenario.STORY]
FOR_CLIENTS = [s for s in EVERYTHING if "Pricing" not in s and "margin" not in s]


@pytest.mark.parametrize("fmt", ["atom", "rss"])
async def test_a_project_feed_tells_the_story_in_a_valid_feed(scenario: Scenario, fmt: str) -> None:
    """A project's feed parses cleanly, newest first, with sentences, ids, dates and links."""
    s = scenario
    r = await s.feed(f"/feeds/projects/{s.project_id}.{fmt}")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(f"application/{fmt}+xml")
    assert r.headers["cache-control"].startswith("private")
    parsed, _ = check_feed(r.content, fmt)
    assert [e.title for e in parsed.entries] == EVERYTHING
    assert parsed.feed.title == "Apollo"
    newest = parsed.entries[0]
    assert newest.tags[0].term == "comment_added"
    assert newest.link.startswith("http://localhost:3000/comments/")
    assert "Great!" in newest.get("summary", "") + str(newest.get("content", ""))
    posted = parsed.entries[1]
    assert posted.link == f"http://localhost:3000/messages/{s.message['id']}"
    body = posted.content[0].value if fmt == "atom" else posted.summary
    assert "<strong>all</strong>" in body
    assert newest.get("author") == "Cleo" or newest.get("author_detail", {}).get("name") == "Cleo"
    assert all(e.id.startswith("tag:cairn.localhost,2026:event/") for e in parsed.entries)
    # Same events, same bytes.
    again = await s.feed(f"/feeds/projects/{s.project_id}.{fmt}")
    assert again.content == r.content


async def test_feeds_accept_basic_and_bearer_and_refuse_the_rest(scenario: Scenario) -> None:
    """Basic (feed token as password) and Bearer (API token) work; nothing or junk gets 401."""
    s = scenario
    url = f"/feeds/projects/{s.project_id}.atom"
    basic = base64.b64encode(f"anyone:{s.tokens['ana']}".encode()).decode()
    r = await s.anon.get(url, headers={"Authorization": f"Basic {basic}"})
    assert r.status_code == 200, r.text
    r = await s.ana.get(url)
    assert r.status_code == 200, r.text
    # Links in a feed fetched with Basic carry no token.
    assert "token=" not in r.text
    assert (await s.anon.get(url)).status_code == 401
    assert (await s.anon.get(url, params={"token": "nope"})).status_code == 401
    bad = base64.b64encode(b"x:nope").decode()
    assert (await s.anon.get(url, headers={"Authorization": f"Basic {bad}"})).status_code == 401
    assert (
        await s.anon.get(f"/feeds/projects/{s.project_id}.json", params={"token": s.tokens["ana"]})
    ).status_code == 404


async def test_a_client_never_sees_hidden_items_in_any_feed(scenario: Scenario) -> None:
    """The client's project and personal feeds leave out the hidden list and its to-dos."""
    s = scenario
    for path in (f"/feeds/projects/{s.project_id}.atom", "/feeds/activity.atom"):
        r = await s.feed(path, "cleo")
        assert r.status_code == 200, r.text
        parsed, _ = check_feed(r.content, "atom")
        assert [e.title for e in parsed.entries] == FOR_CLIENTS
        assert "Pricing" not in r.text
        assert "margin" not in r.text
    # Hiding the list the client could see removes its items at once.
    r = await s.ana.put(
        f"/v1/recordings/{s.public['id']}/client_visibility", json={"visible_to_clients": False}
    )
    assert r.status_code == 200, r.text
    r = await s.feed(f"/feeds/projects/{s.project_id}.atom", "cleo")
    assert "Launch" not in r.text
    assert "Ship v1" not in r.text


async def test_a_non_member_gets_404_and_the_personal_feed_spans_projects(
    scenario: Scenario,
) -> None:
    """A project feed is 404 to outsiders; a person's feed holds every project they see."""
    s = scenario
    other = await post(s.admin, "/v1/projects", {"name": "Zeus"})
    assert (await s.feed(f"/feeds/projects/{other['id']}.rss", "ana")).status_code == 404
    r = await s.feed("/feeds/activity.rss", "admin")
    parsed, _ = check_feed(r.content, "rss")
    assert parsed.entries[0].title == "Ada Admin created the project “Zeus”"
    assert [e.title for e in parsed.entries[1:]] == EVERYTHING
    r = await s.feed("/feeds/activity.rss", "ana")
    assert "Zeus" not in r.text


async def test_rotating_the_feed_token_retires_the_old_url_at_once(scenario: Scenario) -> None:
    """After POST /v1/me/feed_token the old token gets 401 and the new URLs work."""
    s = scenario
    old = s.tokens["ana"]
    issued = await _feed_token(s.ana)
    assert issued["token"] != old
    assert issued["activity_atom_url"].endswith(f"/feeds/activity.atom?token={issued['token']}")
    assert (await s.anon.get("/feeds/activity.atom", params={"token": old})).status_code == 401
    r = await s.anon.get(issued["activity_rss_url"])
    assert r.status_code == 200, r.text
    check_feed(r.content, "rss")
    assert (await s.anon.post("/v1/me/feed_token")).status_code == 401
    # Deactivating a person retires their feed token too, remembered answers included.
    assert (await s.anon.get(issued["activity_rss_url"])).status_code == 200
    r = await s.admin.post(f"/v1/people/{s.ana_id}/deactivate")
    assert r.status_code == 200, r.text
    assert (await s.anon.get(issued["activity_rss_url"])).status_code == 401


async def test_conditional_get(scenario: Scenario) -> None:
    """ETag and Last-Modified give 304 until something the viewer sees changes."""
    s = scenario
    url = f"/feeds/projects/{s.project_id}.atom"
    r = await s.feed(url)
    etag, modified = r.headers["etag"], r.headers["last-modified"]
    assert etag.startswith('"')
    assert not etag.startswith("W/")
    not_modified = await s.feed(url, **{"If-None-Match": etag})
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    assert (await s.feed(url, **{"If-Modified-Since": modified})).status_code == 304
    # If-None-Match decides when present, whatever If-Modified-Since says.
    r2 = await s.feed(url, **{"If-None-Match": '"other"', "If-Modified-Since": modified})
    assert r2.status_code == 200
    assert r2.content == r.content
    earlier = format_datetime(parsedate_to_datetime(modified) - timedelta(seconds=5), usegmt=True)
    assert (await s.feed(url, **{"If-Modified-Since": earlier})).status_code == 200
    # Each format and each token has its own ETag.
    assert (await s.feed(url.replace(".atom", ".rss"))).headers["etag"] != etag
    # A renamed person renames past sentences: a new ETag.
    r = await s.admin.patch(f"/v1/people/{s.ana_id}", json={"name": "Ana María"})
    assert r.status_code == 200, r.text
    renamed = await s.feed(url, **{"If-None-Match": etag})
    assert renamed.status_code == 200
    assert "Ana María" in renamed.text
    # Something new: a new ETag and the entry in the feed.
    etag = renamed.headers["etag"]
    await post(s.ana, f"/v1/todolists/{s.public['id']}/todos", {"content": "Write docs"})
    fresh = await s.feed(url, **{"If-None-Match": etag})
    assert fresh.status_code == 200
    assert "Write docs" in fresh.text


async def test_a_client_etag_does_not_move_for_what_they_cannot_see(scenario: Scenario) -> None:
    """A change in the hidden list gives the client 304: the ETag hints at nothing."""
    s = scenario
    url = f"/feeds/projects/{s.project_id}.atom"
    etag = (await s.feed(url, "cleo")).headers["etag"]
    await post(s.ana, f"/v1/todolists/{s.secret['id']}/todos", {"content": "Secret plan"})
    assert (await s.feed(url, "cleo", **{"If-None-Match": etag})).status_code == 304
    assert (await s.feed(url, "ana", **{"If-None-Match": etag})).status_code == 200


async def _fetch(s: Scenario, url: str) -> httpx.Response:
    r = await s.anon.get(url)
    assert r.status_code == 200, r.text
    return r


async def test_archives_hold_still_as_new_events_arrive(scenario: Scenario) -> None:
    """Full pages of 50 become RFC 5005 archives that keep their bytes as events arrive."""
    s = scenario
    todolist = s.public["id"]
    for n in range(95):  # 10 items so far + 95 = 105: two full pages and a partial one
        await post(s.ana, f"/v1/todolists/{todolist}/todos", {"content": f"Task {n}"})
    current = await s.feed(f"/feeds/projects/{s.project_id}.atom")
    parsed, root = check_feed(current.content, "atom")
    assert len(parsed.entries) == 50
    assert parsed.entries[0].title == "Ana added “Task 94” to “Launch”"
    rels = {ln.get("rel"): ln.get("href") for ln in root.findall(f"{ATOM}link")}
    assert rels["prev-archive"].endswith(f"/archive/2.atom?token={s.tokens['admin']}")
    page2 = await _fetch(s, rels["prev-archive"])
    assert page2.headers["cache-control"].startswith("private, max-age=")
    p2, root2 = check_feed(page2.content, "atom")
    assert root2.find(f"{FH}archive") is not None
    rels2 = {ln.get("rel"): ln.get("href") for ln in root2.findall(f"{ATOM}link")}
    assert "next-archive" not in rels2
    assert rels2["current"].split("?")[0].endswith(f"{s.project_id}.atom")
    page1 = await _fetch(s, rels2["prev-archive"])
    p1, root1 = check_feed(page1.content, "atom")
    rels1 = {ln.get("rel"): ln.get("href") for ln in root1.findall(f"{ATOM}link")}
    assert "prev-archive" not in rels1
    assert rels1["next-archive"] == rels["prev-archive"]
    assert len(p1.entries) == len(p2.entries) == 50
    assert p1.entries[-1].title == "Ada Admin created the project “Apollo”"
    # Every entry is in exactly one archive page or the current document (or both, at the seam).
    archived = [e.id for e in p1.entries + p2.entries]
    assert len(set(archived)) == 100
    assert {e.id for e in parsed.entries} - set(archived) == {e.id for e in parsed.entries[:5]}
    # New events: the full pages keep their bytes, and their 304s.
    for n in range(3):
        await post(s.ana, f"/v1/todolists/{todolist}/todos", {"content": f"Later {n}"})
    again1 = await _fetch(s, rels2["prev-archive"])
    again2 = await _fetch(s, rels["prev-archive"])
    assert again1.content == page1.content
    assert again2.content == page2.content
    # Page 3 does not exist until it is full.
    assert (await s.anon.get(rels["prev-archive"].replace("/2.atom", "/3.atom"))).status_code == 404
    assert (await s.anon.get(rels["prev-archive"].replace("/2.atom", "/0.atom"))).status_code == 404
    # A client's pages count only what the client sees.
    client_current = await s.feed(f"/feeds/projects/{s.project_id}.rss", "cleo")
    _, croot = check_feed(client_current.content, "rss")
    channel = croot.find("channel")
    assert channel is not None
    crels = {ln.get("rel"): ln.get("href") for ln in channel.findall(f"{ATOM}link")}
    client_page = await _fetch(s, crels["prev-archive"])
    cp, _ = check_feed(client_page.content, "rss")
    assert len(cp.entries) == 50
    assert "Pricing" not in client_page.text


async def test_hostile_text_over_http_renders_valid_feeds(scenario: Scenario) -> None:
    """Markup, very long titles and non-Latin scripts arrive intact and harmless."""
    s = scenario
    long = "Очень длинная задача " * 45
    for content in ("<script>alert(1)</script> & <b>x</b>", "東京で会議 — مرحبا 🚀", long[:1000]):
        await post(s.ana, f"/v1/todolists/{s.public['id']}/todos", {"content": content})
    for fmt in ("atom", "rss"):
        r = await s.feed(f"/feeds/projects/{s.project_id}.{fmt}")
        parsed, _ = check_feed(r.content, fmt)
        assert "<script>" not in r.text
        titles = [e.title for e in parsed.entries[:3]]
        assert len(titles[0]) <= 300
        assert titles[0].endswith("…")
        assert "東京で会議 — مرحبا 🚀" in titles[1]


async def test_tokens_never_reach_the_access_log(database_url: str) -> None:
    """The access log shows feed requests by their route's template, without the query
    string and so without the token."""
    async with serving(database_url, log_level="info") as server:
        admin = await add_admin(database_url)
        with access_log() as lines:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:

                async def issued() -> None:
                    r = await client.post("/v1/me/feed_token", headers=bearer(admin.token))
                    assert r.status_code == 200, r.text

                await eventually(issued, timeout=5.0)
                r = await client.post("/v1/me/feed_token", headers=bearer(admin.token))
                token = r.json()["token"]
                r = await client.get("/feeds/activity.atom", params={"token": token})
                assert r.status_code == 200, r.text
                await client.get("/feeds/activity.atom", params={"token": "wrong-secret"})
    feed_lines = [line for line in lines if '"GET /feeds/activity.{fmt} HTTP/1.1"' in line]
    assert len(feed_lines) == 2, lines
    assert not any("?" in line for line in feed_lines)
    assert not any(token in line or "wrong-secret" in line for line in lines)

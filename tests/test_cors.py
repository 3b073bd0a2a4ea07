"""Browsers on other origins: the ``CAIRN_CORS_ORIGINS`` setting, CORS on every HTTP route,
the WebSocket's ``Origin`` rule, and a real Chromium page using both."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, async_playwright
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

import service.http.app
from service.config import from_env
from service.errors import ConfigurationError

from .support.api import Api, add_admin, bearer, known_token, problem
from .support.realtime import GUARD, subscribe
from .support.servers import Server, serving, serving_other

# ------------------------------------------------------------------ the setting


@pytest.mark.parametrize(
    ("given", "origins"),
    [
        ("", ()),
        (" , ", ()),
        ("http://localhost:5173", ("http://localhost:5173",)),
        (
            " https://app.example.com ,http://127.0.0.1:8080,, http://[::1]:3000 ",
            ("https://app.example.com", "http://127.0.0.1:8080", "http://[::1]:3000"),
        ),
    ],
)
def test_cors_origins_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, given: str, origins: tuple[str, ...]
) -> None:
    """``CAIRN_CORS_ORIGINS`` is a comma-separated list: spaces and empty items are dropped."""
    monkeypatch.setenv("CAIRN_CORS_ORIGINS", given)
    assert from_env("postgresql://unused").cors_origins == origins


def test_cors_origins_default_to_none(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset, no origin is allowed; an override may be a tuple or a comma-separated string."""
    monkeypatch.delenv("CAIRN_CORS_ORIGINS", raising=False)
    assert from_env("postgresql://unused").cors_origins == ()
    assert from_env("postgresql://unused", cors_origins=("http://a.test",)).cors_origins == (
        "http://a.test",
    )
    assert from_env(
        "postgresql://unused", cors_origins="http://a.test, http://b.test:81"
    ).cors_origins == (
        "http://a.test",
        "http://b.test:81",
    )


@pytest.mark.parametrize(
    "bad",
    [
        "*",
        "app.example.com",
        "https://app.example.com/",
        "https://app.example.com/path",
        "https://App.example.com",
        "http://localhost:5173?x=1",
        "http://user@localhost",
        "http://localhost:port",
        "null",
    ],
)
def test_an_origin_of_the_wrong_form_is_refused(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    """An item that is not ``scheme://host[:port]`` (lower case, no path) is a
    ConfigurationError naming the variable."""
    monkeypatch.setenv("CAIRN_CORS_ORIGINS", f"http://ok.test, {bad}")
    with pytest.raises(ConfigurationError, match=r"^CAIRN_CORS_ORIGINS=.*\$\[1\]"):
        from_env("postgresql://unused")


# ------------------------------------------------------------------ HTTP

FRONT_END = "http://front-end.test:5173"
"""The origin the CORS servers below allow."""

ELSEWHERE = "https://elsewhere.test"
"""An origin they do not."""

EXPOSED = {"link", "x-total-count", "etag", "location", "retry-after", "x-request-id"}


def listed(value: str) -> set[str]:
    """A comma-separated header value as a set of lower-case items."""
    return {item.strip().lower() for item in value.split(",")}


def cors_headers(response: httpx.Response) -> dict[str, str]:
    """The ``Access-Control-*`` headers of ``response``."""
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


def preflight(origin: str, method: str = "POST", headers: str | None = None) -> dict[str, str]:
    """The headers of a browser's preflight from ``origin`` for ``method`` with ``headers``."""
    asked = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        asked["Access-Control-Request-Headers"] = headers
    return asked


@pytest.fixture
async def cors(database_url: str) -> AsyncIterator[Api]:
    """A live server allowing :data:`FRONT_END` (and another origin), with a first admin."""
    async with serving(database_url, cors_origins=f"http://other.test, {FRONT_END}") as server:
        admin = await add_admin(database_url)
        async with httpx.AsyncClient(
            base_url=server.base_url, headers=bearer(admin.token), timeout=30
        ) as client:
            await known_token(client, timeout=5.0)
            yield Api(server, client, admin.person_id, admin.token)


@pytest.mark.parametrize(
    "path", ["/v1/projects", "/v1/projects/prj_nope/todolists", "/openapi.json", "/v1/nope"]
)
async def test_a_preflight_from_an_allowed_origin_is_answered(cors: Api, path: str) -> None:
    """A preflight from an allowed origin gets 200 and what it may send, on every path
    (routes, missing items, the OpenAPI document, no route at all), without a token."""
    asked = preflight(
        FRONT_END,
        "POST",
        "authorization, content-type, idempotency-key, if-match, if-none-match, "
        "x-request-id, x-correlation-id",
    )
    async with httpx.AsyncClient(base_url=cors.server.base_url) as anonymous:
        answer = await anonymous.options(path, headers=asked)
    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-origin"] == FRONT_END
    assert listed(answer.headers["access-control-allow-methods"]) == {
        "get", "head", "post", "put", "patch", "delete"
    }  # fmt: skip
    assert listed(asked["Access-Control-Request-Headers"]) <= listed(
        answer.headers["access-control-allow-headers"]
    )
    assert answer.headers["access-control-max-age"] == "600"
    assert "access-control-allow-credentials" not in answer.headers


@pytest.mark.parametrize(
    ("asked", "not_allowed"),
    [
        (preflight(ELSEWHERE), "origin"),
        (preflight("null"), "origin"),
        (preflight(FRONT_END, "TRACE"), "method"),
        (preflight(FRONT_END, "GET", "authorization, x-secret"), "headers"),
    ],
)
async def test_a_preflight_not_allowed_is_a_problem(
    cors: Api, asked: dict[str, str], not_allowed: str
) -> None:
    """A preflight from another origin, or for another method or header, is refused with a
    403 problem; another origin is not named in ``Access-Control-Allow-Origin``."""
    answer = await cors.client.options("/v1/projects", headers=asked)
    body = problem(answer, 403)
    assert f"not allowed: {not_allowed}" in body["detail"]
    assert body["instance"] == "/v1/projects"
    if not_allowed == "origin":
        assert "access-control-allow-origin" not in answer.headers


async def test_answers_to_an_allowed_origin_expose_the_api_headers(
    cors: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every answer to an allowed origin, errors and a 500 included, names it in
    ``Access-Control-Allow-Origin`` and exposes Link, X-Total-Count, ETag and the rest."""
    page = {"Origin": FRONT_END}
    for name in ("One", "Two"):
        created = await cors.client.post("/v1/projects", json={"name": name}, headers=page)
        assert created.status_code == 201
    listing = await cors.client.get("/v1/projects?limit=1", headers=page)
    assert listing.status_code == 200
    assert {"link", "x-total-count", "etag"} <= set(listing.headers)
    missing = await cors.client.get("/v1/nope", headers=page)
    problem(missing, 404)
    unauthenticated = await cors.client.get("/v1/me", headers={**page, **bearer("nope")})
    problem(unauthenticated, 401)

    def bug(**fields: object) -> None:
        raise RuntimeError("a bug")

    # Starlette answers a 500 outside the middleware it is given: CORS must be around that.
    monkeypatch.setattr(service.http.app, "Health", bug)
    crashed = await cors.client.get("/v1/health", headers=page)
    problem(crashed, 500)
    for answer in (created, listing, missing, unauthenticated, crashed):
        assert answer.headers["access-control-allow-origin"] == FRONT_END
        assert EXPOSED | {"idempotent-replayed"} <= listed(
            answer.headers["access-control-expose-headers"]
        )
        assert "origin" in listed(answer.headers["vary"])
        assert "access-control-allow-credentials" not in answer.headers


async def test_answers_to_another_origin_allow_nothing(cors: Api) -> None:
    """An answer to a request from an origin not allowed names no origin that may read it."""
    answer = await cors.client.get("/v1/projects", headers={"Origin": ELSEWHERE})
    assert answer.status_code == 200
    assert "access-control-allow-origin" not in answer.headers
    assert "origin" in listed(answer.headers["vary"])


@pytest.mark.parametrize("server_settings", [{"cors_origins": " "}])
async def test_without_origins_there_is_no_cors(api: Api) -> None:
    """With ``CAIRN_CORS_ORIGINS`` empty (as unset) no answer has an ``Access-Control-*``
    header: a preflight is the 405 problem it always was."""
    refused = await api.client.options("/v1/projects", headers=preflight(FRONT_END))
    problem(refused, 405)
    answers = [
        refused,
        await api.client.get("/v1/projects", headers={"Origin": FRONT_END}),
        await api.client.get("/openapi.json", headers={"Origin": FRONT_END}),
        await api.client.get("/v1/nope", headers={"Origin": FRONT_END}),
    ]
    assert [cors_headers(answer) for answer in answers] == [{}, {}, {}, {}]


# ------------------------------------------------------------------ WebSocket


async def subscribed(url: str, token: str, origin: str | None) -> None:
    """Open the stream (as a page of ``origin``, or as no browser), subscribe to all projects
    and see the subscription confirmed."""
    async with connect(
        url,
        additional_headers=bearer(token),
        origin=None if origin is None else Origin(origin),
        open_timeout=GUARD,
    ) as conn:
        await subscribe(conn, "all")


async def refused(url: str, token: str, origin: str) -> dict[str, Any]:
    """Open the stream as a page of ``origin``, which must be refused: the 403 problem."""
    with pytest.raises(InvalidStatus) as refusal:
        await subscribed(url, token, origin)
    answer = refusal.value.response
    assert answer.status_code == 403
    assert answer.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = json.loads(answer.body)
    assert body["type"] == "urn:cairn:problem:forbidden"
    assert origin in body["detail"]
    return body


async def test_the_stream_refuses_pages_of_other_origins(cors: Api) -> None:
    """A handshake from a page of an origin not allowed is refused with a 403 problem before
    it is accepted; allowed origins, the server's own and clients sending no Origin connect."""
    url, token = cors.server.ws_url, cors.admin_token
    for origin in (ELSEWHERE, "null", "http://127.0.0.1", f"{FRONT_END}/", "http://front-end.test"):
        await refused(url, token, origin)
    for origin in (FRONT_END, "http://other.test", cors.server.base_url, None):
        await subscribed(url, token, origin)


@pytest.mark.parametrize("server_settings", [{"cors_origins": ""}])
async def test_without_origins_the_stream_takes_its_own_pages_only(api: Api) -> None:
    """With no origin allowed, the stream still takes pages of the server's own origin (any
    scheme: a proxy may end TLS) and clients sending no Origin, and refuses the rest."""
    url, token = api.server.ws_url, api.admin_token
    await refused(url, token, FRONT_END)
    own = api.server.base_url
    for origin in (own, own.replace("http://", "https://"), None):
        await subscribed(url, token, origin)


# ------------------------------------------------------------------ a real browser

CHROMIUM = Path("/usr/bin/chromium")
"""Debian's Chromium (``apt-get install chromium``); never a browser a test tool downloads."""

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium calls home at start, and this machine's closed network
    # refuses it, many connections at a time.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

STEP = 10.0
"""Bound of one browser step (launching, loading the page, one evaluation), in seconds; the
page's own waits are shorter (:data:`PATIENCE`)."""

PATIENCE = 5000
"""How long (ms) the page waits for the stream before it reports what it saw."""

FRONT_END_PAGE = (Path(__file__).parent / "support" / "front_end.html").read_bytes()


@pytest.fixture
def chromium() -> Path:
    """The system Chromium; without it the browser tests are skipped, or fail where
    ``CAIRN_REQUIRE_BROWSER=1`` (CI, which installs it)."""
    if CHROMIUM.is_file():
        return CHROMIUM
    reason = f"no {CHROMIUM} (`apt-get install chromium`; .ci/run installs it)"
    if os.environ.get("CAIRN_REQUIRE_BROWSER") == "1":
        pytest.fail(f"CAIRN_REQUIRE_BROWSER=1 and {reason}")
    pytest.skip(reason)


@asynccontextmanager
async def front_end_page(chromium: Path) -> AsyncIterator[tuple[Page, str]]:
    """:file:`support/front_end.html` served from an origin of its own (another free port)
    and open in headless Chromium; the page and its origin."""

    async def index(request: Request) -> Response:
        return HTMLResponse(FRONT_END_PAGE)

    async with (
        serving_other(Starlette(routes=[Route("/", index)])) as origin,
        async_playwright() as playwright,
    ):
        # Playwright gives each launch a new, empty profile (its --user-data-dir).
        async with asyncio.timeout(STEP):
            browser = await playwright.chromium.launch(
                executable_path=chromium, args=CHROMIUM_FLAGS, timeout=STEP * 1000
            )
        try:
            page = await browser.new_page()
            page.set_default_timeout(STEP * 1000)
            async with asyncio.timeout(STEP):
                await page.goto(f"{origin}/")
            yield page, origin
        finally:
            await browser.close()


async def in_page(page: Page, function: str, *args: object) -> dict[str, Any]:
    """What the page's ``function`` called with ``args`` resolved to."""
    async with asyncio.timeout(STEP):
        got: dict[str, Any] = await page.evaluate(f"(args) => {function}(...args)", list(args))
    return got


@asynccontextmanager
async def page_and_cairn(
    database_url: str, chromium: Path, *, allowed: bool
) -> AsyncIterator[tuple[Page, Server, str]]:
    """The front end's page, and Cairn allowing its origin (or another one only), whose
    first admin's token it knows: the page, the server and the token."""
    admin = await add_admin(database_url)
    async with (
        front_end_page(chromium) as (page, origin),
        serving(database_url, cors_origins=origin if allowed else FRONT_END) as server,
        httpx.AsyncClient(base_url=server.base_url) as client,
    ):
        await known_token(client, bearer(admin.token), timeout=5.0)
        yield page, server, admin.token


async def test_a_page_of_an_allowed_origin_uses_the_api_and_the_stream(
    database_url: str, chromium: Path
) -> None:
    """In Chromium, a page of an allowed origin calls the API with its token through
    fetch(), reads Location, X-Total-Count, Link, ETag and Idempotent-Replayed, and follows
    a project over the stream."""
    async with (
        asyncio.timeout(60),
        page_and_cairn(database_url, chromium, allowed=True) as (page, server, token),
    ):
        got = await in_page(page, "useApi", server.base_url, token)
        assert "error" not in got, got
        project = got["project"]
        assert got["created"] == 201
        assert got["location"].endswith(f"/v1/projects/{project}")
        assert got["replayed"] == "true"
        assert (got["listed"], got["total"]) == (200, "2")
        assert 'rel="next"' in got["link"]
        assert got["etag"]
        assert (got["missing"], got["problem"]) == (404, "urn:cairn:problem:not-found")
        stream = (server.base_url, server.ws_url, token, project, PATIENCE)
        seen = await in_page(page, "follow", *stream)
        assert "timedOut" not in seen, seen
        assert seen["opened"], seen
        assert seen["frames"][0] == {"type": "subscribed", "subscription": project}
        assert seen["posted"] == 201, seen
        assert seen["event"]["project_id"] == project, seen


async def test_a_page_of_another_origin_gets_nothing(database_url: str, chromium: Path) -> None:
    """In Chromium, a page of an origin not allowed cannot call the API (fetch fails, the
    request never reaches a route) nor open the stream."""
    async with (
        asyncio.timeout(60),
        page_and_cairn(database_url, chromium, allowed=False) as (page, server, token),
    ):
        got = await in_page(page, "useApi", server.base_url, token)
        assert got == {"error": "TypeError: Failed to fetch"}
        stream = (server.base_url, server.ws_url, token, "all", PATIENCE)
        seen = await in_page(page, "follow", *stream)
        assert seen == {"opened": False, "frames": [], "closed": 1006}
        async with httpx.AsyncClient(base_url=server.base_url, headers=bearer(token)) as client:
            projects = await client.get("/v1/projects")
        assert projects.headers["x-total-count"] == "0"

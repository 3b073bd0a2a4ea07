"""Uploaded HTML and SVG files carrying scripts, opened by headless Chromium at their
download URLs (served by ``file_response`` on a real uvicorn server), run no script.

Each file's script, were it to run, marks its document (``data-ran``) and calls the test
server's recorder (``/ran/{key}``). Three ways to open each file:

* ``/files/{key}``: as Cairn serves it. ``attachment`` makes Chromium download it: nothing
  is rendered, nothing runs.
* ``/rendered/{key}``: the same answer without its ``Content-Disposition`` (as a proxy that
  drops it, or a browser that ignores it, would leave it). Chromium renders it, and
  ``Content-Security-Policy: sandbox`` keeps its script from running.
* ``/control/{key}``: the bytes with their type alone, which shows that the script does run
  when nothing stops it (so the two checks above can fail).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Error, async_playwright
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.blobs.store import BlobInfo, FileRef
from service.http.downloads import file_response

from .support.servers import serving_other

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
"""Bound of one browser step (launching, loading a page, one evaluation), in seconds."""

SCRIPT = (
    "document.documentElement.setAttribute('data-ran', '1');"
    "fetch('/ran/{key}', {{method: 'POST'}});"
)
HTML = (
    "<!doctype html><html><head><title>upload</title></head><body><p>hello</p>"
    f"<script>{SCRIPT.format(key='html')}</script>"
    "<img src=x onerror=\"fetch('/ran/html-onerror', {method: 'POST'})\"></body></html>"
)
SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    f"<script>{SCRIPT.format(key='svg')}</script>"
    '<rect width="10" height="10" onload="fetch(\'/ran/svg-onload\', {method: \'POST\'})"/></svg>'
)
UPLOADS = {
    "html": (HTML.encode(), "text/html", "page.html"),
    "svg": (SVG.encode(), "image/svg+xml", "drawing.svg"),
}


class MemoryStore:
    """A BlobStore over a few small blobs held in memory (only read here)."""

    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.blobs = blobs

    async def put(self, chunks: object, *, max_size: int) -> BlobInfo:
        raise NotImplementedError

    async def stat(self, sha256: str) -> BlobInfo | None:
        data = self.blobs.get(sha256)
        return None if data is None else BlobInfo(sha256=sha256, size=len(data))

    async def read(
        self, sha256: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        yield self.blobs[sha256][start:end]

    async def delete(self, sha256: str) -> None:
        raise NotImplementedError


class Recorder:
    """The test server: the uploads at their three URLs, and what their scripts told it."""

    def __init__(self) -> None:
        self.ran: list[str] = []
        self.refs: dict[str, FileRef] = {}
        blobs = {}
        for key, (data, content_type, name) in UPLOADS.items():
            sha256 = hashlib.sha256(data).hexdigest()
            blobs[sha256] = data
            self.refs[key] = FileRef(
                sha256=sha256, size=len(data), content_type=content_type, name=name
            )
        self.store = MemoryStore(blobs)

    def app(self) -> Starlette:
        async def files(request: Request) -> Response:
            return await file_response(request, self.store, self.refs[request.path_params["key"]])

        async def rendered(request: Request) -> Response:
            response = await file_response(
                request, self.store, self.refs[request.path_params["key"]]
            )
            del response.headers["content-disposition"]
            return response

        async def control(request: Request) -> Response:
            data, content_type, _ = UPLOADS[request.path_params["key"]]
            return Response(data, media_type=content_type)

        async def ran(request: Request) -> Response:
            self.ran.append(request.path_params["key"])
            return Response(status_code=204)

        return Starlette(
            routes=[
                Route("/files/{key}", files),
                Route("/rendered/{key}", rendered),
                Route("/control/{key}", control),
                Route("/ran/{key}", ran, methods=["POST"]),
            ]
        )


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


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        async with asyncio.timeout(STEP):
            browser = await playwright.chromium.launch(
                executable_path=chromium, args=CHROMIUM_FLAGS, timeout=STEP * 1000
            )
        try:
            yield browser
        finally:
            await browser.close()


async def _open(browser: Browser, url: str) -> tuple[str | None, str | None, bool]:
    """Open ``url`` in a new page of a fresh profile and wait for it to settle: the name of
    the root element it rendered (None: nothing), its script's mark on it (None: none) and
    whether Chromium took it as a download."""
    context = await browser.new_context(accept_downloads=True)
    try:
        page = await context.new_page()
        page.set_default_timeout(STEP * 1000)
        downloads: list[object] = []
        page.on("download", lambda download: downloads.append(download))
        try:
            async with asyncio.timeout(STEP):
                await page.goto(url, wait_until="load")
        except Error as exc:
            # Playwright reports a navigation that became a download as a failed one;
            # any other failure is the test's.
            if "Download is starting" not in str(exc):
                raise
            return None, None, True
        async with asyncio.timeout(STEP):
            # Let the script's fetch (if it ran) reach the server: network idle, then the mark.
            await page.wait_for_load_state("networkidle")
            root: str = await page.evaluate("document.documentElement.localName")
            marked: str | None = await page.evaluate(
                "document.documentElement.getAttribute('data-ran')"
            )
        return root, marked, bool(downloads)
    finally:
        await context.close()


@pytest.mark.parametrize("key", ["html", "svg"])
async def test_uploaded_scripts_never_run(browser: Browser, key: str) -> None:
    """An uploaded HTML file and an SVG carrying scripts: at their download URL Chromium
    downloads them; rendered anyway (no Content-Disposition), the sandbox stops their
    scripts; served bare, the same scripts run, so the test could see them if they did."""
    recorder = Recorder()
    async with asyncio.timeout(60), serving_other(recorder.app()) as base:
        root_element = {"html": "html", "svg": "svg"}[key]
        assert await _open(browser, f"{base}/files/{key}") == (None, None, True)
        assert recorder.ran == []

        assert await _open(browser, f"{base}/rendered/{key}") == (root_element, None, False)
        assert recorder.ran == []

        assert await _open(browser, f"{base}/control/{key}") == (root_element, "1", False)
        assert key in recorder.ran

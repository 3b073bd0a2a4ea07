"""Files served by ``file_response`` (service/http/downloads.py) and signed links
(service/http/links.py) through a real uvicorn server.

The PostgreSQL blob store is not here yet, so the server's :class:`BlobStore` is
:class:`DirectoryStore`: bytes in files of a temporary directory. A real store of bytes,
not a mock of a database; the rules under test are the response's.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.blobs.store import BlobInfo, FileRef
from service.domain.signing import MAX_TTL, file_path
from service.http.downloads import file_response
from service.http.links import check_link, link_response
from service.http.problems import exception_handlers
from service.reads.signing_keys import KeyringCache

from .support.servers import serving_other

CHUNK = 64 * 1024
MIB = 1024 * 1024


class DirectoryStore:
    """A :class:`~service.blobs.store.BlobStore` keeping each blob in a file named by its
    SHA-256 in ``root``, read in chunks of :data:`CHUNK` bytes."""

    def __init__(self, root: Path) -> None:
        self.root = root

    async def put(self, chunks: AsyncIterable[bytes], *, max_size: int) -> BlobInfo:
        data = b"".join([c async for c in chunks])
        assert len(data) <= max_size
        return self.add(data)

    def add(self, data: bytes) -> BlobInfo:
        sha256 = hashlib.sha256(data).hexdigest()
        (self.root / sha256).write_bytes(data)
        return BlobInfo(sha256=sha256, size=len(data))

    async def stat(self, sha256: str) -> BlobInfo | None:
        path = self.root / sha256
        return BlobInfo(sha256=sha256, size=path.stat().st_size) if path.is_file() else None

    async def read(
        self, sha256: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        with (self.root / sha256).open("rb") as f:
            f.seek(start)
            left = (end if end is not None else os.fstat(f.fileno()).st_size) - start
            while left > 0:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk

    async def delete(self, sha256: str) -> None:
        (self.root / sha256).unlink(missing_ok=True)


class Files:
    """The files the test server serves, by name."""

    def __init__(self, root: Path) -> None:
        self.store = DirectoryStore(root)
        self.refs: dict[str, FileRef] = {}

    def add(self, key: str, data: bytes, content_type: str, name: str | None = None) -> FileRef:
        info = self.store.add(data)
        ref = FileRef(
            sha256=info.sha256, size=info.size, content_type=content_type, name=name or key
        )
        self.refs[key] = ref
        return ref


def files_app(files: Files) -> Starlette:
    """``/files/{key}``: each of ``files`` as :func:`file_response` answers it."""

    async def download(request: Request) -> Response:
        return await file_response(request, files.store, files.refs[request.path_params["key"]])

    return Starlette(
        routes=[Route("/files/{key}", download, methods=["GET"])],
        exception_handlers=exception_handlers(),
    )


@asynccontextmanager
async def serving_files(files: Files) -> AsyncIterator[httpx.AsyncClient]:
    async with serving_other(files_app(files)) as base, httpx.AsyncClient(base_url=base) as client:
        yield client


@pytest.fixture
def files(tmp_path: Path) -> Files:
    return Files(tmp_path)


SAFETY = {
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; sandbox",
    "cache-control": "private",
    "accept-ranges": "bytes",
    "referrer-policy": "no-referrer",
}


def _safe(response: httpx.Response, ref: FileRef) -> None:
    for name, value in SAFETY.items():
        assert response.headers.get(name) == value, (name, response.headers)
    assert response.headers["etag"] == f'"{ref.sha256}"'


# ------------------------------------------------------------------ whole files


@pytest.mark.parametrize("size", [0, 1, 10 * MIB])
async def test_files_round_trip_byte_exact(files: Files, size: int) -> None:
    """0 B, 1 B and 10 MiB come back exactly, with their length, type, disposition, ETag
    and every safety header."""
    data = os.urandom(size)
    ref = files.add("f", data, "application/pdf", "plan ünd 📎.pdf")
    async with serving_files(files) as client:
        response = await client.get("/files/f")
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-length"] == str(size)
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"plan und _.pdf\"; filename*=UTF-8''plan%20%C3%BCnd%20%F0%9F%93%8E.pdf"
    )
    _safe(response, ref)


@pytest.mark.parametrize(
    ("content_type", "sent", "disposition"),
    [
        ("image/png", "image/png", "inline"),
        ("image/svg+xml", "image/svg+xml", "attachment"),
        ("text/html", "text/html", "attachment"),
        ("text/plain", "text/plain", "attachment"),
        ("text/html\r\nX-Evil: 1", "application/octet-stream", "attachment"),
    ],
)
async def test_only_raster_images_are_inline(
    files: Files, content_type: str, sent: str, disposition: str
) -> None:
    """A PNG is inline; SVG, HTML, text are attachments; the stored type is sent as given
    (no charset added), a malformed one as octet-stream."""
    files.add("f", b"x", content_type, "f")
    async with serving_files(files) as client:
        response = await client.get("/files/f")
    assert response.headers["content-type"] == sent
    assert response.headers["content-disposition"].split(";")[0] == disposition
    assert "x-evil" not in response.headers


async def test_head_sends_the_headers_alone(files: Files) -> None:
    """HEAD answers GET's status and headers, Content-Length included, with no body (and
    ignores Range, which RFC 9110 defines for GET only)."""
    ref = files.add("f", os.urandom(100_000), "image/png")
    async with serving_files(files) as client:
        head = await client.head("/files/f", headers={"Range": "bytes=0-0"})
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == "100000"
    _safe(head, ref)


async def test_a_missing_blob_is_not_found(files: Files) -> None:
    """A file whose bytes the store does not have is 404, not a truncated 200."""
    ref = files.add("f", b"gone", "text/plain")
    await files.store.delete(ref.sha256)
    async with serving_files(files) as client:
        response = await client.get("/files/f")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


# ------------------------------------------------------------------ conditional requests


async def test_if_none_match_answers_304(files: Files) -> None:
    """The file's ETag (also weak, in a list, or ``*``) gets 304 with no body; another tag
    gets the file."""
    ref = files.add("f", b"hello", "text/plain")
    tag = f'"{ref.sha256}"'
    async with serving_files(files) as client:
        for header in (tag, f"W/{tag}", f'"other", {tag}', "*"):
            response = await client.get("/files/f", headers={"If-None-Match": header})
            assert response.status_code == 304, header
            assert response.content == b""
            _safe(response, ref)
        other = await client.get("/files/f", headers={"If-None-Match": '"other"'})
    assert (other.status_code, other.content) == (200, b"hello")


async def test_if_range_with_another_tag_sends_the_whole_file(files: Files) -> None:
    """A range under If-Range naming these bytes is 206; naming others (or a date), 200."""
    ref = files.add("f", b"0123456789", "text/plain")
    async with serving_files(files) as client:
        same = await client.get(
            "/files/f", headers={"Range": "bytes=0-1", "If-Range": f'"{ref.sha256}"'}
        )
        other = await client.get("/files/f", headers={"Range": "bytes=0-1", "If-Range": '"old"'})
    assert (same.status_code, same.content) == (206, b"01")
    assert (other.status_code, other.content) == (200, b"0123456789")


# ------------------------------------------------------------------ ranges

DATA = bytes(range(256)) * 40  # 10,240 bytes
SIZE = len(DATA)


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-0", 0, 0),
        (f"bytes={SIZE - 1}-{SIZE - 1}", SIZE - 1, SIZE - 1),
        ("bytes=-1", SIZE - 1, SIZE - 1),
        ("bytes=-500", SIZE - 500, SIZE - 1),
        ("bytes=1000-", 1000, SIZE - 1),
        ("bytes=100-199", 100, 199),
        ("bytes=9000-999999", 9000, SIZE - 1),
        ("bytes=0-10,5-20", 0, 20),
    ],
)
async def test_one_range_is_206(files: Files, header: str, first: int, last: int) -> None:
    """First byte, last byte, suffixes, open and overlong ends: 206 with exactly those
    bytes, their Content-Range and Content-Length."""
    ref = files.add("f", DATA, "application/octet-stream")
    async with serving_files(files) as client:
        response = await client.get("/files/f", headers={"Range": header})
    assert response.status_code == 206
    assert response.content == DATA[first : last + 1]
    assert response.headers["content-range"] == f"bytes {first}-{last}/{SIZE}"
    assert response.headers["content-length"] == str(last - first + 1)
    assert response.headers["content-type"] == "application/octet-stream"
    _safe(response, ref)


def _parts(response: httpx.Response) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a multipart/byteranges body: headers and bytes; fails unless the body is
    exactly well formed."""
    match = re.fullmatch(
        r"multipart/byteranges; boundary=([0-9a-f]{32})", response.headers["content-type"]
    )
    assert match is not None, response.headers["content-type"]
    delimiter = b"--" + match[1].encode()
    body = response.content
    assert body.startswith(delimiter + b"\r\n")
    assert body.endswith(b"\r\n" + delimiter + b"--\r\n")
    inner = body[len(delimiter) + 2 : -(len(delimiter) + 6)]
    parts = []
    for raw in inner.split(b"\r\n" + delimiter + b"\r\n"):
        head, _, data = raw.partition(b"\r\n\r\n")
        fields = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        parts.append(({k.lower(): v for k, v in fields.items()}, data))
    return parts


async def test_several_ranges_are_multipart(files: Files) -> None:
    """Several ranges: 206 multipart/byteranges, the parts in order (overlaps merged), each
    with its type and Content-Range, and a Content-Length equal to the body's."""
    ref = files.add("f", DATA, "text/plain")
    header = f"bytes=-3,0-0,100-199,150-250,{SIZE}-"
    async with serving_files(files) as client:
        response = await client.get("/files/f", headers={"Range": header})
    assert response.status_code == 206
    assert response.headers["content-length"] == str(len(response.content))
    _safe(response, ref)
    expected = [(0, 0), (100, 250), (SIZE - 3, SIZE - 1)]
    parts = _parts(response)
    assert [(h["content-type"], h["content-range"]) for h, _ in parts] == [
        ("text/plain", f"bytes {a}-{b}/{SIZE}") for a, b in expected
    ]
    assert [data for _, data in parts] == [DATA[a : b + 1] for a, b in expected]


@pytest.mark.parametrize(
    "header",
    [
        "bytes=5-1",
        "bytes=x-y",
        "bytes=-",
        "lines=1-2",
        "bytes=0-1;2-3",
        "bytes=" + ",".join(["0-0"] * 17),
    ],
)
async def test_invalid_ranges_get_the_whole_file(files: Files, header: str) -> None:
    """A malformed Range, another unit or more than 16 ranges: ignored, 200 and every byte."""
    files.add("f", DATA, "text/plain")
    async with serving_files(files) as client:
        response = await client.get("/files/f", headers={"Range": header})
    assert (response.status_code, response.content) == (200, DATA)
    assert "content-range" not in response.headers


@pytest.mark.parametrize(
    ("size", "header"), [(SIZE, f"bytes={SIZE}-"), (SIZE, "bytes=-0"), (0, "bytes=0-0")]
)
async def test_unsatisfiable_ranges_are_416(files: Files, size: int, header: str) -> None:
    """A well-formed Range missing the file (past its end, empty suffix, any byte of an
    empty file): 416 with ``Content-Range: bytes */size`` and no body."""
    ref = files.add("f", DATA[:size], "text/plain")
    async with serving_files(files) as client:
        response = await client.get("/files/f", headers={"Range": header})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{size}"
    assert response.headers["content-length"] == "0"
    assert response.content == b""
    _safe(response, ref)


# ------------------------------------------------------------------ signed links


class Clock:
    """The test server's "now" in Unix seconds, moved by the test."""

    def __init__(self) -> None:
        self.now = 1_800_000_000

    def __call__(self) -> int:
        return self.now


def links_app(files: Files, pool: asyncpg.Pool, clock: Clock) -> Starlette:
    """``/v1/uploads/{key}/link`` mints a link to version 1 of ``key`` (the access check is
    the wiring's); ``/files/{key}/versions/{n}`` serves it to whoever holds the link."""
    keys = KeyringCache()

    async def link(request: Request) -> Response:
        path = file_path(request.path_params["key"], 1)
        redirect = request.query_params.get("redirect") != "0"
        return await link_response(request, keys, pool, path, now=clock(), redirect=redirect)

    async def signed(request: Request) -> Response:
        await check_link(request, keys, pool, now=clock())
        return await file_response(request, files.store, files.refs[request.path_params["key"]])

    return Starlette(
        routes=[
            Route("/v1/uploads/{key}/link", link, methods=["GET"]),
            Route("/files/{key}/versions/{n:int}", signed, methods=["GET"]),
        ],
        exception_handlers=exception_handlers(),
    )


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        yield pool
    finally:
        await pool.close()


def _tampered(url: str) -> Iterator[str]:
    """``url`` with its path, expiry or signature changed."""
    path, _, query = url.partition("?")
    params = dict(p.split("=", 1) for p in query.split("&"))
    yield url.replace("/versions/1", "/versions/2")
    yield url.replace("/files/f/", "/files/g/")
    yield f"{path}?expires={int(params['expires']) + 1}&signature={params['signature']}"
    mac = params["signature"]
    yield f"{path}?expires={params['expires']}&signature={mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}"
    yield f"{path}?expires={params['expires']}"
    yield path


async def test_a_signed_link_serves_the_file_without_a_token_until_it_expires(
    files: Files, pool: asyncpg.Pool
) -> None:
    """The link route redirects (303, no-store) to a signed URL that serves the bytes with
    every download header; ``?redirect=0`` gives the same URL as JSON; a tampered link is
    403; the link is 403 once five minutes have passed."""
    data = os.urandom(1000)
    ref = files.add("f", data, "text/html", "page.html")
    files.add("g", b"other", "text/plain")
    clock = Clock()
    async with (
        serving_other(links_app(files, pool, clock)) as base,
        httpx.AsyncClient(base_url=base) as client,
    ):
        minted = await client.get("/v1/uploads/f/link")
        assert minted.status_code == 303
        assert minted.headers["cache-control"] == "no-store"
        url = minted.headers["location"]
        assert url == minted.json()["url"]
        assert re.fullmatch(
            re.escape(base) + r"/files/f/versions/1\?expires=\d+&signature=[0-9a-z]+\.[\w-]{43}",
            url,
        ), url
        as_json = await client.get("/v1/uploads/f/link?redirect=0")
        assert as_json.status_code == 200
        assert as_json.json()["url"].startswith(f"{base}/files/f/versions/1?")
        assert as_json.json()["expires_at"] == "2027-01-15T08:05:00Z"
        served = await client.get(url)
        assert served.status_code == 200
        assert served.content == data
        _safe(served, ref)
        followed = await client.get("/v1/uploads/f/link", follow_redirects=True)
        assert followed.content == data
        for bad in _tampered(url):
            refused = await client.get(bad)
            assert refused.status_code == 403, bad
            assert refused.json()["type"] == "urn:cairn:problem:link-refused"
        clock.now += MAX_TTL - 1
        assert (await client.get(url)).status_code == 200
        clock.now += 1
        expired = await client.get(url)
        assert expired.status_code == 403
        assert "expired" in expired.json()["detail"]

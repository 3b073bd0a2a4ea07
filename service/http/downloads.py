"""A file's bytes as an HTTP response, streamed from the blob store: the whole file (200),
one range (206), several (206 ``multipart/byteranges``), none (416), or nothing new (304).

Every answer carries the headers that keep an uploaded file from acting in Cairn's origin
(an HTML or SVG file could otherwise run script with the reader's cookies and storage):
``Content-Disposition: attachment`` unless the file is a raster image, the stored type with
``X-Content-Type-Options: nosniff`` (a browser never guesses another), and
``Content-Security-Policy: default-src 'none'; sandbox`` (were it rendered anyway, it runs
no script, loads nothing and has an opaque origin). The rules themselves are
:mod:`service.domain.downloads`'s.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Sequence
from typing import Final

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..blobs.store import BlobStore, FileRef
from ..domain.downloads import (
    ByteRange,
    RangeAnswer,
    content_disposition,
    etag_of,
    if_none_match,
    if_range_allows,
    inline_allowed,
    parse_range,
    sent_content_type,
    unsatisfiable_range,
)
from ..errors import NotFound

CONTENT_SECURITY_POLICY: Final = "default-src 'none'; sandbox"


def common_headers(file: FileRef) -> dict[str, str]:
    """The headers of every answer about ``file``, 304 and 416 included."""
    return {
        "ETag": etag_of(file.sha256),
        "Cache-Control": "private",
        "Accept-Ranges": "bytes",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        # A signed link is a bearer credential for its few minutes: a page it serves must
        # not hand it on to whatever the page links to.
        "Referrer-Policy": "no-referrer",
    }


async def file_response(request: Request, store: BlobStore, file: FileRef) -> Response:
    """The answer to ``GET`` or ``HEAD`` of ``file``, access already granted by the caller.

    Honours ``If-None-Match`` (304), ``Range`` (206 or 416, GET only, as RFC 9110 §14.2
    defines ranges for GET alone) and ``If-Range`` (a range only while the client's tag is
    still this file's). ``Content-Length`` is always sent, so clients see progress and
    truncation. The bytes stream from ``store`` in its chunks, never whole in memory.

    Raises:
        NotFound: ``store`` has no complete blob for ``file`` (gone or never finished).
    """
    headers = common_headers(file)
    if if_none_match(request.headers.get("if-none-match"), headers["ETag"]):
        return Response(status_code=304, headers=headers)
    info = await store.stat(file.sha256)
    if info is None:
        raise NotFound(f"the bytes of {file.name!r} are not in the blob store")
    size = info.size
    inline = inline_allowed(file.content_type)
    headers["Content-Disposition"] = content_disposition(file.name, inline)
    content_type = sent_content_type(file.content_type)
    head = request.method == "HEAD"
    wanted: tuple[ByteRange, ...] | RangeAnswer = RangeAnswer.FULL
    if not head and if_range_allows(request.headers.get("if-range"), headers["ETag"]):
        wanted = parse_range(request.headers.get("range"), size)
    if wanted is RangeAnswer.UNSATISFIABLE:
        headers |= {"Content-Range": unsatisfiable_range(size), "Content-Length": "0"}
        return Response(status_code=416, headers=headers)
    if isinstance(wanted, RangeAnswer):
        headers |= {"Content-Type": content_type, "Content-Length": str(size)}
        body = _nothing() if head else store.read(file.sha256)
        return StreamingResponse(body, status_code=200, headers=headers)
    if len(wanted) == 1:
        (part,) = wanted
        headers |= {
            "Content-Type": content_type,
            "Content-Range": part.content_range(size),
            "Content-Length": str(part.length),
        }
        body = store.read(file.sha256, part.first, part.last + 1)
        return StreamingResponse(body, status_code=206, headers=headers)
    boundary = secrets.token_hex(16)
    fronts = [
        _part_head(boundary, content_type, r, size, first=i == 0) for i, r in enumerate(wanted)
    ]
    tail = f"\r\n--{boundary}--\r\n".encode("ascii")
    length = sum(len(f) for f in fronts) + sum(r.length for r in wanted) + len(tail)
    headers |= {
        "Content-Type": f"multipart/byteranges; boundary={boundary}",
        "Content-Length": str(length),
    }
    body = _parts(store, file.sha256, wanted, fronts, tail)
    return StreamingResponse(body, status_code=206, headers=headers)


def _part_head(
    boundary: str, content_type: str, part: ByteRange, size: int, *, first: bool
) -> bytes:
    # RFC 2046: a delimiter is CRLF "--" boundary, the CRLF optional before the first.
    lead = "" if first else "\r\n"
    return (
        f"{lead}--{boundary}\r\nContent-Type: {content_type}\r\n"
        f"Content-Range: {part.content_range(size)}\r\n\r\n"
    ).encode("latin-1")


async def _parts(
    store: BlobStore,
    sha256: str,
    wanted: Sequence[ByteRange],
    fronts: Sequence[bytes],
    tail: bytes,
) -> AsyncIterator[bytes]:
    for front, part in zip(fronts, wanted, strict=True):
        yield front
        async for chunk in store.read(sha256, part.first, part.last + 1):
            yield chunk
    yield tail


async def _nothing() -> AsyncIterator[bytes]:
    """No bytes (a HEAD's body), as the async iterator a streamed response takes."""
    nothing: tuple[bytes, ...] = ()
    for chunk in nothing:
        yield chunk

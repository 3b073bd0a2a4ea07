"""People's pictures: ``PUT``/``DELETE /v1/me/avatar`` and ``GET /v1/people/{id}/avatar``.

A picture is checked by its content, never its name or claimed type: its first bytes must
be the signature of a PNG, JPEG, GIF or WebP image
(:func:`~service.domain.downloads.image_type`), else 415 before anything is kept. At most
:data:`~service.domain.people.MAX_AVATAR` bytes (5 MiB), else 413 as soon as they are
passed, with nothing left behind. The bytes go to the blob store like any file (identical
pictures are stored once) and the person's stream records ``AvatarChanged`` with the file.

Every person the caller may see has an ``avatar_url`` (:func:`.envelope.avatar_url`): their picture,
or a plain default one while they have none. It is served as every download is
(:mod:`.downloads`: ``nosniff``, a sandboxing CSP, ``ETag``/304, ranges), shown inline: only
raster images get there.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import AsyncIterator
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from ..blobs.store import FileRef
from ..commands.execute import execute, load
from ..domain.downloads import etag_of, if_none_match, image_type
from ..domain.people import (
    MAX_AVATAR,
    ChangeAvatar,
    PersonState,
    decide_change_avatar,
    fold_person,
)
from ..errors import NotFound, TooLarge
from ..events.base import Event
from ..events.streams import person_stream
from ..reads import directory
from .api import Api, Ctx, Reply
from .downloads import common_headers, file_response
from .people import Person, may_see, shown
from .problems import ApiError

api = Api()
_TAGS: Final = ["people"]
_SNIFF: Final = 12
"""Bytes enough to recognise every picture type Cairn takes."""

_IMAGE: Final = {
    # Declared as bytes of any type (generated clients take no image/* bodies): the content
    # decides, whatever Content-Type says.
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
}


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A plain PNG of one colour (the default picture)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height, 9))
        + chunk(b"IEND", b"")
    )


DEFAULT_AVATAR: Final = _png(96, 96, (0xC8, 0xCC, 0xD2))
"""The picture of someone who has none: 96×96, one light grey."""
_DEFAULT: Final = FileRef(
    sha256=hashlib.sha256(DEFAULT_AVATAR).hexdigest(),
    size=len(DEFAULT_AVATAR),
    content_type="image/png",
    name="avatar.png",
)


@api.put(
    "/v1/me/avatar",
    summary="Set your picture: the raw bytes of a PNG, JPEG, GIF or WebP image (at most 5 MiB; "
    "checked by content)",
    response=Person,
    tags=_TAGS,
    streamed_body=_IMAGE,
)
async def put_avatar(ctx: Ctx) -> Reply:
    declared = ctx.request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_AVATAR:
        raise TooLarge(MAX_AVATAR)
    precondition = ctx.caller.precondition
    if precondition is not None:
        # Before the body is read: an If-Match of another version is refused (412) without
        # taking a picture that would be dropped. The append checks it again.
        loaded = await load(ctx.caller, person_stream(ctx.me.person_id))
        precondition.check(loaded.version)
    kind: list[str] = []
    blob = await ctx.state["blobs"].put(_image(ctx.request, kind), max_size=MAX_AVATAR)
    if not kind:  # an empty body: nothing to sniff
        raise _not_an_image()
    picture = FileRef(sha256=blob.sha256, size=blob.size, content_type=kind[0], name="avatar")
    await _change(ctx, picture)
    return await shown(ctx, ctx.me.person_id)


@api.delete(
    "/v1/me/avatar",
    summary="Remove your picture (the default one is shown again)",
    response=Person,
    tags=_TAGS,
)
async def delete_avatar(ctx: Ctx) -> Reply:
    await _change(ctx, None)
    return await shown(ctx, ctx.me.person_id)


@api.get(
    "/v1/people/{person_id}/avatar",
    summary="A person's picture (the default one while they have none); 404 for someone the "
    "caller may not see",
    tags=_TAGS,
)
async def get_avatar(ctx: Ctx) -> Response:
    person_id = ctx.path("person_id")
    if not await may_see(ctx, ctx.me, person_id):
        raise NotFound("there is no such person")
    row = await directory.person(ctx.store.pool, person_id)
    if row is None:
        raise NotFound("there is no such person")
    if row["avatar_sha256"] is None:
        return _default(ctx.request)
    picture = await ctx.state["blobs"].stat(row["avatar_sha256"])
    if picture is None:
        raise NotFound("the picture's bytes are not in the blob store")
    file = FileRef(
        sha256=picture.sha256, size=picture.size, content_type=row["avatar_type"], name="avatar"
    )
    return await file_response(ctx.request, ctx.state["blobs"], file)


async def _change(ctx: Ctx, picture: FileRef | None) -> None:
    cmd = ChangeAvatar(avatar=picture)
    c = ctx.caller.context()
    person_id = ctx.me.person_id

    def decide(person: PersonState | None) -> list[Event]:
        if person is None:
            raise NotFound("there is no such person")
        return decide_change_avatar(person, cmd, c)

    await execute(ctx.caller, person_stream(person_id), fold_person, decide, project_id=None)


async def _image(request: Request, kind: list[str]) -> AsyncIterator[bytes]:
    """The body's bytes, refused (415) unless its first bytes are a picture's; the type
    found is put in ``kind``."""
    head = b""
    async for chunk in request.stream():
        if not chunk:
            continue
        if not kind:
            head += chunk
            if len(head) < _SNIFF:
                continue
            found = image_type(head)
            if found is None:
                raise _not_an_image()
            kind.append(found)
            chunk, head = head, b""
        yield chunk
    if not kind and head:
        found = image_type(head)
        if found is None:
            raise _not_an_image()
        kind.append(found)
        yield head


def _not_an_image() -> ApiError:
    return ApiError(415, "a picture must be a PNG, JPEG, GIF or WebP image (checked by content)")


def _default(request: Request) -> Response:
    headers = common_headers(_DEFAULT) | {
        "Content-Disposition": 'inline; filename="avatar.png"',
        "Accept-Ranges": "none",
    }
    if if_none_match(request.headers.get("if-none-match"), etag_of(_DEFAULT.sha256)):
        return Response(status_code=304, headers=headers)
    return Response(DEFAULT_AVATAR, headers=headers, media_type="image/png")

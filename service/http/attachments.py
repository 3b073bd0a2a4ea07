"""``POST /v1/attachments``: a file's bytes streamed to the blob store, answered with an
attachable (bytes named and typed, waiting for their uploader to attach them).

The body is the file itself (any ``Content-Type``, stored as given;
``application/octet-stream`` when none), or ``multipart/form-data`` holding one part, named
``file``, parsed as it streams (python-multipart). Either way no more than a chunk of it is
in memory: the route reads ``request.stream()`` itself (:meth:`Api.route`'s
``streamed_body``), so neither the JSON decoding nor ``CAIRN_MAX_BODY`` applies, but
``CAIRN_MAX_UPLOAD`` does: 413 as soon as the file passes it (at once when
``Content-Length`` says it will), with nothing left behind.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Final

import msgspec
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from ..blobs import attachables
from ..errors import TooLarge
from ..events.streams import ATTACHABLE_ID, PersonId
from .api import Api, Ctx, Reply
from .params import Param, Text
from .problems import ApiError, FieldError

api = Api()
_TAGS: Final = ["attachments"]
MAX_NAME: Final = 255
"""The longest file name, in characters."""
_OCTETS: Final = "application/octet-stream"
_MULTIPART_SLACK: Final = 64 * 1024
"""What a multipart body may hold beyond the file (boundaries, the part's headers)."""
_FILE_PART: Final = "file"


class Attachable(msgspec.Struct, frozen=True, kw_only=True):
    """Bytes uploaded, waiting to be attached by their uploader (``attachment_ids`` of the
    routes that take files); their ``sha256`` is the lowercase hex SHA-256 of the bytes."""

    attachable_id: str
    name: str
    size: int
    content_type: str
    sha256: str


def _name(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


FileName = Annotated[Text, msgspec.Meta(min_length=1, max_length=MAX_NAME)]
NAME: Final = Param(
    f"the file's name (1-{MAX_NAME} characters, not blank, no control characters); "
    "required unless a multipart part's filename gives it",
    FileName,
    parse=_name,
)

_STREAMED: Final = {
    "application/octet-stream": {
        "schema": {"type": "string", "format": "binary"},
    },
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "properties": {_FILE_PART: {"type": "string", "format": "binary"}},
            "required": [_FILE_PART],
            # The server refuses any other part (422): say so, for generated clients.
            "additionalProperties": False,
        },
    },
}


@api.post(
    "/v1/attachments",
    summary="Upload a file (raw body of any type, or multipart/form-data with a part named "
    "file); attach it later by its attachable_id",
    response=Attachable,
    status=201,
    tags=_TAGS,
    query={"name": NAME},
    streamed_body=_STREAMED,
)
async def upload(ctx: Ctx) -> Reply:
    request = ctx.request
    limit = ctx.settings.max_upload
    media = request.headers.get("content-type")
    given: str | None = ctx.param("name")
    is_multipart = media is not None and media.split(";")[0].strip().lower() == (
        "multipart/form-data"
    )
    _refuse_declared_size(request, limit + (_MULTIPART_SLACK if is_multipart else 0))
    if is_multipart:
        assert media is not None
        part = _FilePart(media, named=given is not None)
        chunks = part.stream(request)
    else:
        if given is None:
            raise _missing_name()
        chunks = _body(request)
    blob = await ctx.state["blobs"].put(chunks, max_size=limit)
    if is_multipart:
        name = given if given is not None else part.filename
        content_type = part.content_type or _OCTETS
    else:
        assert given is not None
        name, content_type = given, _content_type(media)
    assert name is not None  # else refused as the part began
    attachable_id = ctx.new_id(ATTACHABLE_ID)
    await attachables.create(
        ctx.store.pool,
        attachable_id,
        blob,
        name=name,
        content_type=content_type,
        created_by=PersonId(ctx.me.person_id),
    )
    shown = Attachable(
        attachable_id=attachable_id,
        name=name,
        size=blob.size,
        content_type=content_type,
        sha256=blob.sha256,
    )
    return Reply(shown, status=201)


def _refuse_declared_size(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(limit)


def _missing_name() -> ApiError:
    detail = "is required (or a multipart part with a filename)"
    return ApiError(
        400,
        f"bad query parameters: ?name= {detail}",
        field_errors=[FieldError(field="name", detail=detail)],
    )


def _content_type(given: str | None) -> str:
    """The body's ``Content-Type`` as given (``application/octet-stream`` when none); 415
    for one that is no media type a download could send back."""
    if given is None or not given.strip():
        return _OCTETS
    value = given.strip()
    if len(value) > MAX_NAME or not value.isascii() or not value.isprintable() or "/" not in value:
        raise ApiError(415, "Content-Type must be a media type (type/subtype), in ASCII")
    return value


async def _body(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        if chunk:
            yield chunk


class _FilePart:
    """The one part (named ``file``) of a ``multipart/form-data`` body, streamed: its bytes
    from :meth:`stream`, then its ``filename`` and ``content_type`` (None when absent).
    Unless ``named`` (``?name=`` given), a part without a filename is refused (400) as soon
    as its headers arrive."""

    def __init__(self, media: str, *, named: bool) -> None:
        _, options = parse_options_header(media)
        boundary = options.get(b"boundary")
        if not boundary:
            raise ApiError(400, "multipart/form-data needs a boundary")
        self.filename: str | None = None
        self._named = named
        self.content_type: str | None = None
        self._parts = 0
        self._ended = False
        self._out: list[bytes] = []
        self._field = bytearray()
        self._value = bytearray()
        self._headers: dict[str, bytes] = {}
        callbacks: Any = {
            "on_part_begin": self._begin,
            "on_header_field": lambda data, start, end: self._field.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._value.extend(data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": lambda data, start, end: self._out.append(bytes(data[start:end])),
            "on_end": self._end,
        }
        self._parser = MultipartParser(boundary, callbacks)

    async def stream(self, request: Request) -> AsyncIterator[bytes]:
        """The file part's bytes as the body arrives.

        Raises:
            ApiError: 400 for a malformed body; 422 unless it holds exactly one part, named
                ``file``, whose filename (if any) is a valid name.
        """
        async for chunk in request.stream():
            if not chunk:
                continue
            try:
                self._parser.write(chunk)
            except ApiError:
                raise
            except Exception as exc:  # python-multipart's errors have no common root
                raise ApiError(400, f"malformed multipart/form-data: {exc}") from None
            out, self._out = self._out, []
            for piece in out:
                if piece:
                    yield piece
        if not self._ended or self._parts == 0:
            raise ApiError(400, "malformed multipart/form-data: the body ended early")

    def _begin(self) -> None:
        self._parts += 1
        if self._parts > 1:
            raise _part_error("must hold exactly one part, named file")
        self._headers = {}

    def _header_end(self) -> None:
        self._headers[self._field.decode("latin-1").lower()] = bytes(self._value)
        self._field.clear()
        self._value.clear()

    def _headers_finished(self) -> None:
        disposition = self._headers.get("content-disposition", b"")
        kind, options = parse_options_header(disposition)
        if kind != b"form-data" or options.get(b"name") != _FILE_PART.encode():
            raise _part_error("must hold exactly one part, named file")
        filename = options.get(b"filename")
        if filename is not None:
            name = filename.decode("utf-8", "replace")
            try:
                self.filename = _name(msgspec.convert(name, FileName))
            except (ValueError, msgspec.ValidationError):
                raise _part_error(
                    f"the file's filename must be 1-{MAX_NAME} characters, not blank, "
                    "without control characters",
                    field="file.filename",
                ) from None
        if self.filename is None and not self._named:
            # Before the bytes: refused now, nothing is stored.
            raise _missing_name()
        content_type = self._headers.get("content-type")
        if content_type is not None:
            self.content_type = _content_type(content_type.decode("latin-1"))

    def _end(self) -> None:
        self._ended = True


def _part_error(detail: str, field: str = _FILE_PART) -> ApiError:
    return ApiError(
        422, f"the multipart body {detail}", field_errors=[FieldError(field=field, detail=detail)]
    )

"""Request bodies: size limit, media type, JSON decoding into a handler's declared type."""

from __future__ import annotations

import re
from typing import Any, Final

import msgspec
from starlette.requests import Request

from .problems import ApiError, FieldError

# msgspec's wording for a field that should not be there, or is missing.
_NAMED_FIELD: Final = re.compile(r"Object (?:contains unknown|missing required) field `([^`]*)`")
_NO_BODY: Final = b"{}"


def _is_json(content_type: str) -> bool:
    media = content_type.split(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _has_body(request: Request) -> bool:
    headers = request.headers
    return headers.get("content-length", "0") != "0" or "transfer-encoding" in headers


async def _read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing (413) anything over ``limit`` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request bodies are limited to {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request bodies are limited to {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def invalid(exc: msgspec.ValidationError) -> ApiError:
    """The 422 of a body that does not fit its type, naming the JSON path of the bad field
    (``assignee_ids[2]``, ``due_on``; an unknown or missing field by its own name)."""
    message = str(exc)
    detail, _, where = message.partition(" - at `")
    path = where.rstrip("`").removeprefix("$").removeprefix(".")
    named = _NAMED_FIELD.match(detail)
    if named is not None:
        path = f"{path}.{named[1]}" if path else named[1]
    return ApiError(422, message, field_errors=[FieldError(field=path or "(body)", detail=detail)])


async def decode_body(
    request: Request, decoder: msgspec.json.Decoder[Any], limit: int
) -> tuple[bytes, Any]:
    """The raw JSON body and its decoded value: 415 if not JSON, 413 if over ``limit``
    bytes, 400 if malformed, 422 if it does not fit the decoder's type (unknown fields
    included). No body at all reads as ``{}``: a POST whose fields are all optional needs
    none."""
    if not _is_json(request.headers.get("content-type", "")) and _has_body(request):
        raise ApiError(415, "send the body as application/json")
    body = await _read_body(request, limit)
    try:
        return body, decoder.decode(body or _NO_BODY)
    except msgspec.ValidationError as exc:
        raise invalid(exc) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}") from None


def convert(data: Any, kind: type[Any]) -> Any:
    """``data`` (a decoded JSON object) as ``kind``, or 422 naming the bad field."""
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        raise invalid(exc) from None

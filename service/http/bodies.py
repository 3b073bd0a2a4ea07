"""Request bodies: size limit, media type, JSON decoding into a handler's declared type.

Before a body is decoded it must nest at most :data:`MAX_DEPTH` arrays and objects deep
(deeper, decoding into ``Any`` recurses until Python gives up), and no string in it may hold
NUL (``\\u0000``: PostgreSQL text and jsonb cannot store it), whichever field it is in.
"""

from __future__ import annotations

import re
from typing import Any, Final

import msgspec
from starlette.requests import Request

from .problems import ApiError, FieldError

# msgspec's wording for a field that should not be there, or is missing.
_NAMED_FIELD: Final = re.compile(r"Object (?:contains unknown|missing required) field `([^`]*)`")
_NO_BODY: Final = b"{}"

MAX_DEPTH: Final = 32
"""How deep a request body may nest arrays and objects."""
_STRING: Final = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
# Kinds of brackets do not matter to depth (a mismatch is malformed, which decoding says).
_AS_SQUARE: Final = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS: Final = bytes(sorted(set(range(256)) - set(b"[]{}")))
_TOO_DEEP: Final = b"[" * (MAX_DEPTH + 1)
_NUL: Final = b"\\u0000"


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


def _check_depth(body: bytes) -> None:
    """Refuse (400) a body nesting arrays and objects deeper than :data:`MAX_DEPTH`, before
    anything decodes it.

    Once strings and scalars are gone, each pass removes the innermost empty pairs of
    brackets, i.e. one level of every branch: a body still holding brackets after
    :data:`MAX_DEPTH` passes nests deeper (or is not JSON), and so does one where
    :data:`MAX_DEPTH` + 1 opening brackets follow each other, which ends the passes early.
    All of it runs in C, never a Python step per byte.
    """
    if body.count(b"[") + body.count(b"{") <= MAX_DEPTH:
        return
    brackets = _STRING.sub(b"", body).translate(_AS_SQUARE, _NOT_BRACKETS)
    for _ in range(MAX_DEPTH):
        if _TOO_DEEP in brackets:
            break
        brackets = brackets.replace(b"[]", b"")
        if not brackets:
            return
    raise ApiError(400, f"the body must be JSON nesting at most {MAX_DEPTH} arrays and objects")


def _nul_at(body: bytes) -> str | None:
    """The JSON path of the first string (value or key) holding NUL in ``body``, if any.

    Only a body holding the escape ``\\u0000`` is decoded again to look (JSON cannot hold
    a raw NUL): the cost falls on those alone. The walk keeps its own stack, so no body is
    too deep for it.
    """
    if _NUL not in body:
        return None
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None  # Malformed: the decoding proper says so.
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return path or "(body)"
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item) for i, item in reversed(list(enumerate(value))))
        elif isinstance(value, dict):
            for key, item in reversed(value.items()):
                where = f"{path}.{key}" if path else key
                if "\x00" in key:
                    return where.replace("\x00", "\\u0000")
                stack.append((where, item))
    return None


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
    bytes, 400 if malformed or nested deeper than :data:`MAX_DEPTH`, 422 if a string in it
    holds NUL or it does not fit the decoder's type (unknown fields included). No body at
    all reads as ``{}``: a POST whose fields are all optional needs none."""
    if not _is_json(request.headers.get("content-type", "")) and _has_body(request):
        raise ApiError(415, "send the body as application/json")
    body = await _read_body(request, limit)
    _check_depth(body)
    where = _nul_at(body)
    if where is not None:
        detail = "must not contain NUL (\\u0000)"
        raise ApiError(
            422, f"{where} {detail}", field_errors=[FieldError(field=where, detail=detail)]
        )
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

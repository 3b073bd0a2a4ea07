"""RFC 9457 problem details: the one error body shape of the API.

Only this module maps :class:`~service.errors.CairnError` subclasses to HTTP statuses. Every
problem has a stable ``type`` URI (``urn:cairn:problem:<slug>``), a ``title`` per type and a
readable ``detail``; validation problems add ``errors`` (field and message).
"""

from __future__ import annotations

import logging
from typing import Any, Final

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from .. import errors

_log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
_encoder = msgspec.json.Encoder()


class FieldError(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One invalid field of a request."""

    field: str
    detail: str


class Problem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The body of every error response (``application/problem+json``)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldError] | None = None


_TITLES: dict[int, tuple[str, str]] = {
    400: ("bad-request", "Bad request"),
    401: ("unauthenticated", "Authentication required"),
    403: ("forbidden", "Not allowed"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    412: ("precondition-failed", "Precondition failed"),
    413: ("payload-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("invalid-request", "Invalid request"),
    429: ("rate-limited", "Too many requests"),
    500: ("internal", "Internal error"),
    503: ("unavailable", "Service unavailable"),
}


class ApiError(errors.CairnError):
    """Raised by the HTTP layer itself for a request it refuses (bad header, bad body...)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        field_errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.slug = slug
        self.field_errors = field_errors
        self.headers = headers or {}


def problem_response(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    instance: str | None = None,
    field_errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A problem+json response."""
    default_slug, title = _TITLES.get(status, ("error", "Error"))
    body = Problem(
        type=f"urn:cairn:problem:{slug or default_slug}",
        title=title,
        status=status,
        detail=detail,
        instance=instance,
        errors=field_errors,
    )
    return Response(_encoder.encode(body), status, headers=headers, media_type=PROBLEM_JSON)


_STATUSES: Final[tuple[tuple[type[errors.CairnError], int, str | None], ...]] = (
    (errors.WrongExpectedVersion, 409, "version-conflict"),
    (errors.Contended, 409, "version-conflict"),
    (errors.PreconditionFailed, 412, None),
    (errors.TooLarge, 413, None),
    (errors.IdempotencyKeyReused, 422, "idempotency-key-reused"),
    (errors.UnknownPosition, 404, "unknown-position"),
    (errors.DatabaseUnavailable, 503, None),
    (errors.NotReady, 503, None),
    (errors.NotFound, 404, None),
    (errors.InsufficientScope, 403, "insufficient_scope"),
    (errors.Forbidden, 403, None),
    (errors.LinkRefused, 403, "link-refused"),
    (errors.InvalidCommand, 422, None),
    (errors.UnsafeUrl, 422, "unsafe-url"),
    (errors.Conflict, 409, None),
)
"""Status (and problem slug) of each domain or store error; anything else is a bug (500)."""


def _status_of(exc: errors.CairnError) -> tuple[int, str | None]:
    for cls, status, slug in _STATUSES:
        if isinstance(exc, cls):
            return status, slug
    return 500, None


async def handle_cairn_error(request: Request, exc: Exception) -> Response:
    """Exception handler: CairnError → problem+json."""
    if isinstance(exc, ApiError):
        return problem_response(
            exc.status,
            exc.detail,
            slug=exc.slug,
            instance=request.url.path,
            field_errors=exc.field_errors,
            headers=exc.headers,
        )
    assert isinstance(exc, errors.CairnError)
    status, slug = _status_of(exc)
    field_errors = None
    field = getattr(exc, "field", None)
    if status == 422 and isinstance(field, str):
        field_errors = [FieldError(field=field, detail=str(getattr(exc, "detail", exc)))]
    if status == 500:
        _log.error("unmapped error %r", exc, exc_info=exc)
        return problem_response(500, "internal error", instance=request.url.path)
    headers = {"Retry-After": "1"} if status == 503 else None
    return problem_response(
        status,
        str(exc),
        slug=slug,
        instance=request.url.path,
        field_errors=field_errors,
        headers=headers,
    )


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 etc. as problem+json."""
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers) if exc.headers else None
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404:
        detail = f"nothing is at {request.url.path}"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    return problem_response(exc.status_code, detail, instance=request.url.path, headers=headers)


async def handle_client_disconnect(request: Request, exc: Exception) -> Response:
    """The client went away before its body arrived whole (or was cut at the body deadline:
    see server.py): no bug, and nobody left to read the answer."""
    _log.info("%s %s: the client left before its body arrived", request.method, request.url.path)
    return problem_response(400, "the request's body did not arrive", instance=request.url.path)


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    """Last resort: a bug. Logged with its traceback; the client gets a problem, not a stack."""
    _log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(500, "internal error", instance=request.url.path)


def exception_handlers() -> dict[Any, Any]:
    """The handlers to give Starlette."""
    return {
        errors.CairnError: handle_cairn_error,
        HTTPException: handle_http_exception,
        ClientDisconnect: handle_client_disconnect,
        Exception: handle_unexpected,
    }

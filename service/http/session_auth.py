"""Browser sessions as a way to authenticate: the cookies, the CSRF defence, and the limits on
signing in. The routes that open and end sessions are :mod:`.sessions`; :mod:`.auth` asks
here when a request carries no bearer token.

A session cookie (``cairn_session``, ``HttpOnly``) carries a random secret; the server keeps
its hash (:mod:`service.reads.sign_in`) and reads it on every request, so a session ended
through any instance stops working at once everywhere. A request authenticated by it has the
person's full power, through the same access rules as a token.

CSRF: a request with an unsafe method (anything but GET, HEAD, OPTIONS) authenticated by the
cookie must carry ``X-CSRF-Token`` equal to the ``cairn_csrf`` cookie (readable by the page's
script, also given by ``GET /v1/session``), which must be the one made for this session
(derived from its secret: a cookie planted by a sibling site does not fit), and its ``Origin``
(or, without one, ``Sec-Fetch-Site``) must be the server's own or one of
``CAIRN_CORS_ORIGINS``. Otherwise: 403 ``urn:cairn:problem:csrf``. Bearer-token requests
are not concerned (a page of another site cannot make a browser send a bearer token).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta
from typing import Final

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from ..domain.access import Viewer
from ..domain.tokens import hash_secret
from ..reads.sign_in import session_holder
from .problems import ApiError
from .state import state_of

SESSION_COOKIE: Final = "cairn_session"
CSRF_COOKIE: Final = "cairn_csrf"
CSRF_HEADER: Final = "x-csrf-token"
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_SCOPE_KEY: Final = "cairn.session"
"""Where the id of the session that authenticated a request is kept in its ASGI scope."""

_LOCAL_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def csrf_token(secret: str) -> str:
    """The CSRF token of the session whose secret is ``secret``: derived from it (never
    stored), and not leading back to it."""
    return hashlib.sha256(f"cairn-csrf\x00{secret}".encode()).hexdigest()


def current_session(connection: HTTPConnection) -> str | None:
    """The id of the session that authenticated this request (None: a bearer token, or none)."""
    value = connection.scope.get(SESSION_SCOPE_KEY)
    return value if isinstance(value, str) else None


def _csrf_refused(detail: str) -> ApiError:
    return ApiError(403, detail, slug="csrf")


def check_origin(request: Request) -> None:
    """Refuse (403 ``csrf``) a request that a browser says comes from a page of another
    origin than the server's own or those of ``CAIRN_CORS_ORIGINS``. A request without
    ``Origin`` nor ``Sec-Fetch-Site`` (not from a browser) passes."""
    origin = request.headers.get("origin")
    if origin is not None:
        own = request.headers.get("host", "")
        scheme, _, netloc = origin.partition("://")
        allowed = state_of(request)["settings"].cors_origins
        if (scheme in ("http", "https") and netloc == own) or origin in allowed:
            return
        raise _csrf_refused(f"requests from {origin[:100]} may not use the session cookie")
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise _csrf_refused("requests from another site may not use the session cookie")


def check_csrf(request: Request, secret: str) -> None:
    """The CSRF defence of an unsafe request authenticated by session ``secret``."""
    check_origin(request)
    header = request.headers.get(CSRF_HEADER)
    if not header:
        raise _csrf_refused(
            f"this request needs the {CSRF_HEADER} header (the {CSRF_COOKIE} cookie)"
        )
    expected = csrf_token(secret)
    if not hmac.compare_digest(header.encode(), expected.encode()):
        raise _csrf_refused(f"the {CSRF_HEADER} header is not this session's")


async def session_caller(request: Request, secret: str) -> Viewer | None:
    """The person whose session cookie holds ``secret`` (None: no such live session), after
    the CSRF defence for an unsafe method; the session's id is kept in the request's scope
    (:func:`current_session`)."""
    state = state_of(request)
    services = state["services"]
    idle = timedelta(seconds=state["settings"].session_idle)
    found = await session_holder(services.store.pool, hash_secret(secret), services.clock(), idle)
    if found is None:
        return None
    viewer, session_id = found
    if request.method not in SAFE_METHODS:
        check_csrf(request, secret)
    request.scope[SESSION_SCOPE_KEY] = session_id
    return viewer


def is_local(request: Request) -> bool:
    """Whether the request came to ``localhost`` or a loopback address by name (cookies are
    then not ``Secure``: plain HTTP in development)."""
    host = request.url.hostname or ""
    return host in _LOCAL_HOSTS or host.endswith(".localhost")


def set_session_cookies(request: Request, response: Response, secret: str, max_age: int) -> None:
    """The session cookie (``HttpOnly``) and the CSRF cookie (readable by scripts), both
    ``SameSite=Lax``, ``Path=/``, ``Secure`` unless the host is local."""
    secure = not is_local(request)
    response.set_cookie(
        SESSION_COOKIE, secret, max_age=max_age, path="/", secure=secure, httponly=True,
        samesite="lax",
    )  # fmt: skip
    response.set_cookie(
        CSRF_COOKIE, csrf_token(secret), max_age=max_age, path="/", secure=secure,
        httponly=False, samesite="lax",
    )  # fmt: skip


def clear_session_cookies(request: Request, response: Response) -> None:
    secure = not is_local(request)
    for name, http_only in ((SESSION_COOKIE, True), (CSRF_COOKIE, False)):
        response.delete_cookie(name, path="/", secure=secure, httponly=http_only, samesite="lax")

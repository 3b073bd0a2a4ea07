"""Who is calling: bearer tokens or a browser session's cookie (:mod:`.session_auth`, with its
CSRF defence), the per-person rate limit, and the 401/429 answers.

Who holds a token is :mod:`service.reads.tokens`' answer, shared with the WebSocket stream
and the feeds.
"""

from __future__ import annotations

from typing import Final

from starlette.requests import HTTPConnection, Request

from ..commands.actors import actor_now
from ..domain.access import FULL_SCOPE, Viewer
from ..domain.tokens import hash_secret
from ..errors import InsufficientScope
from ..reads.tokens import api_token_holder
from .problems import ApiError
from .session_auth import SESSION_COOKIE, session_caller
from .state import state_of

_WWW: Final = {"WWW-Authenticate": 'Bearer realm="cairn"'}


def bearer_token(request: Request) -> str | None:
    """The token of ``Authorization: Bearer`` (None without the header); 401 for another
    scheme or an empty token."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "use Authorization: Bearer <token>", headers=_WWW)
        return token.strip()
    return None


async def token_holder(connection: HTTPConnection, token: str) -> Viewer | None:
    """The active person holding API token ``token``, or None."""
    state = state_of(connection)
    services = state["services"]
    return await api_token_holder(services.store, services.tokens, token, services.clock())


async def authenticate(request: Request) -> Viewer:
    """The caller of a bearer endpoint; 401 when the token is missing, unknown or revoked;
    429 when the caller exceeds the rate limit. Without ``Authorization``, a session cookie
    authenticates instead (403 ``csrf`` for an unsafe request failing the CSRF defence)."""
    token = bearer_token(request)
    if token is None:
        secret = request.cookies.get(SESSION_COOKIE)
        if secret:
            holder = await session_caller(request, secret)
            if holder is None:
                raise ApiError(401, "the session has ended; sign in again", headers=_WWW)
            rate_limit(request, holder.person_id)
            return holder
        raise ApiError(401, "this endpoint needs Authorization: Bearer <token>", headers=_WWW)
    principal = await token_holder(request, token)
    if principal is None:
        raise ApiError(401, "the token is unknown or revoked", headers=_WWW)
    rate_limit(request, principal.person_id)
    return principal


async def confirm_writer(request: Request, viewer: Viewer) -> Viewer:
    """The caller of a write as the log says they are now (see
    :mod:`service.commands.actors`): 401 when the person was deactivated or the token
    revoked, on any instance, before this request ran; their current role otherwise."""
    token = bearer_token(request)
    # Without a token, a session authenticated the request: read from the database just now.
    token_hash = None if token is None else hash_secret(token)
    now = await actor_now(state_of(request)["services"], viewer, token_hash)
    if now is None:
        raise ApiError(401, "the token is unknown or revoked", headers=_WWW)
    return now


def rate_limit(connection: HTTPConnection, person_id: str) -> None:
    """Count one request of ``person_id`` against the app's rate limit; 429 past it."""
    wait = state_of(connection)["limiter"].take(person_id)
    if wait > 0:
        raise ApiError(
            429,
            f"too many requests; retry in {wait:.1f} s",
            headers={"Retry-After": str(max(1, round(wait)))},
        )


def require_full_power(viewer: Viewer, what: str) -> None:
    """Refuse ``what`` (403 ``insufficient_scope``) unless the request carries its person's
    full, lasting power: a session, or an API token with every scope and no expiry. For
    what would hand out a credential stronger than the token (a first password, hence a
    session; a feed token reading every project): a project-limited or read-only token, or
    an OAuth access token, may not."""
    if viewer.scope.expires_at is not None:
        raise InsufficientScope(f"{what} needs a lasting token (not an OAuth one), or a session")
    if viewer.scope != FULL_SCOPE:
        raise InsufficientScope(f"{what} needs a token with every scope, or a session")

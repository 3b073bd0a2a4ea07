"""OAuth 2 for third-party front ends: the authorization code flow with PKCE (RFC 6749,
RFC 7636: ``S256`` only), refresh tokens rotated on every use with reuse detection, revocation
(RFC 7009) and the server's metadata (RFC 8414).

Plain Starlette routes, not :class:`~service.http.api.Api` ones: they take forms and answer
OAuth's own JSON errors (``{"error": ..., "error_description": ...}``, what OAuth clients
expect) or HTML, never problem+json. The apps are registered through ``/v1/oauth/apps``
(:mod:`.oauth_apps`).

Why not authlib's ``AuthorizationServer``: its grants call the storage synchronously
(``query_authorization_code``, ``save_token``...) from inside the request, and every store of
Cairn is asyncpg; the glue would run each look-up on another thread with a second, blocking
database driver. The rules are implemented here instead, with authlib's pieces: its PKCE
transform (:func:`authlib.oauth2.rfc7636.create_s256_code_challenge`), its error classes'
codes and its RFC 8414 metadata model (checked by the tests).

The consent page is for a person signed in by the session cookie (:mod:`.session_auth`); its
form carries the session's CSRF token and is refused from another origin (``check_origin``),
as every cookie write is. Codes live 60 s, are used once, and a replayed code or refresh
token revokes its whole grant: every access and refresh token issued from it
(:func:`service.commands.oauth.revoke_grant`).
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets
from datetime import timedelta
from typing import Final
from urllib.parse import unquote, urlencode

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ..commands import oauth as oauth_commands
from ..domain.access import Viewer
from ..domain.i18n import Locale, negotiate
from ..domain.tokens import hash_secret, parse_scopes, scope_strings
from ..errors import InvalidCommand
from ..reads import oauth
from ..reads.locales import locale_of
from ..reads.sign_in import session_holder
from . import oauth_pages
from .problems import ApiError
from .session_auth import SESSION_COOKIE, check_origin, csrf_token
from .state import state_of

CODE_TTL: Final = timedelta(seconds=60)
AUTHORIZE: Final = "/oauth/authorize"
TOKEN: Final = "/oauth/token"
REVOKE: Final = "/oauth/revoke"
METADATA: Final = "/.well-known/oauth-authorization-server"
_VERIFIER: Final = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_CHALLENGE: Final = re.compile(r"[A-Za-z0-9\-_]{43}")
_NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_PAGE_HEADERS: Final = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self' https: http:; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


def _error(error: str, description: str, status: int = 400) -> JSONResponse:
    """An RFC 6749 §5.2 error answer."""
    headers = dict(_NO_STORE)
    if error == "invalid_client":
        headers["WWW-Authenticate"] = 'Basic realm="cairn"'
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status, headers=headers
    )


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


async def metadata(request: Request) -> Response:
    """RFC 8414: the authorization server's metadata."""
    base = _base(request)
    auth_methods = ["client_secret_basic", "client_secret_post", "none"]
    return JSONResponse(
        {
            "issuer": base,
            "authorization_endpoint": base + AUTHORIZE,
            "token_endpoint": base + TOKEN,
            "revocation_endpoint": base + REVOKE,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": auth_methods,
            "revocation_endpoint_auth_methods_supported": auth_methods,
            "scopes_supported": ["read", "write"],
            "service_documentation": base + "/docs",
        },
        headers={"Cache-Control": "public, max-age=3600"},
    )


class _Refused(Exception):
    """An authorization request that may not be sent back to its redirect URI (RFC 6749
    §4.1.2.1: unknown client, or a redirect URI not registered): shown as a page."""


class _Request:
    """An authorization request, checked."""

    def __init__(self, app: oauth.OAuthApp, params: dict[str, str]) -> None:
        self.app = app
        self.redirect_uri = params.get("redirect_uri") or ""
        self.state = params.get("state")
        self.scope = params.get("scope") or "read"
        self.code_challenge = params.get("code_challenge") or ""
        self.method = params.get("code_challenge_method") or ""
        self.response_type = params.get("response_type") or ""

    def redirect(self, **values: str) -> RedirectResponse:
        if self.state is not None:
            values["state"] = self.state
        sep = "&" if "?" in self.redirect_uri else "?"
        return RedirectResponse(self.redirect_uri + sep + urlencode(values), status_code=303)

    def error(self, error: str, description: str) -> RedirectResponse:
        return self.redirect(error=error, error_description=description)

    def problem(self) -> RedirectResponse | None:
        """The error redirect this request deserves, or None when it is good."""
        if self.response_type != "code":
            return self.error("unsupported_response_type", "only response_type=code")
        if not self.code_challenge or self.method != "S256":
            return self.error("invalid_request", "PKCE is required: code_challenge_method=S256")
        if not _CHALLENGE.fullmatch(self.code_challenge):
            return self.error("invalid_request", "code_challenge is not an S256 challenge")
        try:
            self.scopes()
        except InvalidCommand as exc:
            return self.error("invalid_scope", str(exc))
        return None

    def scopes(self) -> list[str]:
        """The scope strings asked, normalised (:func:`parse_scopes`)."""
        return scope_strings(parse_scopes("scope", self.scope.split()))


async def _authorization(request: Request, params: dict[str, str]) -> _Request:
    pool = state_of(request)["services"].store.pool
    client_id = params.get("client_id") or ""
    app = await oauth.app(pool, client_id[:100]) if client_id else None
    if app is None:
        raise _Refused("unknown_client")
    redirect_uri = params.get("redirect_uri")
    if not redirect_uri and len(app.redirect_uris) == 1:
        params = {**params, "redirect_uri": app.redirect_uris[0]}
    elif redirect_uri not in app.redirect_uris:
        raise _Refused("bad_redirect")
    return _Request(app, params)


async def _signed_in(request: Request) -> tuple[Viewer, str] | None:
    """The person signed in by the session cookie, and the session's secret."""
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        return None
    state = state_of(request)
    services = state["services"]
    idle = timedelta(seconds=state["settings"].session_idle)
    found = await session_holder(services.store.pool, hash_secret(secret), services.clock(), idle)
    return None if found is None else (found[0], secret)


async def _locale(request: Request, viewer: Viewer | None) -> Locale:
    chosen = negotiate(request.headers.get("accept-language"))
    if chosen is not None:
        return chosen
    state = state_of(request)
    if viewer is None:
        return state["settings"].locale
    return await locale_of(state["services"].store.pool, viewer, state["settings"].locale)


def _page(body: str, locale: Locale, status: int = 200) -> HTMLResponse:
    headers = {**_PAGE_HEADERS, "Content-Language": locale, "Vary": "Accept-Language, Cookie"}
    return HTMLResponse(body, status_code=status, headers=headers)


async def authorize_page(request: Request) -> Response:
    """``GET /oauth/authorize``: the consent page (or why there is none)."""
    params = dict(request.query_params)
    signed_in = await _signed_in(request)
    viewer = None if signed_in is None else signed_in[0]
    locale = await _locale(request, viewer)
    try:
        asked = await _authorization(request, params)
    except _Refused as exc:
        return _page(oauth_pages.refused(locale, str(exc)), locale, 400)
    if (bad := asked.problem()) is not None:
        return bad
    if signed_in is None:
        sign_in = state_of(request)["settings"].oauth_sign_in_url
        if sign_in:
            sep = "&" if "?" in sign_in else "?"
            back = str(request.url)
            return RedirectResponse(sign_in + sep + urlencode({"next": back}), status_code=303)
        return _page(oauth_pages.sign_in_first(locale), locale, 401)
    fields = {
        "client_id": asked.app.app_id,
        "redirect_uri": asked.redirect_uri,
        "response_type": "code",
        "scope": " ".join(asked.scopes()),
        "code_challenge": asked.code_challenge,
        "code_challenge_method": "S256",
        "csrf_token": csrf_token(signed_in[1]),
    }
    if asked.state is not None:
        fields["state"] = asked.state
    page = oauth_pages.consent(locale, asked.app.name, asked.scopes(), AUTHORIZE, fields)
    return _page(page, locale)


async def authorize_decision(request: Request) -> Response:
    """``POST /oauth/authorize``: the consent form's answer; a code, or ``access_denied``."""
    form = await request.form()
    params = {k: v for k, v in form.items() if isinstance(v, str)}
    signed_in = await _signed_in(request)
    if signed_in is None:
        raise ApiError(401, "sign in to authorise an app")
    viewer, secret = signed_in
    check_origin(request)
    given = params.get("csrf_token", "")
    if not hmac.compare_digest(given.encode(), csrf_token(secret).encode()):
        raise ApiError(403, "the consent form is not this session's", slug="csrf")
    locale = await _locale(request, viewer)
    try:
        asked = await _authorization(request, params)
    except _Refused as exc:
        return _page(oauth_pages.refused(locale, str(exc)), locale, 400)
    if (bad := asked.problem()) is not None:
        return bad
    if params.get("decision") != "allow":
        return asked.error("access_denied", "the person refused")
    services = state_of(request)["services"]
    now = services.clock()
    code = secrets.token_urlsafe(32)
    await oauth.issue_code(
        services.store.pool,
        grant_id=f"grt_{secrets.token_hex(16)}",
        app_id=asked.app.app_id,
        person_id=viewer.person_id,
        scopes=asked.scopes(),
        code=code,
        redirect_uri=asked.redirect_uri,
        code_challenge=asked.code_challenge,
        now=now,
        expires_at=now + CODE_TTL,
    )
    return asked.redirect(code=code)


async def _client(request: Request, form: dict[str, str]) -> oauth.OAuthApp | JSONResponse:
    """The app calling the token or revocation endpoint, authenticated (RFC 6749 §2.3):
    a confidential app by its secret (HTTP Basic or the form), a public one by its id."""
    client_id = form.get("client_id")
    secret = form.get("client_secret")
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:], validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return _error("invalid_client", "malformed Basic credentials", 401)
        user, _, password = decoded.partition(":")
        client_id, secret = unquote(user), unquote(password)
    if not client_id:
        return _error("invalid_client", "client_id is required", 401)
    pool = state_of(request)["services"].store.pool
    app = await oauth.app(pool, client_id[:100])
    if app is None:
        return _error("invalid_client", "unknown client", 401)
    if app.confidential and (
        not secret or not await oauth.app_secret_matches(pool, app.app_id, secret)
    ):
        return _error("invalid_client", "wrong or missing client secret", 401)
    return app


async def _form(request: Request) -> dict[str, str] | JSONResponse:
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return _error("invalid_request", "send application/x-www-form-urlencoded")
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def token(request: Request) -> Response:
    """``POST /oauth/token``: a code or a refresh token for an access token (and a new
    refresh token: each works once)."""
    form = await _form(request)
    if isinstance(form, JSONResponse):
        return form
    app = await _client(request, form)
    if isinstance(app, JSONResponse):
        return app
    services = state_of(request)["services"]
    pool = services.store.pool
    now = services.clock()
    grant_type = form.get("grant_type")
    if grant_type == "authorization_code":
        code = form.get("code") or ""
        verifier = form.get("code_verifier") or ""
        if not code or not verifier:
            return _error("invalid_request", "code and code_verifier are required")
        used = await oauth.use_code(pool, code, app.app_id, now)
    elif grant_type == "refresh_token":
        refresh = form.get("refresh_token") or ""
        if not refresh:
            return _error("invalid_request", "refresh_token is required")
        used = await oauth.use_refresh_token(pool, refresh, app.app_id, now)
    else:
        return _error("unsupported_grant_type", "authorization_code or refresh_token")
    grant = used.grant
    if used.replayed and grant is not None:
        # A code or refresh token used twice: one of the two users stole it. Every token of
        # the grant goes (RFC 6749 §4.1.2, RFC 9700 §4.14.2).
        await oauth_commands.revoke_grant(services, grant.grant_id, grant.person_id)
        return _error("invalid_grant", "this grant was used already; its tokens are revoked")
    if grant is None:
        return _error("invalid_grant", "unknown, expired or revoked")
    if grant_type == "authorization_code":
        if form.get("redirect_uri", used.redirect_uri) != used.redirect_uri:
            return _error("invalid_grant", "redirect_uri is not the authorization request's")
        verifier = form["code_verifier"]
        if not _VERIFIER.fullmatch(verifier) or not hmac.compare_digest(
            create_s256_code_challenge(verifier), used.code_challenge
        ):
            return _error("invalid_grant", "code_verifier does not match the code_challenge")
    scopes = list(grant.scopes)
    if grant_type == "refresh_token" and (scope := form.get("scope")) is not None:
        asked = set(scope.split())
        if not asked <= set(grant.scopes):
            return _error("invalid_scope", "a refresh cannot widen the grant's scope")
        # A narrower scope (RFC 6749 §6): this access token gets only that; the grant keeps
        # its own for the next refresh.
        scopes = [s for s in grant.scopes if s in asked]
        if not {"read", "write"} & asked:
            return _error("invalid_scope", "the scope must name read or write")
    issued = await oauth_commands.issue_tokens(services, grant, app.name, scopes=scopes)
    if issued is None:
        return _error(
            "invalid_grant", "revoked, or the person who granted it can no longer sign in"
        )
    access, refresh_token, expires_at = issued
    return JSONResponse(
        {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": int((expires_at - now).total_seconds()),
            "refresh_token": refresh_token,
            "scope": " ".join(scopes),
        },
        headers=_NO_STORE,
    )


async def revoke(request: Request) -> Response:
    """``POST /oauth/revoke`` (RFC 7009): an access or refresh token of the calling app;
    revokes its whole grant. 200 for an unknown token too (§2.2)."""
    form = await _form(request)
    if isinstance(form, JSONResponse):
        return form
    app = await _client(request, form)
    if isinstance(app, JSONResponse):
        return app
    value = form.get("token")
    if not value:
        return _error("invalid_request", "token is required")
    services = state_of(request)["services"]
    grant_id = await oauth.grant_of_token(services.store.pool, app.app_id, value)
    if grant_id is not None:
        person_id = await oauth.grant_person(services.store.pool, grant_id)
        await oauth_commands.revoke_grant(services, grant_id, person_id)
    return Response(status_code=200, headers=_NO_STORE)


def routes() -> list[BaseRoute]:
    """The OAuth endpoints, mounted by the app beside the API's."""
    return [
        Route(METADATA, metadata, methods=["GET"]),
        Route(AUTHORIZE, authorize_page, methods=["GET"]),
        Route(AUTHORIZE, authorize_decision, methods=["POST"]),
        Route(TOKEN, token, methods=["POST"]),
        Route(REVOKE, revoke, methods=["POST"]),
    ]

"""The /v1 side of OAuth 2 (:mod:`.oauth` is the protocol's): apps registered by admins
(``/v1/oauth/apps``) and the apps a person authorised (``/v1/me/authorizations``).

A redirect URI is matched exactly, and must be ``https`` or ``http`` to a loopback host
(``localhost``, ``127.0.0.1``, ``[::1]``: native apps). A confidential app gets a client
secret shown once (stored hashed, :mod:`service.reads.oauth`); a public one authenticates by
PKCE alone.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Final
from urllib.parse import urlsplit

import msgspec
from starlette.responses import Response

from ..commands import oauth as oauth_commands
from ..errors import Forbidden, InvalidCommand, NotFound
from ..reads import oauth
from .api import Api, Ctx, Reply
from .envelope import api_url
from .params import Param

api = Api()

_TAGS: Final = ["oauth"]
_APP_ID: Final = {
    "app_id": Param(
        "an OAuth app's id (its client_id)",
        Annotated[str, msgspec.Meta(pattern="^oap_[0-9a-f]{20}$")],
    )
}
_LOOPBACK: Final = frozenset({"localhost", "127.0.0.1", "::1"})

_REDIRECT_URI: Final = (
    r"^(https://[A-Za-z0-9.-]+|http://(localhost|127\.0\.0\.1|\[::1\]))"
    r"(:[0-9]{1,5})?([/?][^#\x00-\x20\x7f]*)?$"
)
RedirectUri = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=2000,
        pattern=_REDIRECT_URI,
        description="https, or http to a loopback host; matched exactly, no fragment",
    ),
]


class NewOAuthApp(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An app to register: ``confidential`` apps (a server keeping a secret) get a client
    secret; public ones (pages, native apps) use PKCE alone."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    redirect_uris: Annotated[list[RedirectUri], msgspec.Meta(min_length=1, max_length=20)]
    confidential: bool = False


class OAuthApp(msgspec.Struct, frozen=True, kw_only=True):
    """A registered app; ``client_id`` is its id. ``client_secret`` only in the answer that
    registered a confidential app (null anywhere else)."""

    id: str
    client_id: str
    name: str
    redirect_uris: list[str]
    confidential: bool
    created_at: datetime
    url: str
    client_secret: str | None = None


class Authorization(msgspec.Struct, frozen=True, kw_only=True):
    """An app the caller authorised, and the scopes they granted it."""

    app_id: str
    app_name: str
    scopes: list[str]
    authorized_at: datetime


def _check_redirect(uri: str) -> str:
    """``uri`` if it may be a redirect URI; else :class:`InvalidCommand`."""
    parts = urlsplit(uri)
    host = parts.hostname or ""
    if parts.fragment or "#" in uri:
        raise InvalidCommand("redirect_uris", "a redirect URI has no fragment")
    if parts.scheme == "https" and host:
        return uri
    if parts.scheme == "http" and host in _LOOPBACK:
        return uri
    raise InvalidCommand(
        "redirect_uris", "a redirect URI is https, or http to localhost, 127.0.0.1 or [::1]"
    )


def _require_admin(ctx: Ctx) -> None:
    if ctx.me.role != "admin" or ctx.me.scope.projects is not None:
        raise Forbidden("only admins manage OAuth apps")


def _shown(ctx: Ctx, app: oauth.OAuthApp, secret: str | None = None) -> OAuthApp:
    return OAuthApp(
        id=app.app_id,
        client_id=app.app_id,
        name=app.name,
        redirect_uris=list(app.redirect_uris),
        confidential=app.confidential,
        created_at=app.created_at,
        url=api_url(ctx, f"/v1/oauth/apps/{app.app_id}"),
        client_secret=secret,
    )


@api.post(
    "/v1/oauth/apps",
    summary="Register an OAuth app (admins); a confidential app's secret is shown only here",
    response=OAuthApp,
    status=201,
    tags=_TAGS,
    versioned=False,
)
async def register_app(ctx: Ctx, body: NewOAuthApp) -> Reply:
    _require_admin(ctx)
    uris = [_check_redirect(u) for u in body.redirect_uris]
    secret = f"cairncs_{secrets.token_urlsafe(32)}" if body.confidential else None
    app = await oauth.register_app(
        ctx.store.pool,
        ctx.new_id("oap"),
        body.name.strip() or body.name,
        list(dict.fromkeys(uris)),
        secret,
        ctx.me.person_id,
        ctx.services.clock(),
    )
    shown = _shown(ctx, app, secret)
    # A retry must not find the secret stored (see service.http.idempotency).
    ctx.replay_body = msgspec.json.encode(msgspec.structs.replace(shown, client_secret=None))
    return Reply(shown, 201, headers={"Location": shown.url})


@api.get(
    "/v1/oauth/apps", summary="The registered OAuth apps (admins)", response=list[OAuthApp],
    tags=_TAGS,
)  # fmt: skip
async def list_apps(ctx: Ctx) -> Reply:
    _require_admin(ctx)
    return Reply([_shown(ctx, a) for a in await oauth.apps(ctx.store.pool)])


async def _app(ctx: Ctx) -> oauth.OAuthApp:
    _require_admin(ctx)
    found = await oauth.app(ctx.store.pool, ctx.path("app_id"))
    if found is None:
        raise NotFound("there is no such OAuth app")
    return found


@api.get(
    "/v1/oauth/apps/{app_id}", summary="One registered OAuth app (admins)", response=OAuthApp,
    path_params=_APP_ID, tags=_TAGS,
)  # fmt: skip
async def get_app(ctx: Ctx) -> Reply:
    return Reply(_shown(ctx, await _app(ctx)))


@api.delete(
    "/v1/oauth/apps/{app_id}",
    summary="Delete an OAuth app (admins): every token people granted it is revoked",
    status=204,
    path_params=_APP_ID,
    tags=_TAGS,
    versioned=False,
)
async def delete_app(ctx: Ctx) -> Response:
    app = await _app(ctx)
    services = ctx.services
    for grant_id in await oauth.delete_app(ctx.store.pool, app.app_id, services.clock()):
        person_id = await oauth.grant_person(ctx.store.pool, grant_id)
        await oauth_commands.revoke_grant(services, grant_id, person_id, ctx.request_id)
    return Response(status_code=204)


@api.get(
    "/v1/me/authorizations",
    summary="The OAuth apps the caller authorised, with the scopes granted",
    response=list[Authorization],
    tags=_TAGS,
)
async def my_authorizations(ctx: Ctx) -> Reply:
    found = await oauth.authorizations(ctx.store.pool, ctx.me.person_id)
    return Reply(
        [
            Authorization(
                app_id=app.app_id,
                app_name=app.name,
                scopes=list(grant.scopes),
                authorized_at=grant.created_at,
            )
            for app, grant in found
        ]
    )


@api.delete(
    "/v1/me/authorizations/{app_id}",
    summary="Withdraw an app's authorisation: every token of it is revoked",
    status=204,
    path_params=_APP_ID,
    tags=_TAGS,
    versioned=False,
)
async def revoke_authorization(ctx: Ctx) -> Response:
    grants = await oauth.person_grants(ctx.store.pool, ctx.me.person_id, ctx.path("app_id"))
    if not grants:
        raise NotFound("you have not authorised this app")
    for grant_id in grants:
        await oauth_commands.revoke_grant(ctx.services, grant_id, ctx.me.person_id, ctx.request_id)
    return Response(status_code=204)

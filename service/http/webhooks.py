"""Webhook endpoints over HTTP (docs/WEBHOOKS.md): ``/v1/projects/{project_id}/webhooks``
(a project's owners and admins), ``/v1/webhooks`` (account-wide: admins), one hook at
``/v1/webhooks/{webhook_id}``, and ``rotate_secret``.

Who may not manage a hook may not know of it: 404, clients always. A hook's secret is in the
answer that creates it (and the one that rotates it), never again: an idempotent retry
replays the answer without it. URLs are checked by the outbound policy
(``services.outbound.check_url``: https, no private address...) before anything is written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal

import asyncpg
import msgspec
from starlette.responses import Response

from ..commands import webhooks as commands
from ..commands.execute import load
from ..domain.access import ProjectFacts
from ..domain.projects import fold_project, project_facts
from ..domain.webhooks import (
    PER_PROJECT,
    EditWebhook,
    check_kinds,
    known_kinds,
    require_manager,
)
from ..errors import Conflict, NotFound
from ..events.streams import WEBHOOK_ID, id_pattern, project_stream
from ..events.webhooks import Audience, WebhookCreated
from ..reads import webhooks as rows
from .api import Api, Ctx, Reply
from .envelope import api_url
from .params import Param

api = Api()

_TAGS: Final = ["webhooks"]
_ID: Final = {
    "webhook_id": Param(
        "a webhook's id", Annotated[str, msgspec.Meta(pattern=id_pattern(WEBHOOK_ID))]
    )
}
_NO_STORE: Final = {"Cache-Control": "no-store"}

TargetUrl = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=2048,
        pattern="^[Hh][Tt][Tt][Pp][Ss]?://",
        description="https (http only when CAIRN_ALLOW_HTTP_URLS is set), to no private "
        "address unless CAIRN_URL_ALLOWLIST names it",
    ),
]
Kind = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=100,
        description="a kind of event (its type in snake case)",
        extra_json_schema={"enum": sorted(known_kinds())},
    ),
]
Kinds = Annotated[list[Kind], msgspec.Meta(min_length=1, max_length=100)]
Status = Literal["active", "paused", "disabled", "owner_deactivated"]


class NewWebhook(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST .../webhooks``: where to send (``url``: https), which ``kinds`` of
    events (null: all; e.g. ``todo_completed``, ``message_posted``), as whom (``audience``:
    ``team`` sees what the project's team sees, ``clients`` only what its clients see), and
    whether to send now (``active``)."""

    url: TargetUrl
    kinds: Kinds | None = None
    audience: Audience = "team"
    active: bool = True


class WebhookChange(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Body of ``PATCH /v1/webhooks/{webhook_id}``: what to change (``kinds`` null: every
    kind). Setting ``active`` true again re-enables a hook Cairn disabled."""

    url: TargetUrl | msgspec.UnsetType = msgspec.UNSET
    kinds: Kinds | msgspec.UnsetType | None = msgspec.UNSET
    audience: Audience | msgspec.UnsetType = msgspec.UNSET
    active: bool | msgspec.UnsetType = msgspec.UNSET


class Webhook(msgspec.Struct, frozen=True, kw_only=True):
    """A webhook endpoint. ``project_id`` null: account-wide (every project). ``status``:
    ``active``; ``paused`` (set inactive); ``disabled`` by Cairn (``disabled_reason``
    ``failing`` or ``gone``, ``disabled_detail`` says more); ``owner_deactivated`` (the
    person who made it was deactivated: nothing is sent until they are reactivated).
    ``href``: this hook in the API."""

    id: str
    project_id: str | None
    url: str
    kinds: list[str] | None
    audience: Audience
    active: bool
    status: Status
    disabled_reason: str | None
    disabled_detail: str | None
    owner_id: str
    created_at: datetime
    updated_at: datetime
    href: str


class NewSecret(Webhook, frozen=True, kw_only=True):
    """A hook with its signing ``secret`` (``whsec_…``, for a Standard Webhooks library):
    shown in this answer only (null when an idempotent retry replays it)."""

    secret: str | None


def _status(r: asyncpg.Record) -> Status:
    if not r["owner_active"]:
        return "owner_deactivated"
    if r["active"]:
        return "active"
    return "disabled" if r["disabled_reason"] is not None else "paused"


def _shown(ctx: Ctx, r: asyncpg.Record) -> Webhook:
    return Webhook(
        id=r["webhook_id"],
        project_id=r["project_id"],
        url=r["url"],
        kinds=r["kinds"],
        audience=r["audience"],
        active=r["active"],
        status=_status(r),
        disabled_reason=r["disabled_reason"],
        disabled_detail=r["disabled_detail"],
        owner_id=r["owner_id"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        href=api_url(ctx, f"/v1/webhooks/{r['webhook_id']}"),
    )


async def _facts(ctx: Ctx, project_id: str) -> ProjectFacts | None:
    loaded = await load(ctx.caller, project_stream(project_id))
    project = fold_project([e.event for e in loaded.events])
    return project_facts(project) if project is not None else None


async def _project(ctx: Ctx, project_id: str, *, write: bool) -> ProjectFacts:
    facts = await _facts(ctx, project_id)
    if facts is None:
        raise NotFound("there is no such project")
    require_manager(ctx.me, facts, write=write)
    return facts


def _checked_url(ctx: Ctx, url: str) -> str:
    """``url`` normalised by the outbound policy; raises UnsafeUrl (422) when Cairn may not
    send to it."""
    return ctx.services.outbound.check_url(url)


async def _create(ctx: Ctx, body: NewWebhook, project_id: str | None) -> Reply:
    url = _checked_url(ctx, body.url)
    kinds = check_kinds(body.kinds)
    if await rows.count(ctx.store.pool, project_id) >= PER_PROJECT:
        where = "a project" if project_id is not None else "the account"
        raise Conflict(f"{where} may have at most {PER_PROJECT} webhooks; delete one first")
    event = WebhookCreated(
        webhook_id=ctx.new_id(WEBHOOK_ID),
        project_id=project_id,
        url=url,
        kinds=kinds,
        audience=body.audience,
        active=body.active,
        owner_id=ctx.me.person_id,
    )
    secret = await commands.create(ctx.caller, event)
    row = await rows.one(ctx.store.pool, event.webhook_id)
    if row is None:
        raise NotFound("there is no such webhook")
    shown = _shown(ctx, row)
    made = NewSecret(**msgspec.structs.asdict(shown), secret=secret)
    # What an idempotent retry replays: the hook without its secret.
    ctx.replay_body = msgspec.json.encode(msgspec.structs.replace(made, secret=None))
    return Reply(made, 201, {"Location": shown.href, **_NO_STORE}, version=1)


@api.post(
    "/v1/projects/{project_id}/webhooks",
    summary="Add a webhook to a project (its owners and admins); its secret is shown only here",
    response=NewSecret,
    status=201,
    tags=_TAGS,
)
async def create_project_webhook(ctx: Ctx, body: NewWebhook) -> Reply:
    project_id = ctx.path("project_id")
    await _project(ctx, project_id, write=True)
    return await _create(ctx, body, project_id)


@api.get(
    "/v1/projects/{project_id}/webhooks",
    summary="A project's webhooks (its owners and admins), oldest first",
    response=list[Webhook],
    tags=_TAGS,
)
async def list_project_webhooks(ctx: Ctx) -> Reply:
    project_id = ctx.path("project_id")
    await _project(ctx, project_id, write=False)
    found = await rows.of_projects(ctx.store.pool, [project_id], account=False)
    return Reply([_shown(ctx, r) for r in found])


@api.post(
    "/v1/webhooks",
    summary="Add an account-wide webhook, for every project (admins); its secret is shown "
    "only here",
    response=NewSecret,
    status=201,
    tags=_TAGS,
)
async def create_account_webhook(ctx: Ctx, body: NewWebhook) -> Reply:
    require_manager(ctx.me, None, write=True)
    return await _create(ctx, body, None)


@api.get(
    "/v1/webhooks",
    summary="Every webhook the caller may manage (admins: all; owners: their projects'), "
    "oldest first",
    response=list[Webhook],
    tags=_TAGS,
)
async def list_webhooks(ctx: Ctx) -> Reply:
    me = ctx.me
    pool = ctx.store.pool
    if not me.active or me.role == "client":
        return Reply([])
    if me.role == "admin":
        projects = sorted(me.scope.projects) if me.scope.projects is not None else None
        found = await rows.of_projects(pool, projects, account=projects is None)
    else:
        found = await rows.owned_by(pool, me.person_id, me.scope.projects)
    return Reply([_shown(ctx, r) for r in found])


async def _hook(ctx: Ctx, *, write: bool) -> asyncpg.Record:
    row = await rows.one(ctx.store.pool, ctx.path("webhook_id"))
    if row is None:
        raise NotFound("there is no such webhook")
    facts = await _facts(ctx, row["project_id"]) if row["project_id"] is not None else None
    if row["project_id"] is not None and facts is None:
        raise NotFound("there is no such webhook")
    require_manager(ctx.me, facts, write=write)
    return row


@api.get(
    "/v1/webhooks/{webhook_id}",
    summary="One webhook (who may manage it)",
    response=Webhook,
    path_params=_ID,
    tags=_TAGS,
)
async def get_webhook(ctx: Ctx) -> Reply:
    row = await _hook(ctx, write=False)
    return Reply(_shown(ctx, row), version=row["version"])


@api.patch(
    "/v1/webhooks/{webhook_id}",
    summary="Change a webhook's URL, kinds, audience or active flag",
    response=Webhook,
    path_params=_ID,
    tags=_TAGS,
)
async def edit_webhook(ctx: Ctx, body: WebhookChange) -> Reply:
    await _hook(ctx, write=True)
    webhook_id = ctx.path("webhook_id")
    url = None if body.url is msgspec.UNSET else _checked_url(ctx, body.url)
    change = EditWebhook(
        url=url,
        kinds=None if isinstance(body.kinds, msgspec.UnsetType) else body.kinds,
        all_kinds=body.kinds is None,
        audience=None if isinstance(body.audience, msgspec.UnsetType) else body.audience,
        active=None if isinstance(body.active, msgspec.UnsetType) else body.active,
    )
    await commands.edit(ctx.caller, webhook_id, change)
    row = await rows.one(ctx.store.pool, webhook_id)
    if row is None:
        raise NotFound("there is no such webhook")
    return Reply(_shown(ctx, row), version=row["version"])


@api.delete(
    "/v1/webhooks/{webhook_id}",
    summary="Delete a webhook: nothing more is sent to it, its secrets are forgotten",
    status=204,
    path_params=_ID,
    tags=_TAGS,
)
async def delete_webhook(ctx: Ctx) -> Response:
    await _hook(ctx, write=True)
    await commands.delete(ctx.caller, ctx.path("webhook_id"))
    return Response(status_code=204)


@api.post(
    "/v1/webhooks/{webhook_id}/rotate_secret",
    summary="A new signing secret, shown only here; the old one keeps signing for 24 hours",
    response=NewSecret,
    path_params=_ID,
    tags=_TAGS,
    versioned=False,
)
async def rotate_secret(ctx: Ctx) -> Reply:
    await _hook(ctx, write=True)
    webhook_id = ctx.path("webhook_id")
    secret = await commands.rotate_secret(ctx.caller, webhook_id)
    row = await rows.one(ctx.store.pool, webhook_id)
    if row is None:
        raise NotFound("there is no such webhook")
    made = NewSecret(**msgspec.structs.asdict(_shown(ctx, row)), secret=secret)
    ctx.replay_body = msgspec.json.encode(msgspec.structs.replace(made, secret=None))
    return Reply(made, headers=dict(_NO_STORE))

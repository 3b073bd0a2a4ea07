"""People and their API tokens over HTTP: ``/v1/people``, ``/v1/me`` and ``/v1/tokens``.

Writes go through the domain (:mod:`service.domain.people`, :mod:`service.domain.tokens`,
:mod:`service.domain.emails`); reads come from the directory read model after the write has
reached it (read-your-writes). Token secrets are made here, shown once, and only their hash is
stored.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable
from typing import Annotated, Final

import asyncpg
import msgspec
from starlette.responses import Response

from ..commands import oauth as oauth_commands
from ..commands.execute import Plan, append_together, decided, execute, load
from ..domain import text
from ..domain.access import AccountAction, Viewer, can_see_person, check_account
from ..domain.calendar import ZoneName
from ..domain.context import Timestamp
from ..domain.emails import (
    EmailClaim,
    decide_claim_email,
    decide_release_email,
    email_change,
    fold_email_claim,
)
from ..domain.people import (
    CreatePerson,
    DeactivatePerson,
    EditPerson,
    Locale,
    PersonState,
    ReactivatePerson,
    decide_create_person,
    decide_deactivate_person,
    decide_edit_person,
    decide_reactivate_person,
    fold_person,
)
from ..domain.tokens import (
    IssueToken,
    RevokeToken,
    decide_issue_token,
    decide_revoke_token,
    hash_secret,
    parse_scopes,
    scope_strings,
)
from ..errors import NotFound
from ..events.base import Event
from ..events.people import PersonRole
from ..events.projects import ProjectRole
from ..events.streams import email_stream, person_stream
from ..reads import directory, inbox, sign_in
from ..reads.access import visible_projects
from ..reads.rows import columns
from ..reads.tokens import token_scope
from .api import Api, Ctx, Reply
from .envelope import api_url, avatar_url, base_url
from .idempotency import REPLAYED_HEADERS
from .paging import page_headers, seq_after
from .params import PAGING

api = Api()

_TAGS = ["people"]
_UNSET = msgspec.UNSET
_Unset = msgspec.UnsetType


# ------------------------------------------------------------------ representations


class Person(msgspec.Struct, frozen=True, kw_only=True):
    """A person as the API shows them. ``locale`` and ``time_zone`` are their choices (null:
    the server's defaults, ``CAIRN_LOCALE`` and ``CAIRN_TIME_ZONE``); "today" and "this week"
    are theirs in that zone."""

    id: str
    name: str
    email: str | None
    """Null for a service account (which has none)."""
    role: PersonRole
    company: str | None
    title: str | None
    locale: Locale | None
    time_zone: str | None
    active: bool
    created_at: Timestamp
    updated_at: Timestamp
    url: str
    avatar_url: str
    """Their picture, or the default one while they have none (``PUT /v1/me/avatar``)."""
    owner_id: str | None = None
    """A service account's owner (an admin); null for people."""
    assignable: bool = True
    """Whether to-dos and milestones may be given to them (a service account: only when
    created ``assignable``)."""


class NewPerson(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /v1/people``. Clients need a ``company``; ``locale`` and ``time_zone``
    left out (or null) are the server's defaults. A service account (``role`` ``service``)
    takes no ``email`` (everyone else needs one), ``owner_id`` (an active admin; default: the
    caller) and ``assignable`` (default false)."""

    name: text.Line
    email: text.Email | None = None
    role: PersonRole
    company: text.OptionalLine | None = None
    title: text.Line | None = None
    locale: Locale | None = None
    time_zone: ZoneName | None = None
    owner_id: str | None = None
    assignable: bool | None = None


_NEW_CLIENT: Final = msgspec.Meta(
    extra_json_schema={
        "allOf": [
            {
                "if": {"properties": {"role": {"const": "client"}}, "required": ["role"]},
                "then": {
                    "required": ["company"],
                    "properties": {"company": msgspec.json.schema(text.Line)},
                },
            },
            {
                "if": {"properties": {"role": {"const": "service"}}, "required": ["role"]},
                "then": {"properties": {"email": False}},
                "else": {
                    "required": ["email"],
                    "properties": {
                        "email": msgspec.json.schema(text.Email),
                        "owner_id": False,
                        "assignable": False,
                    },
                },
            },
        ]
    }
)
"""What OpenAPI says of ``NewPerson`` beyond its fields: a client's company is a line; a
service account has no e-mail (everyone else one) and only it takes ``owner_id`` (an
active admin, else 422) and ``assignable``."""


class PersonPatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Body of ``PATCH /v1/people/{id}`` and ``PATCH /v1/me``: omitted fields stay, ``null``
    clears company, title, locale and time zone (the last two then are the server's
    defaults)."""

    name: text.Line | _Unset = _UNSET
    email: text.Email | _Unset = _UNSET
    role: PersonRole | _Unset = _UNSET
    company: text.OptionalLine | _Unset | None = _UNSET
    title: text.Line | _Unset | None = _UNSET
    locale: Locale | _Unset | None = _UNSET
    time_zone: ZoneName | _Unset | None = _UNSET


class ApiToken(msgspec.Struct, frozen=True, kw_only=True):
    """An API token without its secret."""

    id: str
    person_id: str
    label: str
    revoked: bool
    created_at: Timestamp
    revoked_at: Timestamp | None
    url: str
    scopes: list[str]
    """What it lets its holder do: ``read``, ``write``, and ``project:<id>`` for each project
    it is limited to (none: every project its holder sees)."""


Scope = Annotated[str, msgspec.Meta(pattern=r"^(read|write|project:[A-Za-z0-9_-]{1,100})$")]


class NewApiToken(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /v1/people/{id}/tokens``. ``scopes`` (default: the holder's full power,
    ``["read", "write"]`` on every project they see): ``read``, ``write`` (implies read), and
    ``project:<id>`` to limit the token to those projects. It may not exceed the scopes of the
    token minting it (403 ``insufficient_scope``)."""

    label: text.OptionalLine | None = None
    scopes: (
        Annotated[
            list[Scope],
            msgspec.Meta(
                min_length=1,
                max_length=102,
                extra_json_schema={"contains": {"enum": ["read", "write"]}},
            ),
        ]
        | None
    ) = None


class IssuedApiToken(msgspec.Struct, frozen=True, kw_only=True):
    """A new API token: ``token`` is the secret, shown in this response only (``null`` when an
    idempotent retry replays it)."""

    id: str
    label: str
    token: str | None
    created_at: Timestamp
    scopes: list[str]


# ------------------------------------------------------------------ helpers


_PERSON: Final = (
    "name", "email", "role", "company", "title", "locale", "time_zone", "active", "created_at",
    "updated_at",
)  # fmt: skip
"""The columns of a person's row that :class:`Person` shows as they are."""


def _person(ctx: Ctx, row: asyncpg.Record) -> Person:
    person = Person(
        **columns(row, *_PERSON, "owner_id", "assignable", id="person_id"),
        url=api_url(ctx, f"/v1/people/{row['person_id']}"),
        avatar_url=avatar_url(base_url(ctx), row["person_id"]),
    )
    # A service account's e-mail is stored empty: it has none.
    return msgspec.structs.replace(person, email=None) if not person.email else person


async def _person_row(ctx: Ctx, person_id: str) -> asyncpg.Record:
    row = await directory.person(ctx.store.pool, person_id)
    if row is None:
        raise NotFound("there is no such person")
    return row


async def may_see(ctx: Ctx, viewer: Viewer, person_id: str) -> bool:
    if viewer.role != "client" or person_id == viewer.person_id:
        return can_see_person(viewer, person_id)
    projects = await visible_projects(ctx.store.pool, viewer)
    return can_see_person(viewer, person_id, projects.values())


async def shown(ctx: Ctx, person_id: str, *, status: int = 200) -> Reply:
    """The person as the caller may see them, with their version (and ``Location`` when
    ``status`` is 201); 404 when they may not (or there is none)."""
    if not await may_see(ctx, ctx.me, person_id):
        raise NotFound("there is no such person")
    row = await _person_row(ctx, person_id)
    out = _person(ctx, row)
    headers = {"Location": out.url} if status == 201 else {}
    return Reply(out, status, headers, version=row["version"])


def _existing(person: PersonState | None) -> PersonState:
    if person is None:
        raise NotFound("there is no such person")
    return person


async def _email_plan(
    ctx: Ctx,
    email: str,
    person_id: str,
    decide: Callable[[EmailClaim, str], list[Event]] = decide_claim_email,
) -> tuple[str, list[Event], int]:
    """Claim ``email`` for ``person_id`` (Conflict when someone else holds it), or with
    ``decide_release_email`` release it."""
    stream = email_stream(email)
    claim = fold_email_claim(email, [e.event for e in await ctx.store.read_stream(stream)])
    return stream, decide(claim, person_id), claim.version


async def _memberships(ctx: Ctx, person_id: str) -> dict[str, ProjectRole]:
    # From the read model: memberships live in every project's stream, too many to fold
    # here. A membership added meanwhile is caught the other way round: adding someone to a
    # project checks their role against their own stream.
    return await directory.memberships(ctx.store.pool, person_id)


# ------------------------------------------------------------------ people


@api.post(
    "/v1/people",
    summary="Add a person (admins)",
    response=Person,
    status=201,
    tags=_TAGS,
    body_schema=Annotated[NewPerson, _NEW_CLIENT],
)
async def create_person(ctx: Ctx, body: NewPerson) -> Reply:
    person_id = ctx.new_id("per")
    owner = None
    if body.owner_id is not None:
        owner_stream = await ctx.store.read_stream(person_stream(body.owner_id))
        owner = fold_person(e.event for e in owner_stream)
    created = decide_create_person(
        CreatePerson(person_id=person_id, **msgspec.structs.asdict(body)),
        ctx.caller.context(),
        owner,
    )
    person = _existing(fold_person(created))

    async def plan() -> Plan:
        # The address is claimed in the same transaction as the person is created: two
        # people racing for one address cannot both get it (one append fails, re-plans and
        # finds it taken). A service account has no address to claim.
        if person.service:
            return [(person_stream(person_id), created, 0)]
        return [
            await _email_plan(ctx, person.email, person_id),
            (person_stream(person_id), created, 0),
        ]

    await append_together(ctx.caller, plan)
    return await shown(ctx, person_id, status=201)


@api.get(
    "/v1/people",
    summary="People the caller may see (clients: themselves and the people of their projects)",
    response=list[Person],
    query=PAGING,
    tags=_TAGS,
)
async def list_people(ctx: Ctx) -> Reply:
    limit = ctx.limit()
    me = ctx.me
    pool = ctx.store.pool
    client = None
    if me.role == "client":
        # Clients see themselves and the people of the projects they see (can_see_person).
        client = (me.person_id, list(await visible_projects(pool, me)))
    found = await directory.people(pool, after=seq_after(ctx), limit=limit, client=client)
    body = [_person(ctx, r) for r in found.rows[:limit]]
    return Reply(body, headers=page_headers(ctx, found.rows, limit, found.total))


class Me(Person, frozen=True, kw_only=True):
    """The caller, with how many of their notifications are unread
    (``GET /v1/my/notifications``)."""

    unread_notifications: int


@api.get("/v1/me", summary="The caller", response=Me, tags=_TAGS)
async def me(ctx: Ctx) -> Reply:
    return await _as_me(ctx, await shown(ctx, ctx.me.person_id))


async def _as_me(ctx: Ctx, reply: Reply) -> Reply:
    unread = await inbox.unread_count(ctx.store.pool, ctx.me.person_id)
    body = Me(**msgspec.structs.asdict(reply.body), unread_notifications=unread)
    return dataclasses.replace(reply, body=body)


@api.get("/v1/people/{person_id}", summary="One person", response=Person, tags=_TAGS)
async def get_person(ctx: Ctx) -> Reply:
    return await shown(ctx, ctx.path("person_id"))


@api.patch(
    "/v1/me",
    summary="Edit yourself: name, e-mail, title, company, locale, time zone (merge)",
    response=Me,
    tags=_TAGS,
)
async def edit_me(ctx: Ctx, body: PersonPatch) -> Reply:
    return await _as_me(ctx, await _edit(ctx, ctx.me.person_id, body))


@api.patch(
    "/v1/people/{person_id}",
    summary="Edit a person (merge: omitted fields stay, null clears)",
    response=Person,
    tags=_TAGS,
)
async def edit_person(ctx: Ctx, body: PersonPatch) -> Reply:
    return await _edit(ctx, ctx.path("person_id"), body)


async def _edit(ctx: Ctx, person_id: str, body: PersonPatch) -> Reply:
    cmd = EditPerson(**msgspec.structs.asdict(body))
    c = ctx.caller.context()
    stream = person_stream(person_id)

    async def plan() -> Plan:
        loaded = await load(ctx.caller, stream)
        person = _existing(fold_person([e.event for e in loaded.events]))
        memberships = await _memberships(ctx, person_id)
        events = decided(
            ctx.caller,
            loaded.version,
            lambda p: decide_edit_person(p, cmd, c, memberships),
            person,
        )
        appends: Plan = [(stream, events, loaded.version)]
        change = email_change(events)
        if change is not None:
            # A new address is claimed and the old one released in the same transaction
            # as the edit. Addresses differing only in case share one claim: nothing to do.
            before, after = str(change.before), str(change.after)
            appends.append(await _email_plan(ctx, after, person_id))
            if email_stream(before) != email_stream(after):
                appends.append(await _email_plan(ctx, before, person_id, decide_release_email))
        return appends

    await append_together(ctx.caller, plan)
    return await shown(ctx, person_id)


async def _set_active(ctx: Ctx, active: bool) -> Reply:
    person_id = ctx.path("person_id")
    c = ctx.caller.context()

    def decide(person: PersonState | None) -> list[Event]:
        if active:
            return decide_reactivate_person(_existing(person), ReactivatePerson(), c)
        return decide_deactivate_person(_existing(person), DeactivatePerson(), c)

    await execute(ctx.caller, person_stream(person_id), fold_person, decide, project_id=None)
    if not active:
        # Refused already (sessions need an active person): ended, so that a reactivation
        # does not bring them back, as it brings back no token.
        await sign_in.end_sessions(ctx.store.pool, person_id)
        # Their access tokens went with the deactivation; their refresh tokens go too.
        await oauth_commands.revoke_person_grants(ctx.services, person_id, ctx.request_id)
    return await shown(ctx, person_id)


@api.post(
    "/v1/people/{person_id}/deactivate",
    summary="Deactivate a person (admins): every token stops working at once",
    response=Person,
    tags=_TAGS,
)
async def deactivate_person(ctx: Ctx) -> Reply:
    return await _set_active(ctx, False)


@api.post(
    "/v1/people/{person_id}/reactivate",
    summary="Reactivate a person (admins); old tokens stay revoked",
    response=Person,
    tags=_TAGS,
)
async def reactivate_person(ctx: Ctx) -> Reply:
    return await _set_active(ctx, True)


# ------------------------------------------------------------------ tokens


def _token(ctx: Ctx, row: asyncpg.Record) -> ApiToken:
    return ApiToken(
        **columns(row, "person_id", "label", "revoked", "created_at", "revoked_at", id="token_id"),
        url=api_url(ctx, f"/v1/tokens/{row['token_id']}"),
        scopes=scope_strings(token_scope(row)),
    )


async def _own_token_row(ctx: Ctx, token_id: str) -> asyncpg.Record:
    """The token, if it is the caller's or the caller is an admin; else 404.

    Not 403 for a member asking about someone else's token: token ids are not listed to
    anyone but their holder and admins, so the answer must not confirm that one exists.
    """
    row = await directory.api_token(ctx.store.pool, token_id)
    others = ctx.me.role == "admin" and ctx.me.scope.projects is None
    if row is None or (not others and row["person_id"] != ctx.me.person_id):
        raise NotFound("there is no such token")
    return row


@api.post(
    "/v1/people/{person_id}/tokens",
    summary="Issue an API token (the person or an admin); the secret is shown only here",
    response=IssuedApiToken,
    status=201,
    tags=_TAGS,
)
async def issue_token(ctx: Ctx, body: NewApiToken) -> Reply:
    person_id = ctx.path("person_id")
    token_id = ctx.new_id("tok")
    secret = f"cairn_{secrets.token_urlsafe(32)}"
    cmd = IssueToken(
        token_id=token_id,
        token_hash=hash_secret(secret),
        label=body.label,
        scope=parse_scopes("scopes", body.scopes),
    )
    c = ctx.caller.context()
    _, result = await execute(
        ctx.caller,
        person_stream(person_id),
        fold_person,
        lambda person: decide_issue_token(_existing(person), cmd, c),
        project_id=None,
    )
    row = await _own_token_row(ctx, token_id)
    issued = IssuedApiToken(
        id=token_id,
        label=row["label"],
        token=secret,
        created_at=row["created_at"],
        scopes=scope_strings(token_scope(row)),
    )
    # What an idempotent retry replays: the same token without its secret, so that the
    # secret is never stored (see service.http.idempotency).
    ctx.replay_body = msgspec.json.encode(msgspec.structs.replace(issued, token=None))
    headers = {"Location": api_url(ctx, f"/v1/tokens/{token_id}")}
    if result is not None and result.replayed:
        # A retry whose first run died before saving its response: the token was issued
        # then, with a secret this run never saw (the one made above was not stored).
        return Reply(
            msgspec.structs.replace(issued, token=None), 201, {**headers, **REPLAYED_HEADERS}
        )
    return Reply(issued, 201, headers)


@api.get(
    "/v1/people/{person_id}/tokens",
    summary="A person's API tokens, without secrets (the person or an admin)",
    response=list[ApiToken],
    query=PAGING,
    tags=_TAGS,
)
async def list_tokens(ctx: Ctx) -> Reply:
    person_id = ctx.path("person_id")
    check_account(ctx.me, AccountAction.VIEW_TOKENS, person_id)
    await _person_row(ctx, person_id)
    limit = ctx.limit()
    found = await directory.api_tokens(ctx.store.pool, person_id, after=seq_after(ctx), limit=limit)
    body = [_token(ctx, r) for r in found.rows[:limit]]
    return Reply(body, headers=page_headers(ctx, found.rows, limit, found.total))


@api.get(
    "/v1/tokens/{token_id}",
    summary="One API token, without its secret (its holder or an admin)",
    response=ApiToken,
    tags=_TAGS,
)
async def get_token(ctx: Ctx) -> Reply:
    row = await _own_token_row(ctx, ctx.path("token_id"))
    return Reply(_token(ctx, row), version=row["version"])


@api.delete(
    "/v1/tokens/{token_id}",
    summary="Revoke an API token (its holder or an admin); it stops working at once",
    status=204,
    tags=_TAGS,
)
async def revoke_token(ctx: Ctx) -> Response:
    row = await _own_token_row(ctx, ctx.path("token_id"))
    cmd = RevokeToken(token_id=row["token_id"])
    c = ctx.caller.context()

    def decide(person: PersonState | None) -> list[Event]:
        token = _existing(person).tokens.get(cmd.token_id)
        # DELETE is idempotent: revoking a revoked token again changes nothing.
        if token is not None and not token.active:
            return []
        return decide_revoke_token(_existing(person), cmd, c)

    await execute(ctx.caller, person_stream(row["person_id"]), fold_person, decide, project_id=None)
    return Response(status_code=204)

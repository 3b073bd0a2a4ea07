"""Invitations over HTTP: ``/v1/invitations`` (docs/API.md "Invitations").

Admins invite anyone (to Cairn, or to a project); a project's owners invite to it, clients
included. An invitation is a single-use token valid 7 days: its hash in table
``invitations`` (:mod:`service.reads.invitations`), the token itself handed back to whoever
invited (``accept_url``, to pass on by hand) and, when mail is configured, mailed to the
address (:mod:`service.mail.direct`). Accepting it creates the person through the same
commands as ``POST /v1/people`` (the address claimed in the same transaction) or links the
person who has the address, puts them on the project, and signs them in
(:func:`.sessions.open_session`). Its lifecycle is in the log (``InvitationSent``,
``InvitationAccepted``, ``InvitationRevoked`` on ``invitation-<id>``), never the token.

Accepting for a person who already exists signs them in only with their own password: the
link may have been handed to whoever invited, who must not become them.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Annotated, Any, Final, Literal

import asyncpg
import msgspec
from starlette.responses import Response

from ..commands.execute import load, settle
from ..domain import text
from ..domain.access import (
    AccountAction,
    Action,
    TokenScope,
    Viewer,
    check,
    check_account,
    in_scope,
)
from ..domain.context import Context, Timestamp
from ..domain.emails import decide_claim_email, fold_email_claim
from ..domain.memberships import SetMember, decide_set_member
from ..domain.passwords import (
    MAX_LENGTH,
    check_password,
    hash_password,
    verify_password,
)
from ..domain.people import CreatePerson, decide_create_person, fold_person
from ..domain.projects import fold_project, project_facts, require_writable
from ..domain.search import locale_of
from ..domain.tokens import hash_secret
from ..errors import Conflict, Forbidden, InvalidCommand, NotFound, WrongExpectedVersion
from ..events.base import Event, Metadata
from ..events.invitations import (
    InvitationAccepted,
    InvitationRevoked,
    InvitationSent,
    InvitedRole,
)
from ..events.projects import ProjectRole
from ..events.signin import PasswordChanged
from ..events.store import AppendResult
from ..events.streams import (
    ID_DIGITS,
    INVITATION_ID,
    PERSON_ID,
    PROJECT_ID,
    email_stream,
    id_pattern,
    invitation_stream,
    person_stream,
    project_stream,
)
from ..reads import directory, sign_in
from ..reads import invitations as rows
from .api import Api, Ctx, Reply, json_response
from .envelope import api_url
from .params import Param
from .session_auth import check_origin
from .sessions import MailedToken, acting_as, open_session
from .signin_limits import SignInLimits

api = Api()

_TAGS = ["invitations"]
LIFETIME: Final = timedelta(days=7)
"""How long an invitation's token may be used (once)."""
_ATTEMPTS: Final = 3
_NO_STORE: Final = {"Cache-Control": "no-store"}
_ID: Final = {
    "invitation_id": Param(
        "an invitation's id", Annotated[str, msgspec.Meta(pattern=id_pattern(INVITATION_ID))]
    )
}
_TOKEN: Final = {"token": Param("an invitation's token (from its link)", MailedToken)}

Status = Literal["pending", "accepted", "revoked", "expired"]


# ------------------------------------------------------------------ representations


class NewInvitation(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /v1/invitations``. ``role`` ``admin`` only from admins; a ``client``
    needs a ``company`` and a project. ``project_id`` is required but from admins;
    ``project_role`` defaults to ``client`` for a client, ``member`` otherwise (a client is
    always ``client`` of a project, and only a client is)."""

    email: text.Email
    name: text.Line | None = None
    role: InvitedRole
    company: text.Line | None = None
    project_id: Annotated[str, msgspec.Meta(pattern=id_pattern(PROJECT_ID))] | None = None
    project_role: ProjectRole | None = None


_NEW_INVITATION: Final = msgspec.Meta(
    extra_json_schema={
        "allOf": [
            {
                "if": {"properties": {"role": {"const": "client"}}, "required": ["role"]},
                "then": {
                    "required": ["company", "project_id"],
                    "properties": {
                        "company": msgspec.json.schema(text.Line),
                        "project_id": {"type": "string"},
                        "project_role": {"enum": ["client", None]},
                    },
                },
                "else": {"properties": {"project_role": {"enum": ["owner", "member", None]}}},
            },
            {
                "if": {
                    "properties": {"project_role": {"type": "string"}},
                    "required": ["project_role"],
                },
                "then": {
                    "required": ["project_id"],
                    "properties": {"project_id": {"type": "string"}},
                },
            },
        ]
    }
)
"""What OpenAPI says of ``NewInvitation`` beyond its fields: a client needs a company and a
project and is its client; others are owners or members; a project role needs a project."""


class Invitation(msgspec.Struct, frozen=True, kw_only=True):
    """An invitation, without its token. ``status``: ``pending`` (its link works),
    ``accepted`` (by ``person_id``), ``revoked`` or ``expired``."""

    id: str
    email: str
    name: str | None
    role: InvitedRole
    company: str | None
    project_id: str | None
    project_role: ProjectRole | None
    inviter_id: str
    status: Status
    created_at: Timestamp
    sent_at: Timestamp
    expires_at: Timestamp
    accepted_at: Timestamp | None
    person_id: str | None
    revoked_at: Timestamp | None
    url: str


class IssuedInvitation(Invitation, frozen=True, kw_only=True):
    """A new (or resent) invitation with its link: ``accept_url`` (``CAIRN_LINK_URL`` with
    the token) and ``token``, shown in this answer only (``null`` when an idempotent retry
    replays it); ``mailed``: whether a mail with the link is on its way."""

    accept_url: str | None
    token: str | None
    mailed: bool


class Acceptance(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /v1/invitations/{token}/accept``. A new person: ``name`` (default: the
    one the invitation gives; one of them is needed) and optionally a first ``password``
    (12 to 1024 characters, not a common one). Someone who already has the address: their
    ``password`` to be signed in (without it they are only put on the project)."""

    name: text.Line | None = None
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_LENGTH)] | None = None


class Accepted(msgspec.Struct, frozen=True, kw_only=True):
    """The invitation accepted: by ``person_id`` (``created``: a new person), on
    ``project_id``; ``signed_in``: the answer sets the session cookies."""

    person_id: str
    created: bool
    project_id: str | None
    signed_in: bool


# ------------------------------------------------------------------ helpers


def _status(row: asyncpg.Record, now: datetime) -> Status:
    if row["accepted_at"] is not None:
        return "accepted"
    if row["revoked_at"] is not None:
        return "revoked"
    return "expired" if row["expires_at"] <= now else "pending"


def _shown(ctx: Ctx, row: asyncpg.Record) -> Invitation:
    return Invitation(
        id=row["invitation_id"],
        email=row["email"],
        name=row["name"],
        role=row["role"],
        company=row["company"],
        project_id=row["project_id"],
        project_role=row["project_role"],
        inviter_id=row["inviter_id"],
        status=_status(row, ctx.services.clock()),
        created_at=row["created_at"],
        sent_at=row["sent_at"],
        expires_at=row["expires_at"],
        accepted_at=row["accepted_at"],
        person_id=row["person_id"],
        revoked_at=row["revoked_at"],
        url=api_url(ctx, f"/v1/invitations/{row['invitation_id']}"),
    )


def _link(ctx: Ctx, token: str) -> str:
    return ctx.settings.link_url.format(purpose="invitation", token=token)


async def _may_manage(
    ctx: Ctx, project_id: str | None, role: InvitedRole, *, write: bool = True
) -> None:
    """Whether the caller may make (``write``) or read an invitation of ``role`` to
    ``project_id``. Making one without a project, or of an admin, adds a person outside
    any project: ``create_person`` (admins, with a token not limited to projects). One to a
    project needs ``manage_members`` on it (admins, its owners; a project-limited token
    only on its projects); reading it needs that standing, but no ``write`` scope, and
    reading one without a project is for admins whose token is not limited to projects.
    NotFound for what the caller may not see, Forbidden (InsufficientScope) otherwise."""
    me = ctx.me
    if write and (project_id is None or role == "admin"):
        check_account(me, AccountAction.CREATE_PERSON)
    if project_id is None:
        if me.role != "admin" or me.scope.projects is not None:
            raise NotFound("there is no such invitation")
        return
    loaded = await load(ctx.caller, project_stream(project_id))
    project = fold_project([e.event for e in loaded.events])
    if project is None:
        raise NotFound("there is no such project")
    # Reading the invitations to a project is managing its members without writing.
    reader = me if write else msgspec.structs.replace(me, scope=TokenScope(
        write=True, projects=me.scope.projects
    ))  # fmt: skip
    check(reader, Action.MANAGE_MEMBERS, project_facts(project))


async def _visible(ctx: Ctx, invitation_id: str, *, write: bool = False) -> asyncpg.Record:
    row = await rows.one(ctx.store.pool, invitation_id)
    if row is None:
        raise NotFound("there is no such invitation")
    try:
        await _may_manage(ctx, row["project_id"], row["role"], write=False)
    except (Forbidden, NotFound):
        raise NotFound("there is no such invitation") from None
    if write:
        await _may_manage(ctx, row["project_id"], row["role"])
    return row


async def _send(
    ctx: Ctx, row: Mapping[str, Any], event: InvitationSent, write: str, token: str
) -> Reply:
    """Append ``event`` with the row's change (``write``: ``insert`` or ``renew``) and its
    mail in one transaction; the invitation with its link."""
    pool = ctx.store.pool
    mail = ctx.state["mail"]
    mailed = bool(mail.configured)
    inviter = await directory.person(pool, ctx.me.person_id)
    project = (
        await directory.project(pool, event.project_id) if event.project_id is not None else None
    )
    locale = locale_of(project["language"]) if project is not None else ctx.settings.locale
    now = ctx.services.clock()
    stream = invitation_stream(event.invitation_id)
    version = len(await ctx.store.read_stream(stream))
    async with pool.acquire() as conn, conn.transaction():
        result = await ctx.store.append(
            stream, [event], version, ctx.caller.metadata, connection=conn
        )
        if write == "insert":
            await rows.insert(
                conn, invitation_id=event.invitation_id, token_hash=hash_secret(token),
                email=event.email, name=row["name"], role=event.role, company=row["company"],
                project_id=event.project_id, project_role=event.project_role,
                inviter_id=ctx.me.person_id, now=now, expires_at=event.expires_at,
            )  # fmt: skip
        elif not await rows.renew(
            conn, event.invitation_id, hash_secret(token), now, event.expires_at
        ):
            raise Conflict("this invitation was accepted or revoked")
        if mailed:
            await rows.queue_mail(
                conn, invitation_id=event.invitation_id, email=event.email, name=row["name"],
                token=token, locale=locale, inviter=inviter["name"] if inviter else "",
                project=project["name"] if project is not None else None,
                expires_at=event.expires_at, now=now,
            )  # fmt: skip
    ctx.store.committed()
    await settle(ctx.caller, result, [stream])
    if mailed:
        mail.wake.set()
    saved = await rows.one(pool, event.invitation_id)
    assert saved is not None
    shown = _shown(ctx, saved)
    issued = IssuedInvitation(
        **msgspec.structs.asdict(shown), accept_url=_link(ctx, token), token=token, mailed=mailed
    )
    # What an idempotent retry replays: the invitation without its token (never stored).
    ctx.replay_body = msgspec.json.encode(
        msgspec.structs.replace(issued, accept_url=None, token=None)
    )
    status = 201 if write == "insert" else 200
    headers = {"Location": shown.url, **_NO_STORE} if status == 201 else dict(_NO_STORE)
    return Reply(issued, status, headers)


# ------------------------------------------------------------------ routes


@api.post(
    "/v1/invitations",
    summary="Invite someone by e-mail (admins; a project's owners to it): the link is in the "
    "answer, and mailed when mail is configured",
    response=IssuedInvitation,
    status=201,
    tags=_TAGS,
    body_schema=Annotated[NewInvitation, _NEW_INVITATION],
    versioned=False,
)
async def invite(ctx: Ctx, body: NewInvitation) -> Reply:
    me = ctx.me
    if body.role == "admin" and me.role != "admin":
        raise Forbidden("only admins invite admins")
    if body.project_role is not None and body.project_id is None:
        raise InvalidCommand("project_role", "give project_id with project_role")
    if body.role == "client":
        if body.company is None:
            raise InvalidCommand("company", "a client needs a company")
        if body.project_id is None:
            raise InvalidCommand("project_id", "a client is invited to a project")
    project_role: ProjectRole | None = None
    if body.project_id is not None:
        project_role = body.project_role or ("client" if body.role == "client" else "member")
        if (body.role == "client") != (project_role == "client"):
            wanted = "client" if body.role == "client" else "owner or member"
            raise InvalidCommand("project_role", f"a {body.role} can only be {wanted}")
        await _may_manage(ctx, body.project_id, body.role)
        loaded = await load(ctx.caller, project_stream(body.project_id))
        project = fold_project([e.event for e in loaded.events])
        if project is None:
            raise NotFound("there is no such project")
        require_writable(project)
    else:
        await _may_manage(ctx, None, body.role)
    existing = await sign_in.person_by_email(ctx.store.pool, body.email)
    if existing is not None and (existing["role"] == "client") != (body.role == "client"):
        raise InvalidCommand("role", f"this address is a {existing['role']}'s: invite them as one")
    invitation_id = ctx.new_id(INVITATION_ID)
    token = secrets.token_urlsafe(32)
    event = InvitationSent(
        invitation_id=invitation_id,
        email=body.email,
        role=body.role,
        project_id=body.project_id,
        project_role=project_role,
        expires_at=ctx.services.clock() + LIFETIME,
    )
    given = {"name": body.name, "company": body.company}
    return await _send(ctx, given, event, "insert", token)


@api.get(
    "/v1/invitations",
    summary="Invitations, newest first (admins: all; owners: those to their projects)",
    response=list[Invitation],
    tags=_TAGS,
)
async def list_invitations(ctx: Ctx) -> Reply:
    pool = ctx.store.pool
    me = ctx.me
    owned: list[str] | None = None
    if me.role != "admin":
        mine = await directory.memberships(pool, me.person_id)
        owned = [p for p, role in mine.items() if role == "owner" and in_scope(me, p)]
    elif me.scope.projects is not None:
        owned = sorted(me.scope.projects)
    found = await rows.listed(pool, owned, limit=_LIST_LIMIT)
    return Reply([_shown(ctx, r) for r in found])


_LIST_LIMIT: Final = 1000


@api.get(
    "/v1/invitations/{invitation_id}",
    summary="One invitation (admins; its project's owners)",
    response=Invitation,
    tags=_TAGS,
    path_params=_ID,
)
async def get_invitation(ctx: Ctx) -> Reply:
    return Reply(_shown(ctx, await _visible(ctx, ctx.path("invitation_id"))))


@api.post(
    "/v1/invitations/{invitation_id}/resend",
    summary="Send an invitation again with a new link valid 7 days (the old link dies)",
    response=IssuedInvitation,
    tags=_TAGS,
    path_params=_ID,
    versioned=False,
)
async def resend(ctx: Ctx) -> Reply:
    row = await _visible(ctx, ctx.path("invitation_id"), write=True)
    if row["accepted_at"] is not None or row["revoked_at"] is not None:
        raise Conflict("this invitation was accepted or revoked")
    event = InvitationSent(
        invitation_id=row["invitation_id"],
        email=row["email"],
        role=row["role"],
        project_id=row["project_id"],
        project_role=row["project_role"],
        expires_at=ctx.services.clock() + LIFETIME,
        resent=True,
    )
    return await _send(ctx, row, event, "renew", secrets.token_urlsafe(32))


@api.delete(
    "/v1/invitations/{invitation_id}",
    summary="Revoke an invitation: its link stops working (409 once accepted)",
    status=204,
    tags=_TAGS,
    path_params=_ID,
    versioned=False,
)
async def revoke(ctx: Ctx) -> Response:
    row = await _visible(ctx, ctx.path("invitation_id"), write=True)
    if row["revoked_at"] is not None:
        return Response(status_code=204)
    if row["accepted_at"] is not None:
        raise Conflict("this invitation was accepted")
    stream = invitation_stream(row["invitation_id"])
    version = len(await ctx.store.read_stream(stream))
    event = InvitationRevoked(invitation_id=row["invitation_id"])
    async with ctx.store.pool.acquire() as conn, conn.transaction():
        result = await ctx.store.append(
            stream, [event], version, ctx.caller.metadata, connection=conn
        )
        if not await rows.revoke(conn, row["invitation_id"], ctx.services.clock()):
            raise Conflict("this invitation was accepted or revoked meanwhile")
    ctx.store.committed()
    await settle(ctx.caller, result, [stream])
    return Response(status_code=204)


# ------------------------------------------------------------------ accepting


def _gone() -> NotFound:
    return NotFound("this invitation is unknown, used, revoked or expired")


@api.post(
    "/v1/invitations/{token}/accept",
    summary="Accept an invitation: creates the person (or links the one with the address), "
    "puts them on the project and signs them in (session cookies)",
    response=Accepted,
    auth="none",
    tags=_TAGS,
    path_params=_TOKEN,
    versioned=False,
)
async def accept(ctx: Ctx, body: Acceptance) -> Response:
    request = ctx.request
    check_origin(request)
    limits: SignInLimits = ctx.state["sign_in"]
    limits.take(request, None)
    pool = ctx.store.pool
    token_hash = hash_secret(ctx.path("token"))
    invitation = await rows.live_by_token(pool, token_hash, ctx.services.clock())
    if invitation is None:
        raise _gone()
    existing = await sign_in.person_by_email(pool, invitation["email"])
    fresh: str | None = None
    signed_in = True
    if existing is None:
        if body.password is not None:
            check_password(body.password)
            fresh = await asyncio.to_thread(hash_password, body.password)
        if (body.name or invitation["name"]) is None:
            raise InvalidCommand("name", "give your name")
    else:
        if not existing["active"]:
            raise Conflict("the person with this address is deactivated")
        hashed = existing["hash"]
        given = body.password
        signed_in = given is not None and hashed is not None
        if (
            given is not None
            and hashed is not None
            and not await asyncio.to_thread(verify_password, hashed, given)
        ):
            limits.take(request, invitation["email"])
            raise Forbidden("the password is wrong")
    person_id = (
        existing["person_id"]
        if existing is not None
        else f"{PERSON_ID}_{secrets.token_hex(ID_DIGITS // 2)}"
    )
    role = existing["role"] if existing is not None else invitation["role"]
    for attempt in range(_ATTEMPTS):
        try:
            last, streams = await _accept_once(ctx, invitation, token_hash, person_id, body, fresh)
            break
        except WrongExpectedVersion:
            if attempt == _ATTEMPTS - 1:
                raise
    invitee = acting_as(ctx, person_id, role)
    await settle(invitee, last, streams)
    out = Accepted(
        person_id=person_id,
        created=existing is None,
        project_id=invitation["project_id"],
        signed_in=signed_in,
    )
    response = json_response(request, Reply(out, headers=dict(_NO_STORE)))
    if signed_in:
        await open_session(ctx, person_id, role, "invitation", response)
    return response


async def _accept_once(
    ctx: Ctx,
    invitation: asyncpg.Record,
    token_hash: str,
    person_id: str,
    body: Acceptance,
    fresh: str | None,
) -> tuple[AppendResult, list[str]]:
    """Decide and append everything accepting makes happen, in one transaction with the
    token spent (an invitation accepted twice at once: one wins, the other gets 404)."""
    store = ctx.store
    now = ctx.services.clock()
    inviter_row = await directory.person(store.pool, invitation["inviter_id"])
    if inviter_row is None:
        raise _gone()
    inviter = Viewer(
        person_id=inviter_row["person_id"], role=inviter_row["role"], active=inviter_row["active"]
    )
    if (invitation["project_id"] is None or invitation["role"] == "admin") and not (
        inviter.active and inviter.role == "admin"
    ):
        # Only an admin adds a person outside any project, or an admin: one deactivated or
        # no longer admin since inviting no longer does (their pending invitations die).
        raise Conflict("whoever invited you may no longer add people to Cairn")
    plan: list[tuple[str, list[Event], int, str | None, Metadata]] = []
    by_inviter = Metadata(
        actor=inviter.person_id, request_id=ctx.request_id, correlation_id=ctx.request_id
    )
    by_invitee = Metadata(actor=person_id, request_id=ctx.request_id, correlation_id=ctx.request_id)
    created = False
    person_loaded = await store.read_stream(person_stream(person_id))
    person = fold_person([e.event for e in person_loaded])
    if person is None:
        # The invitation carries its inviter's right to add this one person (checked when
        # it was made): the same command as POST /v1/people, as an admin would run it.
        as_admin = Context(
            actor=Viewer(person_id=inviter.person_id, role="admin", active=True), now=now
        )
        events: list[Event] = decide_create_person(
            CreatePerson(
                person_id=person_id,
                name=body.name or invitation["name"],
                email=invitation["email"],
                role=invitation["role"],
                company=invitation["company"],
            ),
            as_admin,
        )
        person = fold_person(events)
        assert person is not None
        claim_events = await store.read_stream(email_stream(person.email))
        claim = fold_email_claim(person.email, [e.event for e in claim_events])
        plan.append(
            (
                email_stream(person.email),
                decide_claim_email(claim, person_id),
                claim.version,
                None,
                by_inviter,
            )
        )
        if fresh is not None:
            events = [*events, PasswordChanged(by="self")]
        plan.append((person_stream(person_id), events, 0, None, by_inviter))
        created = True
    project_id = invitation["project_id"]
    if project_id is not None:
        loaded = await store.read_stream(project_stream(project_id))
        project = fold_project([e.event for e in loaded])
        if project is None:
            raise _gone()
        if person_id not in project.members:
            try:
                joined = decide_set_member(
                    project,
                    person,
                    SetMember(person_id=person_id, project_role=invitation["project_role"]),
                    Context(actor=inviter, now=now),
                )
            except (Forbidden, NotFound):
                raise Conflict(
                    "whoever invited you may no longer add people to this project"
                ) from None
            version = loaded[-1].stream_version if loaded else 0
            plan.append((project_stream(project_id), joined, version, project_id, by_inviter))
    inv_stream = invitation_stream(invitation["invitation_id"])
    inv_version = len(await store.read_stream(inv_stream))
    accepted = InvitationAccepted(
        invitation_id=invitation["invitation_id"], person_id=person_id, created=created
    )
    plan.append((inv_stream, [accepted], inv_version, None, by_invitee))
    async with store.pool.acquire() as conn, conn.transaction():
        for stream, events, expected, in_project, meta in plan:
            last = await store.append(
                stream, events, expected, meta, project_id=in_project, connection=conn
            )
        if not await rows.accept(conn, invitation["invitation_id"], token_hash, person_id, now):
            raise _gone()
        if fresh is not None and created:
            await sign_in.store_password(conn, person_id, fresh, now)
    store.committed()
    return last, [p[0] for p in plan]

"""Signing in over HTTP: passwords, sessions, single-use mailed links and password resets.

``POST /v1/session`` (an e-mail address and password, or a mailed link's token) opens a
session and sets its cookies (:mod:`.session_auth`); ``GET``/``DELETE /v1/session`` show and
end the current one, ``/v1/me/sessions`` lists and ends the caller's sessions.
``PUT /v1/me/password`` sets or changes the caller's password, ``PUT
/v1/people/{id}/password`` sets a person's first one (admins). ``POST /v1/session/links``
and ``POST /v1/password_resets`` make single-use tokens (15 minutes) and hand them to the mail
side (:func:`service.reads.sign_in.queue_mail`); ``PUT /v1/password_resets/{token}`` spends a
reset token.

What happens is in the log (``PasswordChanged``, ``PersonSignedIn``), never a secret: hashes,
sessions and tokens are in the tables of migration 0012, written in the same transaction as
the event that tells of them.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Annotated, Final

import asyncpg
import msgspec
from starlette.responses import Response

from ..commands.caller import Caller
from ..commands.execute import load, settle
from ..domain.access import AccountAction, Viewer, check_account
from ..domain.context import Timestamp
from ..domain.passwords import (
    MAX_LENGTH,
    MIN_LENGTH,
    check_password,
    dummy_hash,
    hash_password,
    needs_rehash,
    verify_password,
)
from ..domain.people import PersonState, fold_person
from ..domain.tokens import hash_secret
from ..errors import Conflict, Forbidden, InvalidCommand, NotFound, WrongExpectedVersion
from ..events.base import Event, Metadata
from ..events.signin import PasswordChanged, PersonSignedIn, SignInMethod
from ..events.streams import ID_DIGITS, person_stream
from ..reads import directory
from ..reads import sign_in as store
from .api import Api, Ctx, Reply, json_response
from .auth import require_full_power
from .bodies import convert
from .params import Param
from .problems import ApiError
from .session_auth import (
    SESSION_COOKIE,
    check_origin,
    clear_session_cookies,
    csrf_token,
    current_session,
    set_session_cookies,
)
from .signin_limits import SignInLimits

api = Api()

_TAGS = ["sessions"]
_WWW: Final = {"WWW-Authenticate": 'Bearer realm="cairn"'}
TOKEN_LIFETIME: Final = timedelta(minutes=15)
"""How long a mailed sign-in or reset token may be used (once)."""
_ATTEMPTS: Final = 3
_NO_STORE: Final = {"Cache-Control": "no-store"}

dummy_hash()  # made once now, not during the first sign-in of an unknown address


# ------------------------------------------------------------------ representations

Password = Annotated[str, msgspec.Meta(min_length=MIN_LENGTH, max_length=MAX_LENGTH)]
GivenPassword = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_LENGTH)]
Address = Annotated[str, msgspec.Meta(min_length=1, max_length=320)]
MailedToken = Annotated[str, msgspec.Meta(pattern="^[A-Za-z0-9_-]{20,100}$")]
SESSION_ID: Final = f"^ses_[0-9a-f]{{{ID_DIGITS}}}$"


SignInBody = Annotated[dict[str, str], msgspec.Meta(min_length=1, max_length=3)]
"""What ``POST /v1/session`` decodes first: an object of strings, not empty (so that the
document marks the body required), then checked as :class:`SignIn`."""


class SignIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /v1/session``: ``email`` and ``password``, or ``link_token`` alone (the
    token of a sign-in link, ``POST /v1/session/links``)."""

    email: Address | None = None
    password: GivenPassword | None = None
    link_token: MailedToken | None = None


class PasswordSignIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Signing in with an e-mail address and password."""

    email: Address
    password: GivenPassword


class LinkSignIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Signing in with the token of a sign-in link (from its mail)."""

    link_token: MailedToken


class CurrentSession(msgspec.Struct, frozen=True, kw_only=True):
    """The session of the request (``GET /v1/session``), with its CSRF token: the value of
    the ``X-CSRF-Token`` header that its unsafe requests carry."""

    id: str
    person_id: str
    created_at: Timestamp
    last_seen_at: Timestamp
    expires_at: Timestamp
    """When it ends if unused (``CAIRN_SESSION_IDLE`` after its last use)."""
    csrf_token: str


class Session(msgspec.Struct, frozen=True, kw_only=True):
    """One of the caller's sessions; ``current``: the one of this request."""

    id: str
    created_at: Timestamp
    last_seen_at: Timestamp
    expires_at: Timestamp
    user_agent: str
    current: bool


class PasswordChange(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Body of ``PUT /v1/me/password``: the new ``password`` (12 to 1024 characters, not a
    common one) and, once one is set, the ``current_password``."""

    password: Password
    current_password: GivenPassword | None = None


class NewPassword(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Body of ``PUT /v1/people/{id}/password`` and ``PUT /v1/password_resets/{token}``."""

    password: Password


class MailRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /v1/session/links`` and ``POST /v1/password_resets``."""

    email: Address


# ------------------------------------------------------------------ helpers


def _limits(ctx: Ctx) -> SignInLimits:
    return ctx.state["sign_in"]


def _now(ctx: Ctx) -> datetime:
    return ctx.services.clock()


def _idle(ctx: Ctx) -> timedelta:
    return timedelta(seconds=ctx.settings.session_idle)


def _as(ctx: Ctx, person_id: str, role: str) -> Caller:
    """The caller of an unauthenticated request acting as ``person_id`` (a sign-in, a reset)."""
    viewer = Viewer(person_id=person_id, role=role, active=True)  # type: ignore[arg-type]
    metadata = Metadata(
        actor=person_id,
        request_id=ctx.request_id,
        correlation_id=(ctx.request.headers.get("x-correlation-id") or ctx.request_id)[:200],
    )
    return Caller(services=ctx.services, actor=viewer, metadata=metadata)


async def _append_with(
    caller: Caller,
    person_id: str,
    decide: Callable[[PersonState], list[Event]],
    also: Callable[[asyncpg.Connection], Awaitable[None]],
) -> None:
    """Append ``decide(person)`` to the person's stream and run ``also`` in the same
    transaction (the rows the event tells of), then wait for the read models."""
    stream = person_stream(person_id)
    pool = caller.store.pool
    for attempt in range(_ATTEMPTS):
        loaded = await load(caller, stream)
        person = fold_person([e.event for e in loaded.events])
        if person is None:
            raise NotFound("there is no such person")
        events = decide(person)
        try:
            async with pool.acquire() as conn, conn.transaction():
                result = await caller.store.append(
                    stream, events, loaded.version, caller.metadata, connection=conn
                )
                await also(conn)
        except WrongExpectedVersion:
            if attempt == _ATTEMPTS - 1:
                raise
            continue
        caller.store.committed()
        await settle(caller, result, [stream])
        return


def _signed_out() -> ApiError:
    return ApiError(401, "wrong e-mail address or password", headers=_WWW)


async def open_session(
    ctx: Ctx, person_id: str, role: str, method: SignInMethod, response: Response | None = None
) -> Response:
    """Open a session for ``person_id`` (``PersonSignedIn`` by ``method``) and set its
    cookies on ``response`` (default: a 204); that response."""
    secret = secrets.token_urlsafe(32)
    session_id = f"ses_{secrets.token_hex(ID_DIGITS // 2)}"
    now = _now(ctx)
    user_agent = ctx.request.headers.get("user-agent", "")[:300]

    def decide(person: PersonState) -> list[Event]:
        if not person.active:
            raise _signed_out()
        return [PersonSignedIn(session_id=session_id, method=method)]

    async def also(conn: asyncpg.Connection) -> None:
        await store.create_session(
            conn, session_id=session_id, secret_hash=hash_secret(secret), person_id=person_id,
            now=now, user_agent=user_agent,
        )  # fmt: skip

    await _append_with(_as(ctx, person_id, role), person_id, decide, also)
    if response is None:
        response = Response(status_code=204, headers=_NO_STORE)
    set_session_cookies(ctx.request, response, secret, int(ctx.settings.session_idle))
    return response


acting_as = _as
"""The caller of an unauthenticated request acting as a person (an invitation accepted)."""


# ------------------------------------------------------------------ sessions


@api.post(
    "/v1/session",
    summary="Sign in (e-mail and password, or a sign-in link's token): sets the session cookies",
    status=204,
    auth="none",
    tags=_TAGS,
    body_schema=(PasswordSignIn, LinkSignIn),
    versioned=False,
)
async def sign_in(ctx: Ctx, given: SignInBody) -> Response:
    request = ctx.request
    body: SignIn = convert(given, SignIn)
    check_origin(request)  # no signing in a victim into an attacker's account from a page
    pool = ctx.store.pool
    now = _now(ctx)
    if body.link_token is not None:
        if body.email is not None or body.password is not None:
            raise InvalidCommand("link_token", "give link_token alone, or email and password")
        _limits(ctx).take(request, None)
        person_id = await store.use_token(pool, "sign_in", hash_secret(body.link_token), now)
        row = None if person_id is None else await directory.person(pool, person_id)
        if row is None or not row["active"]:
            raise ApiError(401, "this sign-in link is unknown, used or expired", headers=_WWW)
        return await open_session(ctx, row["person_id"], row["role"], "link")
    if body.email is None or body.password is None:
        missing = "email" if body.email is None else "password"
        raise InvalidCommand(missing, "give email and password, or link_token")
    email = body.email
    _limits(ctx).take(request, email)
    until = await store.locked_until(pool, email, now)
    if until is not None:
        wait = (until - now).total_seconds()
        raise ApiError(
            429,
            f"too many failed sign-ins for this address; retry in {wait:.0f} s",
            headers={"Retry-After": str(max(1, round(wait)))},
        )
    row = await store.person_by_email(pool, email)
    hashed = row["hash"] if row is not None and row["active"] else None
    # An unknown address, a person without a password or deactivated: the same work, the
    # same answer, as a wrong password.
    matches = await asyncio.to_thread(verify_password, hashed or dummy_hash(), body.password)
    if not matches or hashed is None or row is None:
        await store.failed(pool, email, now, ctx.settings.sign_in_lockout)
        raise _signed_out()
    await store.forget_failures(pool, email)
    if needs_rehash(hashed):
        fresh = await asyncio.to_thread(hash_password, body.password)
        await store.rehash(pool, row["person_id"], hashed, fresh)
    return await open_session(ctx, row["person_id"], row["role"], "password")


@api.get(
    "/v1/session",
    summary="The session of this request, with its CSRF token (renews the cookies)",
    response=CurrentSession,
    tags=_TAGS,
)
async def current(ctx: Ctx) -> Response:
    session_id = current_session(ctx.request)
    secret = ctx.request.cookies.get(SESSION_COOKIE)
    if session_id is None or secret is None:
        raise NotFound("this request was not made with a session (a bearer token)")
    found = [r for r in await _sessions(ctx) if r["session_id"] == session_id]
    if not found:
        raise NotFound("the session has ended")
    row = found[0]
    body = CurrentSession(
        id=session_id,
        person_id=ctx.me.person_id,
        created_at=row["created_at"],
        last_seen_at=row["last_seen_at"],
        expires_at=row["last_seen_at"] + _idle(ctx),
        csrf_token=csrf_token(secret),
    )
    response = json_response(ctx.request, Reply(body, headers=dict(_NO_STORE)))
    set_session_cookies(ctx.request, response, secret, int(ctx.settings.session_idle))
    return response


@api.delete(
    "/v1/session",
    summary="Sign out: end the session of this request and clear its cookies",
    status=204,
    tags=_TAGS,
    versioned=False,
)
async def sign_out(ctx: Ctx) -> Response:
    session_id = current_session(ctx.request)
    if session_id is not None:
        await store.end_session(ctx.store.pool, ctx.me.person_id, session_id)
    response = Response(status_code=204, headers=_NO_STORE)
    clear_session_cookies(ctx.request, response)
    return response


async def _sessions(ctx: Ctx) -> list[asyncpg.Record]:
    return await store.sessions_of(ctx.store.pool, ctx.me.person_id, _now(ctx), _idle(ctx))


@api.get(
    "/v1/me/sessions",
    summary="The caller's sessions (browsers signed in), newest first",
    response=list[Session],
    tags=_TAGS,
)
async def my_sessions(ctx: Ctx) -> Reply:
    this = current_session(ctx.request)
    idle = _idle(ctx)
    body = [
        Session(
            id=r["session_id"],
            created_at=r["created_at"],
            last_seen_at=r["last_seen_at"],
            expires_at=r["last_seen_at"] + idle,
            user_agent=r["user_agent"],
            current=r["session_id"] == this,
        )
        for r in await _sessions(ctx)
    ]
    return Reply(body)


@api.delete(
    "/v1/me/sessions/{session_id}",
    summary="End one of the caller's sessions: it stops working at once, on every instance",
    status=204,
    tags=_TAGS,
    path_params={
        "session_id": Param("a session's id", Annotated[str, msgspec.Meta(pattern=SESSION_ID)])
    },
    versioned=False,
)
async def end_session(ctx: Ctx) -> Response:
    check_account(ctx.me, AccountAction.MANAGE_TOKENS, ctx.me.person_id)
    if not await store.end_session(ctx.store.pool, ctx.me.person_id, ctx.path("session_id")):
        raise NotFound("there is no such session")
    return Response(status_code=204)


# ------------------------------------------------------------------ passwords


@api.put(
    "/v1/me/password",
    summary="Set or change your password (the current one needed once one is set); "
    "ends your other sessions",
    status=204,
    tags=_TAGS,
    versioned=False,
)
async def change_my_password(ctx: Ctx, body: PasswordChange) -> Response:
    person_id = ctx.me.person_id
    check_account(ctx.me, AccountAction.EDIT_PERSON, person_id)
    check_password(body.password)
    hashed = await store.password_hash(ctx.store.pool, person_id)
    if hashed is None:
        # A first password opens sessions of full power: only full power may set it.
        require_full_power(ctx.me, "setting a first password")
    else:
        if body.current_password is None:
            raise InvalidCommand("current_password", "give your current password to change it")
        _limits(ctx).take(ctx.request, person_id)
        if not await asyncio.to_thread(verify_password, hashed, body.current_password):
            raise Forbidden("the current password is wrong")
    fresh = await asyncio.to_thread(hash_password, body.password)
    keep = current_session(ctx.request)
    now = _now(ctx)

    async def also(conn: asyncpg.Connection) -> None:
        await store.store_password(conn, person_id, fresh, now)
        await store.end_sessions(conn, person_id, keep=keep)

    await _append_with(ctx.caller, person_id, lambda _: [PasswordChanged(by="self")], also)
    return Response(status_code=204)


@api.put(
    "/v1/people/{person_id}/password",
    summary="Set a person's first password (admins); 409 once they have one",
    status=204,
    tags=_TAGS,
    versioned=False,
)
async def set_first_password(ctx: Ctx, body: NewPassword) -> Response:
    person_id = ctx.path("person_id")
    check_account(ctx.me, AccountAction.EDIT_PERSON, person_id)
    if ctx.me.role != "admin":
        raise Forbidden("only admins set a person's first password")
    # A first password opens sessions of full power: only full power may set it.
    require_full_power(ctx.me, "setting a first password")
    if await directory.person(ctx.store.pool, person_id) is None:
        raise NotFound("there is no such person")
    check_password(body.password)
    if await store.password_hash(ctx.store.pool, person_id) is not None:
        raise Conflict("this person has a password: they change it, or reset it by mail")
    fresh = await asyncio.to_thread(hash_password, body.password)
    now = _now(ctx)

    async def also(conn: asyncpg.Connection) -> None:
        set_now = await conn.fetchval(
            "INSERT INTO passwords (person_id, hash, changed_at) VALUES ($1, $2, $3) "
            "ON CONFLICT (person_id) DO NOTHING RETURNING person_id",
            person_id, fresh, now,
        )  # fmt: skip
        if set_now is None:  # set meanwhile: the event is rolled back with it
            raise Conflict("this person has a password: they change it, or reset it by mail")

    await _append_with(ctx.caller, person_id, lambda _: [PasswordChanged(by="admin")], also)
    return Response(status_code=204)


# ------------------------------------------------------------------ mailed tokens


async def _mail_token(ctx: Ctx, email: str, purpose: store.Purpose) -> Response:
    """Make a single-use token for the person of ``email`` (if there is an active one) and
    hand it to the mail side; 202 whatever the address, so that no one learns who has an
    account."""
    _limits(ctx).take(ctx.request, email)
    pool = ctx.store.pool
    row = await store.person_by_email(pool, email)
    if row is not None and row["active"]:
        token = secrets.token_urlsafe(32)
        now = _now(ctx)
        expires = now + TOKEN_LIFETIME
        async with pool.acquire() as conn, conn.transaction():
            await store.issue_token(
                conn, purpose, row["person_id"], hash_secret(token), now, expires
            )
            await store.queue_mail(
                conn, purpose=purpose, person_id=row["person_id"], email=row["email"],
                token=token, expires_at=expires, now=now,
            )  # fmt: skip
        ctx.state["mail"].wake.set()  # sent now rather than at the sender's next poll
    return Response(status_code=202)


@api.post(
    "/v1/session/links",
    summary="Mail a sign-in link (single use, 15 minutes) to an address; 202 whoever has it",
    status=202,
    auth="none",
    tags=_TAGS,
    versioned=False,
)
async def mail_sign_in_link(ctx: Ctx, body: MailRequest) -> Response:
    return await _mail_token(ctx, body.email, "sign_in")


@api.post(
    "/v1/password_resets",
    summary="Mail a password reset link (single use, 15 minutes); 202 whoever has the address",
    status=202,
    auth="none",
    tags=_TAGS,
    versioned=False,
)
async def mail_password_reset(ctx: Ctx, body: MailRequest) -> Response:
    return await _mail_token(ctx, body.email, "reset")


@api.put(
    "/v1/password_resets/{token}",
    summary="Set a new password with a reset link's token (once); ends every session",
    status=204,
    auth="none",
    tags=_TAGS,
    path_params={"token": Param("the token of a password reset link (from its mail)", MailedToken)},
    versioned=False,
)
async def reset_password(ctx: Ctx, body: NewPassword) -> Response:
    check_password(body.password)
    _limits(ctx).take(ctx.request, None)
    pool = ctx.store.pool
    now = _now(ctx)
    token_hash = hash_secret(ctx.path("token"))
    person_id = await store.token_person(pool, "reset", token_hash, now)
    row = None if person_id is None else await directory.person(pool, person_id)
    if row is None or not row["active"]:
        raise NotFound("this reset link is unknown, used or expired")
    fresh = await asyncio.to_thread(hash_password, body.password)

    async def also(conn: asyncpg.Connection) -> None:
        if await store.use_token(conn, "reset", token_hash, now) is None:  # spent meanwhile
            raise NotFound("this reset link is unknown, used or expired")
        await store.store_password(conn, row["person_id"], fresh, now)
        await store.end_sessions(conn, row["person_id"])
        await store.forget_failures(conn, row["email"])

    caller = _as(ctx, row["person_id"], row["role"])
    await _append_with(caller, row["person_id"], lambda _: [PasswordChanged(by="reset")], also)
    return Response(status_code=204)

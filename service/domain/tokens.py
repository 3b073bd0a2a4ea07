"""API tokens and the feed token of a person (events of the ``person-<id>`` stream).

Secrets never reach the decisions: the caller makes a secret, shows it once, and passes its
hash (:func:`hash_secret`) here.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import msgspec

from ..errors import Conflict, InsufficientScope, InvalidCommand, NotFound
from ..events.base import Event
from ..events.people import FeedTokenRotated, TokenIssued, TokenRevoked
from . import text
from .access import FULL_SCOPE, AccountAction, TokenScope, check_account
from .context import Context
from .people import PersonState


def hash_secret(secret: str) -> str:
    """How token secrets are stored and looked up: hex SHA-256 (secrets are 256-bit random,
    so no salt)."""
    return hashlib.sha256(secret.encode()).hexdigest()


PROJECT_SCOPE = "project:"
"""Prefix of a scope string limiting a token to one project (``project:<project id>``)."""
MAX_PROJECT_SCOPES = 100


def parse_scopes(field: str, values: list[str] | None) -> TokenScope:
    """The scope named by scope strings: ``read``, ``write`` (which implies ``read``) and any
    number of ``project:<id>``; None: full power.

    Raises:
        InvalidCommand: an unknown string, neither ``read`` nor ``write``, or too many projects.
    """
    if values is None:
        return FULL_SCOPE
    access: set[str] = set()
    projects: set[str] = set()
    for value in values:
        if value in ("read", "write"):
            access.add(value)
        elif value.startswith(PROJECT_SCOPE) and len(value) > len(PROJECT_SCOPE):
            projects.add(text.line(field, value.removeprefix(PROJECT_SCOPE), max_length=100))
        else:
            raise InvalidCommand(field, f"unknown scope {value!r}: read, write, project:<id>")
    if not access:
        raise InvalidCommand(field, f"{field} must name read or write")
    if len(projects) > MAX_PROJECT_SCOPES:
        raise InvalidCommand(field, f"at most {MAX_PROJECT_SCOPES} projects per token")
    return TokenScope(write="write" in access, projects=frozenset(projects) or None)


def scope_strings(scope: TokenScope) -> list[str]:
    """The scope strings of ``scope`` (the inverse of :func:`parse_scopes`): ``read``, then
    ``write`` when it may write, then its ``project:<id>`` in order."""
    found = ["read", "write"] if scope.write else ["read"]
    return found + [PROJECT_SCOPE + p for p in sorted(scope.projects or ())]


class IssueToken(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Issue an API token; the caller makes the secret and passes its hex SHA-256 only.
    ``scope`` may not exceed the actor's own (:meth:`TokenScope.within`)."""

    token_id: str
    token_hash: str
    label: str | None = None
    scope: TokenScope = FULL_SCOPE
    expires_at: datetime | None = None
    """When the token stops working (None: never; OAuth access tokens expire)."""


class RevokeToken(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Revoke one of the person's API tokens."""

    token_id: str
    reason: str = "revoked"


class RotateFeedToken(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Replace the person's feed token; the caller passes the new secret's hex SHA-256."""

    token_hash: str


def decide_issue_token(person: PersonState, cmd: IssueToken, ctx: Context) -> list[Event]:
    """The person or an admin issues an API token: ``[TokenIssued]``.

    A token never holds more than the token that mints it: ``cmd.scope`` must lie within the
    actor's (a read-only token mints nothing at all, a project-limited one only tokens limited
    to some of its projects), and a token that expires (an OAuth access token) mints none: a
    lasting token would outlive it and the revocation of its grant.

    Raises:
        Forbidden / NotFound: see :func:`~service.domain.access.check_account`.
        InsufficientScope: ``cmd.scope`` exceeds the actor's, or the actor's token expires.
        Conflict: the person is deactivated, or ``token_id`` is taken.
        InvalidCommand: a bad hash or label.
    """
    check_account(ctx.actor, AccountAction.MANAGE_TOKENS, person.person_id)
    _require_lasting(ctx)
    if not cmd.scope.within(ctx.actor.scope):
        raise InsufficientScope("a token cannot be given more power than the token minting it")
    _require_active(person)
    if cmd.token_id in person.tokens:
        raise Conflict(f"token {cmd.token_id} exists already")
    projects = cmd.scope.projects
    return [
        TokenIssued(
            token_id=cmd.token_id,
            token_hash=text.token_hash("token_hash", cmd.token_hash),
            label=text.optional_line("label", cmd.label) or "",
            write=cmd.scope.write,
            projects=None if projects is None else tuple(sorted(projects)),
            expires_at=cmd.expires_at,
        )
    ]


def decide_revoke_token(person: PersonState, cmd: RevokeToken, ctx: Context) -> list[Event]:
    """The person or an admin revokes a token: ``[TokenRevoked]``.

    Raises:
        Forbidden / NotFound: see :func:`~service.domain.access.check_account`; NotFound also
            when the person has no such token.
        Conflict: the token is revoked already.
    """
    check_account(ctx.actor, AccountAction.MANAGE_TOKENS, person.person_id)
    token = person.tokens.get(cmd.token_id)
    if token is None:
        raise NotFound("there is no such token")
    if not token.active:
        raise Conflict("the token is revoked already")
    return [TokenRevoked(token_id=cmd.token_id, reason=text.line("reason", cmd.reason))]


def decide_rotate_feed_token(
    person: PersonState, cmd: RotateFeedToken, ctx: Context
) -> list[Event]:
    """The person or an admin replaces the feed token: ``[FeedTokenRotated]``.

    Raises:
        Forbidden / NotFound: see :func:`~service.domain.access.check_account`.
        InsufficientScope: the actor's token expires (an OAuth access token): a feed token
            would outlive it.
        Conflict: the person is deactivated.
        InvalidCommand: a bad hash.
    """
    check_account(ctx.actor, AccountAction.MANAGE_TOKENS, person.person_id)
    _require_lasting(ctx)
    _require_active(person)
    return [FeedTokenRotated(token_hash=text.token_hash("token_hash", cmd.token_hash))]


def _require_lasting(ctx: Context) -> None:
    if ctx.actor.scope.expires_at is not None:
        raise InsufficientScope("a token that expires (an OAuth access token) mints no token")


def _require_active(person: PersonState) -> None:
    if not person.active:
        raise Conflict("the person is deactivated")

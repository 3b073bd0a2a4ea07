"""OAuth 2's writes to the log: an access token is an API token of the person who granted it
(``TokenIssued`` in ``person-<id>``, with the grant's scopes and an expiry), and revoking a
grant revokes every access token it issued (``TokenRevoked``). The grants, codes and refresh
tokens themselves are :mod:`service.reads.oauth`'s tables.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

from ..domain.access import Viewer
from ..domain.people import PersonState, fold_person
from ..domain.tokens import IssueToken, decide_issue_token, hash_secret, parse_scopes
from ..errors import NotFound
from ..events.base import Event, Metadata
from ..events.people import TokenRevoked
from ..events.streams import person_stream
from ..reads import oauth
from .actors import actor_now
from .caller import Caller, Services
from .execute import execute

ACCESS_TOKEN_TTL: Final = timedelta(hours=1)
"""How long an OAuth access token works."""


def _caller(services: Services, actor: Viewer, request_id: str | None) -> Caller:
    return Caller(
        services=services,
        actor=actor,
        metadata=Metadata(actor=actor.person_id, request_id=request_id),
    )


async def issue_tokens(
    services: Services,
    grant: oauth.Grant,
    app_name: str,
    request_id: str | None = None,
    *,
    scopes: Sequence[str] | None = None,
) -> tuple[str, str, datetime] | None:
    """A new access token (an API token of the grant's person, with ``scopes``, by default the
    grant's, expiring in :data:`ACCESS_TOKEN_TTL`) and refresh token for ``grant``, and the
    access token's expiry; None when the person is gone or deactivated, or the grant revoked
    (before or while issuing).

    Raises:
        InvalidCommand: ``scopes`` name neither read nor write.
    """
    actor = await actor_now(
        services, Viewer(person_id=grant.person_id, role="member", active=True), None
    )
    if actor is None:
        return None
    now = services.clock()
    access = f"cairn_{secrets.token_urlsafe(32)}"
    refresh = f"cairnrt_{secrets.token_urlsafe(32)}"
    caller = _caller(services, actor, request_id)
    token_id = caller.new_id("tok")
    expires_at = now + ACCESS_TOKEN_TTL
    cmd = IssueToken(
        token_id=token_id,
        token_hash=hash_secret(access),
        label=f"OAuth: {app_name}"[:200],
        scope=parse_scopes("scope", list(grant.scopes if scopes is None else scopes)),
        expires_at=expires_at,
    )
    c = caller.context()

    def decide(person: PersonState | None) -> list[Event]:
        if person is None:
            raise NotFound("there is no such person")
        return decide_issue_token(person, cmd, c)

    # Recorded first: a token in the log that no grant names would survive its grant's
    # revocation; a row naming a token the append then failed to issue harms nothing.
    pool = services.store.pool
    if not await oauth.record_tokens(pool, grant.grant_id, token_id, access, refresh, now):
        return None
    await execute(caller, person_stream(grant.person_id), fold_person, decide, project_id=None)
    if await oauth.grant_revoked(pool, grant.grant_id):
        # Revoked between the recording and the append: that revocation may have read the
        # grant's tokens before this one was in the log. Revoke it (and the grant) again.
        await revoke_grant(services, grant.grant_id, grant.person_id, request_id)
        return None
    return access, refresh, expires_at


async def revoke_grant(
    services: Services, grant_id: str, person_id: str, request_id: str | None = None
) -> None:
    """Revoke grant ``grant_id`` of ``person_id``: its refresh tokens at once, and every
    access token it issued (``TokenRevoked``, reason ``oauth``) in the person's stream."""
    pool = services.store.pool
    await oauth.revoke_grant(pool, grant_id, services.clock())
    token_ids = set(await oauth.grant_tokens(pool, grant_id))
    if not token_ids:
        return

    def decide(person: PersonState | None) -> list[Event]:
        if person is None:
            return []
        return [
            TokenRevoked(token_id=t.token_id, reason="oauth")
            for t in person.tokens.values()
            if t.token_id in token_ids and t.active
        ]

    actor = Viewer(person_id=person_id, role="member", active=True)
    caller = _caller(services, actor, request_id)
    await execute(caller, person_stream(person_id), fold_person, decide, project_id=None)


async def revoke_person_grants(
    services: Services, person_id: str, request_id: str | None = None
) -> None:
    """Revoke every grant of ``person_id`` (their deactivation): no refresh token of theirs
    issues an access token after a reactivation."""
    for grant_id in await oauth.live_grants(services.store.pool, person_id):
        await revoke_grant(services, grant_id, person_id, request_id)

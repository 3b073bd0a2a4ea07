"""Events of invitations (stream ``invitation-<id>``): sent (or sent again), accepted,
revoked. Never the secret: the token's hash lives in table ``invitations`` (migration
0014), written in the same transaction as these events; the token itself only in the mail
waiting to be sent and in the answer to whoever invited."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from .base import Event, register

InvitedRole = Literal["admin", "member", "client"]


@register
class InvitationSent(Event, frozen=True, kw_only=True):
    """``email`` was invited (again, with a new token, when ``resent``) by the event's actor,
    as a ``role``, to ``project_id`` (None: to Cairn alone) as ``project_role``, until
    ``expires_at``."""

    invitation_id: str
    email: str
    role: InvitedRole
    project_id: str | None = None
    project_role: str | None = None
    expires_at: datetime
    resent: bool = False


@register
class InvitationAccepted(Event, frozen=True, kw_only=True):
    """The invitation was accepted by ``person_id`` (created by it, or already there:
    ``created`` False)."""

    invitation_id: str
    person_id: str
    created: bool


@register
class InvitationRevoked(Event, frozen=True, kw_only=True):
    """The invitation was revoked by the event's actor: its token no longer works."""

    invitation_id: str

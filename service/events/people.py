"""Events of people (stream ``person-<id>``) and of e-mail claims (stream ``email-<address>``).

A person's stream holds their profile, role, activation, API tokens and feed token. Secrets
never enter the log: tokens are stored as the hex SHA-256 of the secret the caller made.

An e-mail claim stream (address lower-cased) makes addresses unique: ``EmailClaimed`` is
appended with the expected version the claim stream was read at (``NO_STREAM`` for a fresh
address), in the same transaction as ``PersonCreated`` or the ``PersonEdited`` that changes
the address.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from ..blobs.store import FileRef
from .base import Event, FieldChange, register

PersonRole = Literal["admin", "member", "client", "service"]


@register
class PersonCreated(Event, frozen=True, kw_only=True):
    """A person got an account. ``company`` is set for clients (optional for others).

    A service account (``role`` ``service``: an integration, not a human) has ``email`` empty
    (it claims no address and is never mailed), ``owner_id`` the admin answerable for it, and
    ``assignable`` whether to-dos and milestones may be given to it (people: always).

    ``locale`` (a language code, ``en`` or ``fr``) and ``time_zone`` (an IANA name) are the
    person's preferences; ``None`` means the server's default (``CAIRN_LOCALE``,
    ``CAIRN_TIME_ZONE``), as in events stored before they existed.
    """

    person_id: str
    name: str
    email: str
    role: PersonRole
    company: str | None
    title: str | None
    locale: str | None = None
    time_zone: str | None = None
    owner_id: str | None = None
    assignable: bool = False


@register
class PersonEdited(Event, frozen=True, kw_only=True):
    """Some of a person's name, email, role, company, title, locale or time zone changed."""

    changes: tuple[FieldChange, ...]


@register
class AvatarChanged(Event, frozen=True, kw_only=True):
    """The person's picture: an image's bytes by :class:`FileRef` (``None``: removed, the
    default picture again)."""

    avatar: FileRef | None


@register
class PersonDeactivated(Event, frozen=True, kw_only=True):
    """A person can no longer sign in; their tokens and feed token are void from here on."""


@register
class PersonReactivated(Event, frozen=True, kw_only=True):
    """A deactivated person may sign in again (with newly issued tokens)."""


@register
class TokenIssued(Event, frozen=True, kw_only=True):
    """An API token was issued; ``token_hash`` is the hex SHA-256 of its secret.

    Its scope (issue #18): ``write`` False for a read-only token; ``projects`` the only
    project ids it reaches (None: every project its holder sees). The defaults are full
    power, as every token issued before scopes existed.

    ``expires_at`` (OAuth access tokens): the instant it stops working; None, the default
    and every token issued before expiries existed: never.
    """

    token_id: str
    token_hash: str
    label: str
    write: bool = True
    projects: tuple[str, ...] | None = None
    expires_at: datetime | None = None


@register
class TokenRevoked(Event, frozen=True, kw_only=True):
    """An API token stopped working (``reason``: e.g. ``"revoked"``, ``"deactivated"``)."""

    token_id: str
    reason: str


@register
class FeedTokenRotated(Event, frozen=True, kw_only=True):
    """The person's feed token was replaced; ``token_hash`` is the hex SHA-256 of the new one."""

    token_hash: str


@register
class EmailClaimed(Event, frozen=True, kw_only=True):
    """An e-mail address now belongs to ``person_id`` (event of an ``email-<address>`` stream)."""

    person_id: str
    email: str


@register
class EmailReleased(Event, frozen=True, kw_only=True):
    """``person_id`` gave up an e-mail address (it changed theirs); anyone may claim it again."""

    person_id: str


@register
class NotificationPreferencesSet(Event, frozen=True, kw_only=True):
    """How the person wants to be told of notices by e-mail, whole (not a patch).

    ``email_off``: the notice kinds (:data:`~service.events.notices.NoticeKind`) not mailed;
    a kind added later is mailed until turned off. ``digest``: one mail a day listing the
    day's notices instead of one mail each. ``quiet_start``/``quiet_end``: local times
    (``HH:MM``, the person's time zone) between which no mail leaves (held until the end);
    both None: none. A person with no such event has the defaults: everything mailed at
    once, no quiet hours.
    """

    email_off: tuple[str, ...] = ()
    digest: bool = False
    quiet_start: str | None = None
    quiet_end: str | None = None

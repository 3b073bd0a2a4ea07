"""People: their state (folded from ``person-<id>``), creating, editing and deactivating them.

Tokens are in :mod:`service.domain.tokens`; e-mail uniqueness, which every creation and change
of address must go through in the same transaction, in :mod:`service.domain.emails`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final, Literal, get_args

import msgspec

from ..blobs.store import FileRef
from ..errors import Conflict, InconsistentStream, InvalidCommand
from ..events.base import Event
from ..events.people import (
    AvatarChanged,
    FeedTokenRotated,
    NotificationPreferencesSet,
    PersonCreated,
    PersonDeactivated,
    PersonEdited,
    PersonReactivated,
    PersonRole,
    TokenIssued,
    TokenRevoked,
)
from ..events.projects import ProjectRole
from . import calendar, text
from .access import FULL_SCOPE, AccountAction, TokenScope, check_account
from .context import Context
from .edits import apply_changes, diff, not_null, patch_of

UNSET = msgspec.UNSET
_Unset = msgspec.UnsetType

Locale = Literal["en", "fr"]
"""The languages a person may choose (``None``: the server's default, ``CAIRN_LOCALE``)."""
LOCALES: Final[frozenset[str]] = frozenset(get_args(Locale))


class TokenState(msgspec.Struct, frozen=True, kw_only=True):
    """One API token of a person (only the hash of its secret is known)."""

    token_id: str
    token_hash: str
    label: str
    active: bool = True
    scope: TokenScope = FULL_SCOPE
    expires_at: datetime | None = None
    """When it stops working (None: never)."""

    def works_at(self, now: datetime) -> bool:
        """Whether the token works at ``now``: active and not expired."""
        return self.active and (self.expires_at is None or now < self.expires_at)


class PersonState(msgspec.Struct, frozen=True, kw_only=True):
    """A person folded from their stream up to stream version ``version``."""

    person_id: str
    name: str
    email: str
    role: PersonRole
    company: str | None
    title: str | None
    locale: str | None = None
    time_zone: str | None = None
    active: bool = True
    tokens: dict[str, TokenState] = {}
    feed_token_hash: str | None = None
    avatar: FileRef | None = None
    notifications: NotificationPreferencesSet = NotificationPreferencesSet()
    """How they want to be told of notices by e-mail (:mod:`.preferences`)."""
    owner_id: str | None = None
    assignable: bool = True
    version: int = 0

    @property
    def service(self) -> bool:
        """Whether this is a service account (an integration, not a human)."""
        return self.role == "service"

    @property
    def active_tokens(self) -> list[TokenState]:
        """The tokens that still work (none once the person is deactivated)."""
        return [t for t in self.tokens.values() if t.active and self.active]


class CreatePerson(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Add a person; ``person_id`` is made by the caller. Clients need a ``company``.
    ``locale`` and ``time_zone`` left ``None`` are the server's defaults. A service account
    (``role`` ``service``) has no ``email``, an ``owner_id`` (an active admin; default: the
    admin creating it) and may be ``assignable``; nobody else takes these two."""

    person_id: str
    name: str
    email: str | None = None
    role: PersonRole
    company: str | None = None
    title: str | None = None
    locale: str | None = None
    time_zone: str | None = None
    owner_id: str | None = None
    assignable: bool | None = None


class EditPerson(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Merge-patch a person; ``company``, ``title``, ``locale`` and ``time_zone`` may be
    cleared with ``None`` (the last two then follow the server's defaults)."""

    name: str | _Unset = UNSET
    email: str | _Unset = UNSET
    role: PersonRole | _Unset = UNSET
    company: str | _Unset | None = UNSET
    title: str | _Unset | None = UNSET
    locale: str | _Unset | None = UNSET
    time_zone: str | _Unset | None = UNSET


class ChangeAvatar(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Set a person's picture (an image checked by :func:`~service.domain.downloads.image_type`
    before its bytes were kept), or remove it (``None``)."""

    avatar: FileRef | None


class DeactivatePerson(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Stop a person from signing in; all their tokens are revoked."""


class ReactivatePerson(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Let a deactivated person sign in again (with new tokens)."""


def evolve_person(state: PersonState | None, event: Event) -> PersonState:
    """``state`` after ``event`` (``None`` before ``PersonCreated``); version goes up by one.

    Raises:
        InconsistentStream: an event before ``PersonCreated``, or a second ``PersonCreated``.
    """
    if isinstance(event, PersonCreated):
        if state is not None:
            raise InconsistentStream(f"person {state.person_id} is created twice")
        return PersonState(
            person_id=event.person_id,
            name=event.name,
            email=event.email,
            role=event.role,
            company=event.company,
            title=event.title,
            locale=event.locale,
            time_zone=event.time_zone,
            owner_id=event.owner_id,
            assignable=event.assignable or event.role != "service",
            version=1,
        )
    if state is None:
        raise InconsistentStream(f"{type(event).__name__} before PersonCreated")
    state = msgspec.structs.replace(state, version=state.version + 1)
    match event:
        case PersonEdited(changes=changes):
            return apply_changes(state, changes)
        case PersonDeactivated():
            tokens = {k: msgspec.structs.replace(t, active=False) for k, t in state.tokens.items()}
            return msgspec.structs.replace(state, active=False, tokens=tokens, feed_token_hash=None)
        case PersonReactivated():
            return msgspec.structs.replace(state, active=True)
        case TokenIssued(token_id=token_id, token_hash=token_hash, label=label):
            scope = TokenScope(
                write=event.write,
                projects=None if event.projects is None else frozenset(event.projects),
                expires_at=event.expires_at,
            )
            token = TokenState(
                token_id=token_id,
                token_hash=token_hash,
                label=label,
                scope=scope,
                expires_at=event.expires_at,
            )
            return msgspec.structs.replace(state, tokens={**state.tokens, token_id: token})
        case TokenRevoked(token_id=token_id) if token_id in state.tokens:
            revoked = msgspec.structs.replace(state.tokens[token_id], active=False)
            return msgspec.structs.replace(state, tokens={**state.tokens, token_id: revoked})
        case FeedTokenRotated(token_hash=token_hash):
            return msgspec.structs.replace(state, feed_token_hash=token_hash)
        case AvatarChanged(avatar=avatar):
            return msgspec.structs.replace(state, avatar=avatar)
        case NotificationPreferencesSet():
            return msgspec.structs.replace(state, notifications=event)
    # Events this code does not know (written by newer code) change nothing it knows about.
    return state


def fold_person(events: Iterable[Event]) -> PersonState | None:
    """The state of a person's stream, from its first event; ``None`` for an empty stream."""
    state: PersonState | None = None
    for event in events:
        state = evolve_person(state, event)
    return state


def decide_create_person(
    cmd: CreatePerson, ctx: Context, owner: PersonState | None = None
) -> list[Event]:
    """Admins add people. Returns ``[PersonCreated]`` for the new person's stream.

    Args:
        owner: for a service account, the state of ``cmd.owner_id`` (None: not found, or
            no ``owner_id`` given: the actor owns it).

    Raises:
        Forbidden: the actor is not an admin.
        InvalidCommand: a bad name, e-mail, title, locale or time zone, a client without
            a company, a person without an e-mail, a service account with one, or owned by
            anyone but an active admin, or ``owner_id``/``assignable`` on a human.
    """
    check_account(ctx.actor, AccountAction.CREATE_PERSON)
    company = text.optional_line("company", cmd.company)
    _require_company(cmd.role, company)
    service = cmd.role == "service"
    if service:
        if cmd.email:
            raise InvalidCommand("email", "a service account has no e-mail address")
        owner_id = cmd.owner_id or ctx.actor.person_id
        if cmd.owner_id is not None and (
            owner is None or owner.role != "admin" or not owner.active
        ):
            raise InvalidCommand("owner_id", "a service account's owner must be an active admin")
        email = ""
    else:
        if cmd.owner_id is not None or cmd.assignable is not None:
            field = "owner_id" if cmd.owner_id is not None else "assignable"
            raise InvalidCommand(field, f"only a service account has {field}")
        if cmd.email is None:
            raise InvalidCommand("email", "a person needs an e-mail address")
        email = text.email("email", cmd.email)
        owner_id = None
    return [
        PersonCreated(
            person_id=cmd.person_id,
            name=text.line("name", cmd.name),
            email=email,
            role=cmd.role,
            company=company,
            title=text.optional_line("title", cmd.title),
            locale=_locale("locale", cmd.locale),
            time_zone=calendar.time_zone("time_zone", cmd.time_zone),
            owner_id=owner_id,
            assignable=bool(cmd.assignable) if service else False,
        )
    ]


def decide_edit_person(
    person: PersonState,
    cmd: EditPerson,
    ctx: Context,
    memberships: Mapping[str, ProjectRole] | None = None,
) -> list[Event]:
    """Edit a person: admins edit anyone, people themselves (but not their own role).

    Args:
        memberships: the person's project roles by project id; needed only to refuse a role
            change between client and staff while they are on projects in the old capacity.

    Returns:
        ``[PersonEdited]``, or ``[]`` when nothing changes. See :func:`email_change`.

    Raises:
        NotFound: a client edits someone else.
        Forbidden: a member edits someone else, or anyone but an admin (or the person
            themselves) changes a role.
        InvalidCommand: a bad value (an unknown locale or time zone included), or a client
            left without a company.
        Conflict: the role change would contradict the person's project memberships.
    """
    check_account(ctx.actor, AccountAction.EDIT_PERSON, person.person_id)
    updates: dict[str, Any] = {}
    for field, value in patch_of(cmd).items():
        if field == "name":
            updates[field] = text.line(field, not_null(field, value))
        elif field == "email":
            updates[field] = text.email(field, not_null(field, value))
        elif field == "role":
            updates[field] = not_null(field, value)
        elif field == "locale":
            updates[field] = _locale(field, value)
        elif field == "time_zone":
            updates[field] = calendar.time_zone(field, value)
        else:
            updates[field] = text.optional_line(field, value)
    role: PersonRole = updates.get("role", person.role)
    if "email" in updates and person.service:
        raise InvalidCommand("email", "a service account has no e-mail address")
    if role != person.role:
        check_account(ctx.actor, AccountAction.CHANGE_ROLE, person.person_id)
        if "service" in (role, person.role):
            raise InvalidCommand("role", "nobody becomes or stops being a service account")
        clashing = [
            p for p, r in (memberships or {}).items() if (r == "client") != (role == "client")
        ]
        if clashing:
            raise Conflict(f"remove the person from {len(clashing)} project(s) before this change")
    _require_company(role, updates.get("company", person.company))
    changes = diff(person, updates)
    return [PersonEdited(changes=changes)] if changes else []


def decide_change_avatar(person: PersonState, cmd: ChangeAvatar, ctx: Context) -> list[Event]:
    """People change their own picture, admins anyone's. ``[AvatarChanged]``, or ``[]`` when
    the picture is already that one (the same bytes) or there is none to remove.

    Raises:
        NotFound / Forbidden: see :func:`~service.domain.access.check_account`.
        InvalidCommand: the file is no raster image Cairn shows (``avatar``).
    """
    check_account(ctx.actor, AccountAction.EDIT_PERSON, person.person_id)
    new = cmd.avatar
    if new is not None and new.content_type not in AVATAR_TYPES:
        raise InvalidCommand("avatar", f"avatar must be one of {', '.join(AVATAR_TYPES)}")
    if new is not None and new.size > MAX_AVATAR:
        raise InvalidCommand("avatar", f"avatar must be at most {MAX_AVATAR} bytes")
    old = person.avatar
    if (old is None and new is None) or (
        old is not None and new is not None and old.sha256 == new.sha256
    ):
        return []
    return [AvatarChanged(avatar=new)]


def decide_deactivate_person(
    person: PersonState, cmd: DeactivatePerson, ctx: Context
) -> list[Event]:
    """Admins deactivate someone else: ``TokenRevoked`` for each live token, then
    ``PersonDeactivated`` (which also voids the feed token).

    Raises:
        Forbidden / NotFound: see :func:`~service.domain.access.check_account`.
        Conflict: the person is already deactivated.
    """
    check_account(ctx.actor, AccountAction.DEACTIVATE_PERSON, person.person_id)
    if not person.active:
        raise Conflict("the person is already deactivated")
    revoked: list[Event] = [
        TokenRevoked(token_id=t.token_id, reason="deactivated") for t in person.active_tokens
    ]
    return [*revoked, PersonDeactivated()]


def decide_reactivate_person(
    person: PersonState, cmd: ReactivatePerson, ctx: Context
) -> list[Event]:
    """Admins reactivate someone: ``[PersonReactivated]`` (old tokens stay revoked).

    Raises:
        Forbidden / NotFound: see :func:`~service.domain.access.check_account`.
        Conflict: the person is active.
    """
    check_account(ctx.actor, AccountAction.DEACTIVATE_PERSON, person.person_id)
    if person.active:
        raise Conflict("the person is active")
    return [PersonReactivated()]


MAX_AVATAR: Final = 5 * 1024 * 1024
"""The largest picture, in bytes."""

AVATAR_TYPES: Final = ("image/png", "image/jpeg", "image/gif", "image/webp")
"""The pictures people may have: raster images a browser shows inline safely."""


def _locale(field: str, value: str | None) -> str | None:
    if value is not None and value not in LOCALES:
        raise InvalidCommand(field, f"{field} must be one of {', '.join(sorted(LOCALES))}")
    return value


def _require_company(role: PersonRole, company: str | None) -> None:
    if role == "client" and company is None:
        raise InvalidCommand("company", "a client needs a company")

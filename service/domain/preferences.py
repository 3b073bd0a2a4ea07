"""A person's e-mail preferences for notices, and when (or whether) a notice is mailed.

Preferences are :class:`~service.events.people.NotificationPreferencesSet` events on the
person's stream, folded into :attr:`~service.domain.people.PersonState.notifications`
(defaults: every kind mailed at once, no digest, no quiet hours). :func:`decide_set` checks
a new set (``PUT /v1/me/notifications``, a one-click unsubscribe); :func:`plan` says what
becomes of one notice for one person at one instant: skipped, mailed at an instant (now,
or when their quiet hours end), or gathered into the daily digest of a day.

Pure: the caller hands in the instant, the person's zone and the digest hour.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated, Final, Literal, get_args
from zoneinfo import ZoneInfo

import msgspec

from ..errors import InvalidCommand
from ..events.base import Event
from ..events.notices import NoticeKind
from ..events.people import NotificationPreferencesSet
from .access import AccountAction, check_account
from .context import Context

KINDS: Final[tuple[str, ...]] = get_args(NoticeKind)
"""Every kind of notice, each with its own e-mail switch."""
_CLOCK: Final = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")

LocalTime = Annotated[
    str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", examples=["22:00"])
]
"""A time of day, ``HH:MM``."""


class QuietHours(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Local times (``HH:MM``, the person's zone) between which no mail leaves; ``start``
    after ``end`` spans midnight (``22:00``-``07:00``)."""

    start: LocalTime
    end: LocalTime


class SetPreferences(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A whole new set of preferences: ``email`` (kind: mailed or not; kinds left out keep
    their current switch), ``digest``, ``quiet_hours`` (None: none)."""

    email: Annotated[
        dict[str, bool], msgspec.Meta(extra_json_schema={"propertyNames": {"enum": list(KINDS)}})
    ]
    digest: bool
    quiet_hours: QuietHours | None


def email_switches(prefs: NotificationPreferencesSet) -> dict[str, bool]:
    """Each kind and whether it is mailed."""
    return {kind: kind not in prefs.email_off for kind in KINDS}


def quiet_hours(prefs: NotificationPreferencesSet) -> QuietHours | None:
    """The quiet hours, if any."""
    if prefs.quiet_start is None or prefs.quiet_end is None:
        return None
    return QuietHours(start=prefs.quiet_start, end=prefs.quiet_end)


def _clock(field: str, value: str) -> time:
    found = _CLOCK.fullmatch(value)
    if found is None:
        raise InvalidCommand(field, f"{field} must be a time of day as HH:MM (00:00 to 23:59)")
    return time(int(found[1]), int(found[2]))


def decide_set(
    person_id: str,
    current: NotificationPreferencesSet,
    cmd: SetPreferences,
    ctx: Context,
) -> list[Event]:
    """People set their own preferences. ``[NotificationPreferencesSet]``, or ``[]`` when
    nothing changes.

    Raises:
        Forbidden / NotFound: see :func:`~service.domain.access.check_account`.
        InvalidCommand: an unknown kind (``email``), a malformed time or an empty span
            (``quiet_hours``).
    """
    check_account(ctx.actor, AccountAction.EDIT_PERSON, person_id)
    unknown = sorted(set(cmd.email) - set(KINDS))
    if unknown:
        raise InvalidCommand(
            "email", f"no such kind of notice: {', '.join(unknown)} (one of {', '.join(KINDS)})"
        )
    switches = {**email_switches(current), **cmd.email}
    start = end = None
    if cmd.quiet_hours is not None:
        begins = _clock("quiet_hours.start", cmd.quiet_hours.start)
        ends = _clock("quiet_hours.end", cmd.quiet_hours.end)
        if begins == ends:
            raise InvalidCommand("quiet_hours", "quiet hours must not start when they end")
        start, end = begins.strftime("%H:%M"), ends.strftime("%H:%M")
    new = NotificationPreferencesSet(
        email_off=tuple(k for k in KINDS if not switches[k]),
        digest=cmd.digest,
        quiet_start=start,
        quiet_end=end,
    )
    return [] if new == current else [new]


def turned_off(current: NotificationPreferencesSet, kind: str) -> SetPreferences:
    """The preferences ``current`` with ``kind`` not mailed (one-click unsubscribe; ``all``:
    no kind mailed)."""
    kinds = KINDS if kind == "all" else (kind,)
    return SetPreferences(
        email=dict.fromkeys(kinds, False), digest=current.digest, quiet_hours=quiet_hours(current)
    )


# ------------------------------------------------------------------ planning

Plan = Literal["skip", "mail", "digest"]


@dataclass(frozen=True)
class Planned:
    """What becomes of one notice for one person: ``skip`` (not mailed), ``mail`` (alone,
    at ``due_at``), ``digest`` (in the digest of local day ``day``, sent at ``due_at``)."""

    plan: Plan
    due_at: datetime
    day: date | None = None


def mailed(prefs: NotificationPreferencesSet, kind: str) -> bool:
    """Whether notices of ``kind`` are mailed at all."""
    return kind not in prefs.email_off


def plan(
    prefs: NotificationPreferencesSet, kind: str, zone: ZoneInfo, now: datetime, digest_hour: int
) -> Planned:
    """What becomes of a notice of ``kind`` noticed at ``now`` (aware) for a person with
    ``prefs`` living in ``zone``.

    A digest is sent at ``digest_hour`` local time and lists what was noticed since the
    previous one: a notice goes into the digest of the next such hour strictly after
    ``now`` (its local date is the digest's ``day``). Quiet hours hold a single mail, or a
    digest whose hour falls inside them, until they end.
    """
    if not mailed(prefs, kind):
        return Planned("skip", now)
    if prefs.digest:
        local = now.astimezone(zone)
        at = datetime.combine(local.date(), time(digest_hour), zone)
        if at <= local:
            at = datetime.combine(local.date() + timedelta(days=1), time(digest_hour), zone)
        day = at.date()
        return Planned("digest", _after_quiet(prefs, zone, at), day)
    return Planned("mail", _after_quiet(prefs, zone, now))


def _after_quiet(prefs: NotificationPreferencesSet, zone: ZoneInfo, at: datetime) -> datetime:
    """``at``, or the end of the quiet hours it falls in."""
    if prefs.quiet_start is None or prefs.quiet_end is None:
        return at
    start, end = _clock("quiet_start", prefs.quiet_start), _clock("quiet_end", prefs.quiet_end)
    local = at.astimezone(zone)
    now = local.time().replace(tzinfo=None)
    # start after end: the quiet hours span midnight
    inside = start <= now < end if start < end else now >= start or now < end
    if not inside:
        return at
    ends = datetime.combine(local.date(), end, zone)
    if ends <= local:
        ends = datetime.combine(local.date() + timedelta(days=1), end, zone)
    return ends

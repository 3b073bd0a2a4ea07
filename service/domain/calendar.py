"""Dates as a person sees them: time zones, "today" and "this week".

Dates (a to-do's or a milestone's ``due_on``) have no zone; instants (``completed_at``) are
UTC. Where Cairn sets one against the other ("late", "due today", "due soon", "this week"),
it takes the date of an instant in the viewer's time zone: at 10:30 UTC on 1 June, a person
in ``Pacific/Kiritimati`` (UTC+14) is on 2 June and one in ``Pacific/Pago_Pago`` (UTC-11) on
31 May, and a to-do due on 1 June is late for the first and not yet due for the second.

Pure: the instant is given (a :data:`Clock` is what gives it, to the callers); the only
thing read is the time zone database, data installed with the code (``tzdata``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Annotated
from zoneinfo import ZoneInfo

import msgspec

from ..errors import InvalidCommand

Clock = Callable[[], dt.datetime]
"""What tells "now" (timezone-aware): the system's in production, a fixed one in tests."""


@cache
def time_zones() -> frozenset[str]:
    """The names of the IANA time zone database (``Europe/Paris``, ``UTC``...), as the
    ``tzdata`` package lists them: the same on every machine, whatever the OS has (which
    may add names of its own, such as ``localtime``)."""
    listed = resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8")
    return frozenset(listed.split())


# Not an enum of time_zones(): generated clients make one constant of each value, and
# names such as Etc/GMT+0 and Etc/GMT-0 give two of the same (openapi-python-client stops).
ZoneName = Annotated[
    str,
    msgspec.Meta(
        extra_json_schema={
            "description": "an IANA time zone, such as Europe/Paris",
            "maxLength": 64,
            "pattern": r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$",
        }
    ),
]
"""A time zone's name as requests carry it; the schema gives its shape, :func:`time_zone`
checks that it is one of :func:`time_zones`."""


def time_zone(field: str, name: str | None) -> str | None:
    """``name`` if it is a time zone of :func:`time_zones` (``None`` stays ``None``).

    Raises:
        InvalidCommand: any other name, naming ``field``.
    """
    if name is not None and name not in time_zones():
        raise InvalidCommand(field, f"{field} must be an IANA time zone, such as Europe/Paris")
    return name


def zone(chosen: str | None, default: str) -> ZoneInfo:
    """The zone of someone who chose ``chosen`` (``None``: none), else ``default``.

    A chosen zone this machine cannot load (a name the time zone database has since dropped)
    counts as no choice, so that what was once valid never breaks a read.
    """
    if chosen is not None:
        try:
            return ZoneInfo(chosen)
        except (KeyError, ValueError, OSError):
            pass
    return ZoneInfo(default)


@dataclass(frozen=True)
class Today:
    """The current date somewhere: ``date`` is today in ``zone``."""

    date: dt.date
    zone: ZoneInfo

    @property
    def week_starts_on(self) -> dt.date:
        """The Monday of this week."""
        return self.date - dt.timedelta(days=self.date.weekday())

    @property
    def week_start(self) -> dt.datetime:
        """The instant this week began: Monday 00:00 in :attr:`zone`."""
        return dt.datetime.combine(self.week_starts_on, dt.time(), tzinfo=self.zone)


def today(now: dt.datetime, in_zone: ZoneInfo) -> Today:
    """The date of instant ``now`` (timezone-aware) in ``in_zone``."""
    return Today(date=now.astimezone(in_zone).date(), zone=in_zone)

"""Time zones: the default one (``CAIRN_TIME_ZONE``), each person's, and what Cairn computes
with them ("today", "late", "due soon", "this week"), over real HTTP and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from service.config import from_env
from service.domain.calendar import Today, today, zone
from service.errors import ConfigurationError

INSTANT = datetime(2026, 6, 1, 10, 30, tzinfo=UTC)
"""A Monday: 2 June already in Kiritimati (UTC+14), still 31 May in Pago Pago (UTC-11)."""
KIRITIMATI = "Pacific/Kiritimati"
PAGO_PAGO = "Pacific/Pago_Pago"

# ------------------------------------------------------------------ the settings


def test_the_default_language_and_time_zone_are_english_and_utc(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Unset, ``CAIRN_LOCALE`` is ``en`` and ``CAIRN_TIME_ZONE`` is ``UTC``."""
    monkeypatch.delenv("CAIRN_LOCALE", raising=False)
    monkeypatch.delenv("CAIRN_TIME_ZONE", raising=False)
    settings = from_env("postgresql://unused")
    assert (settings.locale, settings.time_zone) == ("en", "UTC")


def test_the_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """``CAIRN_LOCALE`` and ``CAIRN_TIME_ZONE`` set the language and zone of people who chose none."""
    monkeypatch.setenv("CAIRN_LOCALE", "fr")
    monkeypatch.setenv("CAIRN_TIME_ZONE", "Pacific/Kiritimati")
    settings = from_env("postgresql://unused")
    assert (settings.locale, settings.time_zone) == ("fr", "Pacific/Kiritimati")


@pytest.mark.parametrize("bad", ["Mars/Olympus", "Europe", "../etc/passwd", "/etc/localtime"])
def test_an_unknown_default_time_zone_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    """A ``CAIRN_TIME_ZONE`` zoneinfo cannot load is a ConfigurationError naming the variable."""
    monkeypatch.setenv("CAIRN_TIME_ZONE", bad)
    with pytest.raises(ConfigurationError, match=r"^CAIRN_TIME_ZONE=.*not a time zone"):
        from_env("postgresql://unused")


def test_a_default_language_other_than_english_or_french_stops_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``CAIRN_LOCALE`` is ``en`` or ``fr``; anything else is a ConfigurationError naming it."""
    monkeypatch.setenv("CAIRN_LOCALE", "de")
    with pytest.raises(ConfigurationError, match=r"^CAIRN_LOCALE='de'"):
        from_env("postgresql://unused")


# ------------------------------------------------------------------ the calendar, pure


@pytest.mark.parametrize(
    ("name", "expected"),
    [(KIRITIMATI, date(2026, 6, 2)), ("UTC", date(2026, 6, 1)), (PAGO_PAGO, date(2026, 5, 31))],
)
def test_today_is_the_date_of_the_instant_in_the_zone(name: str, expected: date) -> None:
    """At one instant, the two sides of the date line are two days apart."""
    assert today(INSTANT, ZoneInfo(name)) == Today(date=expected, zone=ZoneInfo(name))


def test_a_week_starts_on_monday_at_midnight_in_the_zone() -> None:
    """This week is from Monday 00:00 where the person is, whatever the day in UTC."""
    kiritimati = today(INSTANT, ZoneInfo(KIRITIMATI))
    assert kiritimati.week_starts_on == date(2026, 6, 1)
    assert kiritimati.week_start == datetime(2026, 5, 31, 10, tzinfo=UTC)
    pago_pago = today(INSTANT, ZoneInfo(PAGO_PAGO))
    assert pago_pago.week_starts_on == date(2026, 5, 25)
    assert pago_pago.week_start == datetime(2026, 5, 25, 11, tzinfo=UTC)


def test_a_person_without_a_loadable_zone_has_the_default() -> None:
    """No choice, or a stored name this machine cannot load, means the default zone."""
    assert zone(KIRITIMATI, "UTC") == ZoneInfo(KIRITIMATI)
    assert zone(None, PAGO_PAGO) == ZoneInfo(PAGO_PAGO)
    assert zone("Mars/Olympus", PAGO_PAGO) == ZoneInfo(PAGO_PAGO)

"""Time zones: the default one (``CAIRN_TIME_ZONE``), each person's, and what Cairn computes
with them ("today", "late", "due soon", "this week"), over real HTTP and PostgreSQL."""

from __future__ import annotations

import pytest

from service.config import from_env
from service.errors import ConfigurationError

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

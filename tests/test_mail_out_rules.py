"""The pure rules of e-mail out: when a notice is mailed (preferences, digest, quiet hours),
the unsubscribe token, the SMTP URL, and what composition derives (Message-IDs, plain text)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from service.config import SmtpTarget, smtp_target
from service.domain.access import Viewer
from service.domain.context import Context
from service.domain.preferences import (
    KINDS,
    QuietHours,
    SetPreferences,
    decide_set,
    plan,
    turned_off,
)
from service.domain.signing import Keyring
from service.domain.unsubscribe import ALL, Unsubscribe, sign, verify
from service.errors import Forbidden, InvalidCommand
from service.events.people import NotificationPreferencesSet
from service.mail.compose import digest_id, message_id, plain

PARIS = ZoneInfo("Europe/Paris")
MIA = "per_" + "1" * 20
BO = "per_" + "2" * 20
KEYS = Keyring(secrets={"ab12": b"k" * 32, "cd34": b"m" * 32}, current="cd34")
NONE = NotificationPreferencesSet()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# ------------------------------------------------------------------ planning


def test_by_default_everything_is_mailed_at_once() -> None:
    now = at("2026-12-07T03:00:00+00:00")
    for kind in KINDS:
        planned = plan(NONE, kind, PARIS, now, 8)
        assert (planned.plan, planned.due_at, planned.day) == ("mail", now, None)


def test_a_kind_turned_off_is_skipped() -> None:
    prefs = NotificationPreferencesSet(email_off=("comment",))
    now = at("2026-12-07T10:00:00+00:00")
    assert plan(prefs, "comment", PARIS, now, 8).plan == "skip"
    assert plan(prefs, "message", PARIS, now, 8).plan == "mail"


@pytest.mark.parametrize(
    ("now", "due", "day"),
    [
        # 06:59 in Paris: this morning's digest
        ("2026-12-07T05:59:00+00:00", "2026-12-07T08:00:00+01:00", "2026-12-07"),
        # 08:00 sharp: tomorrow's (the 08:00 digest lists what came before it)
        ("2026-12-07T07:00:00+00:00", "2026-12-08T08:00:00+01:00", "2026-12-08"),
        ("2026-12-07T22:30:00+00:00", "2026-12-08T08:00:00+01:00", "2026-12-08"),
        # across the change to summer time: still 08:00 local
        ("2026-03-28T12:00:00+00:00", "2026-03-29T08:00:00+02:00", "2026-03-29"),
    ],
)
def test_a_digest_goes_at_the_next_digest_hour_in_the_persons_zone(
    now: str, due: str, day: str
) -> None:
    planned = plan(NotificationPreferencesSet(digest=True), "message", PARIS, at(now), 8)
    assert planned.plan == "digest"
    assert planned.due_at == at(due)
    assert planned.day == date.fromisoformat(day)


@pytest.mark.parametrize(
    ("start", "end", "now", "due"),
    [
        # across midnight, inside: held until 07:00 local
        ("22:00", "07:00", "2026-12-07T22:30:00+00:00", "2026-12-08T07:00:00+01:00"),
        ("22:00", "07:00", "2026-12-08T02:00:00+00:00", "2026-12-08T07:00:00+01:00"),
        # outside: at once
        ("22:00", "07:00", "2026-12-08T06:00:00+00:00", "2026-12-08T06:00:00+00:00"),
        ("22:00", "07:00", "2026-12-07T20:59:00+00:00", "2026-12-07T20:59:00+00:00"),
        # the same day
        ("12:00", "14:00", "2026-12-07T11:30:00+00:00", "2026-12-07T14:00:00+01:00"),
        ("12:00", "14:00", "2026-12-07T13:00:00+00:00", "2026-12-07T13:00:00+00:00"),
    ],
)
def test_quiet_hours_hold_a_mail_until_they_end(start: str, end: str, now: str, due: str) -> None:
    prefs = NotificationPreferencesSet(quiet_start=start, quiet_end=end)
    assert plan(prefs, "message", PARIS, at(now), 8).due_at == at(due)


def test_a_digest_whose_hour_is_quiet_waits_for_the_end() -> None:
    prefs = NotificationPreferencesSet(digest=True, quiet_start="06:00", quiet_end="09:30")
    planned = plan(prefs, "message", PARIS, at("2026-12-07T12:00:00+00:00"), 8)
    assert planned.due_at == at("2026-12-08T09:30:00+01:00")
    assert planned.day == date(2026, 12, 8)


# ------------------------------------------------------------------ setting them


def _ctx(person: str) -> Context:
    return Context(actor=Viewer(person_id=person, role="member"), now=datetime.now(UTC))


def test_setting_preferences_keeps_the_kinds_not_named_and_nothing_changes_nothing() -> None:
    current = NotificationPreferencesSet(email_off=("assignment",))
    cmd = SetPreferences(
        email={"comment": False}, digest=True, quiet_hours=QuietHours(start="22:00", end="07:00")
    )
    [new] = decide_set(MIA, current, cmd, _ctx(MIA))
    assert new == NotificationPreferencesSet(
        email_off=("comment", "assignment"), digest=True, quiet_start="22:00", quiet_end="07:00"
    )
    assert decide_set(MIA, new, cmd, _ctx(MIA)) == []


def test_bad_preferences_are_refused_naming_the_field() -> None:
    for email, quiet, field in (
        ({"gossip": True}, None, "email"),
        ({}, QuietHours(start="7:00", end="08:00"), "quiet_hours.start"),
        ({}, QuietHours(start="08:00", end="08:00"), "quiet_hours"),
    ):
        cmd = SetPreferences(email=email, digest=False, quiet_hours=quiet)
        with pytest.raises(InvalidCommand) as refused:
            decide_set(MIA, NONE, cmd, _ctx(MIA))
        assert refused.value.field == field


def test_only_the_person_or_an_admin_sets_them() -> None:
    cmd = SetPreferences(email={}, digest=True, quiet_hours=None)
    with pytest.raises(Forbidden):
        decide_set(MIA, NONE, cmd, _ctx(BO))


def test_unsubscribing_from_all_turns_every_kind_off() -> None:
    [new] = decide_set(MIA, NONE, turned_off(NONE, ALL), _ctx(MIA))
    assert isinstance(new, NotificationPreferencesSet)
    assert set(new.email_off) == set(KINDS)


# ------------------------------------------------------------------ unsubscribe tokens


def test_an_unsubscribe_token_names_its_person_and_kind_and_cannot_be_turned() -> None:
    token = sign(KEYS, MIA, "comment")
    assert token.startswith("cd34.")
    assert verify(KEYS, token) == Unsubscribe(person_id=MIA, kind="comment")
    assert verify(KEYS, token.upper()) == Unsubscribe(person_id=MIA, kind="comment")
    other = sign(KEYS, BO, "comment")
    assert verify(KEYS, token.split(".")[0] + "." + other.split(".")[1]) != Unsubscribe(
        person_id=MIA, kind="comment"
    )
    body = token.split(".")[1]
    flipped = body[:-1] + ("a" if body[-1] != "a" else "b")
    assert verify(KEYS, f"cd34.{flipped}") is None
    assert verify(KEYS, f"ab12.{body}") is None  # signed with another key
    assert verify(Keyring(secrets={"ab12": b"k" * 32}, current="ab12"), token) is None
    assert verify(KEYS, "nonsense") is None
    assert verify(KEYS, sign(KEYS, MIA, ALL)) == Unsubscribe(person_id=MIA, kind=ALL)
    with pytest.raises(ValueError, match="cannot sign"):
        sign(KEYS, MIA, "gossip")


# ------------------------------------------------------------------ SMTP URL


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("smtp://mail.example.com", SmtpTarget("mail.example.com", 25, None, None, False, None)),
        (
            "smtp://u%40x:p%3Aw@mail.example.com:587?starttls=true",
            SmtpTarget("mail.example.com", 587, "u@x", "p:w", False, True),
        ),
        (
            "smtp://127.0.0.1:2525?starttls=false",
            SmtpTarget("127.0.0.1", 2525, None, None, False, False),
        ),
        (
            "smtps://u:p@mail.example.com",
            SmtpTarget("mail.example.com", 465, "u", "p", True, False),
        ),
    ],
)
def test_the_smtp_url_says_where_and_how(url: str, target: SmtpTarget) -> None:
    assert smtp_target(url) == target


@pytest.mark.parametrize(
    "url",
    [
        "http://mail.example.com",
        "smtp://",
        "smtp://h?starttls=maybe",
        "smtps://h?starttls=true",
        "smtp://h/path",
        "smtp://h:99999",
    ],
)
def test_a_bad_smtp_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each says why in its own words
        smtp_target(url)


# ------------------------------------------------------------------ composition


def test_message_ids_are_stable_and_per_recipient() -> None:
    one = message_id(42, MIA, "cairn.test")
    assert one == message_id(42, MIA, "cairn.test")
    assert one != message_id(42, BO, "cairn.test")
    assert one.startswith("<42.")
    assert one.endswith("@cairn.test>")
    assert digest_id(date(2026, 12, 8), 42, MIA, "cairn.test").startswith("<digest.20261208.42.")


def test_plain_text_keeps_blocks_on_their_lines_and_decodes_entities() -> None:
    html = "<h1>Plan</h1><p>Fish &amp; chips<br>at 5</p><ul><li>one</li><li>two</li></ul>"
    assert plain(html) == "Plan\nFish & chips\nat 5\none\ntwo"

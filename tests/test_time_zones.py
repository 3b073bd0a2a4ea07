"""Time zones: the default one (``CAIRN_TIME_ZONE``), each person's, and what Cairn computes
with them ("today", "late", "due soon", "this week"), over real HTTP and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from service.config import from_env
from service.domain.calendar import Today, today, zone
from service.errors import ConfigurationError

from .support.api import Api, add_admin, bearer, known_token, new_person, problem
from .support.servers import FixedClock, serving

INSTANT = datetime(2026, 6, 1, 10, 30, tzinfo=UTC)
"""A Monday: 2 June already in Kiritimati (UTC+14), still 31 May in Pago Pago (UTC-11)."""
DUE = "2026-06-01"
"""Today in UTC at :data:`INSTANT`: late in Kiritimati, not yet due in Pago Pago."""
KIRITIMATI = "Pacific/Kiritimati"
PAGO_PAGO = "Pacific/Pago_Pago"


@pytest.fixture
def clock() -> FixedClock:
    """The live server's clock, at :data:`INSTANT` until a test moves it."""
    return FixedClock(INSTANT)


@pytest.fixture
def server_settings(clock: FixedClock) -> dict[str, object]:
    return {"clock": clock}


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


# ------------------------------------------------------------------ across the date line


@dataclass
class DateLine:
    """A project with two members on either side of the date line, Kiri (Kiritimati) and
    Pago (Pago Pago), and the admin (no zone: the default, UTC). The project holds a to-do
    assigned to both and a milestone, each due on :data:`DUE`; two to-dos were completed
    at 12:00 UTC on 30 and 31 May."""

    api: Api
    project_id: str
    todo_id: str
    milestone_id: str
    kiri: dict[str, str]
    pago: dict[str, str]

    @property
    def viewers(self) -> dict[str, dict[str, str] | None]:
        """Each viewer's headers by name (None: the admin's client as it is)."""
        return {"kiri": self.kiri, "pago": self.pago, "utc": None}

    async def get(self, path: str, **params: Any) -> dict[str, Any]:
        """What each viewer gets at ``path``: the JSON answer by viewer name."""
        answers = {}
        for name, headers in self.viewers.items():
            reply = await self.api.client.get(path, params=params, headers=headers)
            assert reply.status_code == 200, reply.text
            answers[name] = reply.json()
        return answers


async def _created(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> str:
    reply = await client.post(path, json=body)
    assert reply.status_code == 201, reply.text
    created: str = reply.json()["id"]
    return created


@pytest.fixture
async def date_line(api: Api, clock: FixedClock) -> DateLine:
    """:class:`DateLine`, written over HTTP with the server's clock moved for the completions."""
    c = api.client
    kiri_id, kiri = await new_person(api, "Kiri", time_zone=KIRITIMATI)
    pago_id, pago = await new_person(api, "Pago")
    chosen = await c.patch("/v1/me", json={"time_zone": PAGO_PAGO}, headers=bearer(pago))
    assert chosen.json()["time_zone"] == PAGO_PAGO
    project_id = await _created(c, "/v1/projects", {"name": "Date line"})
    for person_id in (kiri_id, pago_id):
        added = await c.put(
            f"/v1/projects/{project_id}/people/{person_id}", json={"project_role": "member"}
        )
        assert added.status_code == 201, added.text
    list_id = await _created(c, f"/v1/projects/{project_id}/todolists", {"name": "Launch"})
    todos = f"/v1/todolists/{list_id}/todos"
    todo_id = await _created(
        c, todos, {"content": "Ship", "due_on": DUE, "assignee_ids": [kiri_id, pago_id]}
    )
    milestone_id = await _created(
        c, f"/v1/projects/{project_id}/milestones", {"title": "Review", "due_on": DUE}
    )
    for day in (30, 31):
        done = await _created(c, todos, {"content": f"Done on {day} May"})
        clock.now = datetime(2026, 5, day, 12, tzinfo=UTC)
        completed = await c.post(f"/v1/todos/{done}/completion")
        assert completed.json()["completed_at"] == f"2026-05-{day}T12:00:00Z"
    clock.now = INSTANT
    return DateLine(api, project_id, todo_id, milestone_id, bearer(kiri), bearer(pago))


async def test_overdue_and_upcoming_reports_follow_each_viewers_today(date_line: DateLine) -> None:
    """At one instant, a to-do and a milestone due today in UTC are overdue in Kiritimati
    and upcoming in Pago Pago and in UTC."""
    both = [date_line.todo_id, date_line.milestone_id]
    overdue = await date_line.get("/v1/reports/overdue")
    assert {name: sorted(i["id"] for i in items) for name, items in overdue.items()} == {
        "kiri": sorted(both),
        "pago": [],
        "utc": [],
    }
    upcoming = await date_line.get("/v1/reports/upcoming", days=1)
    assert {name: sorted(i["id"] for i in items) for name, items in upcoming.items()} == {
        "kiri": [],
        "pago": sorted(both),
        "utc": sorted(both),
    }


async def test_my_assignments_count_overdue_to_dos_in_my_time_zone(date_line: DateLine) -> None:
    """``/v1/my/assignments`` says which date today is for the caller and counts by it."""
    for headers, today_is, overdue in (
        (date_line.kiri, "2026-06-02", 1),
        (date_line.pago, "2026-05-31", 0),
    ):
        report = (await date_line.api.client.get("/v1/my/assignments", headers=headers)).json()
        assert (report["today"], report["total"], report["overdue"]) == (today_is, 1, overdue)


async def test_milestone_filters_and_late_follow_each_viewers_today(date_line: DateLine) -> None:
    """``?filter=late`` and ``?filter=upcoming`` and a milestone's ``late`` flag are as of the
    viewer's today: late in Kiritimati, upcoming in Pago Pago and UTC."""
    path = f"/v1/projects/{date_line.project_id}/milestones"
    late = await date_line.get(path, filter="late")
    upcoming = await date_line.get(path, filter="upcoming")
    listed = await date_line.get(path)
    one = await date_line.get(f"/v1/milestones/{date_line.milestone_id}")
    milestone = [date_line.milestone_id]
    assert {name: [m["id"] for m in items] for name, items in late.items()} == {
        "kiri": milestone,
        "pago": [],
        "utc": [],
    }
    assert {name: [m["id"] for m in items] for name, items in upcoming.items()} == {
        "kiri": [],
        "pago": milestone,
        "utc": milestone,
    }
    assert {name: [m["late"] for m in items] for name, items in listed.items()} == {
        "kiri": [True],
        "pago": [False],
        "utc": [False],
    }
    assert {name: m["late"] for name, m in one.items()} == {
        "kiri": True,
        "pago": False,
        "utc": False,
    }


async def test_the_overview_counts_in_the_viewers_day_and_week(date_line: DateLine) -> None:
    """The overview's today, week (from Monday 00:00 in the viewer's zone), overdue to-dos,
    to-dos completed this week, and milestones due soon or late are the viewer's."""
    overviews = await date_line.get(f"/v1/projects/{date_line.project_id}/overview")
    seen = {
        name: (
            o["today"],
            o["week_starts_on"],
            o["todos"],
            [m["id"] for m in o["milestones_due_soon"]],
            [m["id"] for m in o["late_milestones"]],
        )
        for name, o in overviews.items()
    }
    milestone = [date_line.milestone_id]
    # Completed at 12:00 UTC on 30 May and 31 May: this week in Pago Pago (since 25 May,
    # 11:00 UTC) for both, in Kiritimati (since 31 May, 10:00 UTC) for the second only, and
    # in UTC (since 1 June, 00:00) for neither.
    assert seen == {
        "kiri": (
            "2026-06-02",
            "2026-06-01",
            {"open": 1, "overdue": 1, "completed_this_week": 1},
            [],
            milestone,
        ),
        "pago": (
            "2026-05-31",
            "2026-05-25",
            {"open": 1, "overdue": 0, "completed_this_week": 2},
            milestone,
            [],
        ),
        "utc": (
            "2026-06-01",
            "2026-06-01",
            {"open": 1, "overdue": 0, "completed_this_week": 0},
            milestone,
            [],
        ),
    }


async def test_a_new_instant_moves_every_viewers_today(
    date_line: DateLine, clock: FixedClock
) -> None:
    """The server takes "now" from its clock: eleven hours later it is 1 June in Pago Pago,
    and the to-do due then is due today there, still not overdue."""
    clock.now = datetime(2026, 6, 1, 21, 30, tzinfo=UTC)
    report = (await date_line.api.client.get("/v1/my/assignments", headers=date_line.pago)).json()
    assert (report["today"], report["overdue"]) == (DUE, 0)
    clock.now = datetime(2026, 6, 2, 11, 30, tzinfo=UTC)
    report = (await date_line.api.client.get("/v1/my/assignments", headers=date_line.pago)).json()
    assert (report["today"], report["overdue"]) == ("2026-06-02", 1)


async def test_people_without_a_zone_have_the_servers_default(database_url: str) -> None:
    """With ``CAIRN_TIME_ZONE`` set, today is that zone's for whoever chose none; a person's
    own choice, once made, counts from the next request on, and clearing it goes back."""
    async with serving(database_url, clock=FixedClock(INSTANT), time_zone=KIRITIMATI) as server:
        admin = await add_admin(database_url)
        async with httpx.AsyncClient(
            base_url=server.base_url, headers=bearer(admin.token), timeout=30
        ) as c:
            await known_token(c, timeout=5.0)

            async def today_is() -> str:
                report = (await c.get("/v1/my/assignments")).json()
                day: str = report["today"]
                return day

            assert await today_is() == "2026-06-02"
            await c.patch("/v1/me", json={"time_zone": PAGO_PAGO})
            assert await today_is() == "2026-05-31"
            await c.patch("/v1/me", json={"time_zone": None})
            assert await today_is() == "2026-06-02"
            problem(await c.patch("/v1/me", json={"time_zone": "Pacific/Atlantis"}), 422)

"""Calendar feeds (.ics) over real HTTP, parsed back with ``icalendar``: events, dates, stable
UIDs, completed items, access (clients, outsiders, tokens), ETag/304 and the reader's
language."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import httpx
import icalendar
import pytest

from .support.api import Api
from .support.scenario import Apollo, person_client, post

DOMAIN = "cairn.localhost"  # the feed authority: the tests' servers set no mail domain


async def _patch(client: httpx.AsyncClient, path: str, body: Any) -> Any:
    r = await client.patch(path, json=body)
    assert r.status_code == 200, r.text
    return r.json()


class Scenario(Apollo):
    """Apollo with due dates: "Ship v1" (shown to clients, completed) and "Set margin"
    (hidden) assigned to Ana, milestones "Beta" (shown to clients) and "Budget" (hidden), a
    to-do with no due date, and project "Zeus" Ana is not on."""

    async def build(self, api: Api) -> Scenario:
        await super().build(api)
        self.anon = httpx.AsyncClient(base_url=api.server.base_url, timeout=30)
        self.clients.append(self.anon)
        ana = [self.ana_id]
        await _patch(self.ana, f"/v1/todos/{self.ship['id']}", {"due_on": "2026-06-01", "assignee_ids": ana})  # fmt: skip
        await _patch(self.ana, f"/v1/todos/{self.margin['id']}", {"due_on": "2026-06-02", "assignee_ids": ana})  # fmt: skip
        await post(self.ana, f"/v1/todolists/{self.public['id']}/todos", {"content": "Someday"})
        pid = self.project_id
        self.beta = await post(
            self.ana,
            f"/v1/projects/{pid}/milestones",
            {"title": "Beta", "due_on": "2026-06-10", "visible_to_clients": True},
        )
        self.budget = await post(
            self.ana, f"/v1/projects/{pid}/milestones", {"title": "Budget", "due_on": "2026-06-15"}
        )
        self.zeus = await post(self.admin, "/v1/projects", {"name": "Zeus"})
        await post(
            self.admin,
            f"/v1/projects/{self.zeus['id']}/milestones",
            {"title": "Thunder", "due_on": "2026-07-01"},
        )
        self.bob_id, self.bob = await person_client(api, "Bob", "member")
        self.clients.append(self.bob)
        self.tokens = {
            who: (await post(client, "/v1/me/feed_token", None))["token"]
            for who, client in (("ana", self.ana), ("cleo", self.cleo), ("bob", self.bob))
        }
        return self

    async def ics(self, path: str, who: str = "ana", **headers: str) -> httpx.Response:
        return await self.anon.get(path, params={"token": self.tokens[who]}, headers=headers)


@pytest.fixture
async def scenario(api: Api) -> AsyncIterator[Scenario]:
    s = await Scenario().build(api)
    yield s
    await s.close()


def events(r: httpx.Response) -> tuple[icalendar.Calendar, dict[str, icalendar.Event]]:
    """The calendar of a 200 answer and its events by summary (UIDs unique)."""
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/calendar; charset=utf-8"
    assert r.headers["cache-control"].startswith("private")
    cal = icalendar.Calendar.from_ical(r.content)
    found = list(cal.walk("VEVENT"))
    assert len({str(e["UID"]) for e in found}) == len(found)
    return cal, {str(e["SUMMARY"]): e for e in found}


async def test_a_project_calendar_holds_its_dated_items_as_all_day_events(
    scenario: Scenario,
) -> None:
    s = scenario
    r = await s.ics(f"/feeds/projects/{s.project_id}.ics")
    cal, by_summary = events(r)
    assert str(cal["VERSION"]) == "2.0"
    assert str(cal["X-WR-CALNAME"]) == "Apollo: milestones and to-dos"
    assert set(by_summary) == {
        "✓ To-do: Ship v1",
        "To-do: Set margin",
        "Milestone: Beta",
        "Milestone: Budget",
    }
    beta = by_summary["Milestone: Beta"]
    assert str(beta["UID"]) == f"{s.beta['id']}@{DOMAIN}"
    assert beta.decoded("DTSTART") == date(2026, 6, 10)
    assert beta.decoded("DTEND") == date(2026, 6, 11)
    assert str(beta["URL"]) == f"http://localhost:3000/milestones/{s.beta['id']}"
    assert "Project: Apollo" in str(beta["DESCRIPTION"])
    assert "X-CAIRN-COMPLETED" not in beta
    ship = by_summary["✓ To-do: Ship v1"]
    assert str(ship["UID"]) == f"{s.ship['id']}@{DOMAIN}"
    assert ship.decoded("DTSTART") == date(2026, 6, 1)
    assert str(ship["X-CAIRN-COMPLETED"]) == "TRUE"
    assert "Completed on " in str(ship["DESCRIPTION"])
    # Stable: the same bytes, hence the same UIDs, on the next request.
    again = await s.ics(f"/feeds/projects/{s.project_id}.ics")
    assert again.content == r.content
    assert again.headers["etag"] == r.headers["etag"]
    # Trashing a to-do takes it out.
    r = await s.ana.put(f"/v1/recordings/{s.margin['id']}/status", json={"status": "trashed"})
    assert r.status_code == 200, r.text
    _, by_summary = events(await s.ics(f"/feeds/projects/{s.project_id}.ics"))
    assert "To-do: Set margin" not in by_summary


async def test_a_client_sees_only_client_visible_items(scenario: Scenario) -> None:
    s = scenario
    _, by_summary = events(await s.ics(f"/feeds/projects/{s.project_id}.ics", "cleo"))
    assert set(by_summary) == {"✓ To-do: Ship v1", "Milestone: Beta"}
    _, mine = events(await s.ics("/feeds/calendar.ics", "cleo"))
    assert set(mine) == {"Milestone: Beta"}
    # Hiding the list hides its to-dos at once.
    r = await s.ana.put(
        f"/v1/recordings/{s.public['id']}/client_visibility", json={"visible_to_clients": False}
    )
    assert r.status_code == 200, r.text
    r = await s.ics(f"/feeds/projects/{s.project_id}.ics", "cleo")
    _, by_summary = events(r)
    assert set(by_summary) == {"Milestone: Beta"}
    assert b"Ship" not in r.content


async def test_the_personal_calendar_spans_the_person_s_projects(scenario: Scenario) -> None:
    s = scenario
    r = await s.ics("/feeds/calendar.ics")
    cal, by_summary = events(r)
    assert str(cal["X-WR-CALNAME"]) == "Calendar of Ana"
    assert set(by_summary) == {
        "✓ To-do: Ship v1",
        "To-do: Set margin",
        "Milestone: Beta",
        "Milestone: Budget",
    }
    assert "Thunder" not in r.text
    # A to-do assigned to someone else is not on Ana's calendar.
    await _patch(s.ana, f"/v1/todos/{s.margin['id']}", {"assignee_ids": [s.api.admin_id]})
    _, by_summary = events(await s.ics("/feeds/calendar.ics"))
    assert "To-do: Set margin" not in by_summary
    # Bob is on no project: an empty, valid calendar.
    _, bobs = events(await s.ics("/feeds/calendar.ics", "bob"))
    assert bobs == {}


async def test_outsiders_get_404_and_bad_tokens_401(scenario: Scenario) -> None:
    s = scenario
    url = f"/feeds/projects/{s.project_id}.ics"
    assert (await s.ics(url, "bob")).status_code == 404
    assert (await s.ics(f"/feeds/projects/{s.zeus['id']}.ics")).status_code == 404
    for bad in (
        await s.anon.get(url),
        await s.anon.get(url, params={"token": "nope"}),
        await s.anon.get("/feeds/calendar.ics", params={"token": "nope"}),
    ):
        assert bad.status_code == 401
        assert bad.headers["www-authenticate"].startswith("Basic")
    # HTTP Basic with the feed token, and Bearer with an API token, work as for Atom.
    basic = base64.b64encode(f"x:{s.tokens['ana']}".encode()).decode()
    events(await s.anon.get(url, headers={"Authorization": f"Basic {basic}"}))
    events(await s.ana.get(url))
    # The feed token's answer names the calendar's address.
    issued = await post(s.ana, "/v1/me/feed_token", None)
    assert issued["calendar_url"].endswith(f"/feeds/calendar.ics?token={issued['token']}")
    events(await s.anon.get(issued["calendar_url"]))
    assert (await s.ics(url)).status_code == 401  # the old token is retired


async def test_etag_gives_304_until_a_visible_change(scenario: Scenario) -> None:
    s = scenario
    url = f"/feeds/projects/{s.project_id}.ics"
    r = await s.ics(url)
    etag = r.headers["etag"]
    assert etag.startswith('"')
    assert not etag.startswith("W/")
    same = await s.ics(url, **{"If-None-Match": etag})
    assert same.status_code == 304
    assert same.content == b""
    assert same.headers["etag"] == etag
    client_etag = (await s.ics(url, "cleo")).headers["etag"]
    assert client_etag != etag
    # A change the client cannot see moves the team's ETag, not the client's.
    await _patch(s.ana, f"/v1/milestones/{s.budget['id']}", {"due_on": "2026-06-20"})
    changed = await s.ics(url, **{"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    _, by_summary = events(changed)
    assert by_summary["Milestone: Budget"].decoded("DTSTART") == date(2026, 6, 20)
    assert (await s.ics(url, "cleo", **{"If-None-Match": client_etag})).status_code == 304
    # Completing a milestone the client sees moves theirs.
    await post(s.ana, f"/v1/milestones/{s.beta['id']}/completion", {})
    r = await s.ics(url, "cleo", **{"If-None-Match": client_etag})
    _, by_summary = events(r)
    assert "✓ Milestone: Beta" in by_summary


async def test_a_calendar_is_written_in_its_reader_s_language(scenario: Scenario) -> None:
    s = scenario
    english = await s.ics(f"/feeds/projects/{s.project_id}.ics")
    await _patch(s.admin, f"/v1/people/{s.ana_id}", {"locale": "fr"})
    r = await s.ics(f"/feeds/projects/{s.project_id}.ics", **{"If-None-Match": english.headers["etag"]})  # fmt: skip
    cal, by_summary = events(r)
    assert r.headers["content-language"] == "fr"
    assert str(cal["X-WR-CALNAME"]) == "Apollo\u00a0: jalons et tâches"
    assert {"Jalon\u00a0: Beta", "✓ Tâche\u00a0: Ship v1"} <= set(by_summary)
    assert "Projet\u00a0: Apollo" in str(by_summary["Jalon\u00a0: Beta"]["DESCRIPTION"])
    assert "Terminé le " in str(by_summary["✓ Tâche\u00a0: Ship v1"]["DESCRIPTION"])
    # The UIDs do not depend on the language.
    _, english_events = events(english)
    assert {str(e["UID"]) for e in by_summary.values()} == {
        str(e["UID"]) for e in english_events.values()
    }
    _, mine = events(await s.ics("/feeds/calendar.ics"))
    assert "Jalon\u00a0: Budget" in mine

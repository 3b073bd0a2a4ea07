"""Calendar feeds (iCalendar, RFC 5545): a project's milestones and to-dos with due dates, or
a person's across their projects, as one ``.ics`` document (:mod:`service.http.calendar`
serves them; any other channel may call :func:`items` and :func:`render` alike).

**What is in them.** :func:`items` reads the ``recordings`` read model: active (not trashed,
not archived) milestones and to-dos with a due date, completed or not. A project's calendar
holds every one the viewer may see in it; a person's calendar (:func:`person_projects`) the
milestones of the projects they are on and the to-dos assigned to them there. Visibility is
the one rule, :func:`~service.domain.access.can_see_recording`, asked of every row after an
SQL filter that mirrors it (a client sees only what is visible to clients).

**How they look.** Each item is an all-day ``VEVENT`` on its due date (``DTSTART`` a
``DATE``, ``DTEND`` the next day): calendar apps subscribing to a URL (Google Calendar,
Outlook, Apple Calendar) show events, while most ignore ``VTODO``. A completed item's
summary starts with "✓", its description says when it was completed, and it carries
``X-CAIRN-COMPLETED:TRUE``. Summaries, descriptions and the calendar's name are written in
the reader's language.

**Stable bytes.** ``UID`` is ``<recording id>@<domain>`` (the mail domain, else the feed
authority), the same on every request and instance; ``DTSTAMP`` and ``LAST-MODIFIED`` are
the item's last change, never the time of the request. The same read models and locale
give the same bytes, so a digest of them is a strong ETag that moves only when something
the viewer sees changes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

import asyncpg
import icalendar

from ..domain.access import ProjectFacts, Viewer, can_see_recording
from ..domain.i18n import Locale, Translator, translator
from ..reads.access import recording_facts
from ..reads.visibility import split_projects

MEDIA_TYPE: Final = "text/calendar; charset=utf-8"
PRODID: Final = "-//Cairn//Cairn calendar feeds//EN"

_ITEMS: Final = """
SELECT r.recording_id, r.project_id, r.kind, r.status, r.visible_to_clients, r.creator_id,
       r.assignee_ids, r.title, r.due_on, r.completed, r.completed_at, r.updated_at,
       p.name AS project_name
FROM recordings r JOIN projects p ON p.project_id = r.project_id
WHERE r.project_id = ANY($1::text[]) AND r.kind IN ('milestone', 'todo')
  AND r.due_on IS NOT NULL AND r.effective_status = 'active'
  AND (r.project_id = ANY($2::text[]) OR r.visible_to_clients)
  AND ($3::text IS NULL OR r.kind = 'milestone' OR $3::text = ANY(r.assignee_ids))
ORDER BY r.due_on, r.recording_id
"""


@dataclass(frozen=True)
class Item:
    """A milestone or to-do of a calendar, as the viewer may see it."""

    recording_id: str
    project_id: str
    project_name: str
    kind: str
    title: str
    due_on: dt.date
    completed: bool
    completed_at: dt.datetime | None
    updated_at: dt.datetime


def person_projects(viewer: Viewer, visible: Mapping[str, ProjectFacts]) -> dict[str, ProjectFacts]:
    """The projects of a person's own calendar: those they see and are on (an admin's
    calendar is not every project of the account)."""
    return {pid: f for pid, f in visible.items() if viewer.person_id in f.members}


async def items(
    conn: asyncpg.Connection | asyncpg.Pool,
    viewer: Viewer,
    projects: Mapping[str, ProjectFacts],
    *,
    assigned_to: str | None = None,
) -> list[Item]:
    """The milestones and to-dos with a due date in ``projects`` (projects ``viewer`` may
    see) that the viewer may see, by due date; ``assigned_to``: only the to-dos assigned to
    that person (milestones all stay)."""
    full, clients_only = split_projects(viewer, projects)
    rows = await conn.fetch(_ITEMS, [*full, *clients_only], full, assigned_to)
    found: list[Item] = []
    for row in rows:
        facts = projects.get(row["project_id"])
        # The one rule, asked once more per row: a stale filter cannot leak what it refuses.
        if facts is None or not can_see_recording(viewer, facts, recording_facts(row)):
            continue
        found.append(
            Item(
                recording_id=row["recording_id"],
                project_id=row["project_id"],
                project_name=row["project_name"],
                kind=row["kind"],
                title=row["title"],
                due_on=row["due_on"],
                completed=row["completed"],
                completed_at=row["completed_at"],
                updated_at=row["updated_at"],
            )
        )
    return found


@dataclass(frozen=True)
class Calendar:
    """What a calendar document is made of besides its items."""

    name: str
    description: str
    uid_domain: str
    app_url_template: str
    locale: Locale


def project_calendar_name(project: str, locale: Locale) -> tuple[str, str]:
    """(name, description) of a project's calendar, in ``locale``."""
    t = translator(locale)
    # TRANSLATORS: the name of a project's calendar feed (.ics).
    name = t.gettext("{project}: milestones and to-dos").format(project=project)
    # TRANSLATORS: the description of a project's calendar feed (.ics).
    description = t.gettext("Milestones and to-dos with a due date in {project}").format(
        project=project
    )
    return name, description


def person_calendar_name(person: str, locale: Locale) -> tuple[str, str]:
    """(name, description) of a person's calendar, in ``locale``."""
    t = translator(locale)
    # TRANSLATORS: the name of a person's calendar feed (.ics).
    name = t.gettext("Calendar of {name}").format(name=person)
    # TRANSLATORS: the description of a person's calendar feed (.ics).
    description = t.gettext("Milestones of {name}’s projects and to-dos assigned to {name}").format(
        name=person
    )
    return name, description


def render(calendar: Calendar, found: Iterable[Item]) -> bytes:
    """The iCalendar document: the same calendar and items give the same bytes."""
    t = translator(calendar.locale)
    cal = icalendar.Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("name", calendar.name)
    cal.add("x-wr-calname", calendar.name)
    cal.add("description", calendar.description)
    cal.add("x-wr-caldesc", calendar.description)
    # A hint to clients about how often to poll (RFC 7986).
    cal.add("refresh-interval", dt.timedelta(hours=1), parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", "PT1H")
    for item in found:
        cal.add_component(_event(calendar, item, t))
    return bytes(cal.to_ical())


def _event(calendar: Calendar, item: Item, t: Translator) -> icalendar.Event:
    if item.kind == "milestone":
        # TRANSLATORS: a milestone's event in a calendar feed.
        summary = t.gettext("Milestone: {title}").format(title=item.title)
    else:
        # TRANSLATORS: a to-do's event in a calendar feed.
        summary = t.gettext("To-do: {title}").format(title=item.title)
    # TRANSLATORS: the first line of a calendar event's description.
    lines = [t.gettext("Project: {project}").format(project=item.project_name)]
    if item.completed:
        summary = f"✓ {summary}"
        if item.completed_at is not None:
            # TRANSLATORS: a completed milestone's or to-do's calendar event.
            lines.append(
                t.gettext("Completed on {date}").format(date=t.date(item.completed_at.date()))
            )
    url = calendar.app_url_template.format(
        type=item.kind, id=item.recording_id, project_id=item.project_id
    )
    changed = item.updated_at.astimezone(dt.UTC).replace(microsecond=0)
    event = icalendar.Event()
    event.add("uid", f"{item.recording_id}@{calendar.uid_domain}")
    event.add("dtstamp", changed)
    event.add("last-modified", changed)
    event.add("dtstart", item.due_on)
    event.add("dtend", item.due_on + dt.timedelta(days=1))
    event.add("summary", summary)
    event.add("description", "\n".join(lines))
    event.add("url", url)
    event.add("categories", [item.kind])
    event.add("transp", "TRANSPARENT")
    event.add("status", "CONFIRMED")
    if item.completed:
        event.add("x-cairn-completed", "TRUE")
    return event


def uid_domain(mail_domain: str, feed_authority: str) -> str:
    """The domain of calendar UIDs: Cairn's mail domain, else the feed authority (both
    settings, the same on every instance)."""
    return mail_domain or feed_authority

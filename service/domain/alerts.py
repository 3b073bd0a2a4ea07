"""Milestone and to-do alerts: when a due date ends, when "due soon" fires, and which alert
a recording is owed now.

**When a due date ends.** A due date (``due_on``) has no zone; it ends at the start of the
next day in the zone of the person it concerns: a milestone's responsible person, a to-do's
assignees (the first of them for whom the day ends: the easternmost zone, so that nobody is
told late), else the default zone (``CAIRN_TIME_ZONE``). ``due_on`` 1 June ends at
2 June 00:00 in Pacific/Auckland (31 May 12:00 UTC) but in America/Los_Angeles at 2 June
07:00 UTC: the same milestone is overdue 19 hours earlier for an Auckland owner.

**The rules** (:func:`decide_alerts`, on the recording's folded state and the clock's
instant):

* Only open (not completed), active milestones, and open, active to-dos with a due date and
  at least one assignee, in an active project, are owed alerts; a to-do in a trashed or
  archived list is as trashed or archived. Completing, trashing or archiving cancels what
  was pending; reopening or restoring arms it again (for what was not raised yet).
* "Due soon" is owed from ``alert_hours`` (the project's, 48 by default) before the end of
  the due date; "overdue" from its end. Each is raised **once per due date**: the fold
  remembers the due date each was last raised for (``due_soon_alerted_on``,
  ``overdue_alerted_on``), so a reschedule (a new ``due_on``, earlier or later, even back to
  an older one) arms both again.
* A recording first seen inside the window (created or rescheduled less than
  ``alert_hours`` before its end) gets its "due soon" at once, once.
* Once overdue, a "due soon" still owed is **not** raised: it would arrive stale, next to
  the "overdue" that says more (after a scheduler outage, or a due date set in the past).
  At most one alert is raised per decision.

Pure: zones and instants are given; the scheduler (:mod:`service.workers.alerts`) reads the
facts and appends what :func:`decide_alerts` returns, with the version it folded, so that two
schedulers deciding on the same state append once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Final, Literal
from zoneinfo import ZoneInfo

from ..events.alerts import MilestoneDueSoon, MilestoneOverdue, TodoDueSoon, TodoOverdue
from ..events.base import Event
from .projects import DEFAULT_ALERT_HOURS, MAX_ALERT_HOURS, ProjectState
from .recordings import Lineage, RecordingState

AlertKind = Literal["due_soon", "overdue"]
AlertEvent = MilestoneDueSoon | MilestoneOverdue | TodoDueSoon | TodoOverdue

ALERTED_KINDS: Final = ("milestone", "todo")
"""The kinds of recordings that get alerts."""

HORIZON: Final = dt.timedelta(hours=MAX_ALERT_HOURS) + dt.timedelta(days=2)
"""How far ahead of "now" a due date may lie and still be owed an alert soon: the longest
``alert_hours`` and two days more for the widest gap between zones (UTC-12 to UTC+14) and the
day itself."""


def due_at(due_on: dt.date, zone: ZoneInfo) -> dt.datetime:
    """The instant ``due_on`` ends in ``zone``: the start of the next day there (UTC)."""
    start = dt.datetime.combine(due_on + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    return start.astimezone(dt.UTC)


def earliest_due_at(due_on: dt.date, zones: Iterable[ZoneInfo]) -> dt.datetime:
    """The first instant ``due_on`` ends in any of ``zones`` (at least one)."""
    return min(due_at(due_on, z) for z in zones)


def due_soon_at(end: dt.datetime, alert_hours: int = DEFAULT_ALERT_HOURS) -> dt.datetime:
    """When "due soon" is owed for a due date ending at ``end``."""
    return end - dt.timedelta(hours=alert_hours)


def concerned(recording: RecordingState) -> tuple[str, ...]:
    """The people whose time zones say when ``recording``'s due date ends: a milestone's
    responsible person, a to-do's assignees (none: the default zone applies)."""
    if recording.kind == "milestone":
        return (recording.responsible_id,) if recording.responsible_id else ()
    return recording.assignee_ids


def owed(project: ProjectState, recording: RecordingState, lineage: Lineage = ()) -> bool:
    """Whether ``recording`` may get alerts at all (see the module's rules)."""
    if recording.kind not in ALERTED_KINDS or recording.due_on is None or recording.completed:
        return False
    if recording.kind == "todo" and not recording.assignee_ids:
        return False
    if project.status != "active":
        return False
    return all(item.status == "active" for item in (recording, *lineage))


def decide_alerts(
    project: ProjectState,
    recording: RecordingState,
    zones: Iterable[ZoneInfo],
    now: dt.datetime,
    lineage: Lineage = (),
) -> list[Event]:
    """The alert ``recording`` is owed at ``now``: ``[]`` or one event to append to its stream.

    Args:
        project: the recording's project (status and ``alert_hours``).
        recording: the recording, folded (it remembers the alerts raised).
        zones: the zones of :func:`concerned` people, or the default zone when there are
            none (at least one zone).
        now: the scheduler's clock (timezone-aware).
        lineage: a to-do's list (see :mod:`service.domain.recordings`).
    """
    if not owed(project, recording, lineage):
        return []
    due_on = recording.due_on
    assert due_on is not None
    end = earliest_due_at(due_on, zones)
    which = owed_now(
        due_on,
        end,
        project.alert_hours,
        now,
        due_soon_alerted_on=recording.due_soon_alerted_on,
        overdue_alerted_on=recording.overdue_alerted_on,
    )
    if which is None:
        return []
    event = _EVENTS[recording.kind, which]
    return [event(due_on=due_on, due_at=end, at=now)]


def owed_now(
    due_on: dt.date,
    end: dt.datetime,
    alert_hours: int,
    now: dt.datetime,
    *,
    due_soon_alerted_on: dt.date | None,
    overdue_alerted_on: dt.date | None,
) -> AlertKind | None:
    """Which alert a recording that may get them (:func:`owed`) is owed at ``now``, if any,
    for ``due_on`` ending at ``end``: the rule of :func:`decide_alerts` on plain values (the
    scheduler also applies it to read-model rows, to fold only what is owed something)."""
    if now >= end:
        return None if overdue_alerted_on == due_on else "overdue"
    if now >= due_soon_at(end, alert_hours) and due_soon_alerted_on != due_on:
        return "due_soon"
    return None


_EVENTS: Final[dict[tuple[str, AlertKind], type[AlertEvent]]] = {
    ("milestone", "due_soon"): MilestoneDueSoon,
    ("milestone", "overdue"): MilestoneOverdue,
    ("todo", "due_soon"): TodoDueSoon,
    ("todo", "overdue"): TodoOverdue,
}

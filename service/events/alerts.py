"""Events of alerts, appended by the scheduler (:mod:`service.workers.alerts`) to the
recording's own stream (``recording-<id>``), acting as Cairn.

Each is appended at most once per recording and due date: the scheduler decides on the
recording's folded state (which remembers the alerts raised for each due date) and appends
with the version it read, so two instances deciding together append one of them; a new due
date (a reschedule) arms both alerts again; a completed or trashed recording gets none.
"""

from __future__ import annotations

from datetime import date, datetime

from .base import Event, register


@register
class MilestoneDueSoon(Event, frozen=True, kw_only=True):
    """A milestone's due date (``due_on``, ending at ``due_at`` in its responsible person's
    time zone) is near: appended once per milestone and due date by the scheduler, at
    ``at`` (the scheduler's clock)."""

    due_on: date
    due_at: datetime
    at: datetime


@register
class MilestoneOverdue(Event, frozen=True, kw_only=True):
    """A milestone's due date has passed and it is not complete (once per due date)."""

    due_on: date
    due_at: datetime
    at: datetime


@register
class TodoDueSoon(Event, frozen=True, kw_only=True):
    """An assigned to-do's due date is near (once per to-do and due date)."""

    due_on: date
    due_at: datetime
    at: datetime


@register
class TodoOverdue(Event, frozen=True, kw_only=True):
    """An assigned to-do's due date has passed and it is not complete (once per due date)."""

    due_on: date
    due_at: datetime
    at: datetime

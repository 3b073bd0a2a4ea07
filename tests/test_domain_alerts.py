"""The alert rules of service/domain/alerts.py, pure: when a due date ends in a zone (DST
changes included), which alert is owed when, once per due date, and who gets none."""

from __future__ import annotations

import datetime as dt
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import msgspec
import pytest

from service.domain.alerts import (
    concerned,
    decide_alerts,
    due_at,
    due_soon_at,
    earliest_due_at,
)
from service.domain.projects import (
    MAX_ALERT_HOURS,
    MIN_ALERT_HOURS,
    ProjectState,
    alert_hours,
)
from service.domain.recordings import RecordingState, evolve_recording
from service.domain.sentences import sentence
from service.errors import InvalidCommand
from service.events.alerts import MilestoneDueSoon, MilestoneOverdue, TodoDueSoon, TodoOverdue
from service.events.base import Event

PARIS = ZoneInfo("Europe/Paris")
AUCKLAND = ZoneInfo("Pacific/Auckland")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
DUE = date(2026, 6, 1)
CREATED = datetime(2026, 5, 1, tzinfo=UTC)

PROJECT = ProjectState(project_id="prj_1", name="P", description=None, clients_enabled=False)


def _milestone(**fields: object) -> RecordingState:
    base: dict[str, object] = {
        "recording_id": "rec_m",
        "project_id": "prj_1",
        "kind": "milestone",
        "creator_id": "per_a",
        "created_at": CREATED,
        "updated_at": CREATED,
        "title": "Launch",
        "due_on": DUE,
        "responsible_id": "per_a",
    }
    return RecordingState(**(base | fields))  # type: ignore[arg-type]


def _todo(**fields: object) -> RecordingState:
    base: dict[str, object] = {
        "recording_id": "rec_t",
        "project_id": "prj_1",
        "kind": "todo",
        "creator_id": "per_a",
        "created_at": CREATED,
        "updated_at": CREATED,
        "content": "Write",
        "todolist_id": "rec_l",
        "due_on": DUE,
        "assignee_ids": ("per_a",),
    }
    return RecordingState(**(base | fields))  # type: ignore[arg-type]


def _raised(state: RecordingState, events: list[Event]) -> RecordingState:
    """``state`` after ``events``, as the fold sees them."""
    for event in events:
        folded = evolve_recording(state, event)
        assert folded is not None
        state = folded
    return state


# ------------------------------------------------------------------ when a due date ends


def test_a_due_date_ends_at_the_next_midnight_of_the_zone() -> None:
    assert due_at(DUE, PARIS) == datetime(2026, 6, 1, 22, tzinfo=UTC)  # CEST, UTC+2
    assert due_at(DUE, AUCKLAND) == datetime(2026, 6, 1, 12, tzinfo=UTC)  # NZST, UTC+12
    assert due_at(DUE, LOS_ANGELES) == datetime(2026, 6, 2, 7, tzinfo=UTC)  # PDT, UTC-7
    assert due_at(DUE, ZoneInfo("UTC")) == datetime(2026, 6, 2, tzinfo=UTC)
    # The easternmost zone says first: nobody is told late.
    assert earliest_due_at(DUE, [LOS_ANGELES, AUCKLAND, PARIS]) == due_at(DUE, AUCKLAND)


def test_a_due_date_across_a_dst_change_ends_at_local_midnight() -> None:
    """Paris moves to summer time on the last Sunday of March (29 March 2026, 02:00 → 03:00):
    the day before ends at midnight CET (UTC+1), that day at midnight CEST (UTC+2), a
    23-hour day; the last Sunday of October (25 October 2026) lasts 25 hours."""
    assert due_at(date(2026, 3, 28), PARIS) == datetime(2026, 3, 28, 23, tzinfo=UTC)
    assert due_at(date(2026, 3, 29), PARIS) == datetime(2026, 3, 29, 22, tzinfo=UTC)
    short = due_at(date(2026, 3, 29), PARIS) - due_at(date(2026, 3, 28), PARIS)
    assert short == dt.timedelta(hours=23)
    long = due_at(date(2026, 10, 25), PARIS) - due_at(date(2026, 10, 24), PARIS)
    assert long == dt.timedelta(hours=25)
    # "Due soon" counts real hours back from the end, across the change.
    assert due_soon_at(due_at(date(2026, 3, 29), PARIS), 48) == datetime(
        2026, 3, 27, 22, tzinfo=UTC
    )
    # Auckland leaves summer time on the first Sunday of April (5 April 2026, 03:00 → 02:00).
    assert due_at(date(2026, 4, 4), AUCKLAND) == datetime(2026, 4, 4, 11, tzinfo=UTC)
    assert due_at(date(2026, 4, 5), AUCKLAND) == datetime(2026, 4, 5, 12, tzinfo=UTC)


def test_the_people_concerned() -> None:
    assert concerned(_milestone()) == ("per_a",)
    assert concerned(_milestone(responsible_id=None)) == ()
    assert concerned(_todo(assignee_ids=("per_a", "per_b"))) == ("per_a", "per_b")


# ------------------------------------------------------------------ which alert, when

END = due_at(DUE, PARIS)


def test_nothing_before_the_window_then_due_soon_once_then_overdue_once() -> None:
    state = _milestone()
    before = END - dt.timedelta(hours=48, seconds=1)
    assert decide_alerts(PROJECT, state, [PARIS], before) == []
    opening = END - dt.timedelta(hours=48)
    events = decide_alerts(PROJECT, state, [PARIS], opening)
    assert events == [MilestoneDueSoon(due_on=DUE, due_at=END, at=opening)]
    state = _raised(state, events)
    assert state.due_soon_alerted_on == DUE
    assert decide_alerts(PROJECT, state, [PARIS], END - dt.timedelta(seconds=1)) == []
    events = decide_alerts(PROJECT, state, [PARIS], END)
    assert events == [MilestoneOverdue(due_on=DUE, due_at=END, at=END)]
    state = _raised(state, events)
    assert state.overdue_alerted_on == DUE
    assert decide_alerts(PROJECT, state, [PARIS], END + dt.timedelta(days=30)) == []


def test_created_inside_the_window_it_is_due_soon_at_once() -> None:
    """A to-do created (or first seen) 3 hours before its end gets "due soon" on the first
    decision, once."""
    now = END - dt.timedelta(hours=3)
    state = _todo(created_at=now, updated_at=now)
    events = decide_alerts(PROJECT, state, [PARIS], now)
    assert events == [TodoDueSoon(due_on=DUE, due_at=END, at=now)]
    assert decide_alerts(PROJECT, _raised(state, events), [PARIS], now) == []


def test_once_overdue_a_due_soon_still_owed_is_not_raised() -> None:
    """After a scheduler outage, or a due date set in the past: only "overdue"."""
    state = _todo()
    now = END + dt.timedelta(hours=5)
    events = decide_alerts(PROJECT, state, [PARIS], now)
    assert events == [TodoOverdue(due_on=DUE, due_at=END, at=now)]
    state = _raised(state, events)
    assert state.due_soon_alerted_on is None
    assert decide_alerts(PROJECT, state, [PARIS], now + dt.timedelta(days=1)) == []


@pytest.mark.parametrize("moved_to", [date(2026, 5, 25), date(2026, 6, 20)])
def test_a_reschedule_earlier_or_later_arms_both_alerts_again(moved_to: date) -> None:
    state = _milestone()
    at_due = decide_alerts(PROJECT, state, [PARIS], END - dt.timedelta(hours=1))
    state = _raised(state, at_due)
    state = _raised(state, decide_alerts(PROJECT, state, [PARIS], END))
    assert (state.due_soon_alerted_on, state.overdue_alerted_on) == (DUE, DUE)
    state = msgspec.structs.replace(state, due_on=moved_to)
    end = due_at(moved_to, PARIS)
    soon = due_soon_at(end, 48)
    if moved_to < DUE:
        # Already past: "overdue" for the new date, no stale "due soon".
        now = END + dt.timedelta(hours=1)
        assert decide_alerts(PROJECT, state, [PARIS], now) == [
            MilestoneOverdue(due_on=moved_to, due_at=end, at=now)
        ]
    else:
        assert decide_alerts(PROJECT, state, [PARIS], soon - dt.timedelta(seconds=1)) == []
        events = decide_alerts(PROJECT, state, [PARIS], soon)
        assert events == [MilestoneDueSoon(due_on=moved_to, due_at=end, at=soon)]
        state = _raised(state, events)
        assert decide_alerts(PROJECT, state, [PARIS], end) == [
            MilestoneOverdue(due_on=moved_to, due_at=end, at=end)
        ]
    # Back to the first date: its alerts were raised, but for another date since; armed again.
    state = msgspec.structs.replace(
        state, due_on=DUE, due_soon_alerted_on=moved_to, overdue_alerted_on=moved_to
    )
    assert decide_alerts(PROJECT, state, [PARIS], END - dt.timedelta(hours=1)) == [
        MilestoneDueSoon(due_on=DUE, due_at=END, at=END - dt.timedelta(hours=1))
    ]


def test_alert_hours_sets_the_window() -> None:
    project = msgspec.structs.replace(PROJECT, alert_hours=2)
    state = _milestone()
    assert decide_alerts(project, state, [PARIS], END - dt.timedelta(hours=2, seconds=1)) == []
    now = END - dt.timedelta(hours=2)
    assert decide_alerts(project, state, [PARIS], now) == [
        MilestoneDueSoon(due_on=DUE, due_at=END, at=now)
    ]
    longest = msgspec.structs.replace(PROJECT, alert_hours=MAX_ALERT_HOURS)
    month_before = END - dt.timedelta(hours=MAX_ALERT_HOURS)
    assert decide_alerts(longest, state, [PARIS], month_before) != []


def test_alert_hours_bounds() -> None:
    assert alert_hours(MIN_ALERT_HOURS) == 1
    assert alert_hours(MAX_ALERT_HOURS) == 720
    for wrong in (0, -1, 721):
        with pytest.raises(InvalidCommand) as refused:
            alert_hours(wrong)
        assert "alert_hours must be from 1 to 720" in str(refused.value)


# ------------------------------------------------------------------ who gets none

LATE = END + dt.timedelta(hours=1)
LIST = RecordingState(
    recording_id="rec_l",
    project_id="prj_1",
    kind="todolist",
    creator_id="per_a",
    created_at=CREATED,
    updated_at=CREATED,
    name="L",
)


@pytest.mark.parametrize(
    ("why", "project", "state", "lineage"),
    [
        ("completed milestone", PROJECT, _milestone(completed_at=CREATED), ()),
        ("completed to-do", PROJECT, _todo(completed_at=CREATED), ()),
        ("trashed milestone", PROJECT, _milestone(status="trashed"), ()),
        ("archived to-do", PROJECT, _todo(status="archived"), ()),
        (
            "to-do in a trashed list",
            PROJECT,
            _todo(),
            (msgspec.structs.replace(LIST, status="trashed"),),
        ),
        ("unassigned to-do", PROJECT, _todo(assignee_ids=()), ()),
        ("no due date", PROJECT, _milestone(due_on=None), ()),
        ("archived project", msgspec.structs.replace(PROJECT, status="archived"), _milestone(), ()),
        ("trashed project", msgspec.structs.replace(PROJECT, status="trashed"), _todo(), ()),
        ("not a to-do or milestone", PROJECT, msgspec.structs.replace(LIST, due_on=DUE), ()),
    ],
)
def test_nothing_for(
    why: str,
    project: ProjectState,
    state: RecordingState,
    lineage: tuple[RecordingState, ...],
) -> None:
    assert decide_alerts(project, state, [PARIS], LATE, lineage) == [], why
    assert decide_alerts(project, state, [PARIS], END - dt.timedelta(hours=1), lineage) == []


def test_a_to_do_in_an_active_list_is_owed_and_a_milestone_without_owner_too() -> None:
    assert decide_alerts(PROJECT, _todo(), [PARIS], LATE, (LIST,)) == [
        TodoOverdue(due_on=DUE, due_at=END, at=LATE)
    ]
    # Nobody responsible: the default zone (given by the scheduler) says when it ends.
    assert decide_alerts(PROJECT, _milestone(responsible_id=None), [PARIS], LATE) == [
        MilestoneOverdue(due_on=DUE, due_at=END, at=LATE)
    ]


# ------------------------------------------------------------------ sentences


def test_due_soon_sentences_say_how_long_was_left_in_the_readers_language() -> None:
    left = dt.timedelta(hours=47, minutes=30)
    assert (
        sentence("milestone_due_soon", locale="en", actor="", title="Launch", due_in=left)
        == "The milestone “Launch” is due in 2 days"
    )
    assert (
        sentence("todo_due_soon", locale="fr", actor="", title="Écrire", due_in=left)
        == "La tâche «\u00a0Écrire\u00a0» arrive à échéance dans 2 jours"
    )
    assert (
        sentence("todo_due_soon", locale="en", actor="", title="W", due_in=dt.timedelta(hours=3))
        == "The to-do “W” is due in 3 hours"
    )
    # Not known (or not a "due soon"): the plain sentences.
    assert (
        sentence("todo_due_soon", locale="en", actor="", title="W") == "The to-do “W” is due soon"
    )
    assert (
        sentence("todo_overdue", locale="en", actor="", title="W", due_in=left)
        == "The to-do “W” is overdue"
    )

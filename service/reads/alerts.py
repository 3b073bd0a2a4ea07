"""The to-dos and milestones that may be owed an alert, for the scheduler
(:mod:`service.workers.alerts`): read models ``recordings`` (rows) and ``directory``
(projects' status and ``alert_hours``, people's time zones).

One index range scan: ``recordings_alerts`` (see recordings_tables.py) holds only open,
active milestones and assigned to-dos whose "overdue" alert is not raised for their due
date, by due date; the scan stops at ``horizon`` (a date: today and the longest window
ahead). What is overdue and alerted leaves the index, so the scan does not grow with the
history of a database.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

import asyncpg

# The predicate repeats the partial index's so that the planner may use it.
_CANDIDATES: Final = """
SELECT r.recording_id, r.project_id, r.kind, r.due_on, r.due_soon_alerted_on,
       r.overdue_alerted_on, p.alert_hours,
       ARRAY(SELECT z.time_zone FROM unnest(
                 CASE WHEN r.kind = 'milestone' THEN ARRAY[r.responsible_id] ELSE r.assignee_ids END
             ) AS c(person_id)
             LEFT JOIN people z ON z.person_id = c.person_id
             WHERE c.person_id IS NOT NULL) AS zones
FROM recordings r JOIN projects p ON p.project_id = r.project_id
WHERE r.kind IN ('milestone', 'todo') AND NOT r.completed
  AND r.effective_status = 'active' AND (r.kind = 'milestone' OR r.assignee_ids <> '{}')
  AND r.overdue_alerted_on IS DISTINCT FROM r.due_on
  AND r.due_on <= $1 AND p.status = 'active'
ORDER BY r.due_on, r.recording_id
"""


@dataclass(frozen=True)
class Candidate:
    """A to-do or milestone that may be owed an alert, as the read models show it.

    ``zones`` holds the time zone each concerned person chose (``None``: none chose; empty:
    nobody is concerned, a milestone without a responsible person).
    """

    recording_id: str
    project_id: str
    kind: str
    due_on: dt.date
    due_soon_alerted_on: dt.date | None
    overdue_alerted_on: dt.date | None
    alert_hours: int
    zones: tuple[str | None, ...]


async def candidates(pool: asyncpg.Pool, horizon: dt.date) -> list[Candidate]:
    """Open, active milestones and assigned to-dos, in active projects, due on ``horizon``
    or before and not yet alerted as overdue for their due date, earliest due first."""
    rows = await pool.fetch(_CANDIDATES, horizon)
    return [
        Candidate(
            recording_id=r["recording_id"],
            project_id=r["project_id"],
            kind=r["kind"],
            due_on=r["due_on"],
            due_soon_alerted_on=r["due_soon_alerted_on"],
            overdue_alerted_on=r["overdue_alerted_on"],
            alert_hours=r["alert_hours"],
            zones=tuple(r["zones"]),
        )
        for r in rows
    ]

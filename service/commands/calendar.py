"""What "today" is for a person, for every channel: the HTTP API, and the alerts and
schedulers to come (which call :func:`today_for` for each person they write to).

"Today" is the date, at the instant the process's clock tells (``Services.clock``), in the
person's time zone, or the default zone (``CAIRN_TIME_ZONE``) for someone who chose none.
The read side takes it as a value (``today``), never reading a clock itself.
"""

from __future__ import annotations

from ..domain.calendar import Today, today, zone
from ..reads import directory
from .caller import Services


async def today_for(services: Services, person_id: str) -> Today:
    """Today for ``person_id``, with their zone (the default zone for an unknown person,
    such as the system actor)."""
    chosen = await directory.time_zone(services.store.pool, person_id)
    return today(services.clock(), zone(chosen, services.time_zone))

"""Who issues a command in the pure domain tests, and when: fixed contexts, no clock.

The cast: Ada (``"ada"``) is an admin, Olga (``"olga"``) and Max (``"max"``) are members,
Cleo (``"cleo"``) is a client; every command happens at :data:`NOW`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from service.domain.access import Viewer
from service.domain.context import Context
from service.events.people import PersonRole

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def acting(person_id: str, role: PersonRole, *, now: datetime = NOW) -> Context:
    """The context of a command by ``person_id``, of global ``role``, at ``now``."""
    return Context(actor=Viewer(person_id=person_id, role=role), now=now)


ADMIN = acting("ada", "admin")
OLGA = acting("olga", "member")
MAX = acting("max", "member")
CLEO = acting("cleo", "client")

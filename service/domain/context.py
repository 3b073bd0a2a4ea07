"""The context every ``decide`` function gets: who acts, and when."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from .access import Viewer

Timestamp = Annotated[datetime, msgspec.Meta(tz=True)]
"""A moment as the API shows it: timezone-aware (RFC 3339 ``date-time`` in schemas)."""


class Context(msgspec.Struct, frozen=True, kw_only=True):
    """Who issues a command (``actor``) and the time to record (``now``, timezone-aware).

    The domain never reads a clock: the caller passes ``now``, so rules are reproducible and
    tests need no fake clock.

    Raises:
        ValueError: ``now`` is naive (a bug in the caller).
    """

    actor: Viewer
    now: datetime

    def __post_init__(self) -> None:
        if self.now.tzinfo is None or self.now.utcoffset() is None:
            raise ValueError("Context.now must be timezone-aware")

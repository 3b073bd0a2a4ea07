"""One page of a list read from a read model, as the list queries of this package return it."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class Page:
    """Rows of a list after a cursor, up to ``limit + 1`` of them (the extra one, never
    shown, says there is more), and how many the whole list holds."""

    rows: list[asyncpg.Record]
    total: int

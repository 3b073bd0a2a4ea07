"""Rows as the read side hands them out: pages of lists, and a row's columns as the fields of
a struct built from it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg


@dataclass(frozen=True)
class Page:
    """Rows of a list after a cursor, up to ``limit + 1`` of them (the extra one, never
    shown, says there is more), and how many the whole list holds."""

    rows: list[asyncpg.Record]
    total: int


def columns(row: Mapping[str, Any], *names: str, **renamed: str) -> dict[str, Any]:
    """The columns ``names`` of ``row``, and ``renamed`` ones (field name = column name),
    by field name: the keyword arguments of a struct made from the row."""
    fields = {name: row[name] for name in names}
    fields.update({name: row[column] for name, column in renamed.items()})
    return fields

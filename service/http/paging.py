"""Cursor paging of lists: ``?limit=``, ``?cursor=``, ``X-Total-Count`` and ``Link: rel=next``.

A page is fetched as ``limit + 1`` rows in a stable sort order: the extra row only says that
there is more. The cursor is the sort key of the page's last row (never an offset), so items
added meanwhile neither repeat nor skip an item on the next page.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

import asyncpg

from .context import Ctx, decode_cursor, encode_cursor, next_link

QUERY: Final = {"limit": "page size, 1-100 (default 25)", "cursor": "from a Link rel=next"}
"""The paging query parameters, as routes declare them."""


def _seq(row: asyncpg.Record) -> Any:
    return row["seq"]


def cursor(ctx: Ctx, kind: Any) -> Any:
    """The decoded ``?cursor=`` (of type ``kind``), or None on the first page.

    Raises:
        ApiError: 400, the cursor is not one this API gave out.
    """
    raw = ctx.query("cursor")
    return decode_cursor(raw, kind) if raw else None


def seq_after(ctx: Ctx) -> int:
    """The ``seq`` after which a page sorted by a ``seq`` column starts (0: the first page)."""
    after = cursor(ctx, int)
    return int(after) if after is not None else 0


def page_headers(
    ctx: Ctx,
    rows: Sequence[asyncpg.Record],
    limit: int,
    total: int,
    key: Callable[[asyncpg.Record], Any] = _seq,
) -> dict[str, str]:
    """Headers of a page fetched as ``limit + 1`` rows: ``X-Total-Count``, and ``Link
    rel=next`` when there is more (its cursor: ``key`` of the page's last row, by default the
    ``seq`` column)."""
    after = encode_cursor(key(rows[limit - 1])) if len(rows) > limit else None
    return {"X-Total-Count": str(total), **next_link(ctx.request, after)}

"""Cursor paging of lists: ``?limit=``, ``?cursor=``, ``X-Total-Count`` and ``Link: rel=next``.

A page is fetched as ``limit + 1`` rows in a stable sort order: the extra row only says that
there is more. The cursor is the sort key of the page's last row (never an offset), so items
added meanwhile neither repeat nor skip an item on the next page.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
import msgspec
from starlette.requests import Request

from .context import Ctx
from .problems import ApiError


def encode_cursor(value: Any) -> str:
    """An opaque pagination cursor."""
    return base64.urlsafe_b64encode(msgspec.json.encode(value)).decode().rstrip("=")


def decode_cursor(raw: str, kind: Any) -> Any:
    """Decode a cursor made by :func:`encode_cursor`; 400 if it was not."""
    try:
        data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        return msgspec.json.decode(data, type=kind)
    except (ValueError, msgspec.DecodeError):
        raise ApiError(400, "?cursor= is not a cursor this API gave out") from None


def next_link(request: Request, cursor: str | None, rel: str = "next") -> dict[str, str]:
    """A Link header for the page at ``cursor`` (empty if there is none)."""
    if cursor is None:
        return {}
    url = request.url.include_query_params(cursor=cursor)
    return {"Link": f'<{url}>; rel="{rel}"'}


def next_page(ctx: Ctx, after: Any | None) -> dict[str, str]:
    """A ``Link rel=next`` header to the page after sort key ``after`` (empty if None)."""
    return next_link(ctx.request, None if after is None else encode_cursor(after))


def _seq(row: asyncpg.Record) -> Any:
    return row["seq"]


def cursor(ctx: Ctx, kind: Any) -> Any:
    """The decoded ``?cursor=`` (of type ``kind``), or None on the first page.

    Raises:
        ApiError: 400, the cursor is not one this API gave out.
    """
    raw = ctx.param("cursor")
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

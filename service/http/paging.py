"""Cursor paging of lists: ``?limit=``, ``?cursor=``, ``X-Total-Count`` and ``Link: rel=next``.

A page is fetched as ``limit + 1`` rows in a stable sort order: the extra row only says that
there is more. The cursor is the sort key of the page's last row (never an offset), so items
added meanwhile neither repeat nor skip an item on the next page.

A cursor is opaque to clients but typed here: it is decoded into the key's types and ranges
(:data:`Seq`, :func:`sort_key`) before any query sees it, so a cursor the API did not give
out is a 400 naming ``cursor``, never a database error.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from datetime import date
from typing import Annotated, Any, Final

import asyncpg
import msgspec
from starlette.requests import Request

from .context import Ctx
from .params import INT64_MAX, from_text
from .problems import ApiError, FieldError

Seq = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
"""A ``seq`` or a stream version, as a cursor carries it."""
Rank = Annotated[float, msgspec.Meta(ge=0, lt=1)]
"""A search hit's rank (``ts_rank_cd`` scaled into [0, 1)), as a cursor carries it."""

_COLUMNS: Final = {
    "bigint": Seq,
    "integer": Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)],
    "date": date,
}
"""What each SQL type of a sort key's column is, in a cursor (keys are never negative)."""


def encode_cursor(value: Any) -> str:
    """An opaque pagination cursor."""
    return base64.urlsafe_b64encode(msgspec.json.encode(value)).decode().rstrip("=")


def _not_ours() -> ApiError:
    detail = "not a cursor this API gave out"
    return ApiError(
        400, f"?cursor= is {detail}", field_errors=[FieldError(field="cursor", detail=detail)]
    )


def decode_cursor(raw: str, kind: Any) -> Any:
    """Decode a cursor made by :func:`encode_cursor` into ``kind``: a msgspec type whose
    bounds are those of the key (:data:`Seq`...).

    Raises:
        ApiError: 400 naming ``cursor``: not a cursor of ``kind``.
    """
    try:
        data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        return msgspec.json.decode(data, type=kind)
    except (ValueError, msgspec.DecodeError):
        raise _not_ours() from None


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
    after = cursor(ctx, Seq)
    return int(after) if after is not None else 0


def sort_key(ctx: Ctx, sql_types: Sequence[str]) -> list[Any] | None:
    """The ``?cursor=`` of a list sorted by columns of ``sql_types`` (``bigint``,
    ``integer``, ``date``), each value of its column's type and range; None on the first
    page. Such a cursor carries each column as text.

    Raises:
        ApiError: 400 naming ``cursor``: not a sort key of this list.
    """
    texts = cursor(ctx, list[str])
    if texts is None:
        return None
    if len(texts) != len(sql_types):
        raise _not_ours()
    try:
        return [from_text(t, _COLUMNS[s]) for t, s in zip(texts, sql_types, strict=True)]
    except ValueError:
        raise _not_ours() from None


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

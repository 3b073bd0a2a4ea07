"""Search over HTTP: ``GET /v1/search``, the recordings the caller may see whose text matches
a query, best first (:mod:`service.reads.search`), each as every route shows it
(:mod:`.envelope`, redacted the same way) with its rank and a snippet.
"""

from __future__ import annotations

from typing import Annotated, Final

import asyncpg
import msgspec

from ..events.recordings import RecordingKind
from ..reads import search
from ..reads.visibility import project_scope, viewer_scope
from .api import Api, Ctx, Reply
from .envelope import Recording, render
from .paging import Rank, cursor, next_page
from .params import PAGING, STATUS, Param, PersonIdText, ProjectIdText, RecordingIdText

api = Api()


class SearchResult(msgspec.Struct, frozen=True, kw_only=True):
    """A recording found: ``rank`` (0 to 1, higher first: a match in a title counts more
    than one in a body), ``snippet`` (HTML: the text around the matches, every character
    escaped, the matches in ``<mark>``) and ``recording``, as every route shows it."""

    rank: float
    snippet: str
    recording: Recording


MAX_QUERY: Final = 500
"""Longest query, in characters."""

Words = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=MAX_QUERY,
        pattern="^[^\\x00-\\x1f\\x7f]*[^\\x00-\\x20\\x7f][^\\x00-\\x1f\\x7f]*$",
    ),
]
"""A query: not blank, no control characters, at most :data:`MAX_QUERY` characters."""
Key = tuple[Rank, RecordingIdText]
"""A page of hits starts after this (rank, recording id), as a cursor carries it."""

QUERY: Final = {
    "q": Param(
        'the words to find, in websearch syntax: "a phrase", -excluded, this or that '
        "(accents and word endings do not matter)",
        Words,
        required=True,
    ),
    "project_id": Param(
        "only this project's recordings (404 if the caller may not see it)", ProjectIdText
    ),
    "type": Param("only recordings of this kind", RecordingKind),
    "creator_id": Param("only what this person made", PersonIdText),
    "status": Param(
        "active (default), archived or trashed: the most removed of the recording's, its "
        "parent's or list's, and its project's",
        STATUS.type,
    ),
    **PAGING,
}


@api.get(
    "/v1/search",
    summary="Find the recordings the caller may see whose title or text matches, best first",
    response=list[SearchResult],
    query=QUERY,
    tags=["search"],
)
async def search_recordings(ctx: Ctx) -> Reply:
    pool = ctx.store.pool
    project_id = ctx.param("project_id")
    if project_id is not None:
        scope = await project_scope(pool, ctx.me, project_id)
    else:
        scope = await viewer_scope(pool, ctx.me, everything=True)
    after = cursor(ctx, Key)
    query = search.Query(
        text=ctx.param("q"),
        kind=ctx.param("type"),
        creator_id=ctx.param("creator_id"),
        status=ctx.param("status", "active"),
    )
    hits, total, following = await search.find(
        pool, scope, query, after=None if after is None else tuple(after), limit=ctx.limit()
    )
    rows_of: dict[str, list[asyncpg.Record]] = {}
    for hit in hits:
        rows_of.setdefault(hit.row["project_id"], []).append(hit.row)
    shown: dict[str, Recording] = {}
    for project_id, rows in rows_of.items():
        rendered = await render(ctx, rows, scope.projects[project_id])
        shown.update((item.id, item) for item in rendered)
    body = [
        SearchResult(rank=hit.rank, snippet=hit.snippet, recording=shown[hit.row["recording_id"]])
        for hit in hits
    ]
    return Reply(body, headers={"X-Total-Count": str(total), **next_page(ctx, following)})

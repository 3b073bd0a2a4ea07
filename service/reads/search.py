"""Search: the recordings a viewer may see whose documents match a query, best first.

Reads the search read model (tables ``search_projects``, ``search_documents``) joined with
the recordings read model (``recordings``). Who sees what is
exactly what lists show (:mod:`.recordings`, :mod:`.visibility`): the projects of the
viewer's :class:`~.visibility.Scope` (none of a project they are not on), in those seen as a
client only what clients see (``visible_to_clients``, effective: a to-do of a hidden list
and a comment under a hidden item are hidden too), and every hit asked once more of
:func:`~service.domain.access.can_see_recording` before it is handed out.

* **Query.** Websearch syntax (``"a phrase"``, ``-word``, ``or``), its accents taken off
  like the documents' (:func:`~service.domain.search.searchable`), parsed in the
  text-search configuration of each language among the projects searched and matched
  against that language's documents: each branch uses the GIN index. A query with nothing
  to find (stop words only, or only excluded words, which the index cannot serve:
  ``querytree`` is ``T``) finds nothing.
* **Status.** A hit's status is the most removed of its effective status (a to-do of a
  trashed list is trashed) and its project's: ``active`` (the default) finds live items of
  live projects, ``archived`` and ``trashed`` what is archived or in the trash, the items of
  an archived or trashed project included. Projects with nothing of the status asked for
  are not searched at all.
* **Rank.** ``ts_rank_cd`` with titles (A) above bodies (B), scaled into [0, 1)
  (normalisation 32), ties broken by id. Pages follow the key (rank, id), never an offset.
* **Rows.** Hits are found, filtered, ranked and counted in one statement (ranks only of
  what the viewer may see), which also headlines the page; a second reads the page's rows
  (:func:`~.recordings.rows_by_id`) for the envelopes.
* **Snippets.** ``ts_headline`` over the indexed (unaccented) plain text of the body (the
  title when there is none), moved back onto the text as written, which the page's rows
  hold, by :func:`~service.domain.search.snippet`: escaped HTML, matches in ``<mark>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import asyncpg

from ..domain import search
from ..domain.access import can_see_recording
from ..domain.excerpts import plain_text
from ..events.recordings import RecordingKind, RecordingStatus
from .access import recording_facts
from .recordings import rows_by_id
from .visibility import Scope

Key = tuple[float, str]
"""Where a page of hits starts: after the hit of this (rank, recording id)."""

_ITEMS: Final[dict[str, dict[str, tuple[str, ...]]]] = {
    "active": {"active": ("active",)},
    "archived": {"active": ("archived",), "archived": ("active", "archived")},
    "trashed": {
        "active": ("trashed",),
        "archived": ("trashed",),
        "trashed": ("active", "archived", "trashed"),
    },
}
"""For each status asked for, by the status of a project, the effective statuses of the
items of that project that have it (none: the project is not searched)."""
_EVERY: Final = _ITEMS["trashed"]["trashed"]
_HEADLINE: Final = (
    f"StartSel={search.START}, StopSel={search.STOP}, FragmentDelimiter={search.BETWEEN}, "
    "MaxFragments=2, MaxWords=20, MinWords=8, ShortWord=2"
)
"""``ts_headline``'s options: up to two fragments of 8-20 words, marked by control
characters that sanitised text never holds (:mod:`service.domain.text`)."""
_BRANCH: Final = """
    SELECT d.recording_id, d.document, q.query
    FROM search_documents d, websearch_to_tsquery('{language}', $1) AS q(query)
    WHERE querytree(q.query) <> 'T' AND d.language = '{language}'
      AND d.document @@ q.query AND d.project_id = ANY($2::text[])
"""
# ``found`` is read twice (the count, the page), so PostgreSQL computes it once.
_SEARCH: Final = """
WITH hits AS ({branches}),
found AS (
    SELECT h.recording_id, ts_rank_cd(h.document, h.query, 32) AS rank, h.query
    FROM hits h JOIN recordings r ON r.recording_id = h.recording_id
    WHERE {where}
),
page AS (
    SELECT * FROM found{after} ORDER BY rank DESC, recording_id DESC LIMIT {limit}
)
SELECT (SELECT count(*) FROM found) AS total, page.recording_id, page.rank,
       d.body <> '' AS from_body, x.given,
       ts_headline(d.language::regconfig, x.given, page.query, ${options}) AS headline
FROM (SELECT 1) AS one
LEFT JOIN page ON true
LEFT JOIN search_documents d ON d.recording_id = page.recording_id
LEFT JOIN LATERAL (
    SELECT translate(CASE WHEN d.body <> '' THEN d.body ELSE d.title END, '<', ' ') AS given
) x ON true
ORDER BY page.rank DESC, page.recording_id DESC
"""
# (In the text ts_headline reads, "<" becomes a space: its parser would take "<b>" written
# in a comment for a tag and put a space for it, and the snippet would no longer line up
# with the text as written. A space keeps every character's place.)


@dataclass(frozen=True)
class Query:
    """What to search for: the words (websearch syntax), and filters."""

    text: str
    kind: RecordingKind | None = None
    creator_id: str | None = None
    status: RecordingStatus = "active"


@dataclass(frozen=True)
class Hit:
    """A recording found: its row (as :func:`~.recordings.rows_by_id` gives it), its rank
    and its snippet (HTML: escaped text, matches in ``<mark>``)."""

    row: asyncpg.Record
    rank: float
    snippet: str


async def find(
    pool: asyncpg.Pool, scope: Scope, query: Query, *, after: Key | None, limit: int
) -> tuple[list[Hit], int, Key | None]:
    """One page of the recordings of ``scope``'s projects matching ``query`` that its viewer
    may see, best first: the hits after ``after`` (None: the first page), at most ``limit``;
    how many hits there are in all; and the key the next page starts after (None: this is
    the last page).

    A ``query.creator_id`` the viewer may not be told about finds nothing (a client learns
    nothing of who made what beyond what they may be told).
    """
    nothing: tuple[list[Hit], int, Key | None] = ([], 0, None)
    hidden = scope.people is not None and query.creator_id not in scope.people
    if query.creator_id is not None and hidden:
        return nothing
    groups = _groups(scope, query.status)
    projects = [p for ids in groups.values() for p in ids]
    languages = await _languages(pool, projects) if projects else []
    if not languages:
        return nothing
    params: list[Any] = [search.searchable(query.text), projects]
    alternatives = []
    for (clients, statuses), ids in groups.items():
        params.append(ids)
        one = [f"r.project_id = ANY(${len(params)}::text[])"]
        if statuses != _EVERY:
            params.append(list(statuses))
            one.append(f"r.effective_status = ANY(${len(params)}::text[])")
        if clients:
            one.append("r.visible_to_clients")
        alternatives.append(" AND ".join(one))
    where = [f"({' OR '.join(alternatives)})"]
    if query.kind is not None:
        params.append(query.kind)
        where.append(f"r.kind = ${len(params)}")
    if query.creator_id is not None:
        params.append(query.creator_id)
        where.append(f"r.creator_id = ${len(params)}")
    following = ""
    if after is not None:
        params += list(after)
        following = f" WHERE (rank, recording_id) < (${len(params) - 1}::real, ${len(params)})"
    params.append(_HEADLINE)
    sql = _SEARCH.format(
        branches=" UNION ALL ".join(_BRANCH.format(language=lang) for lang in languages),
        where=" AND ".join(where),
        after=following,
        limit=limit + 1,
        options=len(params),
    )
    records = await pool.fetch(sql, *params)
    total = int(records[0]["total"])
    found = [r for r in records if r["recording_id"] is not None]
    rows = await rows_by_id(pool, [r["recording_id"] for r in found[:limit]])
    hits: list[Hit] = []
    for r in found[:limit]:
        row = rows.get(r["recording_id"])
        facts = None if row is None else scope.projects.get(row["project_id"])
        # The SQL above keeps the viewer to what they may see; the access rule has the last
        # word anyway, so a change of the rule cannot leak through a stale SQL filter.
        if row is None or facts is None:
            continue
        if not can_see_recording(scope.viewer, facts, recording_facts(row)):
            continue
        snippet = search.snippet(_written(row, r["from_body"]), r["given"], r["headline"])
        hits.append(Hit(row=row, rank=float(r["rank"]), snippet=snippet))
    last = found[limit - 1] if len(found) > limit else None
    return hits, total, None if last is None else (float(last["rank"]), last["recording_id"])


def _groups(scope: Scope, status: str) -> dict[tuple[bool, tuple[str, ...]], list[str]]:
    """The projects of ``scope`` to search for items of ``status``, grouped by whether the
    viewer sees them as a client and by the effective statuses of the items wanted there."""
    clients = set(scope.clients_only)
    groups: dict[tuple[bool, tuple[str, ...]], list[str]] = {}
    for project_id, facts in scope.projects.items():
        statuses = _ITEMS[status].get(facts.status)
        if statuses is not None:
            groups.setdefault((project_id in clients, statuses), []).append(project_id)
    return groups


def _written(row: asyncpg.Record, from_body: bool) -> str:
    """The text as written that a hit's snippet is taken from: its body's plain text, or
    its title (a comment has none: its body is its document)."""
    if from_body:
        return plain_text(row["content"] or "")
    return "" if row["kind"] == "comment" else str(row["title"])


async def _languages(pool: asyncpg.Pool, project_ids: list[str]) -> list[str]:
    """The languages of the projects ``project_ids``, each a configuration the domain knows
    (they are written into SQL)."""
    rows = await pool.fetch(
        "SELECT DISTINCT language FROM search_projects WHERE project_id = ANY($1::text[]) "
        "ORDER BY 1",
        project_ids,
    )
    known = search.CONFIGURATIONS.values()
    return [r["language"] for r in rows if r["language"] in known]

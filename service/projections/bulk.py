"""Set-based rebuilds: a projection computes its whole generation from the log in SQL.

Applying 200,000 typed events one by one in Python is bound by Python (reading and decoding
them alone costs about a third of what a plain ordered scan of the table does). A projection
may therefore offer a second way to fill a fresh generation, :class:`BulkFill`: it is given
the log up to a fixed cursor as a SQL relation (:meth:`EventStore.log_relation`) and writes the generation's
rows with a few ``INSERT ... SELECT`` statements, so the database does the work (on the other
core) and Python only routes. The engine then applies the events after that cursor with the
projection's ordinary ``apply``, so the bulk pass must leave exactly the rows ``apply`` would
have written, bookkeeping tables included; ``tests/test_projections.py`` checks that row for
row on a randomised workload, for the bulk pass alone and for a bulk pass followed by
incremental batches.

A bulk pass may decline (return False) when the log holds something it does not handle (an
event written at an older schema version, a shape the domain never produces): the engine then
rolls its writes back and rebuilds that projection event by event. :func:`plain_log` is the
common check.

The SQL snippets here (:data:`WS`, :func:`clip_sql`, :func:`plain_text_sql`) reproduce
:mod:`service.domain.excerpts`'s text functions exactly for the inputs they accept; inputs
they do not accept (HTML entities, which only Python decodes) are flagged by the callers and
recomputed with the domain's own functions.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Final, Protocol

import asyncpg

from ..events.base import registered_types
from ..events.streams import recording_id_sql

WS: Final = (
    "[\\t\\n\\v\\f\\r\\x1c-\\x1f \\u0085\\u00a0\\u1680\\u2000-\\u200a"
    "\\u2028\\u2029\\u202f\\u205f\\u3000]"
)
"""A PostgreSQL regular expression class of exactly the characters Python's ``str.isspace``
(and so ``re``'s ``\\s`` on text) calls whitespace: the database's ``\\s`` depends on its
locale, and ``\\s`` decides where excerpts and titles are cut."""


class BulkFill(Protocol):
    """Optional capability of a :class:`~service.projections.engine.Projection`."""

    async def bulk_fill(self, conn: asyncpg.Connection, log: str) -> bool:
        """Fill this projection's empty generation with the effect of every event of ``log``
        (a parenthesised SQL relation with the columns of the events table, see
        :meth:`~service.events.store.EventStore.log_relation`), as ``apply`` would have given them in log order.

        Runs inside the caller's transaction with the search path set to the generation's
        schema. Returns False, having written nothing the caller must keep, when the log
        holds something this pass does not handle; the caller then rolls back.
        """
        ...


FILES: Final = """(e.event_type IN ('UploadCreated', 'UploadEdited', 'UploadVersionAdded')
    OR e.data ? 'attachments'
    OR (e.event_type IN ('MessageEdited', 'CommentEdited')
        AND e.data->'changes' @> '[{"field": "attachments"}]'::jsonb))"""
"""SQL: an event ``e`` naming files (an upload's, or a message's or comment's attachments).
Only the search bulk pass models them: :func:`plain_log` declines logs holding any for the
others, which are rebuilt event by event."""
EXTERNAL: Final = "e.event_type = 'ExternalItemPosted'"
"""SQL: an event ``e`` posting an external feed's item (#19). No bulk pass models them:
:func:`plain_log` declines logs holding any, which are rebuilt event by event."""
CREATIONS: Final = (
    "('MessagePosted', 'CommentAdded', 'TodolistCreated', 'TodoAdded', 'MilestoneCreated')"
)
"""Recording creation event types, as a SQL list."""
EDITS: Final = (
    "('MessageEdited', 'CommentEdited', 'TodolistEdited', 'TodoEdited', 'MilestoneEdited')"
)
"""Recording edit event types, as a SQL list."""
CREATION_KIND: Final = """CASE e.event_type WHEN 'MessagePosted' THEN 'message' WHEN 'CommentAdded' THEN 'comment'
    WHEN 'TodolistCreated' THEN 'todolist' WHEN 'TodoAdded' THEN 'todo' ELSE 'milestone' END"""
"""The recording kind of a creation event ``e``, in SQL."""


def odd_creations(creations: str) -> str:
    """SQL, for :func:`plain_log`: an event ``e`` of a recording's stream that is a creation
    (one of ``creations``, a SQL list) other than the stream's first event, or a first event
    that is no creation, or a creation naming another recording than its stream's (the
    incremental paths fold such logs differently depending on where batches are cut)."""
    return f"""
    (e.event_type IN {creations}) <> (e.stream_version = 1)
    OR (e.event_type IN {creations}
        AND e.data->>'recording_id' IS DISTINCT FROM {recording_id_sql("e.stream_id")})"""


ODD_CREATIONS: Final = odd_creations(CREATIONS)
""":func:`odd_creations` of :data:`CREATIONS` (logs without uploads)."""


async def plain_log(
    conn: asyncpg.Connection,
    log: str,
    prefixes: tuple[str, ...],
    odd: str = "false",
    *,
    files: bool = False,
) -> bool:
    """Whether every event of the streams starting with ``prefixes`` in ``log`` is of a
    registered type at its current schema version (so its stored JSON has the shape the
    SQL of a bulk pass reads; upcasters run only in Python), and none is ``odd`` (a SQL
    condition on the event ``e``: what the caller's bulk pass does not handle), nor names
    files (:data:`FILES`) unless the pass models them (``files``). One scan."""
    current = {name: cls.schema_version for name, cls in registered_types().items()}
    if not files:
        odd = f"({odd}) OR {FILES}"
    odd = f"({odd}) OR {EXTERNAL}"
    found = await conn.fetchval(
        f"""
        SELECT EXISTS (
            SELECT 1 FROM {log} e
            LEFT JOIN unnest($1::text[], $2::int[]) AS t(name, version)
                ON t.name = e.event_type
            WHERE e.stream_id ^@ ANY($3::text[])
              AND (t.version IS NULL OR t.version <> e.schema_version OR ({odd})))
        """,
        list(current),
        list(current.values()),
        list(prefixes),
    )
    return not found


@contextlib.asynccontextmanager
async def indexes_deferred(conn: asyncpg.Connection, tables: Sequence[str]) -> AsyncIterator[None]:
    """Drop the indexes (primary keys and unique constraints included) of ``tables`` of the
    current schema, and make them again, with the same names and definitions, on leaving:
    one sorted build per index instead of an insertion per row and index, which cost more
    than computing the rows."""
    schema = await conn.fetchval("SELECT current_schema()")
    constraints = await conn.fetch(
        """
        SELECT format('%I.%I', n.nspname, r.relname) AS tbl, c.conname, pg_get_constraintdef(c.oid) AS def
        FROM pg_constraint c
        JOIN pg_class r ON r.oid = c.conrelid
        JOIN pg_namespace n ON n.oid = r.relnamespace
        WHERE n.nspname = $1 AND r.relname = ANY($2::text[]) AND c.contype IN ('p', 'u')
        ORDER BY r.relname, c.conname
        """,
        schema,
        list(tables),
    )
    indexes = await conn.fetch(
        """
        SELECT format('%I.%I', i.schemaname, i.indexname) AS name, i.indexdef
        FROM pg_indexes i
        WHERE i.schemaname = $1 AND i.tablename = ANY($2::text[])
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c
                          JOIN pg_namespace n ON n.oid = c.connamespace
                          WHERE n.nspname = i.schemaname AND c.conname = i.indexname)
        ORDER BY i.tablename, i.indexname
        """,
        schema,
        list(tables),
    )
    for row in indexes:
        await conn.execute(f"DROP INDEX {row['name']}")
    for row in constraints:
        await conn.execute(f'ALTER TABLE {row["tbl"]} DROP CONSTRAINT "{row["conname"]}"')
    yield
    for row in constraints:
        await conn.execute(
            f'ALTER TABLE {row["tbl"]} ADD CONSTRAINT "{row["conname"]}" {row["def"]}'
        )
    for row in indexes:
        await conn.execute(row["indexdef"])


def collapse_sql(text: str) -> str:
    """SQL: ``text`` with whitespace runs made one space and trimmed; blank gives NULL (the
    first step of :func:`service.domain.excerpts.clip`). ``text`` is referred to twice: pass
    a column or a cheap expression."""
    # Most text is printable ASCII words separated by single spaces already: a match is
    # several times cheaper than a replacement, and ASCII has no Unicode spaces.
    return (
        f"CASE WHEN {text} ~ '^[!-~]+( [!-~]+)*$' THEN {text} "
        f"ELSE nullif(btrim(regexp_replace({text}, '{WS}+', ' ', 'g'), ' '), '') END"
    )


def clip_sql(collapsed: str) -> str:
    """SQL for :func:`service.domain.excerpts.clip`, given a column holding
    :func:`collapse_sql` of the text (referred to several times, so it must be a column, not
    an expression): cut to 200 characters at a word boundary with an ellipsis."""
    c = collapsed
    cut = f"left({c}, 199)"
    # Python's rfind(" ") on the cut is 199 - strpos(reverse(cut), " ") (-1 when none).
    space = f"(199 - strpos(reverse({cut}), ' '))"
    return f"""CASE WHEN {c} IS NULL OR length({c}) <= 200 THEN {c}
        ELSE rtrim(CASE WHEN strpos(reverse({cut}), ' ') > 0 AND {space} > 100
                        THEN left({cut}, {space}) ELSE {cut} END, ' ') || '…' END"""


_BLOCK_END: Final = "<(?:br|/p|/li|/h[1-3]|/blockquote|/pre)\\y[^>]*>"
_AMBIGUOUS_BOUNDARY: Final = "<(?:br|/p|/li|/h[1-3]|/blockquote|/pre)[^\\x01-\\x7f]"


def strip_tags_sql(value: str) -> str:
    """SQL: :func:`service.domain.excerpts.plain_text` of ``value`` but for the whitespace
    (block ends made spaces, tags dropped, runs of whitespace left as they are): enough
    under :func:`collapse_sql`, which :func:`clip_sql` needs anyway. Exact when
    :func:`plain_text_unsure_sql` is false for ``value``."""
    spaced = f"regexp_replace({value}, '{_BLOCK_END}', ' ', 'g')"
    return f"regexp_replace({spaced}, '<[^>]*>', '', 'g')"


def plain_text_sql(value: str) -> str:
    """SQL for :func:`service.domain.excerpts.plain_text` of ``value`` — exact when
    :func:`plain_text_unsure_sql` is false for it (no entity to decode)."""
    return f"btrim(regexp_replace({strip_tags_sql(value)}, '{WS}+', ' ', 'g'), ' ')"


def plain_text_unsure_sql(value: str) -> str:
    """SQL: whether :func:`plain_text_sql` may differ from Python for ``value``: it holds an
    entity (only Python's ``html.unescape`` decodes them all), or a block-end tag name
    followed by a non-ASCII character (where word boundaries depend on the locale)."""
    return f"(strpos({value}, '&') > 0 OR {value} ~ '{_AMBIGUOUS_BOUNDARY}')"

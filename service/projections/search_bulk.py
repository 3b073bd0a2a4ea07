"""The search read model computed from the whole log at once (its bulk fill, see bulk.py).

A document is a fact about the final state of its stream and its project's: the creation's
title and body unless an edit changed them last, and the last language its project was
given. SQL reads those off the log and makes the plain text of the bodies; Python makes the
indexed text of those that are not ASCII (accents are taken off in Python:
:mod:`service.domain.search`) or whose HTML holds an entity
(:func:`~service.projections.search_tables.indexed`, as the incremental path does). Then
one ``INSERT ... SELECT`` indexes every document, with the indexes built once at the end.

Files: a document's ``names`` (search_tables.py) are made in SQL from the creation's
attachments or upload file, then the last of the attachment edits, renames and new versions
(which also make an upload's title); names that are not ASCII lose their accents in Python.

Logs the incremental path would fold differently depending on where batches are cut (an
edit before its recording's creation, a creation that is not its stream's first event) are
declined, and rebuilt event by event.
"""

from __future__ import annotations

from typing import Final

import asyncpg

from ..domain.search import searchable
from ..events.streams import PROJECT, RECORDING, project_id_sql, recording_id_sql
from .bulk import (
    CREATION_KIND,
    CREATIONS,
    EDITS,
    indexes_deferred,
    odd_creations,
    plain_log,
    plain_text_sql,
    plain_text_unsure_sql,
)
from .search_tables import FIELDS, LANGUAGES, SEPARATORS, indexed

_RECORDING_ID: Final = recording_id_sql("e.stream_id")
_PROJECT_ID: Final = project_id_sql("e.stream_id")
_CREATED: Final = {
    "message": "MessagePosted",
    "comment": "CommentAdded",
    "todolist": "TodolistCreated",
    "todo": "TodoAdded",
    "milestone": "MilestoneCreated",
    "upload": "UploadCreated",
}
"""The creation event of each kind."""
_EDITED: Final = {
    "message": "MessageEdited",
    "comment": "CommentEdited",
    "todolist": "TodolistEdited",
    "todo": "TodoEdited",
    "milestone": "MilestoneEdited",
    "upload": "UploadEdited",
}
"""The edit event of each kind."""
_KNOWN: Final = "(" + ", ".join(f"'{name}'" for name in LANGUAGES) + ")"
_CREATIONS: Final = CREATIONS[:-1] + ", 'UploadCreated')"
_EDITS: Final = EDITS[:-1] + ", 'UploadEdited')"
_KIND: Final = f"CASE WHEN e.event_type = 'UploadCreated' THEN 'upload' ELSE {CREATION_KIND} END"
# SEPARATORS hold a backslash, written as is in a standard SQL string literal.
_CUT: Final = f"translate({{0}}, '{SEPARATORS}', '{' ' * len(SEPARATORS)}')"


def _cut(name: str) -> str:
    """SQL: a file ``name`` cut into words (search_tables.name_title, before accents)."""
    return _CUT.format(name)


def _names(name: str) -> str:
    """SQL: the ``names`` text of one file ``name`` (search_tables.file_names, before
    accents): the name, then its words when cutting changed it."""
    return f"{name} || CASE WHEN {_cut(name)} <> {name} THEN ' ' || {_cut(name)} ELSE '' END"


def _list_names(files: str) -> str:
    """SQL: the ``names`` text of a JSON array of files ``files`` (NULL for an empty one)."""
    return (
        f"(SELECT string_agg({_names('f.name')}, ' ' ORDER BY f.n) "
        f"FROM jsonb_array_elements(CASE WHEN jsonb_typeof({files}) = 'array' THEN {files} "
        f"ELSE '[]' END) WITH ORDINALITY AS a(file, n), "
        f"LATERAL (SELECT a.file->>'name' AS name, a.n) f WHERE f.name <> '')"
    )


def _created(column: str) -> str:
    """SQL: ``column``'s value in a creation event ``e`` (NULL for a kind without one)."""
    cases = [
        f"WHEN '{_CREATED[kind]}' THEN e.data->>'{field}'"
        for kind, fields in FIELDS.items()
        for field, col in fields.items()
        if col == column
    ]
    return f"CASE e.event_type {' '.join(cases)} END"


_EDIT_FIELDS: Final = ", ".join(
    f"('{_EDITED[kind]}', '{field}', '{column}')"
    for kind, fields in FIELDS.items()
    for field, column in fields.items()
)
"""SQL ``VALUES`` rows: (edit event, field, the column it changes)."""

_PROJECTS: Final = f"""
INSERT INTO search_projects (project_id, language)
SELECT DISTINCT ON (project_id) project_id,
       CASE WHEN value IN {_KNOWN} THEN value ELSE '{LANGUAGES[0]}' END
FROM (
    SELECT {_PROJECT_ID} AS project_id, e.tx_id, e.position, 0::bigint AS n,
           coalesce(e.data->>'language', '{LANGUAGES[0]}') AS value
    FROM {{log}} e
    WHERE e.stream_id ^@ '{PROJECT}' AND e.event_type = 'ProjectCreated'
    UNION ALL
    SELECT {_PROJECT_ID}, e.tx_id, e.position, c.n,
           CASE WHEN jsonb_typeof(c.ch->'after') = 'string' THEN c.ch->>'after' END
    FROM {{log}} e, jsonb_array_elements(e.data->'changes') WITH ORDINALITY AS c(ch, n)
    WHERE e.stream_id ^@ '{PROJECT}' AND e.event_type = 'ProjectEdited'
      AND c.ch->>'field' = 'language'
) languages
ORDER BY project_id, tx_id DESC, position DESC, n DESC
"""
# The last edit of each column wins (log order, then order in the edit's changes); an edit
# to something that is not a string (a cleared body) leaves the column empty.
_ROWS: Final = f"""
CREATE TEMPORARY TABLE _search_rows ON COMMIT DROP AS
WITH made AS (
    SELECT {_RECORDING_ID} AS recording_id, e.data->>'project_id' AS project_id,
           {_KIND} AS kind,
           CASE WHEN e.event_type = 'UploadCreated' THEN {_cut("(e.data->'file'->>'name')")}
                ELSE {_created("title")} END AS title,
           {_created("body")} AS body,
           CASE WHEN e.event_type = 'UploadCreated' THEN {_names("(e.data->'file'->>'name')")}
                ELSE {_list_names("e.data->'attachments'")} END AS names
    FROM {{log}} e
    WHERE e.stream_id ^@ '{RECORDING}' AND e.event_type IN {_CREATIONS}
),
changes AS (
    SELECT {_RECORDING_ID} AS recording_id, e.tx_id, e.position, e.event_type, c.n,
           c.ch->>'field' AS field, c.ch->'after' AS after
    FROM {{log}} e, jsonb_array_elements(e.data->'changes') WITH ORDINALITY AS c(ch, n)
    WHERE e.stream_id ^@ '{RECORDING}' AND e.event_type IN {_EDITS}
),
sets AS (
    SELECT x.recording_id, x.tx_id, x.position, x.n, m.col,
           CASE WHEN jsonb_typeof(x.after) = 'string' THEN x.after #>> '{{}}' ELSE '' END
               AS value
    FROM changes x
    JOIN (VALUES {_EDIT_FIELDS}) AS m(event_type, field, col)
        ON m.event_type = x.event_type AND m.field = x.field
    UNION ALL
    SELECT x.recording_id, x.tx_id, x.position, x.n, 'names',
           coalesce({_list_names("x.after")}, '')
    FROM changes x
    WHERE x.event_type IN ('MessageEdited', 'CommentEdited') AND x.field = 'attachments'
    UNION ALL
    SELECT x.recording_id, x.tx_id, x.position, x.n, w.col, w.value
    FROM changes x,
         LATERAL (SELECT CASE WHEN jsonb_typeof(x.after) = 'string'
                              THEN x.after #>> '{{}}' END AS name) a,
         LATERAL (VALUES ('title', coalesce({_cut("a.name")}, '')),
                         ('names', coalesce({_names("a.name")}, ''))) AS w(col, value)
    WHERE x.event_type = 'UploadEdited' AND x.field = 'name'
    UNION ALL
    SELECT {_RECORDING_ID}, e.tx_id, e.position, 0, w.col, w.value
    FROM {{log}} e,
         LATERAL (VALUES ('title', {_cut("(e.data->'file'->>'name')")}),
                         ('names', {_names("(e.data->'file'->>'name')")})) AS w(col, value)
    WHERE e.stream_id ^@ '{RECORDING}' AND e.event_type = 'UploadVersionAdded'
),
edits AS (
    SELECT DISTINCT ON (recording_id, col) recording_id, col, value
    FROM sets
    ORDER BY recording_id, col, tx_id DESC, position DESC, n DESC
)
SELECT made.recording_id, made.project_id, made.kind,
       coalesce(t.value, made.title, '') AS title, coalesce(b.value, made.body, '') AS html,
       coalesce(nm.value, made.names, '') AS names
FROM made
LEFT JOIN edits t ON t.recording_id = made.recording_id AND t.col = 'title'
LEFT JOIN edits b ON b.recording_id = made.recording_id AND b.col = 'body'
LEFT JOIN edits nm ON nm.recording_id = made.recording_id AND nm.col = 'names'
"""
_LANGUAGE: Final = f"coalesce(p.language, '{LANGUAGES[0]}')"
_ASCII: Final = "octet_length({0}) = length({0})"
_BY_PYTHON: Final = (
    f"NOT ({_ASCII.format('title')} AND {_ASCII.format('html')} AND {_ASCII.format('names')}) "
    f"OR {plain_text_unsure_sql('html')}"
)
"""SQL over ``_search_rows``: the rows whose indexed text Python makes."""
_INSERT: Final = f"""
INSERT INTO search_documents
    (recording_id, project_id, kind, language, title, body, names, document)
SELECT r.recording_id, r.project_id, r.kind, x.language, x.title, x.body, x.names,
       cairn_search_document(x.language::regconfig, x.title, x.body, x.names)
FROM _search_rows r
LEFT JOIN _search_text t ON t.recording_id = r.recording_id
LEFT JOIN search_projects p ON p.project_id = r.project_id
CROSS JOIN LATERAL (
    SELECT coalesce(t.title, r.title) AS title,
           coalesce(t.body, {plain_text_sql("r.html")}) AS body,
           coalesce(t.names, r.names) AS names, {_LANGUAGE} AS language
) x
"""


async def bulk_fill(conn: asyncpg.Connection, log: str) -> bool:
    """Fill the (empty) ``search_projects`` and ``search_documents`` tables of the current
    schema from ``log``; False (rows left to roll back) if the log holds what this does not
    model."""
    odd = f"(e.stream_id ^@ '{RECORDING}' AND ({odd_creations(_CREATIONS)}))"
    if not await plain_log(conn, log, (PROJECT, RECORDING), odd, files=True):
        return False
    # JIT: off per session (lane.py). The GIN index is built once, at the end.
    await conn.execute("SET LOCAL work_mem = '256MB'; SET LOCAL maintenance_work_mem = '256MB'")
    await conn.execute(_ROWS.replace("{log}", log))
    others = await conn.fetch(
        f"SELECT recording_id, title, html, names FROM _search_rows WHERE {_BY_PYTHON}"
    )
    await conn.execute(
        "CREATE TEMPORARY TABLE _search_text "
        "(recording_id text, title text, body text, names text) ON COMMIT DROP"
    )
    await conn.copy_records_to_table(
        "_search_text",
        records=[
            (
                r["recording_id"],
                indexed("title", r["title"]),
                indexed("body", r["html"]),
                searchable(r["names"]),
            )
            for r in others
        ],
    )
    async with indexes_deferred(conn, ("search_projects", "search_documents")):
        await conn.execute(_PROJECTS.replace("{log}", log))
        await conn.execute(_INSERT)
    return True

"""The search read model: a full-text document per recording, in its project's language.

The tables and what their columns hold: see search_tables.py. Its queries are
:mod:`service.reads.search`'s.

**Batches.** A batch is folded in memory into the final language of the projects it
creates or re-languages, the new documents' text and the changed documents' title or body;
then at most four statements write it: the projects' languages (an upsert), the documents
of a project whose language changed indexed again, the new documents (one ``INSERT ...
SELECT`` from arrays, in their project's language), the changed ones (one ``UPDATE ...
FROM``). Files: a message's or comment's attachments and an upload's name are the document's
``names`` (search_tables.py), set by the creation and again by an edit of the attachments,
a rename or a new version (which names the upload after its file). Every document is
``cairn_search_document`` of its final language, title, body and names, whatever the order its parts arrived in, so the rows do not depend on where batches
are cut (and equal the bulk fill's, search_bulk.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import asyncpg

from ..events import projects as pr
from ..events import recordings as rc
from ..events.base import RecordedEvent
from ..events.streams import PROJECT, RECORDING, project_id_of, recording_id_of
from . import search_bulk
from .search_tables import DDL, FIELDS, LANGUAGES, NAMES, file_names, indexed, language, name_title

_CREATED: Final[dict[type[Any], tuple[str, dict[str, str]]]] = {
    rc.MessagePosted: ("message", FIELDS["message"]),
    rc.CommentAdded: ("comment", FIELDS["comment"]),
    rc.TodolistCreated: ("todolist", FIELDS["todolist"]),
    rc.TodoAdded: ("todo", FIELDS["todo"]),
    rc.MilestoneCreated: ("milestone", FIELDS["milestone"]),
    rc.UploadCreated: ("upload", FIELDS["upload"]),
}
"""Each creation event's kind and which of its fields are the title and body."""
_EDITED: Final[dict[type[Any], dict[str, str]]] = {
    rc.MessageEdited: FIELDS["message"],
    rc.CommentEdited: FIELDS["comment"],
    rc.TodolistEdited: FIELDS["todolist"],
    rc.TodoEdited: FIELDS["todo"],
    rc.MilestoneEdited: FIELDS["milestone"],
    rc.UploadEdited: FIELDS["upload"],
}
"""Each edit event's fields that are a title or body (by the edit's kind)."""
_CREATIONS: Final = (
    rc.MessagePosted,
    rc.CommentAdded,
    rc.TodolistCreated,
    rc.TodoAdded,
    rc.MilestoneCreated,
    rc.UploadCreated,
)
_EDITS: Final = (
    rc.MessageEdited,
    rc.CommentEdited,
    rc.TodolistEdited,
    rc.TodoEdited,
    rc.MilestoneEdited,
    rc.UploadEdited,
)
_NAMED_BY: Final[dict[type[Any], str]] = {
    rc.MessageEdited: NAMES["message"],
    rc.CommentEdited: NAMES["comment"],
    rc.UploadEdited: NAMES["upload"],
}
"""Each edit event's field that names the recording's files (see search_tables.NAMES)."""

_LANGUAGES: Final = """
INSERT INTO search_projects (project_id, language)
SELECT * FROM unnest($1::text[], $2::text[])
ON CONFLICT (project_id) DO UPDATE SET language = EXCLUDED.language
"""
# A project's documents in another language than the project's are indexed again (a change
# of language; or, in a log where a recording came before its project, a project made late).
_REINDEX: Final = """
UPDATE search_documents d
SET language = p.language,
    document = cairn_search_document(p.language::regconfig, d.title, d.body, d.names)
FROM search_projects p
WHERE p.project_id = ANY($1::text[]) AND d.project_id = p.project_id
  AND d.language <> p.language
"""
_LANGUAGE: Final = f"coalesce(p.language, '{LANGUAGES[0]}')"
"""A new document's language: its project's (``p``), or the first for a project unknown."""
_INSERT: Final = f"""
INSERT INTO search_documents
    (recording_id, project_id, kind, language, title, body, names, document)
SELECT u.recording_id, u.project_id, u.kind, {_LANGUAGE}, u.title, u.body, u.names,
       cairn_search_document({_LANGUAGE}::regconfig, u.title, u.body, u.names)
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
     AS u(recording_id, project_id, kind, title, body, names)
LEFT JOIN search_projects p ON p.project_id = u.project_id
"""
# NULL: not changed in the batch.
_UPDATE: Final = """
UPDATE search_documents d
SET title = coalesce(u.title, d.title), body = coalesce(u.body, d.body),
    names = coalesce(u.names, d.names),
    document = cairn_search_document(
        d.language::regconfig, coalesce(u.title, d.title), coalesce(u.body, d.body),
        coalesce(u.names, d.names))
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
     AS u(recording_id, title, body, names)
WHERE d.recording_id = u.recording_id
"""


class Search:
    """Projection ``search``: tables ``search_projects`` and ``search_documents``."""

    name = "search"
    # 2: the GIN index's pending list bounded at 256 kB (PostgreSQL's default, 4 MB, is
    # scanned whole by every query until a vacuum merges it: +3 ms a query on the benchmark's
    # database after an event-by-event rebuild). 3: uploads, and file names (``names``).
    version = 3
    tables: Sequence[str] = ("search_projects", "search_documents")
    stream_prefixes = (PROJECT, RECORDING)

    def ddl(self) -> str:
        return DDL

    async def bulk_fill(self, conn: asyncpg.Connection, log: str) -> bool:
        """The whole read model from ``log`` in SQL (see search_bulk.py and bulk.py)."""
        return await search_bulk.bulk_fill(conn, log)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        batch = _Batch()
        for recorded in events:
            batch.apply(recorded)
        # Every statement is a look-up by key or by project: sequential scans are never
        # wanted, but a generation being rebuilt has no statistics yet and the planner
        # would pick them (as in the recordings read model: the transaction is ours alone).
        await conn.execute(
            "SET LOCAL enable_seqscan = off; SET LOCAL max_parallel_workers_per_gather = 0"
        )
        await batch.save(conn)


class _Batch:
    """What one batch changes, folded in log order."""

    def __init__(self) -> None:
        # The last language each project was given in the batch.
        self.languages: dict[str, str] = {}
        # Documents created in the batch: project, kind, title, body, names.
        self.created: dict[str, dict[str, str]] = {}
        # Documents created earlier whose title, body or names changed: the new text by
        # column.
        self.changed: dict[str, dict[str, str]] = {}

    def apply(self, recorded: RecordedEvent) -> None:
        event = recorded.event
        project_id = project_id_of(recorded.stream_id)
        if project_id is not None:
            if isinstance(event, pr.ProjectCreated):
                self.languages[project_id] = language(event.language)
            elif isinstance(event, pr.ProjectEdited):
                for change in event.changes:
                    if change.field == "language":
                        self.languages[project_id] = language(change.after)
            return
        recording_id = recording_id_of(recorded.stream_id)
        if recording_id is None:
            return
        if isinstance(event, _CREATIONS):
            kind, fields = _CREATED[type(event)]
            row = {
                "project_id": event.project_id,
                "kind": kind,
                "title": "",
                "body": "",
                "names": "",
            }
            for field, column in fields.items():
                row[column] = indexed(column, getattr(event, field, None))
            if isinstance(event, rc.UploadCreated):
                row["title"] = name_title(event.file.name)
                row["names"] = file_names(event.file.name)
            elif isinstance(event, rc.MessagePosted | rc.CommentAdded):
                row["names"] = file_names(event.attachments)
            self.created[recording_id] = row
            self.changed.pop(recording_id, None)
        elif isinstance(event, _EDITS):
            edited = _EDITED[type(event)]
            names = _NAMED_BY.get(type(event))
            target = self._target(recording_id)
            for change in event.changes:
                if (changed := edited.get(change.field)) is not None:
                    target[changed] = indexed(changed, change.after)
                if change.field == names:
                    target["names"] = file_names(change.after)
                    if isinstance(event, rc.UploadEdited):
                        target["title"] = name_title(change.after)
        elif isinstance(event, rc.UploadVersionAdded):
            # The upload takes its new file's name.
            target = self._target(recording_id)
            target["title"] = name_title(event.file.name)
            target["names"] = file_names(event.file.name)

    def _target(self, recording_id: str) -> dict[str, str]:
        """Where a change of ``recording_id``'s document goes: its row if created in the
        batch, else its changes."""
        target = self.created.get(recording_id)
        return target if target is not None else self.changed.setdefault(recording_id, {})

    async def save(self, conn: asyncpg.Connection) -> None:
        if self.languages:
            await conn.execute(_LANGUAGES, list(self.languages), list(self.languages.values()))
            await conn.execute(_REINDEX, list(self.languages))
        if self.created:
            rows = self.created
            await conn.execute(
                _INSERT,
                list(rows),
                *(
                    [row[c] for row in rows.values()]
                    for c in ("project_id", "kind", "title", "body", "names")
                ),
            )
        if self.changed:
            edits = self.changed
            await conn.execute(
                _UPDATE,
                list(edits),
                [edit.get("title") for edit in edits.values()],
                [edit.get("body") for edit in edits.values()],
                [edit.get("names") for edit in edits.values()],
            )

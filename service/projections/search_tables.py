"""The tables of the search read model, which its incremental path (search.py) and its bulk
fill (search_bulk.py) both write: their DDL, which field of each kind is a document's title
or body, and how a stored value becomes the text that is indexed.

Tables:

* ``search_projects(project_id, language)``: each project's language, the text-search
  configuration its documents are indexed in (``english``, ``french``), as its events last
  set it.
* ``search_documents``: one row per recording. ``title`` and ``body`` are the text
  indexed: a message's subject and body, a list's name and description, a to-do's content
  and notes, a milestone's title and notes; a comment's document is its content alone (its
  body: a comment is found as itself, and shown under its parent). HTML is indexed as its
  plain text (tags dropped, entities decoded), and every text without its accents
  (:func:`~service.domain.search.searchable`): what ``ts_headline`` marks matches in, and
  what a project's documents are indexed again from when its language changes. An
  upload's title is its name (as shown: the last version's, or as renamed) cut into words
  at dots, dashes, underscores and slashes (:func:`name_title`), and its body its
  description. ``names`` is the file names of the recording (:func:`file_names`): a
  message's or comment's attachments, an upload's name (weight C, below the title it also
  is, so that its words, cut at dots, dashes and underscores, are found too). ``document`` is
  ``cairn_search_document(language, title, body, names)`` (migration 0005): title weight A,
  body B, names C, in the project's ``language``. A GIN index serves ``@@``; the project
  index serves re-indexing a project whose language changed.

Nothing else of a recording is kept here: who may see it, its status and its kind's fields
are the recordings read model's, joined in by the queries (service/reads/search.py).
"""

from __future__ import annotations

from typing import Any, Final

from ..domain.excerpts import plain_text
from ..domain.search import searchable

LANGUAGES: Final = ("english", "french")
"""The text-search configurations a project may be indexed in; any other value a log holds
(none the domain writes) reads as the first."""

FIELDS: Final[dict[str, dict[str, str]]] = {
    "message": {"subject": "title", "body": "body"},
    "comment": {"content": "body"},
    "todolist": {"name": "title", "description": "body"},
    "todo": {"content": "title", "notes": "body"},
    "milestone": {"title": "title", "notes": "body"},
    "upload": {"description": "body"},
}
"""Of each kind, the fields (of its creation and of its edits' changes) that are the
document's ``title`` and ``body``; the others are not searched."""

NAMES: Final[dict[str, str]] = {
    "message": "attachments",
    "comment": "attachments",
    "upload": "name",
}
"""Of each kind that has files, the field (of its creation and of its edits' changes) that
names them: a list of files, or an upload's name."""

HTML_COLUMNS: Final = frozenset({"body"})
"""Columns whose fields hold sanitised HTML (titles are plain lines)."""

DDL: Final = """
        CREATE TABLE search_projects (
            project_id text PRIMARY KEY,
            language   text NOT NULL
        );
        CREATE TABLE search_documents (
            recording_id text PRIMARY KEY,
            project_id   text NOT NULL,
            kind         text NOT NULL,
            language     text NOT NULL,
            title        text NOT NULL,
            body         text NOT NULL,
            names        text NOT NULL DEFAULT '',
            document     tsvector NOT NULL
        );
        CREATE INDEX search_documents_document ON search_documents USING gin (document)
            WITH (gin_pending_list_limit = 256);
        CREATE INDEX search_documents_project ON search_documents (project_id);
        """
"""Both tables and their indexes (what :meth:`~service.projections.search.Search.ddl`
returns)."""


def language(value: Any) -> str:
    """The configuration a stored ``language`` value stands for (see :data:`LANGUAGES`)."""
    return value if value in LANGUAGES else LANGUAGES[0]


SEPARATORS: Final = "._-/\\"
"""Where a file name is cut into words (see :func:`name_title`)."""
_SEPARATORS: Final = str.maketrans(SEPARATORS, " " * len(SEPARATORS))


def name_title(name: Any) -> str:
    """The indexed title of an upload named ``name``: the name with its dots, dashes,
    underscores and slashes made spaces (one character for one, so that a snippet taken
    from it lines up with the name as written), without accents; ``""`` for anything but a
    string."""
    return searchable(name.translate(_SEPARATORS)) if isinstance(name, str) else ""


def file_names(value: Any) -> str:
    """The ``names`` text of a stored ``value`` naming files: a list of files (``{name,
    ...}``, or structs with a ``name``) or one name. Each name as written and, when it
    holds dots, dashes, underscores or slashes, also cut there ("q3-plan.pdf q3 plan pdf":
    the text-search parser reads "q3-plan.pdf" as one host name, so "plan" alone would not
    find it); without accents (:func:`~service.domain.search.searchable`). Anything else
    gives ``""``."""
    if isinstance(value, str):
        names = [value]
    elif isinstance(value, list | tuple):
        names = [_name(item) for item in value]
    else:
        return ""
    words: list[str] = []
    for name in names:
        if not name:
            continue
        words.append(name)
        cut = name.translate(_SEPARATORS)
        if cut != name:
            words.append(cut)
    return searchable(" ".join(words))


def _name(item: Any) -> str:
    name = item.get("name") if isinstance(item, dict) else getattr(item, "name", None)
    return name if isinstance(name, str) else ""


def indexed(column: str, value: Any) -> str:
    """The text indexed for a stored ``value`` of ``column`` (``title``, ``body``): an HTML
    body's plain text (:func:`~service.domain.excerpts.plain_text`), a title as it is, each
    without its accents (:func:`~service.domain.search.searchable`); anything but a string
    (a cleared field) gives ``""``."""
    if not isinstance(value, str):
        return ""
    return searchable(plain_text(value) if column in HTML_COLUMNS else value)

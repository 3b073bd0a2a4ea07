"""The tables of the recordings read model, which its incremental path (recordings.py) and
its bulk fill (recordings_bulk.py) both write: their DDL, the columns of ``recordings`` and
how a comment's ``title`` is made from its text.

Tables:

* ``recordings``: one row per recording, every kind in the same table. Kind-specific values
  share columns: ``title`` is a message's subject, a list's name, a to-do's content, a
  milestone's title, or the first 80 characters of a comment's text; ``content`` is a
  message's body, a list's description, a to-do's or milestone's notes, a comment's content.
  ``parent_id`` is a comment's parent or a to-do's list. ``status`` is the recording's own;
  ``effective_status`` the most removed of its own and its lineage's (a to-do in a trashed
  list is effectively trashed). ``own_visible_to_clients`` is the recording's own setting
  (``NULL`` for comments and to-dos, which inherit it) and ``visible_to_clients`` the
  effective one, kept up to date when an ancestor's setting changes or a to-do moves.
  ``position`` is a to-do's 1-based place in its list (every to-do of the list counts,
  whatever its status or completion). ``comments_count`` counts active comments.
  ``created_at``/``updated_at`` are event times; ``seq`` is the log position of the creation
  event and ``version`` the stream version the row reflects.
  ``attachments`` is a message's or comment's files (a JSON array of ``{sha256, size,
  content_type, name}``, in their order; ``[]`` for other kinds). An upload's ``title`` is its
  name, ``content`` its description; ``folder``, ``versions_count`` and its current
  (last) version's file: ``file_sha256``, ``file_size``, ``content_type``, ``file_name``.
  ``due_soon_alerted_on`` and ``overdue_alerted_on`` are the due dates of a to-do's or
  milestone's last "due soon" and "overdue" alerts (:mod:`service.domain.alerts`); index ``recordings_alerts`` holds, by due date, exactly
  the to-dos and milestones that may still be owed an alert (what the scheduler reads).
  An external item (a feed's entry, #19) has its entry's title as ``title``, its sanitised
  summary as ``content``, its feed's name (when posted) as ``category``, and ``link``,
  ``feed_id``, ``published_at``.
* ``upload_versions(recording_id, n, sha256, size, content_type, name, created_by,
  created_at)``: every version of every upload (``n`` from 1).
* ``subscriptions(recording_id, person_id)``: who is notified about what.
"""

from __future__ import annotations

import html
import re
from typing import Final

import nh3

COLUMNS: Final = (
    "recording_id",
    "kind",
    "project_id",
    "parent_id",
    "parent_kind",
    "creator_id",
    "status",
    "effective_status",
    "own_visible_to_clients",
    "visible_to_clients",
    "title",
    "content",
    "category",
    "created_at",
    "updated_at",
    "seq",
    "version",
    "completed",
    "completed_at",
    "completer_id",
    "starts_on",
    "due_on",
    "assignee_ids",
    "responsible_id",
    "position",
    "comments_count",
    "attachments",
    "folder",
    "file_sha256",
    "file_size",
    "content_type",
    "file_name",
    "versions_count",
    "due_soon_alerted_on",
    "overdue_alerted_on",
    "link",
    "feed_id",
    "published_at",
)
"""Every column of ``recordings``, in table order."""

TITLE_LENGTH: Final = 80
"""How many characters of a comment's text make its ``title``."""

_SPACE = re.compile(r"\s+")

DDL: Final = """
        CREATE TABLE recordings (
            recording_id           text PRIMARY KEY,
            kind                   text NOT NULL,
            project_id             text NOT NULL,
            parent_id              text,
            parent_kind            text,
            creator_id             text NOT NULL,
            status                 text NOT NULL,
            effective_status       text NOT NULL,
            own_visible_to_clients boolean,
            visible_to_clients     boolean NOT NULL,
            title                  text NOT NULL,
            content                text,
            category               text,
            created_at             timestamptz NOT NULL,
            updated_at             timestamptz NOT NULL,
            seq                    bigint NOT NULL,
            version                integer NOT NULL,
            completed              boolean NOT NULL DEFAULT false,
            completed_at           timestamptz,
            completer_id           text,
            starts_on              date,
            due_on                 date,
            assignee_ids           text[] NOT NULL DEFAULT '{}',
            responsible_id         text,
            position               integer,
            comments_count         integer NOT NULL DEFAULT 0,
            attachments            jsonb NOT NULL DEFAULT '[]',
            folder                 text,
            file_sha256            text,
            file_size              bigint,
            content_type           text,
            file_name              text,
            versions_count         integer NOT NULL DEFAULT 0,
            due_soon_alerted_on    date,
            overdue_alerted_on     date,
            link                   text,
            feed_id                text,
            published_at           timestamptz
        );
        CREATE INDEX recordings_project_kind ON recordings (project_id, kind, status, seq);
        CREATE INDEX recordings_parent ON recordings (parent_id, position);
        CREATE INDEX recordings_parent_seq ON recordings (parent_id, seq);
        CREATE INDEX recordings_assignees ON recordings USING gin (assignee_ids);
        CREATE INDEX recordings_due ON recordings (due_on) WHERE due_on IS NOT NULL;
        CREATE INDEX recordings_alerts ON recordings (due_on)
            WHERE kind IN ('milestone', 'todo') AND NOT completed
              AND effective_status = 'active' AND (kind = 'milestone' OR assignee_ids <> '{}')
              AND overdue_alerted_on IS DISTINCT FROM due_on;
        CREATE INDEX recordings_uploads ON recordings (project_id, folder, content_type, seq)
            WHERE kind = 'upload';
        CREATE TABLE upload_versions (
            recording_id text NOT NULL,
            n            integer NOT NULL,
            sha256       text NOT NULL,
            size         bigint NOT NULL,
            content_type text NOT NULL,
            name         text NOT NULL,
            created_by   text NOT NULL,
            created_at   timestamptz NOT NULL,
            PRIMARY KEY (recording_id, n)
        );
        CREATE TABLE subscriptions (
            recording_id text NOT NULL,
            person_id    text NOT NULL,
            PRIMARY KEY (recording_id, person_id)
        );
        """
"""The tables and their indexes (what :meth:`~service.projections.recordings.Recordings.ddl`
returns)."""


def summary(content: str | None) -> str:
    """The plain text of an HTML ``content``, whitespace collapsed, cut to
    :data:`TITLE_LENGTH` characters (a comment's ``title``)."""
    if not content:
        return ""
    text = html.unescape(nh3.clean(content, tags=set()))
    return _SPACE.sub(" ", text).strip()[:TITLE_LENGTH].rstrip()

"""Events of recordings: messages, comments, to-do lists, to-dos, milestones and uploads.

Each recording has its own stream ``recording-<id>``. The creation event names the kind and
carries everything a projection needs without looking at other streams (project, creator,
parent or list). Every event carries ``at``, the time the domain was told it happened, so a
recording's state (``updated_at``, completion times) is a pure fold of its own stream.

A comment or to-do inherits client visibility from its parent or list; that visibility is not
copied into the child's stream (it would go stale), so readers resolve it through
``parent_id`` / ``todolist_id``.

Files are named by :class:`StoredFile` (their bytes by SHA-256, never where they are kept).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Final, Literal

import msgspec

from .base import Event, FieldChange, register

RecordingKind = Literal[
    "message", "comment", "todolist", "todo", "milestone", "upload", "external_item"
]
RecordingStatus = Literal["active", "archived", "trashed"]

MAX_ATTACHMENTS: Final = 20
"""Most files one message or comment carries."""


class StoredFile(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A file as an event stores it: the shape of :class:`service.blobs.store.FileRef`,
    field for field (the blob collector finds files by their ``sha256`` keys in event data).

    Restated here because events sit beside the blob store in the layers, not above it:
    the domain turns a ``FileRef`` into this (``msgspec.convert`` of the same fields).
    """

    sha256: str
    size: int
    content_type: str
    name: str


@register
class MessagePosted(Event, frozen=True, kw_only=True, omit_defaults=True):
    """A message was posted on a project's message board.

    ``attachments`` came later, with a default (and left out of the data when empty, so a
    message without files is stored exactly as before).
    """

    recording_id: str
    project_id: str
    creator_id: str
    at: datetime
    subject: str
    body: str
    category: str | None
    visible_to_clients: bool
    subscriber_ids: tuple[str, ...]
    attachments: tuple[StoredFile, ...] = ()


@register
class MessageEdited(Event, frozen=True, kw_only=True):
    """A message's subject, body, category or attachments (the whole list) changed."""

    at: datetime
    changes: tuple[FieldChange, ...]


@register
class CommentAdded(Event, frozen=True, kw_only=True, omit_defaults=True):
    """A comment was added under another recording (its parent); ``attachments`` as for
    :class:`MessagePosted`."""

    recording_id: str
    project_id: str
    creator_id: str
    at: datetime
    parent_id: str
    parent_kind: RecordingKind
    content: str
    subscriber_ids: tuple[str, ...]
    attachments: tuple[StoredFile, ...] = ()


@register
class CommentEdited(Event, frozen=True, kw_only=True):
    """A comment's content or attachments (the whole list) changed."""

    at: datetime
    changes: tuple[FieldChange, ...]


@register
class TodolistCreated(Event, frozen=True, kw_only=True):
    """A to-do list was created."""

    recording_id: str
    project_id: str
    creator_id: str
    at: datetime
    name: str
    description: str | None
    visible_to_clients: bool
    subscriber_ids: tuple[str, ...]


@register
class TodolistEdited(Event, frozen=True, kw_only=True):
    """A to-do list's name or description changed."""

    at: datetime
    changes: tuple[FieldChange, ...]


@register
class TodoAdded(Event, frozen=True, kw_only=True):
    """A to-do was added at the end of a to-do list."""

    recording_id: str
    project_id: str
    creator_id: str
    at: datetime
    todolist_id: str
    content: str
    notes: str | None
    assignee_ids: tuple[str, ...]
    starts_on: date | None
    due_on: date | None
    subscriber_ids: tuple[str, ...]


@register
class TodoEdited(Event, frozen=True, kw_only=True):
    """A to-do's content, notes, assignees or dates changed."""

    at: datetime
    changes: tuple[FieldChange, ...]


@register
class TodoCompleted(Event, frozen=True, kw_only=True):
    """A to-do was completed by ``completer_id`` at ``at``."""

    at: datetime
    completer_id: str


@register
class TodoReopened(Event, frozen=True, kw_only=True):
    """A completed to-do was opened again."""

    at: datetime


@register
class TodoMoved(Event, frozen=True, kw_only=True):
    """A to-do took 1-based ``position`` in ``to_todolist_id`` (possibly the list it was in).

    The to-dos of the target list at ``position`` and after it move down by one.
    """

    at: datetime
    from_todolist_id: str
    to_todolist_id: str
    position: int


@register
class MilestoneCreated(Event, frozen=True, kw_only=True):
    """A milestone was set."""

    recording_id: str
    project_id: str
    creator_id: str
    at: datetime
    title: str
    due_on: date
    responsible_id: str | None
    notes: str | None
    visible_to_clients: bool
    subscriber_ids: tuple[str, ...]


@register
class MilestoneEdited(Event, frozen=True, kw_only=True):
    """A milestone's title, notes, responsible person or due date (a reschedule) changed."""

    at: datetime
    changes: tuple[FieldChange, ...]


@register
class MilestoneCompleted(Event, frozen=True, kw_only=True):
    """A milestone was completed by ``completer_id`` at ``at``."""

    at: datetime
    completer_id: str


@register
class MilestoneReopened(Event, frozen=True, kw_only=True):
    """A completed milestone was opened again."""

    at: datetime


@register
class UploadCreated(Event, frozen=True, kw_only=True):
    """A file was uploaded to a project: its version 1 is ``file``; ``folder`` is a name
    the uploads are grouped by (None: none)."""

    recording_id: str
    project_id: str
    creator_id: str
    at: datetime
    file: StoredFile
    description: str | None
    folder: str | None
    visible_to_clients: bool
    subscriber_ids: tuple[str, ...]


@register
class UploadEdited(Event, frozen=True, kw_only=True):
    """An upload's ``name`` (as shown and downloaded), description or folder changed."""

    at: datetime
    changes: tuple[FieldChange, ...]


@register
class UploadVersionAdded(Event, frozen=True, kw_only=True):
    """``adder_id`` added version ``n`` (2, 3, ...) of an upload's file; every earlier one
    is kept. The upload takes the new file's name."""

    at: datetime
    adder_id: str
    n: int
    file: StoredFile


@register
class ExternalItemPosted(Event, frozen=True, kw_only=True):
    """A new entry of an external feed (RSS/Atom) the project subscribes to was brought in,
    as a recording of kind ``external_item``, appended by the feed poller as Cairn
    (``creator_id`` is the person who subscribed).

    ``recording_id`` is derived from (``feed_id``, ``entry_key``), and the append expects no
    stream: an entry is posted once, across restarts and instances. ``summary`` is sanitised
    HTML; ``visible_to_clients`` the subscription's setting when the item was posted.
    """

    recording_id: str
    project_id: str
    creator_id: str
    at: datetime
    feed_id: str
    feed_title: str
    title: str
    link: str | None
    summary: str | None
    published_at: datetime | None
    entry_key: str
    visible_to_clients: bool
    subscriber_ids: tuple[str, ...] = ()


@register
class RecordingStatusChanged(Event, frozen=True, kw_only=True):
    """A recording was archived, trashed or made active again (nothing is ever deleted)."""

    at: datetime
    before: RecordingStatus
    after: RecordingStatus


@register
class ClientVisibilityChanged(Event, frozen=True, kw_only=True):
    """A recording that owns its client visibility was shown to or hidden from clients."""

    at: datetime
    before: bool
    after: bool


@register
class SubscriberAdded(Event, frozen=True, kw_only=True):
    """A person now receives notifications about a recording."""

    at: datetime
    person_id: str


@register
class SubscriberRemoved(Event, frozen=True, kw_only=True):
    """A person no longer receives notifications about a recording."""

    at: datetime
    person_id: str

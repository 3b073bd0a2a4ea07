"""Activity Streams 2.0: every activity kind and its AS2 vocabulary.

Each kind has a core AS2 activity type (:data:`AS_TYPES`); objects are typed by
:data:`OBJECT_TYPES`. AS2 has no "complete" or "archive": completing and reopening are
``Update``; archiving is ``Remove`` (out of the project's active items), trashing is
``Delete``, and restoring or unarchiving is ``Undo`` of that ``Remove`` or ``Delete``
(:func:`undone_type`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from ..events.base import FieldChange

AS_TYPES: Final[Mapping[str, str]] = {
    "message_posted": "Create",
    "message_edited": "Update",
    "comment_added": "Create",
    "comment_edited": "Update",
    "todolist_created": "Create",
    "todolist_edited": "Update",
    "todo_added": "Create",
    "todo_edited": "Update",
    "todo_assigned": "Update",
    "todo_rescheduled": "Update",
    "todo_completed": "Update",
    "todo_reopened": "Update",
    "todo_moved": "Move",
    "milestone_created": "Create",
    "milestone_edited": "Update",
    "milestone_rescheduled": "Update",
    "milestone_completed": "Update",
    "milestone_reopened": "Update",
    "milestone_due_soon": "Announce",
    "milestone_overdue": "Announce",
    "todo_due_soon": "Announce",
    "todo_overdue": "Announce",
    "upload_created": "Create",
    "upload_edited": "Update",
    "upload_version_added": "Update",
    "recording_archived": "Remove",
    "recording_trashed": "Delete",
    "recording_restored": "Undo",
    "recording_shown_to_clients": "Update",
    "recording_hidden_from_clients": "Update",
    "project_created": "Create",
    "project_edited": "Update",
    "project_archived": "Remove",
    "project_unarchived": "Undo",
    "project_trashed": "Delete",
    "project_restored": "Undo",
    "person_added_to_project": "Add",
    "project_role_changed": "Update",
    "person_removed_from_project": "Remove",
    "webhook_created": "Create",
    "webhook_disabled": "Update",
    "webhook_deleted": "Delete",
}
"""Every activity kind and its Activity Streams 2.0 activity type."""

KINDS: Final = frozenset(AS_TYPES)
"""Every activity kind (the values ``?kind=`` accepts)."""

OBJECT_TYPES: Final[Mapping[str, str]] = {
    "message": "Note",
    "comment": "Note",
    "todolist": "OrderedCollection",
    "todo": "Document",
    "milestone": "Event",
    "upload": "Document",
    "project": "Group",
    "person": "Person",
}
"""AS2 object type of each target type: messages and comments are ``Note`` (a message's
subject is its ``name``), a to-do list is the ``OrderedCollection`` of its to-dos, a to-do a
``Document``, a milestone an ``Event`` (its due date is ``endTime``), an upload a ``Document``, a
project a ``Group``."""


def undone_type(item_changes: Sequence[FieldChange]) -> str:
    """For an ``Undo`` (restore, unarchive): the type of the activity it undoes, from the
    status change it records (``Delete`` for a trashed item, else ``Remove``)."""
    for change in item_changes:
        if change.field == "status":
            return "Delete" if change.before == "trashed" else "Remove"
    return "Remove"

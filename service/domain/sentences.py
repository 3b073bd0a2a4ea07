"""Sentences: what a reader is told of an activity item.

An item becomes a sentence (:func:`sentence`) from names and titles the caller reads at
render time, so renaming a person or a to-do renames it in every past sentence too. Every
sentence template is here, one per activity kind; the caller gives the kind and the names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from ..events.recordings import RecordingKind
from .access import KIND_LABELS
from .as2 import KINDS

_TEMPLATES: Final[Mapping[str, str]] = {
    "message_posted": "{actor} posted the message {title}",
    "message_edited": "{actor} edited the message {title}",
    "comment_added": "{actor} commented on {parent}",
    "comment_edited": "{actor} edited a comment on {parent}",
    "todolist_created": "{actor} created the to-do list {title}",
    "todolist_edited": "{actor} edited the to-do list {title}",
    "todo_added": "{actor} added {title} to {parent}",
    "todo_edited": "{actor} edited {title}",
    "todo_assigned": "{actor} changed who is assigned to {title}",
    "todo_rescheduled": "{actor} changed the dates of {title}",
    "todo_completed": "{actor} completed {title}",
    "todo_reopened": "{actor} reopened {title}",
    "todo_moved": "{actor} moved {title} to {parent}",
    "milestone_created": "{actor} set the milestone {title}",
    "milestone_edited": "{actor} edited the milestone {title}",
    "milestone_rescheduled": "{actor} rescheduled the milestone {title}",
    "milestone_completed": "{actor} completed the milestone {title}",
    "milestone_reopened": "{actor} reopened the milestone {title}",
    "recording_archived": "{actor} archived {thing}",
    "recording_trashed": "{actor} put {thing} in the trash",
    "recording_restored": "{actor} restored {thing}",
    "recording_shown_to_clients": "{actor} made {thing} visible to clients",
    "recording_hidden_from_clients": "{actor} hid {thing} from clients",
    "project_created": "{actor} created the project {project}",
    "project_edited": "{actor} changed the project {project}",
    "project_archived": "{actor} archived the project {project}",
    "project_unarchived": "{actor} unarchived the project {project}",
    "project_trashed": "{actor} put the project {project} in the trash",
    "project_restored": "{actor} restored the project {project}",
    "person_added_to_project": "{actor} added {person} to {project}",
    "project_role_changed": "{actor} changed {person}’s role on {project}",
    "person_removed_from_project": "{actor} removed {person} from {project}",
}
assert set(_TEMPLATES) == KINDS


def quoted(text: str) -> str:
    """``text`` in curly double quotes, as sentences quote titles."""
    return f"“{text}”"


def sentence(
    kind: str,
    *,
    actor: str,
    title: str | None = None,
    recording_kind: RecordingKind | None = None,
    parent: str | None = None,
    person: str | None = None,
    project: str | None = None,
) -> str:
    """The human sentence of an activity of ``kind``: "Ana completed “Ship v1”".

    Args:
        actor: the actor's current name.
        title: the target recording's current title (unused for comments: they have none).
        recording_kind: the target's kind, for sentences naming it ("the to-do list “…”").
        parent: the current title of the commented recording (comment items) or of the list
            (``todo_added``, ``todo_moved``).
        person: the current name of the person a membership item is about.
        project: the project's current name.

    Missing names and titles read "someone", "an item" and so on, never "None".

    Raises:
        KeyError: ``kind`` is not an activity kind.
    """
    template = _TEMPLATES[kind]
    title_q = quoted(title) if title else "an untitled item"
    parent_q = quoted(parent) if parent else "an item"
    if recording_kind == "comment":
        thing = f"a comment on {parent_q}"
    elif recording_kind is not None:
        thing = f"the {KIND_LABELS[recording_kind]} {title_q}"
    else:
        thing = title_q
    return template.format(
        actor=actor or "Someone",
        title=title_q,
        parent=parent_q,
        thing=thing,
        person=person or "someone",
        project=quoted(project) if project else "a project",
    )

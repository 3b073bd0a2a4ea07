"""Sentences: what a reader is told of an activity item.

An item becomes a sentence (:func:`sentence`) from names and titles the caller reads at
render time, so renaming a person or a to-do renames it in every past sentence too. Every
sentence template is here, one per activity kind; the caller gives the kind, the names and
the reader's language (:mod:`service.domain.i18n`): the templates are English messages,
written in the reader's language from its catalog.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Final

from babel.dates import format_timedelta

from ..events.recordings import RecordingKind
from .as2 import KINDS
from .i18n import N_, Locale, translator
from .redaction import someone

_TEMPLATES: Final[Mapping[str, str]] = {
    "message_posted": N_("{actor} posted the message {title}"),
    "message_edited": N_("{actor} edited the message {title}"),
    "comment_added": N_("{actor} commented on {parent}"),
    "comment_edited": N_("{actor} edited a comment on {parent}"),
    "todolist_created": N_("{actor} created the to-do list {title}"),
    "todolist_edited": N_("{actor} edited the to-do list {title}"),
    "todo_added": N_("{actor} added {title} to {parent}"),
    "todo_edited": N_("{actor} edited {title}"),
    "todo_assigned": N_("{actor} changed who is assigned to {title}"),
    "todo_rescheduled": N_("{actor} changed the dates of {title}"),
    "todo_completed": N_("{actor} completed {title}"),
    "todo_reopened": N_("{actor} reopened {title}"),
    "todo_moved": N_("{actor} moved {title} to {parent}"),
    "milestone_created": N_("{actor} set the milestone {title}"),
    "milestone_edited": N_("{actor} edited the milestone {title}"),
    "milestone_rescheduled": N_("{actor} rescheduled the milestone {title}"),
    "milestone_completed": N_("{actor} completed the milestone {title}"),
    "milestone_reopened": N_("{actor} reopened the milestone {title}"),
    # Alerts are Cairn's: their sentences name no actor.
    "milestone_due_soon": N_("The milestone {title} is due soon"),
    "milestone_overdue": N_("The milestone {title} is overdue"),
    "todo_due_soon": N_("The to-do {title} is due soon"),
    "todo_overdue": N_("The to-do {title} is overdue"),
    "upload_created": N_("{actor} uploaded {title}"),
    "upload_edited": N_("{actor} edited the file {title}"),
    "upload_version_added": N_("{actor} replaced {title} with a new version"),
    # TRANSLATORS: {thing} is "the message “…”", "a comment on “…”" and so on.
    "recording_archived": N_("{actor} archived {thing}"),
    "recording_trashed": N_("{actor} put {thing} in the trash"),
    "recording_restored": N_("{actor} restored {thing}"),
    "recording_shown_to_clients": N_("{actor} made {thing} visible to clients"),
    "recording_hidden_from_clients": N_("{actor} hid {thing} from clients"),
    "project_created": N_("{actor} created the project {project}"),
    "project_edited": N_("{actor} changed the project {project}"),
    "project_archived": N_("{actor} archived the project {project}"),
    "project_unarchived": N_("{actor} unarchived the project {project}"),
    "project_trashed": N_("{actor} put the project {project} in the trash"),
    "project_restored": N_("{actor} restored the project {project}"),
    "person_added_to_project": N_("{actor} added {person} to {project}"),
    "project_role_changed": N_("{actor} changed {person}’s role on {project}"),
    "person_removed_from_project": N_("{actor} removed {person} from {project}"),
    # Webhooks: told to the project's team only (a hook's URL is private).
    "webhook_created": N_("{actor} added a webhook to {project}"),
    "webhook_disabled": N_("{actor} disabled a webhook of {project}: its deliveries failed"),
    "webhook_deleted": N_("{actor} deleted a webhook of {project}"),
}
assert set(_TEMPLATES) == KINDS

_DUE_IN: Final[Mapping[str, str]] = {
    # TRANSLATORS: {when} is how long until the end of the due date, with its direction, as
    # CLDR writes it in your language ("in 2 days": "dans 2 jours").
    "milestone_due_soon": N_("The milestone {title} is due {when}"),
    "todo_due_soon": N_("The to-do {title} is due {when}"),
}
"""The sentences of "due soon" alerts that know how long was left when they were raised
(``due_in`` of :func:`sentence`)."""

_THINGS: Final[Mapping[RecordingKind, str]] = {
    # TRANSLATORS: {thing} of "{actor} archived {thing}" and the like; {title} is quoted.
    "message": N_("the message {title}"),
    "comment": N_("a comment on {parent}"),
    "todolist": N_("the to-do list {title}"),
    "todo": N_("the to-do {title}"),
    "milestone": N_("the milestone {title}"),
    "upload": N_("the file {title}"),
}
"""How a sentence names a recording of each kind (``{thing}`` in :data:`_TEMPLATES`)."""


def quoted(text: str, locale: Locale) -> str:
    """``text`` quoted as sentences quote titles (English: in curly double quotes)."""
    # TRANSLATORS: how a title is quoted in a sentence.
    return translator(locale).gettext("“{text}”").format(text=text)


def sentence(
    kind: str,
    *,
    locale: Locale,
    actor: str,
    title: str | None = None,
    recording_kind: RecordingKind | None = None,
    parent: str | None = None,
    person: str | None = None,
    project: str | None = None,
    due_in: dt.timedelta | None = None,
) -> str:
    """The human sentence of an activity of ``kind``, in ``locale``: "Ana completed “Ship v1”".

    Args:
        locale: the reader's language.
        actor: the actor's current name (as the reader may be told it).
        title: the target recording's current title (unused for comments: they have none).
        recording_kind: the target's kind, for sentences naming it ("the to-do list “…”").
        parent: the current title of the commented recording (comment items) or of the list
            (``todo_added``, ``todo_moved``).
        person: the current name of the person a membership item is about.
        project: the project's current name.
        due_in: for a "due soon" alert, how long was left until the due date ended when it
            was raised ("is due in 2 days"; without it: "is due soon").

    Missing names and titles read "someone", "an item" and so on, never "None".

    Raises:
        KeyError: ``kind`` is not an activity kind.
    """
    t = translator(locale)
    template = t.gettext(_TEMPLATES[kind])
    when = ""
    if due_in is not None and kind in _DUE_IN:
        template = t.gettext(_DUE_IN[kind])
        when = format_timedelta(due_in, add_direction=True, locale=locale)
    title_q = quoted(title, locale) if title else t.gettext("an untitled item")
    parent_q = quoted(parent, locale) if parent else t.gettext("an item")
    if recording_kind is not None:
        thing = t.gettext(_THINGS[recording_kind]).format(title=title_q, parent=parent_q)
    else:
        thing = title_q
    return template.format(
        actor=actor or someone(locale),
        title=title_q,
        parent=parent_q,
        thing=thing,
        # TRANSLATORS: a person whose name is missing, inside a sentence.
        person=person or t.gettext("someone"),
        project=quoted(project, locale) if project else t.gettext("a project"),
        when=when,
    )

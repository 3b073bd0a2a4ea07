"""Notices: who is told of an event of a recording, and why (pure).

The notice worker (:mod:`service.workers.notices`) reads each recorded event of a
``recording-`` stream, gathers :class:`NoticeFacts` from the read models and asks
:func:`notice_of`; what it answers becomes one
:class:`~service.events.notices.PeopleNotified` in the log.

Who is told, per kind (:data:`~service.events.notices.NoticeKind`):

* ``message``: a message was posted: the people it subscribed.
* ``comment``: a comment was added: the people subscribed to what it comments on.
* ``assignment``: a to-do was assigned (on creation, or people added to its assignees by an
  edit), a milestone's responsible person was set: the people newly given it.
* the four alerts (``milestone_due_soon``…): the milestone's responsible person, the to-do's
  assignees.

Never the actor; only active people who may see the recording by the access rules
(:func:`~service.domain.access.can_see_recording`, the ones every channel applies): a
client is never told of an item hidden from clients, nor of the comments under it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Final

import msgspec

from ..events import alerts as al
from ..events import recordings as rc
from ..events.base import Event, FieldChange
from ..events.notices import NoticeKind
from ..events.recordings import RecordingKind
from .access import ProjectFacts, RecordingFacts, Viewer, can_see_recording
from .i18n import N_, Locale, translator
from .sentences import quoted, sentence

ALERT_KINDS: Final[Mapping[type[Event], NoticeKind]] = {
    al.MilestoneDueSoon: "milestone_due_soon",
    al.MilestoneOverdue: "milestone_overdue",
    al.TodoDueSoon: "todo_due_soon",
    al.TodoOverdue: "todo_overdue",
}
"""The alert events and the notice kind each gives."""


class NoticeFacts(msgspec.Struct, frozen=True, kw_only=True):
    """What :func:`notice_of` needs beyond the event, read by the caller.

    ``project`` and ``recording`` are the access facts of the event's project and recording
    (``recording``'s client visibility the effective one: a comment's is its parent's).
    ``subscribers``: the subscribers of the recording's parent for a comment (of the
    recording itself otherwise). ``assignees`` and ``responsible_id``: the recording's
    current ones (alerts). ``people``: each person who may be told, as a viewer (role and
    whether active); a person missing here is told nothing.
    """

    project: ProjectFacts | None
    recording: RecordingFacts | None
    parent_id: str | None = None
    subscribers: frozenset[str] = frozenset()
    assignees: frozenset[str] = frozenset()
    responsible_id: str | None = None
    people: Mapping[str, Viewer] = msgspec.field(default_factory=dict)


class Notice(msgspec.Struct, frozen=True, kw_only=True):
    """Who is told of one event, and why: ``recipient_ids`` sorted, never empty."""

    kind: NoticeKind
    recording_id: str
    thread_id: str
    recipient_ids: tuple[str, ...]


def candidates(event: Event, facts: NoticeFacts) -> tuple[NoticeKind, frozenset[str]] | None:
    """The kind of notice ``event`` gives and the people it would tell before the access
    rules and the actor are taken into account (None: the event tells nobody anything).

    What a caller must read for :class:`NoticeFacts` follows from it: the people named here.
    """
    match event:
        case rc.MessagePosted(subscriber_ids=subscribers):
            return "message", frozenset(subscribers)
        case rc.CommentAdded():
            return "comment", facts.subscribers
        case rc.TodoAdded(assignee_ids=assignees) if assignees:
            return "assignment", frozenset(assignees)
        case rc.TodoEdited(changes=changes):
            added = _added(changes, "assignee_ids")
            return ("assignment", added) if added else None
        case rc.MilestoneCreated(responsible_id=responsible) if responsible is not None:
            return "assignment", frozenset({responsible})
        case rc.MilestoneEdited(changes=changes):
            added = _added(changes, "responsible_id")
            return ("assignment", added) if added else None
        case al.MilestoneDueSoon() | al.MilestoneOverdue():
            told = {facts.responsible_id} if facts.responsible_id is not None else set()
            return ALERT_KINDS[type(event)], frozenset(told)
        case al.TodoDueSoon() | al.TodoOverdue():
            return ALERT_KINDS[type(event)], facts.assignees
    return None


_NO_FACTS: Final = NoticeFacts(project=None, recording=None)


def may_tell(event: Event) -> bool:
    """Whether ``event`` is of a kind that tells anyone anything (most edits, completions
    and status changes tell nobody): decided by the event alone, before any fact is read."""
    return candidates(event, _NO_FACTS) is not None


def notice_of(
    event: Event, recording_id: str, actor_id: str | None, facts: NoticeFacts
) -> Notice | None:
    """Who is told of ``event`` (of recording ``recording_id``'s stream, done by
    ``actor_id``; None or ``"system"`` for Cairn itself), or None when nobody is.

    The recipients are the :func:`candidates` who are not the actor, are people (never a
    service account), are active and may see the recording (:func:`~service.domain.access.can_see_recording` over ``facts``). A
    recording or project the read models no longer know tells nobody.
    """
    found = candidates(event, facts)
    if found is None or facts.project is None or facts.recording is None:
        return None
    kind, people = found
    told = sorted(
        person_id
        for person_id in people
        if person_id != actor_id and _may_see(facts.people.get(person_id), facts)
    )
    if not told:
        return None
    thread = facts.parent_id if isinstance(event, rc.CommentAdded) and facts.parent_id else None
    return Notice(
        kind=kind,
        recording_id=recording_id,
        thread_id=thread or recording_id,
        recipient_ids=tuple(told),
    )


def _may_see(viewer: Viewer | None, facts: NoticeFacts) -> bool:
    project, recording = facts.project, facts.recording
    if viewer is None or project is None or recording is None:
        return False
    if viewer.role == "service":
        # An integration reads the API; nobody tells it anything (no inbox, no mail).
        return False
    return viewer.active and can_see_recording(viewer, project, recording)


def _added(changes: Iterable[FieldChange], name: str) -> frozenset[str]:
    """The people a change of ``name`` (a list of ids, or one id or None) gave it to."""
    for change in changes:
        if change.field == name:
            return _ids(change.after) - _ids(change.before)
    return frozenset()


def _ids(value: object) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset({value})
    if isinstance(value, list | tuple):
        return frozenset(v for v in value if isinstance(v, str))
    return frozenset()


def notification_id(source_position: int, person_id: str) -> str:
    """The id of person ``person_id``'s notification of the event at ``source_position``:
    ``ntf_`` and 20 hex digits of SHA-256 over both, so a rebuild makes the same ids."""
    digest = hashlib.sha256(f"{source_position}:{person_id}".encode()).hexdigest()
    return f"ntf_{digest[:20]}"


# ----------------------------------------------------------------- summaries

_SUMMARIES: Final[Mapping[str, str]] = {
    "assignment_todo": N_("{actor} assigned you the to-do {title}"),
    "assignment_milestone": N_("{actor} made you responsible for the milestone {title}"),
    "milestone_due_soon": N_("The milestone {title} is due soon"),
    "milestone_overdue": N_("The milestone {title} is overdue"),
    "todo_due_soon": N_("The to-do {title} is due soon"),
    "todo_overdue": N_("The to-do {title} is overdue"),
    "invitation": N_("{actor} invited you to {project}"),
}
"""Sentences of the notices that are no activity's (the others are told as their activity
is: :func:`~service.domain.sentences.sentence`)."""


def summary(
    kind: NoticeKind,
    *,
    locale: Locale,
    actor: str,
    recording_kind: RecordingKind | None,
    title: str | None,
    thread_title: str | None,
    project: str | None,
) -> str:
    """The sentence telling a person of a notice of ``kind``, in ``locale``: "Ana posted the
    message “Kick-off”", "Ana assigned you the to-do “Ship v1”", "The milestone “Beta” is
    overdue".

    Args:
        actor: the actor's name as the reader may be told it (Cairn's for alerts).
        recording_kind: the kind of the recording told of (None: unknown).
        title: its current title; ``thread_title``: the current title of what a comment
            comments on; ``project``: the project's current name.
    """
    if kind == "message":
        return sentence("message_posted", locale=locale, actor=actor, title=title)
    if kind == "comment":
        return sentence("comment_added", locale=locale, actor=actor, parent=thread_title)
    t = translator(locale)
    key: str = kind
    if kind == "assignment":
        key = "assignment_milestone" if recording_kind == "milestone" else "assignment_todo"
    return t.gettext(_SUMMARIES[key]).format(
        actor=actor,
        title=quoted(title, locale) if title else t.gettext("an untitled item"),
        project=quoted(project, locale) if project else t.gettext("a project"),
    )

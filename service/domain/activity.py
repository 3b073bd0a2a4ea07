"""Activity: what a recorded event means to the people following a project.

Pure: an event, with what the caller knows about where it was recorded, becomes at most one
:class:`ActivityItem` (:func:`activity_of`): its kind and Activity Streams 2.0 type
(:mod:`service.domain.as2`), what it is about, and an excerpt (:mod:`service.domain.excerpts`),
stored in the source language and written in a reader's by :func:`excerpt_for`. What a
reader is told of an item is :mod:`service.domain.sentences`.

**What produces no activity.** Everything in people's streams and e-mail claim streams
(``PersonCreated``, ``PersonEdited``, ``TokenIssued``, ``FeedTokenRotated``, ``EmailClaimed``
...): account administration, not project work, and it belongs to no project, so no project's
followers could be told. ``SubscriberAdded`` and ``SubscriberRemoved``: notification
bookkeeping (an edit that assigns someone subscribes them as a side effect). The
``ProjectMemberAdded`` that seats a project's creator as owner (stream version 2, always
appended with ``ProjectCreated``): it is part of "created the project". Events this code does
not know (written by newer code) produce nothing either. Of webhooks (``webhook-<id>``), a
project's hook created, disabled or deleted is an item of that project that only its team
is told of (:data:`TEAM_ONLY`: a hook's URL is private); edits, rotations and account-wide
hooks make none.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

import msgspec

from ..events import alerts as al
from ..events import projects as pr
from ..events import recordings as rc
from ..events import webhooks as wh
from ..events.base import Event, FieldChange, RecordedEvent
from ..events.recordings import RecordingKind
from ..events.streams import is_project_stream, recording_id_of
from .as2 import AS_TYPES
from .excerpts import (
    as_role,
    clip,
    clip_written,
    describe_changes,
    due,
    due_parts,
    moved,
    plain_text,
    role_change,
    status_change,
    version,
)
from .i18n import SOURCE, Locale


class KnownRecording(msgspec.Struct, frozen=True, kw_only=True):
    """What an activity needs to know about a recording its event does not carry: its kind,
    project and, for a comment, the recording commented on (from the creation event)."""

    recording_id: str
    kind: RecordingKind
    project_id: str
    parent_id: str | None = None


class ActivityItem(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of an activity stream.

    ``recording_id``/``recording_kind`` name the recording the activity is about (None for
    project-level items). ``parent_id`` is the commented recording for comment items and the
    to-do's list for ``todo_added``/``todo_moved`` (the list moved to). ``person_id`` is the
    person a membership item is about.
    """

    kind: str
    as_type: str
    project_id: str
    actor_id: str | None
    at: datetime
    recording_id: str | None = None
    recording_kind: RecordingKind | None = None
    parent_id: str | None = None
    person_id: str | None = None
    excerpt: str | None = None
    changes: tuple[FieldChange, ...] = ()


def created_recording(event: Event) -> KnownRecording | None:
    """What a recording's creation event says about it; None for any other event."""
    match event:
        case rc.CommentAdded():
            return KnownRecording(
                recording_id=event.recording_id,
                kind="comment",
                project_id=event.project_id,
                parent_id=event.parent_id,
            )
        case (
            rc.MessagePosted() | rc.TodolistCreated() | rc.TodoAdded() | rc.MilestoneCreated()
            | rc.UploadCreated()
        ):  # fmt: skip
            return KnownRecording(
                recording_id=event.recording_id,
                kind=_CREATED_KIND[type(event)],
                project_id=event.project_id,
                parent_id=event.todolist_id if isinstance(event, rc.TodoAdded) else None,
            )
    return None


def activity_of(
    event: Event,
    *,
    stream_id: str,
    stream_version: int,
    project_id: str | None,
    actor_id: str | None,
    recorded_at: datetime,
    recording: KnownRecording | None = None,
) -> ActivityItem | None:
    """The activity ``event`` amounts to, or None (see the module docstring for which).

    Args:
        stream_id, stream_version, project_id, recorded_at: where and when it was recorded.
        actor_id: who caused it (the append's metadata).
        recording: what the creation event said about the recording whose stream this is
            (:func:`created_recording`). Required for the stream's other events: without it
            they produce nothing, there being nothing to say what they are about.
    """
    if isinstance(event, (rc.SubscriberAdded, rc.SubscriberRemoved)):
        return None
    if isinstance(event, _CREATED):
        known = recording if recording is not None else created_recording(event)
        assert known is not None
        return _created_item(event, known, actor_id)
    rec_id = recording_id_of(stream_id)
    if rec_id is not None:
        if recording is None or recording.recording_id != rec_id:
            return None
        return _recording_item(event, recording, actor_id)
    if is_project_stream(stream_id) and project_id is not None:
        return _project_item(event, stream_version, project_id, actor_id, recorded_at)
    if (
        isinstance(event, (wh.WebhookCreated, wh.WebhookDisabled, wh.WebhookDeleted))
        and event.project_id is not None
    ):
        # A project's hooks are its activity (for its team only: reads.visibility); the
        # account-wide ones belong to no project, and make none.
        kind = _WEBHOOK_KINDS[type(event)]
        return ActivityItem(
            kind=kind,
            as_type=AS_TYPES[kind],
            project_id=event.project_id,
            actor_id=actor_id,
            at=recorded_at,
        )
    return None


def recorded_activity(
    recorded: RecordedEvent, recording: KnownRecording | None = None
) -> ActivityItem | None:
    """:func:`activity_of` an event as the log holds it (where, when and by whom from
    ``recorded`` itself)."""
    return activity_of(
        recorded.event,
        stream_id=recorded.stream_id,
        stream_version=recorded.stream_version,
        project_id=recorded.project_id,
        actor_id=recorded.metadata.actor,
        recorded_at=recorded.recorded_at,
        recording=recording,
    )


_WEBHOOK_KINDS: Final[dict[type[Event], str]] = {
    wh.WebhookCreated: "webhook_created",
    wh.WebhookDisabled: "webhook_disabled",
    wh.WebhookDeleted: "webhook_deleted",
}
TEAM_ONLY: Final = frozenset(_WEBHOOK_KINDS.values())
"""Kinds of items only a project's team is told of, never its clients."""

_CREATED_KIND: Final[dict[type[Event], RecordingKind]] = {
    rc.MessagePosted: "message",
    rc.CommentAdded: "comment",
    rc.TodolistCreated: "todolist",
    rc.TodoAdded: "todo",
    rc.MilestoneCreated: "milestone",
    rc.UploadCreated: "upload",
}
_CREATED: Final = (
    rc.MessagePosted,
    rc.CommentAdded,
    rc.TodolistCreated,
    rc.TodoAdded,
    rc.MilestoneCreated,
    rc.UploadCreated,
)
_CREATED_ACTIVITY: Final[dict[RecordingKind, str]] = {
    "message": "message_posted",
    "comment": "comment_added",
    "todolist": "todolist_created",
    "todo": "todo_added",
    "milestone": "milestone_created",
    "upload": "upload_created",
}


def _created_item(event: Event, rec: KnownRecording, actor_id: str | None) -> ActivityItem:
    excerpt: str | None = None
    match event:
        case rc.MessagePosted():
            excerpt = event.subject
        case rc.CommentAdded():
            excerpt = plain_text(event.content)
        case rc.TodolistCreated():
            excerpt = event.name
        case rc.TodoAdded():
            excerpt = event.content
        case rc.MilestoneCreated():
            excerpt = due(event.title, event.due_on, SOURCE)
        case rc.UploadCreated():
            excerpt = event.file.name
    creation = event
    assert isinstance(creation, _CREATED)
    return ActivityItem(
        kind=_CREATED_ACTIVITY[rec.kind],
        as_type=AS_TYPES[_CREATED_ACTIVITY[rec.kind]],
        project_id=rec.project_id,
        actor_id=actor_id or creation.creator_id,
        at=creation.at,
        recording_id=rec.recording_id,
        recording_kind=rec.kind,
        parent_id=rec.parent_id,
        excerpt=clip(excerpt),
    )


_EDITED: Final[dict[type[Event], str]] = {
    rc.MessageEdited: "message_edited",
    rc.CommentEdited: "comment_edited",
    rc.TodolistEdited: "todolist_edited",
    rc.TodoEdited: "todo_edited",
    rc.MilestoneEdited: "milestone_edited",
    rc.UploadEdited: "upload_edited",
}
_STATUS_KIND: Final[dict[str, str]] = {
    "archived": "recording_archived",
    "trashed": "recording_trashed",
    "active": "recording_restored",
}


def _recording_item(event: Event, rec: KnownRecording, actor_id: str | None) -> ActivityItem | None:
    at: datetime | None = getattr(event, "at", None)
    if at is None:
        return None
    parent_id = rec.parent_id if rec.kind == "comment" else None
    changes: tuple[FieldChange, ...] = ()
    excerpt: str | None = None
    match event:
        case (
            rc.MessageEdited() | rc.CommentEdited() | rc.TodolistEdited() | rc.TodoEdited()
            | rc.MilestoneEdited() | rc.UploadEdited()
        ):  # fmt: skip
            kind = _edit_kind(_EDITED[type(event)], event.changes)
            changes = event.changes
            texts = [c for c in event.changes if c.field == "content"]
            if isinstance(event, rc.CommentEdited) and texts:
                excerpt = " ".join(plain_text(str(c.after)) for c in texts)
            else:
                excerpt = describe_changes(event.changes, SOURCE)
        case rc.TodoCompleted() | rc.MilestoneCompleted():
            kind = f"{rec.kind}_completed"
            actor_id = actor_id or event.completer_id
        case rc.TodoReopened() | rc.MilestoneReopened():
            kind = f"{rec.kind}_reopened"
        case al.MilestoneDueSoon() | al.TodoDueSoon():
            kind = f"{rec.kind}_due_soon"
            # When it ends: the sentence says how long after ``at`` ("due in 2 days").
            due_at = msgspec.to_builtins(event.due_at)
            changes = (FieldChange(field="due_at", before=None, after=due_at),)
        case al.MilestoneOverdue() | al.TodoOverdue():
            kind = f"{rec.kind}_overdue"
        case rc.UploadVersionAdded():
            kind = "upload_version_added"
            actor_id = actor_id or event.adder_id
            changes = (
                FieldChange(field="version", before=event.n - 1, after=event.n),
                FieldChange(field="name", before=None, after=event.file.name),
            )
            excerpt = version(event.n, SOURCE)
        case rc.TodoMoved():
            kind = "todo_moved"
            parent_id = event.to_todolist_id
            changes = (
                FieldChange(
                    field="todolist_id", before=event.from_todolist_id, after=event.to_todolist_id
                ),
                FieldChange(field="position", before=None, after=event.position),
            )
            excerpt = moved(event.position, SOURCE)
        case rc.RecordingStatusChanged():
            kind = _STATUS_KIND[event.after]
            changes = (FieldChange(field="status", before=event.before, after=event.after),)
            excerpt = status_change(event.before, event.after, SOURCE)
        case rc.ClientVisibilityChanged():
            kind = "recording_shown_to_clients" if event.after else "recording_hidden_from_clients"
            changes = (
                FieldChange(field="visible_to_clients", before=event.before, after=event.after),
            )
        case _:
            return None
    if kind not in AS_TYPES:
        # e.g. a completion event in the stream of a kind that cannot be completed.
        return None
    return ActivityItem(
        kind=kind,
        as_type=AS_TYPES[kind],
        project_id=rec.project_id,
        actor_id=actor_id,
        at=at,
        recording_id=rec.recording_id,
        recording_kind=rec.kind,
        parent_id=parent_id,
        excerpt=clip(excerpt),
        changes=changes,
    )


def _edit_kind(kind: str, changes: Sequence[FieldChange]) -> str:
    fields = {c.field for c in changes}
    if kind == "milestone_edited" and "due_on" in fields:
        return "milestone_rescheduled"
    if kind == "todo_edited":
        if "assignee_ids" in fields:
            return "todo_assigned"
        if fields and fields <= {"due_on", "starts_on"}:
            return "todo_rescheduled"
    return kind


_PROJECT_STATUS: Final[dict[type[Event], tuple[str, str, str]]] = {
    pr.ProjectArchived: ("project_archived", "active", "archived"),
    pr.ProjectUnarchived: ("project_unarchived", "archived", "active"),
    pr.ProjectTrashed: ("project_trashed", "active", "trashed"),
    pr.ProjectRestored: ("project_restored", "trashed", "active"),
}


def _project_item(
    event: Event,
    stream_version: int,
    project_id: str,
    actor_id: str | None,
    at: datetime,
) -> ActivityItem | None:
    person_id: str | None = None
    changes: tuple[FieldChange, ...] = ()
    excerpt: str | None = None
    match event:
        case pr.ProjectCreated():
            kind = "project_created"
            excerpt = event.name
        case pr.ProjectEdited():
            kind = "project_edited"
            changes = event.changes
            excerpt = describe_changes(event.changes, SOURCE)
        case pr.ProjectMemberAdded():
            if stream_version <= 2:
                return None  # the creator's seat as owner: part of project_created
            kind = "person_added_to_project"
            person_id = event.person_id
            changes = (FieldChange(field="project_role", before=None, after=event.project_role),)
            excerpt = as_role(event.project_role, SOURCE)
        case pr.ProjectMemberRoleChanged():
            kind = "project_role_changed"
            person_id = event.person_id
            changes = (FieldChange(field="project_role", before=event.before, after=event.after),)
            excerpt = role_change(event.before, event.after, SOURCE)
        case pr.ProjectMemberRemoved():
            kind = "person_removed_from_project"
            person_id = event.person_id
        case _ if type(event) in _PROJECT_STATUS:
            kind, before, after = _PROJECT_STATUS[type(event)]
            changes = (FieldChange(field="status", before=before, after=after),)
        case _:
            return None
    return ActivityItem(
        kind=kind,
        as_type=AS_TYPES[kind],
        project_id=project_id,
        actor_id=actor_id,
        at=at,
        person_id=person_id,
        excerpt=clip(excerpt),
        changes=changes,
    )


# ------------------------------------------------------------------ excerpts for a reader

_DESCRIBED: Final = frozenset(
    {
        "message_edited",
        "todolist_edited",
        "todo_edited",
        "todo_assigned",
        "todo_rescheduled",
        "milestone_edited",
        "milestone_rescheduled",
        "upload_edited",
        "project_edited",
    }
)
"""Kinds whose excerpt is :func:`~.excerpts.describe_changes` of their changes."""
_STATUS_KINDS: Final = frozenset(_STATUS_KIND.values())


def excerpt_for(
    kind: str, excerpt: str | None, changes: Sequence[FieldChange], locale: Locale
) -> str | None:
    """An item's excerpt as a reader of ``locale`` reads it.

    Args:
        kind: the item's kind.
        excerpt: the excerpt the item holds (:func:`activity_of`'s, in the source language).
        changes: the changes the item holds, as derived (before any redaction: the excerpt
            was made from them).

    The words Cairn wrote (:mod:`.excerpts`) are written again in ``locale`` from the
    changes, as :func:`activity_of` made them; what people wrote is kept as it is. In the
    source language, and whenever the changes do not say enough, the excerpt is given
    back unchanged.
    """
    if locale == SOURCE or excerpt is None:
        return excerpt
    if kind in _DESCRIBED:
        return clip_written(describe_changes(changes, locale))
    if kind == "milestone_created":
        parts = due_parts(excerpt)
        return excerpt if parts is None else clip_written(due(*parts, locale))
    change = changes[-1] if changes else None
    if change is None:
        return excerpt
    if kind == "upload_version_added" and changes[0].field == "version":
        return version(int(changes[0].after), locale)
    if kind == "todo_moved" and change.field == "position" and isinstance(change.after, int):
        return moved(change.after, locale)
    if kind in _STATUS_KINDS and change.field == "status":
        return status_change(str(change.before), str(change.after), locale)
    if kind == "project_role_changed" and change.field == "project_role":
        return role_change(str(change.before), str(change.after), locale)
    if kind == "person_added_to_project" and change.field == "project_role":
        return as_role(str(change.after), locale)
    return excerpt

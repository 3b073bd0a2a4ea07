"""Events of notices: who was told of what, and what they have read.

Streams:

| stream | what |
|---|---|
| ``notice-<position>`` | the people told of the event at ``position`` of the log (one event) |
| ``inbox-<person id>`` | a person marking their notifications read |

The notice worker (:mod:`service.workers.notices`) reads the log and appends one
:class:`PeopleNotified` per event that tells anyone anything, in the transaction that moves
its checkpoint: the decision of who was told (made with the access rules as they stood when
it was taken) is itself in the log, so the inbox read model is rebuilt from the log alone
and comes out identical, and mail (a delivery reader of these events) never re-decides.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from .base import Event, register

NoticeKind = Literal[
    "message",
    "comment",
    "assignment",
    "milestone_due_soon",
    "milestone_overdue",
    "todo_due_soon",
    "todo_overdue",
    "invitation",
]
"""Why people are told: a message they are subscribed to, a comment on something they are
subscribed to, a to-do assigned to them, an alert, an invitation."""


@register
class PeopleNotified(Event, frozen=True, kw_only=True):
    """The people in ``recipient_ids`` are told of the event at ``source_position``
    (stream ``notice-<source_position>``), for ``kind``.

    ``recording_id`` is the recording the notice is about (the comment's own id for a
    comment; its parent is ``thread_id``, the recording whose thread it belongs to, for
    mail threading). ``actor_id`` is who did it (None: Cairn itself, e.g. an alert).
    """

    source_position: int
    source_event_id: str
    source_type: str
    kind: NoticeKind
    project_id: str
    recording_id: str | None
    thread_id: str | None
    actor_id: str | None
    at: datetime
    recipient_ids: tuple[str, ...]


@register
class NotificationsRead(Event, frozen=True, kw_only=True):
    """The person (stream ``inbox-<person id>``) read these notifications."""

    notification_ids: tuple[str, ...]
    at: datetime


@register
class AllNotificationsRead(Event, frozen=True, kw_only=True):
    """The person read every notification up to the notice at log ``position`` (those
    they had when they asked)."""

    up_to_position: int
    at: datetime

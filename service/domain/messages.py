"""Messages on a project's message board."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from ..blobs.store import FileRef
from ..events.base import Event
from ..events.recordings import MessageEdited, MessagePosted
from . import files, text
from .access import Action, check
from .context import Context
from .edits import diff, not_null, patch_of
from .memberships import first_subscribers
from .projects import ProjectState, project_facts, require_writable
from .recordings import RecordingState, authorize, expect_kind, require_open

UNSET = msgspec.UNSET
_Unset = msgspec.UnsetType


class PostMessage(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Post a message; ``recording_id`` is made by the caller, ``body`` is HTML.

    ``subscriber_ids`` ``None`` subscribes everyone on the project who can see the message.
    ``attachments``: files the application layer resolved (never taken from a client as
    they are: a client names the files it uploaded, by attachable id).
    """

    recording_id: str
    subject: str
    body: str
    category: str | None = None
    visible_to_clients: bool = False
    subscriber_ids: tuple[str, ...] | None = None
    attachments: tuple[FileRef, ...] = ()


class EditMessage(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Merge-patch a message; ``category`` may be cleared with ``None``."""

    subject: text.Line | _Unset = UNSET
    body: text.Html | _Unset = UNSET
    category: text.OptionalLine | _Unset | None = UNSET


def decide_post_message(project: ProjectState, cmd: PostMessage, ctx: Context) -> list[Event]:
    """Staff post messages: ``[MessagePosted]`` for the new recording's stream.

    The author is always subscribed; clients only if the message is visible to them.

    Raises:
        NotFound, Forbidden: see :func:`~service.domain.access.check`.
        Conflict: the project is not active.
        InvalidCommand: a bad subject, body or category, or a subscriber who is not on the
            project (or is a client and the message is hidden from clients).
    """
    check(ctx.actor, Action.CREATE_RECORDING, project_facts(project))
    require_writable(project)
    visible = cmd.visible_to_clients
    subscribers = first_subscribers(
        project, ctx.actor.person_id, cmd.subscriber_ids, visible=visible
    )
    return [
        MessagePosted(
            recording_id=cmd.recording_id,
            project_id=project.project_id,
            creator_id=ctx.actor.person_id,
            at=ctx.now,
            subject=text.line("subject", cmd.subject),
            body=text.html("body", cmd.body),
            category=text.optional_line("category", cmd.category),
            visible_to_clients=visible,
            subscriber_ids=subscribers,
            attachments=files.attachments("attachments", cmd.attachments),
        )
    ]


def decide_edit_message(
    project: ProjectState,
    message: RecordingState,
    cmd: EditMessage,
    ctx: Context,
    attachments: Sequence[FileRef] | None = None,
) -> list[Event]:
    """Staff edit a message: ``[MessageEdited]``, or ``[]`` when nothing changes.

    Args:
        attachments: the message's files from now on (resolved by the application layer, as
            for :class:`PostMessage`); None leaves them as they are.

    Raises:
        NotFound: ``message`` is not a message, or see :func:`~service.domain.access.check`.
        Forbidden: see :func:`~service.domain.access.check`.
        Conflict: the project or the message is not active.
        InvalidCommand: a bad value.
    """
    expect_kind(message, "message")
    authorize(Action.EDIT_RECORDING, project, message, (), ctx)
    require_open(project, message)
    updates: dict[str, Any] = {}
    for field, value in patch_of(cmd).items():
        if field == "subject":
            updates[field] = text.line(field, not_null(field, value))
        elif field == "body":
            updates[field] = text.html(field, not_null(field, value))
        else:
            updates[field] = text.optional_line(field, value)
    if attachments is not None:
        updates["attachments"] = files.attachments("attachments", attachments)
    changes = diff(message, updates)
    return [MessageEdited(at=ctx.now, changes=changes)] if changes else []

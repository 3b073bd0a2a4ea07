"""Comments under any other recording; they inherit client visibility from their parent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from ..blobs.store import FileRef
from ..errors import InvalidCommand
from ..events.base import Event
from ..events.recordings import CommentAdded, CommentEdited
from . import files, text
from .access import Action
from .context import Context
from .edits import diff, not_null, patch_of
from .projects import ProjectState
from .recordings import Lineage, RecordingState, authorize, expect_kind, require_open

UNSET = msgspec.UNSET
_Unset = msgspec.UnsetType


class AddComment(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Comment on a recording; ``recording_id`` (the comment's) is made by the caller;
    ``attachments`` as for :class:`~service.domain.messages.PostMessage`."""

    recording_id: str
    content: str
    attachments: tuple[FileRef, ...] = ()


class EditComment(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Merge-patch a comment's HTML ``content``."""

    content: text.Html | _Unset = UNSET


def decide_add_comment(
    project: ProjectState,
    parent: RecordingState,
    cmd: AddComment,
    ctx: Context,
    lineage: Lineage = (),
) -> list[Event]:
    """Whoever sees ``parent`` comments on it (clients included): ``[CommentAdded]``.

    Args:
        lineage: the parent's lineage (e.g. its list when the parent is a to-do).

    Raises:
        NotFound: see :func:`~service.domain.access.check`.
        Conflict: the project, the parent or its lineage is not active.
        InvalidCommand: the parent is a comment, or the content is bad.
    """
    authorize(Action.COMMENT, project, parent, lineage, ctx)
    if parent.kind == "comment":
        raise InvalidCommand("parent_id", "a comment cannot be commented on; comment its parent")
    require_open(project, parent, lineage)
    return [
        CommentAdded(
            recording_id=cmd.recording_id,
            project_id=project.project_id,
            creator_id=ctx.actor.person_id,
            at=ctx.now,
            parent_id=parent.recording_id,
            parent_kind=parent.kind,
            content=text.html("content", cmd.content),
            subscriber_ids=(ctx.actor.person_id,),
            attachments=files.attachments("attachments", cmd.attachments),
        )
    ]


def decide_edit_comment(
    project: ProjectState,
    comment: RecordingState,
    cmd: EditComment,
    ctx: Context,
    lineage: Lineage,
    attachments: Sequence[FileRef] | None = None,
) -> list[Event]:
    """Its author (or an owner or admin) edits a comment: ``[CommentEdited]``, or ``[]``.

    Args:
        lineage: the comment's parent, then the parent's lineage.
        attachments: the comment's files from now on (see
            :func:`~service.domain.messages.decide_edit_message`); None leaves them.

    Raises:
        NotFound: ``comment`` is not a comment, or see :func:`~service.domain.access.check`.
        Forbidden: see :func:`~service.domain.access.check`.
        Conflict: the project, the comment or its lineage is not active.
        InvalidCommand: bad content.
    """
    expect_kind(comment, "comment")
    authorize(Action.EDIT_RECORDING, project, comment, lineage, ctx)
    require_open(project, comment, lineage)
    updates: dict[str, Any] = {f: text.html(f, not_null(f, v)) for f, v in patch_of(cmd).items()}
    if attachments is not None:
        updates["attachments"] = files.attachments("attachments", attachments)
    changes = diff(comment, updates)
    return [CommentEdited(at=ctx.now, changes=changes)] if changes else []

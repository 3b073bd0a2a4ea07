"""Uploads: files kept on a project, each a recording with every version it ever had."""

from __future__ import annotations

from typing import Any

import msgspec

from ..blobs.store import FileRef
from ..events.base import Event
from ..events.recordings import UploadCreated, UploadEdited, UploadVersionAdded
from . import text
from .access import Action, check
from .context import Context
from .edits import diff, not_null, patch_of
from .files import stored_file
from .memberships import first_subscribers
from .projects import ProjectState, project_facts, require_writable
from .recordings import RecordingState, authorize, expect_kind, require_open

UNSET = msgspec.UNSET
_Unset = msgspec.UnsetType


class CreateUpload(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Keep ``file`` on a project; ``recording_id`` is made by the caller, ``description``
    is HTML, ``folder`` a name uploads are grouped by.

    ``subscriber_ids`` ``None`` subscribes everyone on the project who can see the upload.
    """

    recording_id: str
    file: FileRef
    description: str | None = None
    folder: str | None = None
    visible_to_clients: bool = False
    subscriber_ids: tuple[str, ...] | None = None


class EditUpload(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Merge-patch an upload: its ``name`` (as shown and downloaded), ``description`` and
    ``folder`` (both may be cleared with ``None``)."""

    name: text.Line | _Unset = UNSET
    description: text.OptionalHtml | _Unset | None = UNSET
    folder: text.OptionalLine | _Unset | None = UNSET


def decide_create_upload(project: ProjectState, cmd: CreateUpload, ctx: Context) -> list[Event]:
    """Staff keep files on a project: ``[UploadCreated]`` for the new recording's stream.

    The uploader is always subscribed; clients only if the upload is visible to them.

    Raises:
        NotFound, Forbidden: see :func:`~service.domain.access.check`.
        Conflict: the project is not active.
        InvalidCommand: a bad file, description or folder, or a subscriber who is not on the
            project (or is a client and the upload is hidden from clients).
    """
    check(ctx.actor, Action.CREATE_RECORDING, project_facts(project))
    require_writable(project)
    visible = cmd.visible_to_clients
    subscribers = first_subscribers(
        project, ctx.actor.person_id, cmd.subscriber_ids, visible=visible
    )
    return [
        UploadCreated(
            recording_id=cmd.recording_id,
            project_id=project.project_id,
            creator_id=ctx.actor.person_id,
            at=ctx.now,
            file=stored_file("file", cmd.file),
            description=text.optional_html("description", cmd.description),
            folder=text.optional_line("folder", cmd.folder),
            visible_to_clients=visible,
            subscriber_ids=subscribers,
        )
    ]


def decide_edit_upload(
    project: ProjectState, upload: RecordingState, cmd: EditUpload, ctx: Context
) -> list[Event]:
    """Staff rename an upload, or change its description or folder: ``[UploadEdited]``, or
    ``[]`` when nothing changes.

    Raises:
        NotFound: ``upload`` is not an upload, or see :func:`~service.domain.access.check`.
        Forbidden: see :func:`~service.domain.access.check`.
        Conflict: the project or the upload is not active.
        InvalidCommand: a bad value.
    """
    expect_kind(upload, "upload")
    authorize(Action.EDIT_RECORDING, project, upload, (), ctx)
    require_open(project, upload)
    updates: dict[str, Any] = {}
    for field, value in patch_of(cmd).items():
        if field == "name":
            updates[field] = text.line(field, not_null(field, value))
        elif field == "description":
            updates[field] = text.optional_html(field, value)
        else:
            updates[field] = text.optional_line(field, value)
    changes = diff(upload, updates)
    return [UploadEdited(at=ctx.now, changes=changes)] if changes else []


def decide_add_version(
    project: ProjectState, upload: RecordingState, file: FileRef, ctx: Context
) -> list[Event]:
    """Whoever may edit an upload replaces its file: ``[UploadVersionAdded]`` numbered
    after the last version. Every version is kept, even one with the same bytes.

    Raises:
        NotFound: ``upload`` is not an upload, or see :func:`~service.domain.access.check`.
        Forbidden: see :func:`~service.domain.access.check`.
        Conflict: the project or the upload is not active.
        InvalidCommand: a bad file.
    """
    expect_kind(upload, "upload")
    authorize(Action.EDIT_RECORDING, project, upload, (), ctx)
    require_open(project, upload)
    return [
        UploadVersionAdded(
            at=ctx.now,
            adder_id=ctx.actor.person_id,
            n=len(upload.versions) + 1,
            file=stored_file("file", file),
        )
    ]

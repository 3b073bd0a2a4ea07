"""Commands that name files: uploads (create, edit, add a version) and messages and
comments with attachments.

Every function takes files already resolved to :class:`~service.blobs.store.FileRef` s:
turning what a client names (an attachable id) into a ``FileRef``, and making sure the
caller may attach it, is the caller's work before this layer. The domain does not look at
bytes, so a ``FileRef`` here need not exist in a blob store.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..blobs.store import FileRef
from ..domain.comments import AddComment, EditComment, decide_add_comment
from ..domain.context import Context
from ..domain.messages import EditMessage, PostMessage, decide_post_message
from ..domain.projects import ProjectState
from ..domain.recordings import Lineage, RecordingState
from ..domain.uploads import (
    CreateUpload,
    EditUpload,
    decide_add_version,
    decide_create_upload,
)
from ..events.base import Event
from .caller import Caller
from .recordings import change, create, edit_decision, load, load_project


async def create_upload(caller: Caller, project_id: str, cmd: CreateUpload) -> str:
    """Keep ``cmd.file`` on project ``project_id`` as upload ``cmd.recording_id``; answers
    its id once the read models show it.

    Raises:
        NotFound, Forbidden, Conflict, InvalidCommand: see
            :func:`~service.domain.uploads.decide_create_upload`.
    """
    project = await load_project(caller, project_id)
    events = decide_create_upload(project, cmd, caller.context())
    await create(caller, project.project_id, cmd.recording_id, events)
    return cmd.recording_id


async def edit_upload(caller: Caller, upload_id: str, cmd: EditUpload) -> None:
    """Merge-patch upload ``upload_id`` (see :func:`~service.domain.uploads.decide_edit_upload`)."""

    await change(caller, upload_id, edit_decision("upload", cmd), "upload")


async def add_version(caller: Caller, upload_id: str, file: FileRef) -> int:
    """Make ``file`` upload ``upload_id``'s new version; answers its number.

    Concurrency: two versions added at once are numbered from the same fold; the second
    append meets the first's stream version, and is decided again (numbered after it).

    Raises:
        NotFound, Forbidden, Conflict, InvalidCommand: see
            :func:`~service.domain.uploads.decide_add_version`.
    """
    numbers: list[int] = []

    def decide(p: ProjectState, r: RecordingState, _: Lineage, c: Context) -> list[Event]:
        events = decide_add_version(p, r, file, c)
        numbers.append(len(r.versions) + 1)
        return events

    await change(caller, upload_id, decide, "upload")
    return numbers[-1]


async def post_message(caller: Caller, project_id: str, cmd: PostMessage) -> str:
    """Post message ``cmd.recording_id`` (with ``cmd.attachments``) on ``project_id``.

    Raises:
        NotFound, Forbidden, Conflict, InvalidCommand: see
            :func:`~service.domain.messages.decide_post_message`.
    """
    project = await load_project(caller, project_id)
    events = decide_post_message(project, cmd, caller.context())
    await create(caller, project.project_id, cmd.recording_id, events)
    return cmd.recording_id


async def edit_message(
    caller: Caller,
    message_id: str,
    cmd: EditMessage,
    attachments: Sequence[FileRef] | None = None,
) -> None:
    """Merge-patch a message; ``attachments`` (None: unchanged) replaces its files."""
    await change(caller, message_id, edit_decision("message", cmd, attachments), "message")


async def add_comment(caller: Caller, parent_id: str, cmd: AddComment) -> str:
    """Comment ``cmd.recording_id`` (with ``cmd.attachments``) on recording ``parent_id``.

    Raises:
        NotFound, Forbidden, Conflict, InvalidCommand: see
            :func:`~service.domain.comments.decide_add_comment`.
    """
    parent = await load(caller, parent_id)
    events = decide_add_comment(
        parent.project, parent.recording, cmd, caller.context(), parent.lineage
    )
    await create(caller, parent.project.project_id, cmd.recording_id, events)
    return cmd.recording_id


async def edit_comment(
    caller: Caller,
    comment_id: str,
    cmd: EditComment,
    attachments: Sequence[FileRef] | None = None,
) -> None:
    """Edit a comment; ``attachments`` (None: unchanged) replaces its files."""
    await change(caller, comment_id, edit_decision("comment", cmd, attachments), "comment")

"""The files a viewer may download: an upload's versions and the attachments of messages
and comments, from the ``recordings`` read model (its ``upload_versions`` table and its
``attachments`` column).

A file is shown exactly when the recording that holds it is (:func:`.recordings.visible_row`,
the rule every read of a recording follows): whoever may not see the recording is told
nothing of its files, as if they did not exist. Signed links are checked elsewhere and read
a version with :func:`upload_version`, since the signature is their authority.
"""

from __future__ import annotations

from typing import Final

import asyncpg
import msgspec

from ..blobs.store import FileRef
from ..domain.access import Viewer
from ..errors import NotFound
from . import recordings

_VERSION: Final = (
    "SELECT sha256, size, content_type, name FROM upload_versions "
    "WHERE recording_id = $1 AND n = $2"
)
_attachments: Final = msgspec.json.Decoder(list[FileRef])


async def visible_file(
    pool: asyncpg.Pool,
    viewer: Viewer,
    recording_id: str,
    *,
    version: int | None = None,
    sha256: str | None = None,
) -> FileRef | None:
    """A file of recording ``recording_id`` that ``viewer`` may see, or None (no such
    recording or file, or the viewer may not see the recording).

    With ``sha256``: the attachment of that SHA-256 of a message or comment (the first, if
    it is attached twice). Otherwise the recording is an upload: its version ``version``,
    or its latest one when None.
    """
    try:
        row = await recordings.visible_row(
            pool, viewer, recording_id, None if sha256 is not None else "upload"
        )
    except NotFound:
        return None
    if sha256 is not None:
        for file in _attachments.decode(row["attachments"]):
            if file.sha256 == sha256:
                return file
        return None
    if version is None:
        if row["file_sha256"] is None:
            return None
        return FileRef(
            sha256=row["file_sha256"],
            size=row["file_size"],
            content_type=row["content_type"],
            name=row["file_name"],
        )
    return await upload_version(pool, recording_id, version)


async def latest_version(pool: asyncpg.Pool, viewer: Viewer, upload_id: str) -> int | None:
    """The number of upload ``upload_id``'s latest version, or None when ``viewer`` may not
    see it (or there is no such upload)."""
    try:
        row = await recordings.visible_row(pool, viewer, upload_id, "upload")
    except NotFound:
        return None
    count: int = row["versions_count"]
    return count or None


async def upload_version(pool: asyncpg.Pool, upload_id: str, version: int) -> FileRef | None:
    """Version ``version`` of upload ``upload_id``, whoever asks (None: there is none).
    For a caller that has settled access itself (a signed link's signature)."""
    row = await pool.fetchrow(_VERSION, upload_id, version)
    if row is None:
        return None
    return FileRef(
        sha256=row["sha256"], size=row["size"], content_type=row["content_type"], name=row["name"]
    )

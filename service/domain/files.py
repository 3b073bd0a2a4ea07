"""Files named by recordings: checking what the application layer resolved (a
:class:`~service.blobs.store.FileRef`) before an event stores it as a
:class:`~service.events.recordings.StoredFile`.

The domain never sees bytes: a file is its SHA-256, size, type and name, and whether those
bytes exist is the blob store's business (the application layer resolves attachables to
``FileRef`` s before deciding).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from ..blobs.store import FileRef
from ..errors import InvalidCommand
from ..events.recordings import MAX_ATTACHMENTS, StoredFile
from . import text

_SHA256: Final = re.compile(r"[0-9a-f]{64}")
_CONTENT_TYPE: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def stored_file(field: str, ref: FileRef) -> StoredFile:
    """``ref`` as an event stores it: its name a non-empty line of at most 255 characters
    (trimmed, no control characters), its key a hex SHA-256, its size not negative, its
    type a bare ``type/subtype`` (parameters dropped, lowercased).

    Raises:
        InvalidCommand: any of those is not so (``field`` names it).
    """
    if not _SHA256.fullmatch(ref.sha256):
        raise InvalidCommand(field, f"{field} must name a file by its hex SHA-256")
    if ref.size < 0:
        raise InvalidCommand(field, f"{field} has a negative size")
    content_type = ref.content_type.split(";", 1)[0].strip().lower()
    if not _CONTENT_TYPE.fullmatch(content_type):
        content_type = "application/octet-stream"
    return StoredFile(
        sha256=ref.sha256,
        size=ref.size,
        content_type=content_type,
        name=text.line(f"{field}.name", ref.name),
    )


def attachments(field: str, refs: Sequence[FileRef]) -> tuple[StoredFile, ...]:
    """A message's or comment's files, in the order given, each once (a repeated SHA-256
    is kept at its first place: a download URL names an attachment by it).

    Raises:
        InvalidCommand: more than :data:`~service.events.recordings.MAX_ATTACHMENTS`, or a
            bad file (see :func:`stored_file`).
    """
    if len(refs) > MAX_ATTACHMENTS:
        raise InvalidCommand(field, f"{field} may hold at most {MAX_ATTACHMENTS} files")
    files: dict[str, StoredFile] = {}
    for ref in refs:
        stored = stored_file(field, ref)
        files.setdefault(stored.sha256, stored)
    return tuple(files.values())

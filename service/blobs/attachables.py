"""Attachables: bytes uploaded, named and typed by their uploader, waiting to be attached.

``POST /v1/attachments`` stores the bytes (:meth:`BlobStore.put`) and then :func:`create`\\ s
an attachable naming them; a command that attaches files (an upload, a message's
attachments) :func:`claim`\\ s each attachable it was given before appending the event that
names its :class:`~service.blobs.store.FileRef`.

An attachable is usable only by its uploader: :func:`claim` knows none made by somebody
else (as if it did not exist), so an id seen in somebody's request cannot be used to
attach their file elsewhere. Claiming twice is allowed (a retried command claims again);
a claimed attachable's blob is kept for good, since an event may name it
(``cairn blobs gc``, :mod:`.collect`).
"""

from __future__ import annotations

import asyncpg

from .store import BlobInfo, FileRef


async def create(
    pool: asyncpg.Pool,
    attachable_id: str,
    blob: BlobInfo,
    *,
    name: str,
    content_type: str,
    created_by: str,
) -> None:
    """Record attachable ``attachable_id``: ``blob``'s bytes as ``name`` of ``content_type``,
    uploaded by ``created_by``.

    Raises:
        asyncpg.ForeignKeyViolationError: the blob is gone (``cairn blobs gc`` removed it
            between its upload and now: only with a grace shorter than the upload).
    """
    await pool.execute(
        "INSERT INTO attachables (attachable_id, sha256, name, content_type, size, created_by) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        attachable_id,
        blob.sha256,
        name,
        content_type,
        blob.size,
        created_by,
    )


async def claim(
    pool: asyncpg.Pool | asyncpg.Connection, attachable_id: str, person_id: str
) -> FileRef | None:
    """Mark attachable ``attachable_id`` attached (now) and return its file, or None when
    no attachable of that id was created by ``person_id``.

    The UPDATE takes the attachable's row lock: ``cairn blobs gc`` locks the same rows
    before it checks that they are unattached, so a claim either lands first (gc sees it
    attached and keeps the blob) or after gc removed the attachable (None). Given a
    connection, the claim is part of its caller's transaction.
    """
    row = await pool.fetchrow(
        "UPDATE attachables SET attached_at = coalesce(attached_at, now()) "
        "WHERE attachable_id = $1 AND created_by = $2 "
        "RETURNING sha256, size, content_type, name",
        attachable_id,
        person_id,
    )
    if row is None:
        return None
    return FileRef(
        sha256=row["sha256"], size=row["size"], content_type=row["content_type"], name=row["name"]
    )

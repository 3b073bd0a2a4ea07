"""The seam between Cairn and where files' bytes are kept.

Callers (uploads, downloads, ``cairn blobs``) see only :class:`BlobStore`. The default keeps
blobs in PostgreSQL (so several instances, ``pg_dump``, replicas and export see the same
files with nothing else to run); an S3-compatible store for large installations implements
the same protocol without touching callers.

Rules every implementation keeps:

* **Content-addressed**: a blob's key is the lowercase hex SHA-256 of its bytes; identical
  bytes are stored once, whoever uploads them and however many times.
* **Visible only once complete**: :meth:`BlobStore.stat` and :meth:`BlobStore.read` know a
  blob only after :meth:`BlobStore.put` has returned it; a failed, oversize or abandoned
  upload leaves nothing a reader can see (and nothing behind once cleaned up).
* **Streamed**: no method holds a whole blob in memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Protocol

import msgspec

from ..errors import TooLarge  # noqa: F401  (raised by put; re-exported for callers)


class BlobInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A complete blob: its key and its length in bytes."""

    sha256: str
    size: int


class FileRef(msgspec.Struct, frozen=True, kw_only=True):
    """A file as events and read models name it: its bytes by key, and what the uploader
    said of them (``name`` as given, made safe only when sent; ``content_type`` as given or
    sniffed, ``application/octet-stream`` when unknown)."""

    sha256: str
    size: int
    content_type: str
    name: str


class BlobStore(Protocol):
    """Where files' bytes are kept (see the module's rules)."""

    async def put(self, chunks: AsyncIterable[bytes], *, max_size: int) -> BlobInfo:
        """Store the bytes ``chunks`` yields, hashing them as they stream.

        Raises:
            TooLarge: more than ``max_size`` bytes arrived (raised as soon as they did;
                nothing is left behind).
        """
        ...

    async def stat(self, sha256: str) -> BlobInfo | None:
        """The complete blob with this key, or None."""
        ...

    def read(self, sha256: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The blob's bytes ``[start, end)`` (``end`` None: to its end), in chunks."""
        ...

    async def delete(self, sha256: str) -> None:
        """Forget the blob (``cairn blobs gc`` only: nothing else deletes)."""
        ...

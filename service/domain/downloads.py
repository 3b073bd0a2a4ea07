"""What a download answers, decided without I/O: the file's name as sent
(``Content-Disposition``), whether it may be shown inline, its content type as sent, which
bytes a ``Range`` asks for, and whether an ``If-None-Match`` or ``If-Range`` matches the
file's ETag.

A file's ETag is its SHA-256 (``"<sha256>"``): the same bytes have the same tag whatever
recording or version names them, and a strong tag, since the bytes are exactly those.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from typing import Final
from urllib.parse import quote

import msgspec

FALLBACK_NAME: Final = "download"
"""The name sent when nothing of the uploader's name survives cleaning."""

MAX_NAME_BYTES: Final = 200
"""Longest name sent, in UTF-8 bytes (its extension kept): long names make long headers, and
most file systems stop at 255 bytes."""

MAX_RANGES: Final = 16
"""More range specs than this in one ``Range`` and the header is ignored (200, the whole
file), as RFC 9110 §14.2 allows: many small or overlapping ranges cost the server far more
than they save the client."""

INLINE_TYPES: Final = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp"}
)
"""The only types shown inline: raster images, which run no script. Never SVG, HTML, XML,
PDF or text, which may carry scripts or be sniffed into something that does."""

OCTET_STREAM: Final = "application/octet-stream"

_BIDI: Final = frozenset("\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
"""Direction marks and overrides: ``evil\u202egpj.exe`` shows as ``evilexe.jpg``."""

# RFC 8187 attr-char, less the ALPHA / DIGIT that quote() keeps anyway.
_ATTR_CHAR_SAFE: Final = "!#$&+-.^_`|~"
# A token (RFC 9110 §5.6.2) / a token, with parameters whose values are tokens or quoted
# strings of visible ASCII: anything else is not sent as the stored type.
_TOKEN: Final = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_MEDIA_TYPE: Final = re.compile(
    rf"{_TOKEN}/{_TOKEN}(?:[ \t]*;[ \t]*{_TOKEN}=(?:{_TOKEN}|\"[\x20\x21\x23-\x5b\x5d-\x7e]*\"))*"
)
_RANGE_SPEC: Final = re.compile(r"([0-9]*)-([0-9]*)")
_ENTITY_TAG: Final = re.compile(r'\s*(\*|(?:W/)?"[\x21\x23-\x7e\x80-\xff]*")\s*(?:,|$)')


# ------------------------------------------------------------------ names


def clean_name(name: str) -> str:
    """The uploader's ``name`` made safe to send: its last path part (``../../etc/passwd``
    is ``passwd``), without control characters, direction marks, lone surrogates or
    leading and trailing dots and spaces, at most :data:`MAX_NAME_BYTES` long (cut before
    its extension); :data:`FALLBACK_NAME` when nothing is left."""
    name = unicodedata.normalize("NFC", "".join(c for c in name if not _unsafe(c)))
    name = re.split(r"[/\\]", name)[-1].strip(" .")
    if not name:
        return FALLBACK_NAME
    return _shortened(name)


def _unsafe(char: str) -> bool:
    return char in _BIDI or unicodedata.category(char) in ("Cc", "Cs")


def _shortened(name: str) -> str:
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension.encode()) > 16:
        stem, extension = name, ""
    suffix = f".{extension}" if extension else ""
    budget = MAX_NAME_BYTES - len(suffix.encode())
    cut = stem.encode()[:budget].decode(errors="ignore").rstrip(" .")
    return f"{cut}{suffix}" if cut else FALLBACK_NAME + suffix


def ascii_name(name: str) -> str:
    """The ASCII stand-in of a cleaned name for the ``filename=`` parameter: letters without
    their accents (``é`` is ``e``), ``_`` for every run of anything else unsafe in a quoted
    string or taken for an escape by some browsers (``"``, ``\\``, ``%``, non-ASCII); its
    stem :data:`FALLBACK_NAME` when no letter or digit is left."""
    out: list[str] = []
    for char in unicodedata.normalize("NFKD", name):
        if unicodedata.category(char) == "Mn":
            continue
        if " " <= char <= "~" and char not in '"\\%':
            out.append(char)
        elif not out or out[-1] != "_":
            out.append("_")
    fallback = "".join(out).lstrip("_ ").rstrip("_ .")
    stem, dot, extension = fallback.rpartition(".")
    if not dot:
        stem, extension = fallback, ""
    if not any(c.isalnum() for c in stem):
        stem = FALLBACK_NAME
    return f"{stem}.{extension}" if extension.strip("_") else stem


def content_disposition(name: str, inline: bool) -> str:
    """The ``Content-Disposition`` of a file named ``name`` (RFC 6266): ``attachment`` or
    ``inline``, an ASCII ``filename=`` for old clients and ``filename*=`` (RFC 8187) with
    the cleaned name in UTF-8, which every current browser prefers."""
    cleaned = clean_name(name)
    kind = "inline" if inline else "attachment"
    encoded = quote(cleaned, safe=_ATTR_CHAR_SAFE)
    return f"{kind}; filename=\"{ascii_name(cleaned)}\"; filename*=UTF-8''{encoded}"


# ------------------------------------------------------------------ types


def media_type(content_type: str) -> str:
    """The media type of a ``Content-Type`` value, lowercased, without parameters."""
    return content_type.split(";", 1)[0].strip().lower()


def inline_allowed(content_type: str) -> bool:
    """Whether a file of this type may be shown inline: raster images only
    (:data:`INLINE_TYPES`)."""
    return media_type(content_type) in INLINE_TYPES


def sent_content_type(content_type: str) -> str:
    """The stored type as sent: itself when it is a well-formed media type (parameters
    included), else ``application/octet-stream`` (never a header value that breaks the
    response or smuggles another header)."""
    return content_type if _MEDIA_TYPE.fullmatch(content_type) else OCTET_STREAM


# ------------------------------------------------------------------ ranges


class ByteRange(msgspec.Struct, frozen=True):
    """Bytes ``first`` to ``last`` of a file, both included (as ``Content-Range`` says)."""

    first: int
    last: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1

    def content_range(self, size: int) -> str:
        """This range's ``Content-Range`` in a file of ``size`` bytes."""
        return f"bytes {self.first}-{self.last}/{size}"


class RangeAnswer(enum.Enum):
    """What a ``Range`` header asks when it asks for no particular bytes."""

    FULL = "full"
    """No ``Range`` header: the whole file, 200."""
    IGNORE = "ignore"
    """A header to ignore (not ``bytes``, malformed, too many ranges): the whole file, 200."""
    UNSATISFIABLE = "unsatisfiable"
    """Well-formed, but no range overlaps the file: 416, ``Content-Range: bytes */size``."""


def parse_range(header: str | None, size: int) -> tuple[ByteRange, ...] | RangeAnswer:
    """The ranges of a file of ``size`` bytes that ``Range: header`` asks for (RFC 9110 §14).

    Returns the ranges to send, in ascending order, overlapping and adjacent ones merged
    into one (so a part is never sent twice, and many tiny ranges cost no more than their
    span), the ones wholly past the end dropped and the ones running past it cut at its
    end; or a :class:`RangeAnswer` when no particular bytes are to be sent. A suffix range
    (``-N``) of an empty file asks for all of it: the whole (empty) file, :attr:`FULL`.
    """
    if header is None:
        return RangeAnswer.FULL
    unit, eq, spec_set = header.partition("=")
    if not eq or unit.strip().lower() != "bytes":
        return RangeAnswer.IGNORE
    specs = [s.strip() for s in spec_set.split(",")]
    specs = [s for s in specs if s]  # empty list elements are allowed (RFC 9110 §5.6.1)
    if not specs or len(specs) > MAX_RANGES:
        return RangeAnswer.IGNORE
    wanted: list[ByteRange] = []
    whole = False
    for spec in specs:
        match = _RANGE_SPEC.fullmatch(spec)
        if match is None:
            return RangeAnswer.IGNORE
        first, last = match.groups()
        if first:
            start = int(first)
            if last and int(last) < start:
                return RangeAnswer.IGNORE
            if start < size:
                end = min(int(last), size - 1) if last else size - 1
                wanted.append(ByteRange(start, end))
        elif last:
            suffix = int(last)
            if suffix == 0:
                continue
            if size == 0:
                whole = True
            else:
                wanted.append(ByteRange(max(size - suffix, 0), size - 1))
        else:
            return RangeAnswer.IGNORE  # a lone "-"
    if not wanted:
        return RangeAnswer.FULL if whole else RangeAnswer.UNSATISFIABLE
    return _merged(wanted)


def _merged(ranges: list[ByteRange]) -> tuple[ByteRange, ...]:
    merged: list[ByteRange] = []
    for r in sorted(ranges, key=lambda r: r.first):
        if merged and r.first <= merged[-1].last + 1:
            if r.last > merged[-1].last:
                merged[-1] = ByteRange(merged[-1].first, r.last)
        else:
            merged.append(r)
    return tuple(merged)


def unsatisfiable_range(size: int) -> str:
    """The ``Content-Range`` of a 416 answer for a file of ``size`` bytes."""
    return f"bytes */{size}"


# ------------------------------------------------------------------ ETags


def etag_of(sha256: str) -> str:
    """The strong ETag of a file's bytes: their SHA-256, quoted."""
    return f'"{sha256}"'


def _tags(header: str) -> list[str] | None:
    """The entity tags of an ``If-None-Match`` / ``If-Range``-like list, or None when the
    list is malformed."""
    tags: list[str] = []
    at = 0
    while at < len(header):
        if header[at] in " \t,":
            at += 1
            continue
        match = _ENTITY_TAG.match(header, at)
        if match is None:
            return None
        tags.append(match[1])
        at = match.end()
    return tags


def if_none_match(header: str | None, etag: str) -> bool:
    """Whether ``If-None-Match: header`` matches ``etag`` (RFC 9110 §13.1.2: weak
    comparison, so ``W/"x"`` matches ``"x"``; ``*`` matches any file). A malformed header
    matches nothing (the file is sent)."""
    if not header:
        return False
    tags = _tags(header)
    if not tags:
        return False
    return any(t == "*" or t.removeprefix("W/") == etag for t in tags)


def if_range_allows(header: str | None, etag: str) -> bool:
    """Whether ``If-Range: header`` lets the ``Range`` apply (RFC 9110 §13.1.5): it is
    absent, or it is ``etag`` by strong comparison. A date or any other tag means the
    client holds other bytes: the whole file is sent instead."""
    return header is None or header.strip() == etag


def image_type(head: bytes) -> str | None:
    """The raster image type the first bytes of a file announce (its signature, not its
    name or the type its uploader claimed), or None: PNG, JPEG, GIF and WebP. Twelve bytes
    are enough."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(head) >= 12 and head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    return None

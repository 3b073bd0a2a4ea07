"""Checking and cleaning text fields: plain single lines, HTML bodies, e-mail addresses.

Every function raises :class:`~service.errors.InvalidCommand` naming the field. Characters
that XML 1.0 refuses are never stored: feeds and e-mail render this text later, and feed
generators crash on them.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

import msgspec
import nh3

from ..errors import InvalidCommand

MAX_LINE: Final = 255
"""Longest subject, title or name, in characters."""
MAX_CONTENT: Final = 1_000
"""Longest to-do content, in characters."""
MAX_HTML_BYTES: Final = 100_000
"""Longest HTML body (message body, comment, notes, description), in UTF-8 bytes, as sent."""

HTML_TAGS: Final = frozenset(
    {"p", "br", "strong", "em", "b", "i", "a", "ul", "ol", "li", "blockquote", "code", "pre"}
    | {"h1", "h2", "h3"}
)
# What the functions below accept, as JSON Schema for the fields of commands and requests. The
# checks themselves stay in the functions: these only document them, a little stricter where
# a schema cannot say quite the same (a length counted before trimming; bytes as characters).
# Patterns exclude NUL, which the HTTP layer refuses in any string before these are called.
_CONTROLS: Final = r"\x00-\x1f\x7f-\x9f\u2028\u2029\ufffe\uffff"
# White space as str.strip() and Python's \s take it, spelt out: the regexes of JSON Schema
# (ECMA 262) give \s another set (U+FEFF in; U+001C-U+001F and U+0085 out).
_SPACE: Final = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_ONE_LINE: Final = rf"^[^{_CONTROLS}]*[^{_SPACE}{_CONTROLS}][^{_CONTROLS}]*$"


def _documented(**schema: object) -> msgspec.Meta:
    return msgspec.Meta(extra_json_schema=schema)


Line = Annotated[str, _documented(maxLength=MAX_LINE, pattern=_ONE_LINE)]
"""A required single line (subject, title, name): not blank, no control characters."""
OptionalLine = Annotated[
    str, _documented(maxLength=MAX_LINE, pattern=rf"^[{_SPACE}]*$|^[^{_CONTROLS}]*$")
]
"""An optional single line (blank means none)."""
Content = Annotated[str, _documented(maxLength=MAX_CONTENT, pattern=_ONE_LINE)]
"""A to-do's one line of content."""
_HTML_DOC: Final = (
    f"HTML, sanitised to the tags {', '.join(sorted(HTML_TAGS))}; "
    f"at most {MAX_HTML_BYTES:,} bytes of UTF-8"
)
Html = Annotated[
    str,
    _documented(
        maxLength=MAX_HTML_BYTES,
        pattern=rf"^[^\x00]*[^{_SPACE}\x00][^\x00]*$",
        description=_HTML_DOC,
    ),
]
"""A required HTML body (some text must be left once sanitised)."""
OptionalHtml = Annotated[str, _documented(maxLength=MAX_HTML_BYTES, description=_HTML_DOC)]
"""An optional HTML body."""
Email = Annotated[
    str,
    _documented(
        maxLength=MAX_LINE,
        pattern=rf"^[{_SPACE}]*[^@{_SPACE}\x00]+@[^@{_SPACE}\x00]+\.[^@{_SPACE}.\x00]+[{_SPACE}]*$",
    ),
]
"""An e-mail address of plausible shape."""
Position = Annotated[int, _documented(minimum=1)]
"""A 1-based place in a list."""

_HTML_ATTRIBUTES: Final = {"a": {"href"}, "*": set[str]()}
_URL_SCHEMES: Final = {"http", "https", "mailto"}
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ufffe\uffff]")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
_TOKEN_HASH = re.compile(r"[0-9a-f]{64}")


def line(field: str, value: str, *, max_length: int = MAX_LINE) -> str:
    """A required single line: trimmed, non-empty, no control characters, not too long."""
    text = value.strip()
    if not text:
        raise InvalidCommand(field, f"{field} must not be empty")
    if _CONTROL.search(text):
        raise InvalidCommand(field, f"{field} must be one line without control characters")
    if len(text) > max_length:
        raise InvalidCommand(field, f"{field} must be at most {max_length} characters")
    return text


def optional_line(field: str, value: str | None, *, max_length: int = MAX_LINE) -> str | None:
    """Like :func:`line`, but ``None`` or blank means "none" and gives ``None``."""
    if value is None or not value.strip():
        return None
    return line(field, value, max_length=max_length)


def html(field: str, value: str) -> str:
    """A required HTML body, sanitised to :data:`HTML_TAGS` (links keep only ``href``)."""
    cleaned = optional_html(field, value)
    if cleaned is None:
        raise InvalidCommand(field, f"{field} must not be empty")
    return cleaned


def optional_html(field: str, value: str | None) -> str | None:
    """Like :func:`html`, but ``None`` or a body with no text left gives ``None``."""
    if value is None:
        return None
    if len(value.encode()) > MAX_HTML_BYTES:
        raise InvalidCommand(field, f"{field} must be at most {MAX_HTML_BYTES} bytes")
    cleaned = nh3.clean(
        _XML_INVALID.sub("", value),
        tags=set(HTML_TAGS),
        attributes=_HTML_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    ).strip()
    if not nh3.clean(cleaned, tags=set()).strip():
        return None
    return cleaned


def email(field: str, value: str) -> str:
    """A trimmed e-mail address of plausible shape (``name@domain.tld``)."""
    text = value.strip()
    if len(text) > MAX_LINE or not _EMAIL.fullmatch(text):
        raise InvalidCommand(field, f"{field} must be an e-mail address")
    return text


def token_hash(field: str, value: str) -> str:
    """A hex SHA-256 digest (64 lowercase hex digits)."""
    if not _TOKEN_HASH.fullmatch(value):
        raise InvalidCommand(field, f"{field} must be a hex SHA-256 digest")
    return value

"""Excerpts: the short plain text an activity item carries beside its sentence.

An excerpt is made when the item is derived (:func:`service.domain.activity.activity_of`) and
stored with it, so it reads as the event had it (sentences are made at render time). The
rebuild's set-based pass computes the same excerpts in SQL (:mod:`service.projections.bulk`,
:mod:`service.projections.activity`): a change here must be made there too.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Final

from ..events.base import FieldChange

MAX_EXCERPT: Final = 200
"""Longest excerpt, in characters (an ellipsis marks a cut)."""

_HTML_FIELDS: Final = frozenset({"body", "notes", "description"})
_SPACE = re.compile(r"\s+")
_CLEAN = re.compile(r"\S+(?: \S+)*")
_TAG = re.compile(r"<[^>]*>")
_BLOCK_END = re.compile(r"<(?:br|/p|/li|/h[1-3]|/blockquote|/pre)\b[^>]*>")


def plain_text(value: str) -> str:
    """The text of a sanitised HTML fragment (as stored: see :mod:`service.domain.text`):
    tags dropped, entities decoded, whitespace collapsed.

    Only for stored text: sanitising escapes every ``<`` that is not a tag, which is what
    makes dropping ``<...>`` enough (and much cheaper than parsing, over a rebuild).
    """
    # Block ends become spaces so "<p>a</p><p>b</p>" reads "a b", not "ab".
    spaced = _BLOCK_END.sub(" ", value)
    return _SPACE.sub(" ", html.unescape(_TAG.sub("", spaced))).strip()


def clip(text: str | None, limit: int = MAX_EXCERPT) -> str | None:
    """``text`` cut to ``limit`` characters at a word boundary with an ellipsis; blank gives
    None."""
    if text is None:
        return None
    if not _CLEAN.fullmatch(text):
        text = _SPACE.sub(" ", text).strip()
    if not text:
        return None
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"


def describe_changes(changes: Sequence[FieldChange]) -> str:
    """A short plain-text account of an edit: "due_on 2026-05-01 → 2026-05-08; body".

    HTML fields and lists are only named; other values are shown before and after.
    """
    parts = []
    for change in changes:
        field = change.field
        if field in _HTML_FIELDS or isinstance(change.after, list | dict):
            parts.append(field)
        else:
            parts.append(f"{field} {_short(change.before)} → {_short(change.after)}")
    return "; ".join(parts)


def _short(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    return text if len(text) <= 60 else text[:59] + "…"

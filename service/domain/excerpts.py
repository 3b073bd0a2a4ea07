"""Excerpts: the short plain text an activity item carries beside its sentence.

An excerpt is made when the item is derived (:func:`service.domain.activity.activity_of`) and
stored with it, so it reads as the event had it (sentences are made at render time). The
rebuild's set-based pass computes the same excerpts in SQL (:mod:`service.projections.bulk`,
:mod:`service.projections.activity`): a change here must be made there too.

What people wrote (a title, a comment) is stored as they wrote it; the words Cairn adds (the
fragments below: "to position 3", "due_on 2026-05-01 → 2026-05-08", "none", "as member")
are stored in the source language, and written again in a reader's language when the item
is shown (:func:`service.domain.activity.excerpt_for`), from the item's changes.
"""

from __future__ import annotations

import contextlib
import functools
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final

from ..events.base import FieldChange
from .i18n import Locale, Translator, translator

MAX_EXCERPT: Final = 200
"""Longest excerpt, in characters (an ellipsis marks a cut)."""

_HTML_FIELDS: Final = frozenset({"body", "notes", "description"})
_DATE_FIELDS: Final = frozenset({"due_on", "starts_on"})
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_SPACE = re.compile(r"\s+")
_CLEAN = re.compile(r"\S+(?: \S+)*")
_BREAKING_SPACE = re.compile(r"[^\S\u00a0\u202f]+")
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
    return _cut(text, limit)


def clip_written(text: str, limit: int = MAX_EXCERPT) -> str | None:
    """:func:`clip` for a text Cairn wrote in a reader's language: its no-break spaces are
    kept (French typography puts them before ":" and ";" and inside « »), other whitespace
    collapses as :func:`clip` collapses it."""
    return _cut(_BREAKING_SPACE.sub(" ", text).strip(), limit)


def _cut(text: str, limit: int) -> str | None:
    if not text:
        return None
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"


def describe_changes(changes: Sequence[FieldChange], locale: Locale) -> str:
    """A short plain-text account of an edit, in ``locale``: "due_on 2026-05-01 → 2026-05-08;
    body".

    HTML fields and lists are only named; other values are shown before and after.
    """
    t = translator(locale)
    words = _words(locale)
    parts = []
    for change in changes:
        field = words.fields.get(change.field, change.field)
        if change.field in _HTML_FIELDS or isinstance(change.after, list | dict):
            parts.append(field)
        else:
            before = _short(t, change.field, change.before)
            after = _short(t, change.field, change.after)
            # TRANSLATORS: one change of an edit: a field's name, its value before and after.
            text = t.gettext("{field} {before} → {after}")
            parts.append(text.format(field=field, before=before, after=after))
    # TRANSLATORS: what separates the changes of one edit.
    return t.gettext("; ").join(parts)


def moved(position: int, locale: Locale) -> str:
    """Where a to-do was moved to, in ``locale``: "to position 3"."""
    t = translator(locale)
    return t.gettext("to position {position}").format(position=t.number(position))


def version(n: int, locale: Locale) -> str:
    """An upload's new version, in ``locale``: "now at version 2"."""
    t = translator(locale)
    # TRANSLATORS: the excerpt of "replaced “plan.pdf” with a new version".
    return t.gettext("now at version {n}").format(n=t.number(n))


def due(title: str, due_on: date, locale: Locale) -> str:
    """A new milestone's title and date, in ``locale``: "Launch (due 2026-05-01)"."""
    t = translator(locale)
    return t.gettext("{title} (due {date})").format(title=title, date=t.date(due_on))


def due_parts(excerpt: str) -> tuple[str, date] | None:
    """The title and date of a :func:`due` excerpt written in the source language (None when
    it is not one, or was cut before its date)."""
    found = _DUE.fullmatch(excerpt)
    if found is None:
        return None
    try:
        return found[1], date.fromisoformat(found[2])
    except ValueError:
        return None


def status_change(before: str, after: str, locale: Locale) -> str:
    """A change of status (``active``, ``archived``, ``trashed``), in ``locale``:
    "active → archived"."""
    statuses = _words(locale).statuses
    return _arrow(locale, statuses.get(before, before), statuses.get(after, after))


def role_change(before: str, after: str, locale: Locale) -> str:
    """A change of project role, in ``locale``: "member → owner"."""
    roles = _words(locale).roles
    return _arrow(locale, roles.get(before, before), roles.get(after, after))


def as_role(role: str, locale: Locale) -> str:
    """The role a person joined a project with, in ``locale``: "as member"."""
    t = translator(locale)
    return t.gettext("as {role}").format(role=_words(locale).roles.get(role, role))


def _arrow(locale: Locale, before: str, after: str) -> str:
    # TRANSLATORS: a value before and after a change.
    return translator(locale).gettext("{before} → {after}").format(before=before, after=after)


_DUE = re.compile(r"(.*) \(due (\d{4}-\d{2}-\d{2})\)", re.DOTALL)
"""A :func:`due` excerpt in the source language."""


def _short(t: Translator, field: str, value: object) -> str:
    if value is None:
        # TRANSLATORS: a field's value when it has none (e.g. no due date).
        return t.gettext("none")
    if isinstance(value, bool):
        return t.gettext("yes") if value else t.gettext("no")
    if isinstance(value, int):
        return t.number(value)
    if field in _DATE_FIELDS and isinstance(value, str) and _ISO_DATE.fullmatch(value):
        with contextlib.suppress(ValueError):
            return t.date(date.fromisoformat(value))
    text = str(value)
    return text if len(text) <= 60 else text[:59] + "…"


@dataclass(frozen=True)
class _Words:
    """The words of one language for the values Cairn names in excerpts, by their value."""

    fields: Mapping[str, str]
    statuses: Mapping[str, str]
    roles: Mapping[str, str]


@functools.cache
def _words(locale: Locale) -> _Words:
    t = translator(locale)
    # English names fields as the API does; other languages name them in words.
    return _Words(
        fields={
            "name": t.pgettext("field", "name"),
            "description": t.pgettext("field", "description"),
            "clients_enabled": t.pgettext("field", "clients_enabled"),
            "subject": t.pgettext("field", "subject"),
            "body": t.pgettext("field", "body"),
            "category": t.pgettext("field", "category"),
            "content": t.pgettext("field", "content"),
            "notes": t.pgettext("field", "notes"),
            "assignee_ids": t.pgettext("field", "assignee_ids"),
            "starts_on": t.pgettext("field", "starts_on"),
            "due_on": t.pgettext("field", "due_on"),
            "title": t.pgettext("field", "title"),
            "responsible_id": t.pgettext("field", "responsible_id"),
            "folder": t.pgettext("field", "folder"),
            "attachments": t.pgettext("field", "attachments"),
        },
        statuses={
            "active": t.pgettext("status", "active"),
            "archived": t.pgettext("status", "archived"),
            "trashed": t.pgettext("status", "trashed"),
        },
        roles={
            "owner": t.pgettext("role", "owner"),
            "member": t.pgettext("role", "member"),
            "client": t.pgettext("role", "client"),
        },
    )

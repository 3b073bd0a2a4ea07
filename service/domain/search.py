"""Search, the pure parts: the languages documents are indexed in, accents, and snippets.

* **Languages.** A project's ``language`` (stored in its events as the PostgreSQL text-search
  configuration, ``english`` or ``french``) is shown to people as a locale, ``en`` or ``fr``
  (:data:`CONFIGURATIONS`, :func:`locale_of`).
* **Accents.** Documents and queries are indexed and parsed without their accents
  (:func:`searchable`), so that ``tache`` finds ``tâche`` and ``réunions`` finds ``réunion``.
  Here, not in the database: the ``unaccent`` extension is not in every PostgreSQL Cairn runs
  on (the embedded one ships no contrib modules), and ``translate()`` over a table of every
  accented letter cost ~60 µs per short text there, against ~6 µs here (nothing for ASCII).
  Each accented letter becomes one letter, so a text keeps its length and every character
  its place.
* **Snippets.** The database finds and marks the matches (``ts_headline``) in the
  unaccented text it indexed; :func:`snippet` takes the same stretches of the text as
  written, accents and all, escapes every character of it for HTML and wraps the matches in
  ``<mark>``. Nothing of a document ever reaches a snippet unescaped, whatever it holds.
"""

from __future__ import annotations

import html
import unicodedata
from typing import Final, Literal

from ..events.projects import ProjectLanguage

Locale = Literal["en", "fr"]
"""A language as the API names it."""

CONFIGURATIONS: Final[dict[Locale, ProjectLanguage]] = {"en": "english", "fr": "french"}
"""The text-search configuration of each locale."""

START: Final = "\x02"
"""What ``ts_headline`` is told to put before a match (``StartSel``)."""
STOP: Final = "\x03"
"""What ``ts_headline`` is told to put after a match (``StopSel``)."""
BETWEEN: Final = "\x1f"
"""What ``ts_headline`` is told to put between fragments (``FragmentDelimiter``)."""
ELLIPSIS: Final = " … "
"""What a snippet shows between two fragments."""


_STROKES: Final = {
    "Ð": "D", "ð": "d", "Ø": "O", "ø": "o", "Đ": "D", "đ": "d", "Ħ": "H", "ħ": "h",
    "ı": "i", "ĸ": "k", "Ŀ": "L", "ŀ": "l", "Ł": "L", "ł": "l", "Ŧ": "T", "ŧ": "t",
    "Ɨ": "I", "ɨ": "i", "Ƶ": "Z", "ƶ": "z",
}  # fmt: skip
"""Latin letters with a stroke or bar, which Unicode does not decompose into a letter and
an accent."""


def _unaccented() -> dict[int, str]:
    """Every Latin letter with accents (Latin-1, Extended-A and B, Extended Additional) to
    the letter without them: those whose canonical decomposition is an ASCII letter and
    combining marks, and :data:`_STROKES`."""
    table = {ord(letter): plain for letter, plain in _STROKES.items()}
    for code in (*range(0xC0, 0x250), *range(0x1E00, 0x1F00)):
        parts = unicodedata.normalize("NFD", chr(code))
        base, marks = parts[0], parts[1:]
        accented = bool(marks) and all(unicodedata.combining(mark) for mark in marks)
        if accented and base.isascii() and base.isalpha():
            table.setdefault(code, base)
    return table


_UNACCENTED: Final = _unaccented()


def searchable(text: str) -> str:
    """``text`` as it is indexed and searched: accents written apart composed with their
    letters (NFC), then every accented Latin letter replaced by its letter (one character
    for one: the result is as long as the composed text)."""
    if text.isascii():
        return text
    return unicodedata.normalize("NFC", text).translate(_UNACCENTED)


def locale_of(language: ProjectLanguage) -> Locale:
    """The locale showing ``language`` (``english`` → ``en``)."""
    for locale, configuration in CONFIGURATIONS.items():
        if configuration == language:
            return locale
    raise ValueError(f"no locale shows {language!r}")


def snippet(written: str, indexed: str, headline: str) -> str:
    """A snippet of a document, as HTML: the stretches of ``written`` that ``headline``
    shows, escaped, with the matches in ``<mark>…</mark>`` and ``…`` between stretches.

    Args:
        written: the document's plain text as written.
        indexed: the text ``ts_headline`` was given: what was indexed of ``written``
            (:func:`searchable`), with every ``<`` made a space.
        headline: ``ts_headline``'s answer over ``indexed``, matches between :data:`START`
            and :data:`STOP`, fragments separated by :data:`BETWEEN`.

    When ``written`` does not line up with ``indexed`` (edited since it was indexed, or its
    accents written apart), or a fragment is not found in it, the stretches are shown as
    indexed: without accents, escaped all the same.
    """
    lined_up = len(written) == len(indexed) and searchable(written).replace("<", " ") == indexed
    source = written if lined_up else indexed
    shown: list[str] = []
    place = 0
    for fragment in headline.split(BETWEEN):
        pieces = _pieces(fragment)
        bare = "".join(text for text, _ in pieces)
        found = indexed.find(bare, place) if bare else -1
        if found < 0 and bare:
            found = indexed.find(bare)
        out: list[str] = []
        at = found
        for text, marked in pieces:
            if at >= 0:
                text, at = source[at : at + len(text)], at + len(text)
            escaped = html.escape(text, quote=False)
            out.append(f"<mark>{escaped}</mark>" if marked and escaped else escaped)
        if found >= 0:
            place = at
        part = "".join(out).strip()
        if part:
            shown.append(part)
    return ELLIPSIS.join(shown)


def _pieces(fragment: str) -> list[tuple[str, bool]]:
    """``fragment`` cut at its markers: (text, whether it is a match), markers dropped."""
    pieces: list[tuple[str, bool]] = []
    for i, chunk in enumerate(fragment.split(START)):
        if i == 0:
            pieces.append((chunk, False))
            continue
        match, _, rest = chunk.partition(STOP)
        pieces += [(match, True), (rest, False)]
    return [(text, marked) for text, marked in pieces if text]

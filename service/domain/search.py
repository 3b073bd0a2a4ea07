"""Search, the pure parts: the languages documents are indexed in, and snippets.

* **Languages.** A project's ``language`` (stored in its events as the PostgreSQL text-search
  configuration, ``english`` or ``french``) is shown to people as a locale, ``en`` or ``fr``
  (:data:`CONFIGURATIONS`, :func:`locale_of`).
* **Snippets.** The database finds and marks the matches (``ts_headline``) in the
  *unaccented* plain text of a document (accents are taken off both documents and queries, so
  that ``tache`` finds ``tâche``); :func:`snippet` takes the same stretches of the text as
  written, accents and all, escapes every character of it for HTML and wraps the matches in
  ``<mark>``. Unaccenting keeps every character's place (``cairn_unaccent`` maps one
  character to one character), which is what lets the marks be moved back onto the text as
  written. Nothing of a document ever reaches a snippet unescaped, whatever it holds.
"""

from __future__ import annotations

import html
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


def locale_of(language: ProjectLanguage) -> Locale:
    """The locale showing ``language`` (``english`` → ``en``)."""
    for locale, configuration in CONFIGURATIONS.items():
        if configuration == language:
            return locale
    raise ValueError(f"no locale shows {language!r}")


def snippet(written: str, unaccented: str, headline: str) -> str:
    """A snippet of a document, as HTML: the stretches of ``written`` that ``headline`` shows,
    escaped, with the matches in ``<mark>…</mark>`` and ``…`` between stretches.

    Args:
        written: the document's plain text as written.
        unaccented: the text ``ts_headline`` was given: ``written`` with each character
            replaced by at most one other (its unaccented letter), so of the same length.
        headline: ``ts_headline``'s answer over ``unaccented``, matches between
            :data:`START` and :data:`STOP`, fragments separated by :data:`BETWEEN`.

    A fragment not found in ``unaccented`` (a text holding the markers itself) is shown as
    ``ts_headline`` gave it, escaped as well.
    """
    shown: list[str] = []
    place = 0
    for fragment in headline.split(BETWEEN):
        pieces = _pieces(fragment)
        bare = "".join(text for text, _ in pieces)
        found = unaccented.find(bare, place) if bare else -1
        if found < 0:
            found = unaccented.find(bare) if bare else -1
        out: list[str] = []
        at = found
        for text, marked in pieces:
            if at >= 0:
                text, at = written[at : at + len(text)], at + len(text)
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

"""Languages: which ones Cairn writes, the catalogs it writes them from, and choosing one.

Every text Cairn writes for people (activity sentences and excerpts, feed titles, the name
of someone a reader may not be told about, the first run's message...) is an English message
in the code, marked for extraction (a literal argument of a :class:`Translator` method, or of
:func:`N_`), and looked up when the text is written in the gettext catalog of the reader's
language: ``service/locale/<language>/LC_MESSAGES/cairn.mo``, compiled from the ``.po`` file
beside it (the README's "Translations" says how to extract, update and compile them).
English is the source language: its translator gives every message back as it is.

Numbers and dates written into text are formatted for the language too (:meth:`Translator.number`,
:meth:`Translator.date`); English keeps the forms Cairn has always written (digits without
grouping, ISO 8601 dates), French follows CLDR (``1 234``, ``1 mai 2026``).

Pure: a function writing text takes the locale as an argument and never reads a global
setting. The translators are made once per locale and kept (:func:`translator`); a catalog is
data shipped in the package, read the first time its language is asked for.

**Writing a new text** (an alert, a notification, a mail): take the reader's locale as an
argument (the caller knows it: ``Accept-Language`` for an answer,
:func:`service.reads.locales.locale_of` for a person reached otherwise), write the English
with named placeholders in a literal call, and format counts, numbers and dates here::

    t = translator(locale)
    t.ngettext("{count} to-do is late", "{count} to-dos are late", n).format(count=t.number(n))

then run the README's "Translations" commands and translate: the catalog tests fail until
every language has the message.
"""

from __future__ import annotations

import functools
import gettext
import re
from datetime import date
from importlib import resources
from io import BytesIO
from typing import Final, Literal, get_args

from babel.dates import format_date
from babel.numbers import format_decimal

Locale = Literal["en", "fr"]
"""A language Cairn writes: ``en`` (the source language) or ``fr``."""

LOCALES: Final[tuple[Locale, ...]] = get_args(Locale)
"""Every language Cairn writes, the source language first."""
SOURCE: Final[Locale] = "en"
"""The language messages are written in in the code (and the text of resources, which are data)."""
DOMAIN: Final = "cairn"
"""The gettext domain: the catalogs' file name."""
CATALOGS: Final = "locale"
"""The folder of the ``service`` package holding ``<language>/LC_MESSAGES/cairn.mo``."""

_DATE_FORMATS: Final[dict[Locale, str]] = {"en": "yyyy-MM-dd", "fr": "long"}
"""How each language writes a date in text (a CLDR pattern or format name)."""
# Accept-Language: a language range and its optional weight (RFC 9110 §12.5.4); "fr_FR",
# which some clients send, is read as "fr-FR".
_RANGE = re.compile(
    r"\s*([A-Za-z]{1,8}(?:[-_][A-Za-z0-9]{1,8})*|\*)\s*(?:;\s*q\s*=\s*([0-9.]{1,5}))?\s*"
)
_MAX_RANGES: Final = 32
"""Ranges of an Accept-Language header considered (a longer header is cut, not refused)."""


def N_(message: str) -> str:
    """Mark ``message`` for extraction where it is not translated yet; give it back as it is
    (the writer translates it later with :meth:`Translator.gettext`)."""
    return message


class Translator:
    """The messages, plural forms, numbers and dates of one language."""

    def __init__(self, locale: Locale, catalog: gettext.NullTranslations) -> None:
        self.locale: Final = locale
        self._catalog = catalog
        self._date_format = _DATE_FORMATS[locale]

    def gettext(self, message: str) -> str:
        """``message`` in this language (itself when the catalog lacks it)."""
        return self._catalog.gettext(message)

    def pgettext(self, context: str, message: str) -> str:
        """``message`` in this language, as meant in ``context`` (one English word may need
        several translations: a field's name, a status, a role)."""
        return self._catalog.pgettext(context, message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        """The form of ``singular``/``plural`` this language uses for ``n`` things (French:
        the singular for 0 and 1). The count is not written in: format it with
        :meth:`number`."""
        return self._catalog.ngettext(singular, plural, n)

    def number(self, value: int) -> str:
        """An integer as this language writes it in text (English: ``1234``; French:
        ``1 234``, with a narrow no-break space)."""
        if self.locale == SOURCE:
            return str(value)
        return _number(value, self.locale)

    def date(self, value: date) -> str:
        """A date as this language writes it in text (English: ``2026-05-01``; French:
        ``1 mai 2026``)."""
        if self.locale == SOURCE:
            return value.isoformat()
        return _date(value, self._date_format, self.locale)


# Babel's formatting costs tens of microseconds a call; feeds are rendered again and again
# from the same events, so the same few positions and dates come back: remembered, bounded.
@functools.lru_cache(maxsize=4096)
def _number(value: int, locale: Locale) -> str:
    return format_decimal(value, locale=locale)


@functools.lru_cache(maxsize=4096)
def _date(value: date, pattern: str, locale: Locale) -> str:
    return format_date(value, pattern, locale=locale)


@functools.cache
def translator(locale: Locale) -> Translator:
    """The translator of ``locale``, made once per process.

    Raises:
        FileNotFoundError: the package lacks the language's compiled catalog (a broken
            install: catalogs are package data).
    """
    if locale == SOURCE:
        return Translator(locale, gettext.NullTranslations())
    mo = resources.files("service") / CATALOGS / locale / "LC_MESSAGES" / f"{DOMAIN}.mo"
    return Translator(locale, gettext.GNUTranslations(BytesIO(mo.read_bytes())))


def locale_or(chosen: str | None, default: str) -> Locale:
    """``chosen`` if Cairn writes that language, else ``default`` if it does, else the first
    of :data:`LOCALES` (a person's stored ``locale`` against the server's default)."""
    for wanted in (chosen, default):
        for known in LOCALES:
            if wanted == known:
                return known
    return LOCALES[0]


def negotiate(accept_language: str | None) -> Locale | None:
    """The language of :data:`LOCALES` an ``Accept-Language`` header prefers, or None when
    it names none of them before ``*`` (no header, only other languages, or any language:
    the caller's default applies).

    Ranges are taken by weight (``q``), then in the order given; a range matches a language
    by its primary subtag (``fr-CA`` is ``fr``); ``q=0`` means "not this one". A range that
    cannot be read is skipped. Only the first 32 ranges count.
    """
    if not accept_language:
        return None
    best: Locale | None = None
    best_q = 0.0
    for item in accept_language.split(",", _MAX_RANGES)[:_MAX_RANGES]:
        found = _RANGE.fullmatch(item)
        if found is None:
            continue
        tag, weight = found.groups()
        try:
            q = 1.0 if weight is None else float(weight)
        except ValueError:
            continue
        if not 0 < q <= 1 or q <= best_q:
            continue
        if tag == "*":
            best, best_q = None, q
            continue
        primary = re.split("[-_]", tag, maxsplit=1)[0].lower()
        for locale in LOCALES:
            if primary == locale:
                best, best_q = locale, q
    return best

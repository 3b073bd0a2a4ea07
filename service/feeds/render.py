"""Rendering a feed document (a list of entries and some links) to Atom 1.0 or RSS 2.0 bytes.

Pure: no I/O, no clock. The same :class:`Document` always gives the same bytes, which is what
lets the HTTP layer derive a strong ETag from the inputs before rendering.

feedgen 1.0.0 is used with its known pitfalls handled here, once:

* it stamps "now" on every date it is not given (feed ``updated``, RSS ``lastBuildDate``,
  entry ``updated``): every date is set, from the entries;
* ``add_entry()`` prepends by default: entries are appended (``order="append"``) newest first;
* entry links lose ``rel``/``type`` (its bug #135), so two links on one entry would make two
  alternates: each entry gets exactly one link;
* RSS items carry at most one ``<enclosure>`` (RSS 2.0 allows one, and readers take the
  first of several): an entry's first file; Atom gets every file as a ``rel="enclosure"``
  link, written by an extension because of bug #135;
* the RSS channel ``<link>`` is the last link added: the alternate (front-end) link is added
  last; RSS gets the archive links as ``atom:link`` through a small extension, as feedgen
  writes only ``rel=self`` there;
* characters XML 1.0 forbids (control characters, lone surrogates, U+FFFE/U+FFFF) make lxml
  refuse the text: :func:`clean` removes them from every string that reaches feedgen.

RFC 5005 archive documents carry ``<fh:archive/>``; archive links are ``prev-archive``,
``next-archive`` and ``current``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final, Literal

import msgspec
import nh3
from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from lxml import etree  # type: ignore[import-untyped]

from ..domain.i18n import SOURCE, Locale, translator
from ..domain.redaction import someone

RENDERER_VERSION: Final = "3"
"""Part of every feed ETag: bump it whenever the bytes for the same inputs change."""

PAGE_SIZE: Final = 50
"""Entries in the current document, and in each archive page."""

MAX_TITLE: Final = 300
"""Longest entry title in characters (an ellipsis marks a cut)."""

Format = Literal["atom", "rss"]
MEDIA_TYPES: Final[dict[str, str]] = {
    "atom": "application/atom+xml; charset=utf-8",
    "rss": "application/rss+xml; charset=utf-8",
}

_ATOM_NS: Final = "http://www.w3.org/2005/Atom"
_FH_NS: Final = "http://purl.org/syndication/history/1.0"
_DC_NS: Final = "http://purl.org/dc/elements/1.1/"
# XML 1.0 Char excludes C0 controls but tab/LF/CR, surrogates and U+FFFE/U+FFFF; C1 controls
# and DEL are allowed but "discouraged" (validators warn), and never meaningful here.
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_AUTHORITY = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?(@[a-z0-9]([a-z0-9.-]*[a-z0-9])?)?")


class Enclosure(msgspec.Struct, frozen=True, kw_only=True):
    """A file an entry carries: where it is downloaded, its size in bytes and media type."""

    url: str
    length: int
    type: str


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """One feed entry. ``content_html`` is sanitised HTML (see :func:`text_html` and
    :func:`sanitise_html`); ``at`` is the event's time, used as published and updated;
    ``enclosures`` the files it carries, in their order (RSS: the first only)."""

    id: str
    title: str
    content_html: str
    author: str
    link: str
    category: str
    at: datetime
    enclosures: tuple[Enclosure, ...] = ()


class Document(msgspec.Struct, frozen=True, kw_only=True):
    """A feed document: the current one (newest entries) or an RFC 5005 archive page.

    ``entries`` are newest first. ``updated`` is the feed's time when it has no entries;
    otherwise the feed's time is its newest entry's. ``alternate_url`` is the front end's page
    of what the feed is about. ``language`` is the language its text is written in (declared
    in the document: Atom's ``xml:lang``, RSS's ``<language>``).
    """

    id: str
    title: str
    subtitle: str
    self_url: str
    alternate_url: str
    updated: datetime
    entries: Sequence[Entry]
    prev_archive: str | None = None
    next_archive: str | None = None
    current: str | None = None
    archive: bool = False
    language: Locale = SOURCE


# ------------------------------------------------------------------ text


def clean(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot carry."""
    return _ILLEGAL.sub("", text) if _ILLEGAL.search(text) else text


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def text_html(text: str | None) -> str:
    """Plain text as an HTML paragraph (escaped), or empty for None."""
    return f"<p>{html.escape(clean(text))}</p>" if text else ""


def sanitise_html(fragment: str) -> str:
    """An HTML fragment with only harmless markup left (nh3's defaults), XML-safe."""
    return nh3.clean(clean(fragment))


def tag_uri(authority: str, at: datetime, specific: str) -> str:
    """A ``tag:`` URI (RFC 4151): ``tag:<authority>,<year>:<specific>``.

    The authority is lower-cased and loses any port; the date is the year of ``at`` in UTC,
    a day on which this instance, the authority, existed and minted the id.

    Raises:
        ValueError: the authority is not a DNS name or an e-mail address.
    """
    name = authority.strip().lower().split(":", 1)[0]
    if not _AUTHORITY.fullmatch(name):
        raise ValueError(f"{authority!r} cannot be the authority of a tag: URI")
    return f"tag:{name},{at.astimezone(UTC).year:04d}:{specific}"


# ------------------------------------------------------------------ rendering


def render(doc: Document, fmt: Format) -> bytes:
    """The document as UTF-8 Atom 1.0 (``"atom"``) or RSS 2.0 (``"rss"``) bytes."""
    fg = FeedGenerator()
    fg.register_extension("cairn", _History, _EntryExtras, atom=True, rss=True)
    history: _History = fg.cairn
    t = translator(doc.language)
    fg.id(clean(doc.id))
    fg.language(doc.language)
    # TRANSLATORS: a feed's title when it has none.
    fg.title(clean(doc.title) or t.gettext("Activity"))
    # RSS: also the channel's description.
    fg.subtitle(clean(doc.subtitle) or t.gettext("Activity"))
    updated = max((e.at for e in doc.entries), default=doc.updated)
    fg.updated(updated)
    fg.pubDate(updated)
    media = MEDIA_TYPES[fmt].split(";")[0]
    fg.link(href=doc.self_url, rel="self", type=media)
    archive_links = [
        (rel, href)
        for rel, href in (
            ("current", doc.current),
            ("prev-archive", doc.prev_archive),
            ("next-archive", doc.next_archive),
        )
        if href is not None
    ]
    if fmt == "atom":
        for rel, href in archive_links:
            fg.link(href=href, rel=rel, type=media)
    else:
        history.links = [(rel, href, media) for rel, href in archive_links]
    history.archive = doc.archive
    # Last: feedgen makes the last link added the RSS channel's <link>.
    fg.link(href=doc.alternate_url, rel="alternate", type="text/html")
    for entry in doc.entries:
        _add(fg, entry, doc.language)
    out: bytes = fg.atom_str() if fmt == "atom" else fg.rss_str()
    return out


def _add(fg: Any, entry: Entry, language: Locale) -> None:
    fe = fg.add_entry(order="append")
    fe.id(entry.id)
    fe.title(clip(clean(entry.title), MAX_TITLE) or translator(language).gettext("Activity"))
    fe.updated(entry.at)
    fe.published(entry.at)
    author = clean(entry.author) or someone(language)
    fe.author(name=author)
    fe.cairn.creator = author
    fe.cairn.enclosures = entry.enclosures
    # One link only (feedgen bug #135 drops rel/type of entry links).
    fe.link(href=entry.link, rel="alternate")
    fe.category(term=entry.category)
    if entry.content_html:
        fe.content(entry.content_html, type="html")
    else:
        fe.content(html.escape(fe.title()), type="html")


class _History(BaseExtension):  # type: ignore[misc]
    """Feed-level extension: RFC 5005 links for RSS (as ``atom:link``) and ``fh:archive``."""

    def __init__(self) -> None:
        self.links: list[tuple[str, str, str]] = []
        self.archive = False

    def extend_ns(self) -> dict[str, str]:
        return {"fh": _FH_NS, "dc": _DC_NS}

    def extend_atom(self, feed: Any) -> Any:
        if self.archive:
            etree.SubElement(feed, f"{{{_FH_NS}}}archive")
        return feed

    def extend_rss(self, feed: Any) -> Any:
        channel = feed[0]
        for rel, href, media in self.links:
            etree.SubElement(channel, f"{{{_ATOM_NS}}}link", href=href, rel=rel, type=media)
        if self.archive:
            etree.SubElement(channel, f"{{{_FH_NS}}}archive")
        return feed


class _EntryExtras(BaseEntryExtension):  # type: ignore[misc]
    """Entry-level extension: ``dc:creator`` in RSS items (RSS's own ``<author>`` must be an
    e-mail address, which feeds do not give out), and the entry's files: Atom
    ``<link rel="enclosure">`` for each (feedgen's own entry links lose ``rel``, bug #135),
    one RSS ``<enclosure>`` for the first (RSS 2.0 allows one per item)."""

    def __init__(self) -> None:
        self.creator = ""
        self.enclosures: tuple[Enclosure, ...] = ()

    def extend_atom(self, entry: Any) -> Any:
        for file in self.enclosures:
            # Unqualified, as feedgen writes its own elements under the feed's default
            # (Atom) namespace.
            etree.SubElement(
                entry,
                "link",
                rel="enclosure",
                href=file.url,
                length=str(file.length),
                type=file.type,
            )
        return entry

    def extend_rss(self, item: Any) -> Any:
        if self.creator:
            etree.SubElement(item, f"{{{_DC_NS}}}creator").text = self.creator
        if self.enclosures:
            first = self.enclosures[0]
            etree.SubElement(
                item, "enclosure", url=first.url, length=str(first.length), type=first.type
            )
        return item

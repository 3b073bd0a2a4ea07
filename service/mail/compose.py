"""Composing notification mail: a notice (or a day's notices) as one person may be told it,
in their language, as a MIME message with a plain-text and an HTML part.

Pure: the sender (:mod:`.sender`) gathers the facts, checks access and redacts (an
:class:`Item` holds only what the recipient may be told), and hands them here.

Headers (docs/OPERATIONS.md, "E-mail out"):

* ``Message-ID: <position.hash@domain>``: the notice's source event's log position and a hash
  of it with the recipient (:func:`message_id`), so that a retry, or a send repeated after a
  crash, carries the same id and the receiving server drops the duplicate; two recipients
  never share one.
* ``In-Reply-To``/``References``: the id the thread's first mail had for this recipient (the
  thread recording's creation event, :func:`message_id` of its position), so a message and
  its comments thread together in mail clients.
* ``Reply-To: reply+<token>@domain`` (:mod:`service.domain.mail_addresses`): a reply becomes
  a comment on the thread recording.
* ``List-Unsubscribe`` + ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058),
  but on a transactional mail (:func:`direct`: a sign-in link, a reset, an invitation);
  ``Auto-Submitted: auto-generated`` (RFC 3834: no auto-replies to it).
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import html
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from email.header import Header
from email.utils import format_datetime, formataddr, parseaddr
from typing import Final

import nh3

from ..domain.i18n import Locale, Translator, translator

_BLOCK_END: Final = re.compile(r"</(p|h1|h2|h3|li|blockquote|pre)>|<br\s*/?>", re.IGNORECASE)
_BLANKS: Final = re.compile(r"\n{3,}")


def message_id(position: int, person_id: str, domain: str) -> str:
    """The ``Message-ID`` of the mail telling ``person_id`` of the event at log ``position``."""
    digest = hashlib.sha256(f"{position}.{person_id}".encode()).hexdigest()[:20]
    return f"<{position}.{digest}@{domain}>"


def digest_id(day: date, first_position: int, person_id: str, domain: str) -> str:
    """The ``Message-ID`` of ``person_id``'s digest of ``day`` starting at ``first_position``."""
    digest = hashlib.sha256(f"digest.{day}.{first_position}.{person_id}".encode()).hexdigest()
    return f"<digest.{day:%Y%m%d}.{first_position}.{digest[:20]}@{domain}>"


@dataclass(frozen=True)
class Recipient:
    """Who a mail is for."""

    person_id: str
    name: str
    email: str
    locale: Locale


@dataclass(frozen=True)
class Item:
    """One notice as its recipient may be told it: names already redacted, the body already
    sanitised (or None)."""

    position: int
    kind: str
    project: str
    actor: str
    title: str
    link: str
    at: datetime
    body_html: str | None = None
    due_on: date | None = None
    files: tuple[tuple[str, str], ...] = field(default=())
    """(name, download URL through the authenticated API) of each attached file."""


@dataclass(frozen=True)
class Envelope:
    """The headers that are not the content's."""

    sender: str
    message_id: str
    unsubscribe_url: str
    reply_to: str | None = None
    thread_id: str | None = None
    """The ``Message-ID`` of the thread's first mail (None: this mail starts it)."""


# ------------------------------------------------------------------ texts


def _subject(t: Translator, item: Item) -> str:
    p, title = item.project, item.title
    due = t.date(item.due_on) if item.due_on is not None else ""
    match item.kind:
        case "message":
            return f"[{p}] {title}"
        case "comment":
            return f"Re: [{p}] {title}"
        case "assignment":
            return t.gettext("[{project}] Assigned to you: {title}").format(project=p, title=title)
        case "milestone_due_soon":
            return t.gettext("[{project}] Milestone due {date}: {title}").format(
                project=p, date=due, title=title
            )
        case "milestone_overdue":
            return t.gettext("[{project}] Milestone overdue: {title}").format(
                project=p, title=title
            )
        case "todo_due_soon":
            return t.gettext("[{project}] To-do due {date}: {title}").format(
                project=p, date=due, title=title
            )
        case "todo_overdue":
            return t.gettext("[{project}] To-do overdue: {title}").format(project=p, title=title)
        case "invitation":
            return t.gettext("{actor} invited you to {project}").format(actor=item.actor, project=p)
    return f"[{p}] {title}"


def _intro(t: Translator, item: Item) -> str:
    values = {
        "actor": item.actor,
        "project": item.project,
        "title": item.title,
        "date": t.date(item.due_on) if item.due_on is not None else "",
    }
    match item.kind:
        case "message":
            text = t.gettext("{actor} posted a message in {project}: “{title}”.")
        case "comment":
            text = t.gettext("{actor} commented on “{title}” in {project}.")
        case "assignment":
            text = t.gettext("{actor} assigned “{title}” to you in {project}.")
        case "milestone_due_soon":
            text = t.gettext("The milestone “{title}” in {project} is due on {date}.")
        case "milestone_overdue":
            text = t.gettext("The milestone “{title}” in {project} was due on {date}.")
        case "todo_due_soon":
            text = t.gettext("The to-do “{title}” in {project} is due on {date}.")
        case "todo_overdue":
            text = t.gettext("The to-do “{title}” in {project} was due on {date}.")
        case "invitation":
            text = t.gettext("{actor} invited you to {project}.")
        case _:
            text = "{actor}: {title} ({project})"
    return text.format(**values)


@functools.lru_cache(maxsize=256)  # one notice's body, written for each of its recipients
def plain(body_html: str) -> str:
    """Sanitised HTML as plain text: blocks on lines of their own, entities decoded."""
    text = nh3.clean(_BLOCK_END.sub(lambda m: m.group(0) + "\n", body_html), tags=set())
    lines = (line.strip() for line in html.unescape(text).splitlines())
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


def _page(t: Translator, locale: Locale, inner: str) -> str:
    return (
        f'<!DOCTYPE html><html lang="{locale}"><head><meta charset="utf-8"></head>'
        f'<body style="font-family: sans-serif">{inner}</body></html>'
    )


def _link(url: str, label: str) -> str:
    return f'<p><a href="{html.escape(url)}">{html.escape(label)}</a></p>'


def _item_text(t: Translator, item: Item) -> list[str]:
    lines = [_intro(t, item)]
    if item.body_html:
        lines += ["", plain(item.body_html)]
    if item.files:
        lines += ["", t.gettext("Files:")]
        lines += [f"- {name}: {url}" for name, url in item.files]
    lines += ["", t.gettext("Open in Cairn: {link}").format(link=item.link)]
    return lines


def _item_html(t: Translator, item: Item) -> str:
    parts = [f"<p>{html.escape(_intro(t, item))}</p>"]
    if item.body_html:
        parts.append(f"<div>{item.body_html}</div>")
    if item.files:
        files = "".join(
            f'<li><a href="{html.escape(url)}">{html.escape(name)}</a></li>'
            for name, url in item.files
        )
        label = t.gettext("Files:")
        parts.append(f"<p>{html.escape(label)}</p><ul>{files}</ul>")
    parts.append(_link(item.link, t.gettext("Open in Cairn")))
    return "".join(parts)


# ------------------------------------------------------------------ messages


def _header(value: str) -> str:
    """A header's value as it goes on the wire: itself when ASCII, else RFC 2047 words."""
    if value.isascii():
        return value
    return Header(value, "utf-8", maxlinelen=76).encode(linesep="\r\n")


def _address(name: str, address: str) -> str:
    return formataddr((name, address), charset="utf-8")


def _headers(to: Recipient, env: Envelope, subject: str, at: datetime) -> list[tuple[str, str]]:
    sender_name, sender_address = parseaddr(env.sender)
    headers = [
        ("From", _address(sender_name, sender_address) if sender_name else sender_address),
        ("To", _address(to.name, to.email)),
        ("Subject", _header(subject)),
        ("Date", format_datetime(at)),
        ("Message-ID", env.message_id),
    ]
    if env.thread_id is not None and env.thread_id != env.message_id:
        headers += [("In-Reply-To", env.thread_id), ("References", env.thread_id)]
    if env.reply_to is not None:
        headers.append(("Reply-To", env.reply_to))
    if env.unsubscribe_url:  # none on a transactional mail (a link asked for, an invitation)
        headers += [
            ("List-Unsubscribe", f"<{env.unsubscribe_url}>"),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ]
    headers += [
        ("Auto-Submitted", "auto-generated"),
        ("Content-Language", to.locale),
    ]
    return headers


def _qp(text: str) -> bytes:
    """UTF-8 text as quoted-printable lines ending in CRLF."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    # b2a_qp breaks a long line with "=\n" (soft breaks): the wire wants CRLF there too.
    encoded = b"\r\n".join(
        binascii.b2a_qp(line.encode(), istext=False).replace(b"\n", b"\r\n") for line in lines
    )
    return encoded + b"\r\n"


def _mime(headers: list[tuple[str, str]], text: str, page: str) -> bytes:
    """The whole message: headers, then a multipart/alternative of the plain text and the
    HTML, each UTF-8 in quoted-printable (any line length, 7-bit on the wire).

    Written out rather than built with :class:`email.message.EmailMessage`, which spent
    about a millisecond a mail here (as long as sending it): the structure is fixed and
    the parts' encoding is binascii's."""
    boundary = "=_cairn_" + hashlib.sha256(dict(headers)["Message-ID"].encode()).hexdigest()[:24]
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    head += (
        f'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'
    )
    part = 'Content-Type: text/{}; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
    return b"".join(
        (
            head.encode("ascii"),
            f"--{boundary}\r\n{part.format('plain')}".encode("ascii"),
            _qp(text),
            f"--{boundary}\r\n{part.format('html')}".encode("ascii"),
            _qp(page),
            f"--{boundary}--\r\n".encode("ascii"),
        )
    )


def single(to: Recipient, item: Item, env: Envelope) -> bytes:
    """The mail telling ``to`` of ``item``."""
    t = translator(to.locale)
    headers = _headers(to, env, _subject(t, item), item.at)
    text = _item_text(t, item)
    html_parts = [_item_html(t, item)]
    if env.reply_to is not None:
        text += ["", t.gettext("Reply to this e-mail to comment.")]
        reply = t.gettext("Reply to this e-mail to comment.")
        html_parts.append(f"<p>{html.escape(reply)}</p>")
    stop = t.gettext("Stop e-mails of this kind: {link}").format(link=env.unsubscribe_url)
    text += ["", "-- ", stop]
    html_parts.append("<hr>" + _link(env.unsubscribe_url, t.gettext("Stop e-mails of this kind")))
    return _mime(headers, "\n".join(text) + "\n", _page(t, to.locale, "".join(html_parts)))


def digest(to: Recipient, items: list[Item], day: date, env: Envelope, at: datetime) -> bytes:
    """``to``'s digest of ``day``: every item, in order."""
    t = translator(to.locale)
    subject = t.gettext("Your Cairn digest of {date}").format(date=t.date(day))
    headers = _headers(to, env, subject, at)
    n = len(items)
    count = t.ngettext(
        "{count} notification since the last digest",
        "{count} notifications since the last digest",
        n,
    ).format(count=t.number(n))
    text = [count, ""]
    html_parts = [f"<p>{html.escape(count)}</p>"]
    for item in items:
        text += ["* " + _intro(t, item), "  " + item.link]
        html_parts.append(
            f"<p>{html.escape(_intro(t, item))}</p>" + _link(item.link, t.gettext("Open in Cairn"))
        )
    stop = t.gettext("Stop all e-mail from Cairn: {link}").format(link=env.unsubscribe_url)
    text += ["", "-- ", stop]
    html_parts.append("<hr>" + _link(env.unsubscribe_url, t.gettext("Stop all e-mail from Cairn")))
    return _mime(headers, "\n".join(text) + "\n", _page(t, to.locale, "".join(html_parts)))


def direct(
    to: Recipient,
    subject: str,
    before: list[str],
    link: tuple[str, str],
    after: list[str],
    env: Envelope,
    at: datetime,
) -> bytes:
    """A transactional mail to ``to``, its texts already in their language: the paragraphs
    ``before``, the ``link`` (URL, label: the URL written out in plain text), the
    paragraphs ``after``; no unsubscribe link (``env.unsubscribe_url`` empty)."""
    url, label = link
    text = [*before, url, *after]
    page = "".join(f"<p>{html.escape(p)}</p>" for p in before)
    page += _link(url, label)
    page += "".join(f"<p>{html.escape(p)}</p>" for p in after)
    return _mime(
        headers=_headers(to, env, subject, at),
        text="\n\n".join(text) + "\n",
        page=_page(translator(to.locale), to.locale, page),
    )

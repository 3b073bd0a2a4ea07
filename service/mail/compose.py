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
  ``Auto-Submitted: auto-generated`` (RFC 3834: no auto-replies to it).
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
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


def _headers(msg: EmailMessage, to: Recipient, env: Envelope, subject: str, at: datetime) -> None:
    msg["From"] = env.sender
    msg["To"] = formataddr((to.name, to.email))
    msg["Subject"] = subject
    msg["Date"] = format_datetime(at)
    msg["Message-ID"] = env.message_id
    if env.thread_id is not None and env.thread_id != env.message_id:
        msg["In-Reply-To"] = env.thread_id
        msg["References"] = env.thread_id
    if env.reply_to is not None:
        msg["Reply-To"] = env.reply_to
    msg["List-Unsubscribe"] = f"<{env.unsubscribe_url}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["Auto-Submitted"] = "auto-generated"


def single(to: Recipient, item: Item, env: Envelope) -> EmailMessage:
    """The mail telling ``to`` of ``item``."""
    t = translator(to.locale)
    msg = EmailMessage(policy=SMTP)
    _headers(msg, to, env, _subject(t, item), item.at)
    text = _item_text(t, item)
    html_parts = [_item_html(t, item)]
    if env.reply_to is not None:
        text += ["", t.gettext("Reply to this e-mail to comment.")]
        reply = t.gettext("Reply to this e-mail to comment.")
        html_parts.append(f"<p>{html.escape(reply)}</p>")
    stop = t.gettext("Stop e-mails of this kind: {link}").format(link=env.unsubscribe_url)
    text += ["", "-- ", stop]
    html_parts.append("<hr>" + _link(env.unsubscribe_url, t.gettext("Stop e-mails of this kind")))
    msg.set_content("\n".join(text) + "\n")
    msg.add_alternative(_page(t, to.locale, "".join(html_parts)), subtype="html")
    msg["Content-Language"] = to.locale  # after the parts: setting content drops Content-*
    return msg


def digest(
    to: Recipient, items: list[Item], day: date, env: Envelope, at: datetime
) -> EmailMessage:
    """``to``'s digest of ``day``: every item, in order."""
    t = translator(to.locale)
    msg = EmailMessage(policy=SMTP)
    subject = t.gettext("Your Cairn digest of {date}").format(date=t.date(day))
    _headers(msg, to, env, subject, at)
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
    msg.set_content("\n".join(text) + "\n")
    msg.add_alternative(_page(t, to.locale, "".join(html_parts)), subtype="html")
    msg["Content-Language"] = to.locale  # after the parts: setting content drops Content-*
    return msg

"""What a person wrote in a mail: the text of a reply cut from the quoted mail and the
signature under it, the text of a forward whole, and either as the HTML a comment or a
message holds. Pure (no I/O).

The cutting is ``mail-parser-reply``'s (maintained, knows the attribution lines and
Outlook header blocks of several languages: "On … wrote:", "Le … a écrit :", "De : …
Envoyé : …"), with two things it misses added here: an attribution line that the sender's
client wrapped over two or three lines (Gmail does so past 78 characters), and the
"Envoyé de mon iPhone" sign-off of French phones. HTML-only mails are turned into text
first, their ``<blockquote>`` s quoted with ``>`` as a plain-text client would.
"""

from __future__ import annotations

import html
import re
from email.message import EmailMessage
from html.parser import HTMLParser
from typing import Final

from mailparser_reply import EmailReplyParser

_LANGUAGES: Final = ["en", "fr"]
_BLOCKS: Final = frozenset(
    {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "hr", "table"}
)
_SKIPPED: Final = frozenset({"style", "script", "head", "title"})
_ATTRIBUTION_START: Final = re.compile(r"^(>+ ?)*(On|Le)\s", re.IGNORECASE)
_ATTRIBUTION_END: Final = re.compile(r"(wrote|a écrit)\s?:\s*$", re.IGNORECASE)
_SIGN_OFFS: Final = re.compile(
    r"^(-- ?|Sent from my .*|Envoyé de mon .*|Envoyé depuis .*|Get Outlook for .*|"
    r"Obtenir Outlook pour .*)$",
    re.IGNORECASE,
)
_FORWARD_PREFIX: Final = re.compile(r"^\s*((fwd?|tr|wg)\s*:\s*)+", re.IGNORECASE)


class _Text(HTMLParser):
    """HTML to lines of text; the lines inside ``n`` blockquotes start with ``n`` ``>``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self._line: list[str] = []
        self._depth = 0
        self._skip = 0

    def _break(self) -> None:
        text = re.sub(r"\s+", " ", "".join(self._line)).strip()
        self._line = []
        prefix = "> " * self._depth
        self.lines.append((prefix + text).rstrip() if text or self._depth else "")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self._skip += 1
        elif tag == "blockquote":
            self._break()
            self._depth += 1
        elif tag in _BLOCKS:
            self._break()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self._skip = max(0, self._skip - 1)
        elif tag == "blockquote":
            self._break()
            self._depth = max(0, self._depth - 1)
        elif tag in _BLOCKS and tag != "br":
            self._break()

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self._line.append(data)

    def text(self) -> str:
        self._break()
        joined = "\n".join(self.lines)
        return re.sub(r"\n{3,}", "\n\n", joined).strip()


def html_to_text(markup: str) -> str:
    """The text of an HTML mail part: a line per block, quotes marked with ``>``."""
    parser = _Text()
    parser.feed(markup)
    parser.close()
    return parser.text()


def body_text(message: EmailMessage) -> str:
    """The text of ``message``: its plain-text part, else its HTML part as text ("" when it
    has neither)."""
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    content = part.get_content()
    if not isinstance(content, str):
        return ""
    content = content.replace("\r\n", "\n")
    return html_to_text(content) if part.get_content_subtype() == "html" else content


def _join_attributions(text: str) -> str:
    """An attribution line ("On … wrote:", "Le … a écrit :") wrapped over up to three lines
    made one line again, so that the parser sees it."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line, taken = lines[i], 1
        if _ATTRIBUTION_START.match(line.strip()) and not _ATTRIBUTION_END.search(line):
            for span in (2, 3):
                tail = lines[i + 1 : i + span]
                if len(tail) < span - 1 or not all(t.strip() for t in tail):
                    break
                joined = " ".join(x.strip() for x in [line, *tail])
                if _ATTRIBUTION_END.search(joined):
                    line, taken = joined, span
                    break
        out.append(line)
        i += taken
    return "\n".join(out)


def _below_quote(lines: list[str]) -> list[str]:
    """``lines`` without the quoted mail they start with, if they do (a reply written
    below the quote: Thunderbird's "bottom-posting"), attribution line included."""
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        quoted = not line or line.startswith(">")
        attribution = i == 0 and _ATTRIBUTION_START.match(line) and _ATTRIBUTION_END.search(line)
        if not (quoted or attribution):
            break
        i += 1
    return lines[i:] if i and any(x.strip().startswith(">") for x in lines[:i]) else lines


def reply_text(text: str) -> str:
    """What the sender wrote above the quoted mail (or below it, when the mail starts with
    the quote), without their signature."""
    text = _join_attributions(text.replace("\r\n", "\n"))
    text = "\n".join(_below_quote(text.strip("\n").split("\n")))
    parsed = EmailReplyParser(languages=_LANGUAGES).read(text)
    body = parsed.replies[0].body if parsed.replies else text
    kept: list[str] = []
    for line in body.split("\n"):
        if _SIGN_OFFS.match(line.strip()) or (line.startswith(">") and not kept):
            if kept:
                break
            continue
        kept.append(line.rstrip())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()


def forward_subject(subject: str) -> str:
    """A forwarded mail's subject without its ``Fwd:``, ``Fw:``, ``TR:`` prefixes."""
    return _FORWARD_PREFIX.sub("", " ".join(subject.split())).strip()


def to_html(text: str) -> str:
    """Plain text as HTML: a paragraph per block of lines, line breaks kept, escaped."""
    blocks = [b.strip("\n") for b in re.split(r"\n\s*\n", text.strip()) if b.strip()]
    return "".join(
        "<p>" + "<br>".join(html.escape(line) for line in block.split("\n")) + "</p>"
        for block in blocks
    )

"""Reply text cut from quotes and signatures (service/mail/replies.py), on a corpus of
real-shaped replies from Gmail, Outlook, Apple Mail and Thunderbird in English and French:
each ``tests/mail_corpus/<name>.eml`` is checked against the exact body in ``<name>.txt``."""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from service.mail.replies import body_text, forward_subject, reply_text, to_html

CORPUS = Path(__file__).parent / "mail_corpus"
MAILS = sorted(CORPUS.glob("*.eml"))


def test_the_corpus_covers_every_client_in_both_languages() -> None:
    names = {m.stem for m in MAILS}
    for client in ("gmail", "outlook", "apple", "thunderbird"):
        assert {n for n in names if n.startswith(client) and "fr" in n}, client
        assert {n for n in names if n.startswith(client) and "fr" not in n}, client
    assert all(m.with_suffix(".txt").exists() for m in MAILS)


@pytest.mark.parametrize("path", MAILS, ids=[m.stem for m in MAILS])
def test_reply_text_is_exactly_what_the_sender_wrote(path: Path) -> None:
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    expected = path.with_suffix(".txt").read_text(encoding="utf-8").removesuffix("\n")
    assert reply_text(body_text(message)) == expected


def test_a_reply_without_quote_or_signature_is_kept_whole() -> None:
    assert reply_text("First line\nsecond line\n\nAnother paragraph\n") == (
        "First line\nsecond line\n\nAnother paragraph"
    )


def test_forwarded_subjects_lose_their_prefixes() -> None:
    assert forward_subject("Fwd: Invoice 42") == "Invoice 42"
    assert forward_subject("TR : Fw: RE: Devis") == "RE: Devis"
    assert forward_subject("Quarterly figures") == "Quarterly figures"


def test_text_becomes_escaped_paragraphs() -> None:
    assert to_html("a < b\nc\n\n\nd & e") == "<p>a &lt; b<br>c</p><p>d &amp; e</p>"

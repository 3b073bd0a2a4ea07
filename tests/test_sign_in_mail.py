"""The mail of sign-in links and password resets (docs/OPERATIONS.md "Sign-in mail"): sent
by the mail sender from table ``sign_in_mail`` through a real SMTP server, in the person's
language, plain and HTML, without List-Unsubscribe; its token works once; a row whose token
expired is dropped unsent; a temporary refusal is retried."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import asyncpg
import httpx
import pytest

from .support.api import Api, new_person, problem
from .support.servers import FixedClock
from .support.smtp_sink import Sink
from .support.waiting import eventually

START = datetime(2030, 5, 6, 9, 0, tzinfo=UTC)
LINK = "https://app.example.com/{purpose}?token={token}"
PASSWORD = "correct horse battery staple"
NEW = "another long passphrase, new"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def server_settings(sink: Sink, clock: FixedClock) -> dict[str, object]:
    return {
        "smtp_url": sink.url,
        "mail_domain": "cairn.test",
        "poll_interval": 0.05,
        "mail_retry_seconds": 60.0,
        "clock": clock,
        "rate_limit": 0,
        "link_url": LINK,
    }


def _browser(api: Api) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=api.server.base_url, timeout=30)


async def _mails(sink: Sink, n: int) -> list[EmailMessage]:
    def arrived() -> list[EmailMessage]:
        assert len(sink.mails) >= n, f"{len(sink.mails)} mails so far"
        return sink.mails

    mails: list[EmailMessage] = await eventually(arrived, timeout=10)
    return mails


def _token(mail: EmailMessage, purpose: str) -> str:
    plain = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert plain is not None
    assert html is not None
    pattern = rf"https://app\.example\.com/{purpose}\?token=([A-Za-z0-9_-]+)"
    found = re.search(pattern, plain.get_content())
    assert found, plain.get_content()
    assert found.group(0) in html.get_content()
    return found.group(1)


async def test_a_sign_in_link_arrives_in_the_persons_language_and_works_once(
    api: Api, sink: Sink, database_url: str
) -> None:
    """A French speaker asking for a sign-in link gets it in French, transactional (no
    List-Unsubscribe); its token signs in once; the row is gone once sent."""
    await new_person(api, "Lea", locale="fr")
    async with _browser(api) as browser:
        asked = await browser.post("/v1/session/links", json={"email": "lea@example.com"})
        assert asked.status_code == 202, asked.text
        [mail] = await _mails(sink, 1)
        assert mail["To"].addresses[0].addr_spec == "lea@example.com"
        assert mail["Subject"] == "Votre lien de connexion à Cairn"
        assert mail["Auto-Submitted"] == "auto-generated"
        assert mail["List-Unsubscribe"] is None
        plain = mail.get_body(("plain",))
        assert plain is not None
        assert "Bonjour Lea," in plain.get_content()
        token = _token(mail, "sign_in")
        signed = await browser.post("/v1/session", json={"link_token": token})
        assert signed.status_code == 204, signed.text
        again = await browser.post("/v1/session", json={"link_token": token})
        problem(again, 401)
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM sign_in_mail") == 0
    finally:
        await conn.close()


async def test_a_reset_mail_arrives_and_its_token_sets_a_password_once(
    api: Api, sink: Sink
) -> None:
    """A reset mail (in English, the server's default) carries a token that sets a new
    password once; the new password then signs in."""
    mia_id, _ = await new_person(api, "Mia")
    set_ = await api.client.put(f"/v1/people/{mia_id}/password", json={"password": PASSWORD})
    assert set_.status_code == 204, set_.text
    async with _browser(api) as browser:
        asked = await browser.post("/v1/password_resets", json={"email": "mia@example.com"})
        assert asked.status_code == 202, asked.text
        [mail] = await _mails(sink, 1)
        assert mail["Subject"] == "Choose a new Cairn password"
        token = _token(mail, "reset")
        reset = await browser.put(f"/v1/password_resets/{token}", json={"password": NEW})
        assert reset.status_code == 204, reset.text
        problem(await browser.put(f"/v1/password_resets/{token}", json={"password": NEW}), 404)
        signed = await browser.post(
            "/v1/session", json={"email": "mia@example.com", "password": NEW}
        )
        assert signed.status_code == 204, signed.text


async def test_an_expired_row_is_not_sent_and_a_refusal_is_retried(
    api: Api, sink: Sink, clock: FixedClock, database_url: str
) -> None:
    """A mail the SMTP server refuses for now (4xx) waits CAIRN_MAIL_RETRY_SECONDS; once its
    token has expired (15 minutes), it is dropped unsent; a new request is sent."""
    await new_person(api, "Noa")
    sink.refuse.append("451 try again later")
    async with _browser(api) as browser:
        asked = await browser.post("/v1/session/links", json={"email": "noa@example.com"})
        assert asked.status_code == 202, asked.text

        def refused_once() -> None:
            assert sink.refused == 1

        await eventually(refused_once, timeout=10)
        conn = await asyncpg.connect(database_url)
        try:

            async def waiting() -> None:
                row = await conn.fetchrow("SELECT attempts, next_at FROM sign_in_mail")
                assert row is not None
                assert (row["attempts"], row["next_at"]) == (1, START + timedelta(seconds=60))

            # Kept, to be tried again CAIRN_MAIL_RETRY_SECONDS later, not dropped.
            await eventually(waiting, timeout=10)
            clock.now += timedelta(minutes=16)

            async def dropped() -> None:
                assert await conn.fetchval("SELECT count(*) FROM sign_in_mail") == 0

            await eventually(dropped, timeout=10)
        finally:
            await conn.close()
        assert sink.mails == []
        asked = await browser.post("/v1/session/links", json={"email": "noa@example.com"})
        assert asked.status_code == 202, asked.text
        [mail] = await _mails(sink, 1)
        assert mail["Subject"] == "Your sign-in link to Cairn"

"""Mail in (service/mail/inbound.py): a real ``aiosmtplib`` client hands replies and
forwards over LMTP and SMTP to the listener of ``cairn mail serve``, on the database a real
Cairn API server serves; what was made (or not) is read back through the API."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import pytest

from service.commands.caller import Services
from service.commands.folds import StreamStates
from service.domain.mail_addresses import project_local_part, reply_local_part
from service.domain.people import evolve_person
from service.domain.projects import evolve_project
from service.events.store import EventStore
from service.mail.inbound import Inbound, Listener, listen
from service.reads.mail_keys import keyring
from tests.support.api import Api, bearer, new_person
from tests.support.teams import Team, make_team
from tests.support.waiting import eventually

DOMAIN = "Mail.Example.com"


@dataclass
class Mail:
    """The listeners (LMTP and SMTP) on the test's database, and the signed addresses."""

    store: EventStore
    lmtp: Listener
    smtp: Listener

    async def reply_address(self, person_id: str, recording_id: str) -> str:
        return (
            f"{reply_local_part(await keyring(self.store.pool), person_id, recording_id)}@{DOMAIN}"
        )

    async def project_address(self, project_id: str) -> str:
        return f"{project_local_part(await keyring(self.store.pool), project_id)}@{DOMAIN.lower()}"


@pytest.fixture
async def mail(api: Api) -> AsyncIterator[Mail]:
    store = await EventStore.open(api.server.database_url, min_size=1, max_size=4)
    services = Services(
        store=store,
        project_states=StreamStates(evolve_project),
        person_states=StreamStates(evolve_person),
    )
    inbound = Inbound(services, domain=DOMAIN, max_upload=1_000_000)
    lmtp = await listen(inbound, "127.0.0.1", 0, lmtp=True)
    smtp = await listen(inbound, "127.0.0.1", 0, lmtp=False)
    try:
        yield Mail(store, lmtp, smtp)
    finally:
        await lmtp.close()
        await smtp.close()
        await store.close()


def compose(
    sender: str, to: str, subject: str, text: str, message_id: str, **headers: str
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Someone <{sender}>"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = message_id
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(text)
    return message


async def send(
    listener: Listener, message: EmailMessage, *, lmtp: bool, sender: str | None = None
) -> tuple[str, int, str]:
    """Hand ``message`` over (the envelope's sender is its From unless ``sender``): the stage
    that answered last (``rcpt`` or ``data``), its code and text."""
    client = aiosmtplib.SMTP(hostname=listener.host, port=listener.port, start_tls=False)
    await client.connect()
    try:
        if lmtp:
            greeted = await client.execute_command(b"LHLO", b"mx.example.com")
            assert greeted.code == 250, greeted
            client.last_ehlo_response = greeted
        envelope_from = sender or message["From"].addresses[0].addr_spec
        await client.mail(envelope_from)
        try:
            await client.rcpt(str(message["To"]))
        except aiosmtplib.SMTPRecipientRefused as exc:
            return "rcpt", exc.code, exc.message
        try:
            answer = await client.data(message.as_bytes())
        except aiosmtplib.SMTPDataError as exc:
            return "data", exc.code, exc.message
        return "data", answer.code, answer.message
    finally:
        client.close()


def splice(signed: str, wanted: str) -> str:
    """``signed``'s reply token with ``wanted``'s person and recording, ``signed``'s MAC."""

    def raw(address: str) -> tuple[str, bytes]:
        head, _, body = address.partition("@")[0].partition(".")
        return head, base64.b32decode(body.upper() + "=" * (-len(body) % 8))

    head, mac_from = raw(signed)
    _, payload_from = raw(wanted)
    forged = payload_from[:20] + mac_from[20:]
    token = base64.b32encode(forged).decode().rstrip("=").lower()
    return f"{head}.{token}@{DOMAIN}"


async def comments(team: Team, recording_id: str) -> list[dict[str, Any]]:
    listed = await team.c.get(f"/v1/recordings/{recording_id}/comments")
    assert listed.status_code == 200, listed.text
    result: list[dict[str, Any]] = listed.json()
    return result


async def test_a_reply_over_lmtp_becomes_a_comment_once(mail: Mail, api: Api) -> None:
    team = await make_team(api)
    message = await team.message(subject="Kick-off")
    to = await mail.reply_address(team.mia_id, message["id"])
    reply = compose(
        "Mia@Example.com",
        to,
        "Re: Kick-off",
        "Thursday <works> for me.\n\nOn Mon, Dec 7, 2026 at 10:02 AM Ada wrote:\n> Hello\n",
        "<reply-1@mail.example.org>",
    )
    stage, code, text = await send(mail.lmtp, reply, lmtp=True)
    assert (stage, code) == ("data", 250), text
    assert "comment rec_" in text

    async def one_comment() -> list[dict[str, Any]]:
        found = await comments(team, message["id"])
        assert len(found) == 1
        return found

    [comment] = await eventually(one_comment, timeout=10)
    assert comment["content"] == "<p>Thursday &lt;works&gt; for me.</p>"
    assert comment["creator"]["id"] == team.mia_id
    # The same mail again (a retry, a resend), over SMTP this time: nothing new.
    stage, code, again = await send(mail.smtp, reply, lmtp=False)
    assert (stage, code) == ("data", 250), again
    assert again == text
    assert [c["id"] for c in await comments(team, message["id"])] == [comment["id"]]


async def test_a_forward_over_smtp_posts_a_message_with_its_files(mail: Mail, api: Api) -> None:
    team = await make_team(api)
    to = await mail.project_address(team.project_id)
    forward = compose(
        "mia@example.com",
        to,
        "Fwd: Quote 42",
        "---------- Forwarded message ---------\nFrom: Customer <c@customer.example>\n\nPlease find the quote.\n",
        "<fwd-1@mail.example.org>",
    )
    pdf = b"%PDF-1.4 quote\n" * 100
    csv = b"item;price\nchair;42\n"
    forward.add_attachment(pdf, maintype="application", subtype="pdf", filename="quote.pdf")
    forward.add_attachment(csv, maintype="text", subtype="csv", filename="prices.csv")
    stage, code, text = await send(mail.smtp, forward, lmtp=False)
    assert (stage, code) == ("data", 250), text

    async def posted() -> dict[str, Any]:
        listed = await team.c.get(f"/v1/projects/{team.project_id}/messages")
        assert listed.status_code == 200
        found = listed.json()
        assert len(found) == 1
        return dict(found[0])

    message = await eventually(posted, timeout=10)
    assert message["subject"] == "Quote 42"
    assert "Please find the quote." in message["body"]
    assert message["creator"]["id"] == team.mia_id
    files = message["attachments"]
    assert [f["name"] for f in files] == ["quote.pdf", "prices.csv"]
    for file, data in zip(files, (pdf, csv), strict=True):
        assert file["sha256"] == hashlib.sha256(data).hexdigest()
        got = await team.c.get(file["download_url"], headers=team.mia, follow_redirects=True)
        assert got.status_code == 200, got.text
        assert got.content == data
    # Delivered again over LMTP: still one message.
    stage, code, _ = await send(mail.lmtp, forward, lmtp=True)
    assert (stage, code) == ("data", 250)
    listed = await team.c.get(f"/v1/projects/{team.project_id}/messages")
    assert [m["id"] for m in listed.json()] == [message["id"]]


async def test_refusals_create_nothing(mail: Mail, api: Api) -> None:
    team = await make_team(api)
    message = await team.message(subject="Staff only")
    other = await team.message(subject="Another")
    mia_to = await mail.reply_address(team.mia_id, message["id"])

    def reply(to: str, sender: str = "mia@example.com", **headers: str) -> EmailMessage:
        return compose(sender, to, "Re: Staff only", "Agreed.\n", f"<{to[:20]}@x>", **headers)

    local, _, domain = mia_to.partition("@")
    forged = f"{local[:-3]}{'b' if local[-3] != 'b' else 'c'}{local[-2:]}@{domain}"
    other_to = await mail.reply_address(team.mia_id, other["id"])
    # A token for another recording, its recording changed to this one (its MAC kept).
    spliced = splice(other_to, mia_to)
    for to in (forged, spliced, f"reply+nonsense@{DOMAIN}", mia_to.replace(DOMAIN, "x.example")):
        stage, code, text = await send(mail.lmtp, reply(to), lmtp=True)
        assert stage == "rcpt", (to, code, text)
        assert code in (550, 553), (to, code, text)

    # Mismatched senders: another person, or an envelope that is not the From.
    stage, code, text = await send(mail.smtp, reply(mia_to, "otto@example.com"), lmtp=False)
    assert (stage, code) == ("data", 550), text
    stage, code, text = await send(mail.lmtp, reply(mia_to), lmtp=True, sender="otto@example.com")
    assert (stage, code) == ("data", 550), text
    # DMARC failed, as the site's server says.
    failing = reply(
        mia_to, Authentication_Results="mx.example.com; spf=pass; dmarc=fail (p=reject)"
    )
    stage, code, text = await send(mail.lmtp, failing, lmtp=True)
    assert (stage, code) == ("data", 550), text
    assert "DMARC" in text
    # A client on a message hidden from clients.
    cleo_to = await mail.reply_address(team.cleo_id, message["id"])
    stage, code, text = await send(mail.lmtp, reply(cleo_to, "cleo@example.com"), lmtp=True)
    assert (stage, code) == ("rcpt", 550), text
    # Otto is no member of the project: not by reply, not by forward.
    otto_to = await mail.reply_address(team.otto_id, message["id"])
    stage, code, text = await send(mail.lmtp, reply(otto_to, "otto@example.com"), lmtp=True)
    assert (stage, code) == ("rcpt", 550), text
    project_to = await mail.project_address(team.project_id)
    stage, code, text = await send(mail.smtp, reply(project_to, "otto@example.com"), lmtp=False)
    assert (stage, code) == ("data", 550), text
    # A deactivated person.
    sam_id, _ = await new_person(api, "Sam")
    added = await team.c.put(
        f"/v1/projects/{team.project_id}/people/{sam_id}", json={"project_role": "member"}
    )
    assert added.status_code == 201, added.text
    sam_to = await mail.reply_address(sam_id, message["id"])
    deactivated = await team.c.post(f"/v1/people/{sam_id}/deactivate")
    assert deactivated.status_code == 200, deactivated.text
    stage, code, text = await send(mail.lmtp, reply(sam_to, "sam@example.com"), lmtp=True)
    assert (stage, code) == ("rcpt", 550), text
    # An archived project: read-only, by reply and by forward.
    archived = await team.c.post(f"/v1/projects/{team.project_id}/archive")
    assert archived.status_code == 200, archived.text
    for to in (mia_to, project_to):
        stage, code, text = await send(mail.smtp, reply(to), lmtp=False)
        assert (stage, code) == ("rcpt", 550), text
        assert "read-only" in text

    assert await comments(team, message["id"]) == []
    assert await comments(team, other["id"]) == []
    listed = await team.c.get(
        f"/v1/projects/{team.project_id}/messages", headers=bearer(api.admin_token)
    )
    assert len(listed.json()) == 2


async def test_projects_show_no_address_while_mail_is_off(api: Api) -> None:
    team = await make_team(api)
    shown = await team.c.get(f"/v1/projects/{team.project_id}")
    assert shown.status_code == 200
    assert shown.json()["email_address"] is None


@pytest.mark.parametrize("server_settings", [{"mail_domain": DOMAIN}])
async def test_the_project_address_is_shown_to_who_may_post_and_takes_mail(
    mail: Mail, api: Api
) -> None:
    team = await make_team(api)
    path = f"/v1/projects/{team.project_id}"
    address = (await team.c.get(path, headers=team.mia)).json()["email_address"]
    assert address.endswith(f"@{DOMAIN}")
    assert address == (await team.c.get(path)).json()["email_address"]
    assert (await team.c.get(path, headers=team.cleo)).json()["email_address"] is None
    forward = compose("mia@example.com", address, "TR: Devis", "Voici le devis.\n", "<tr-1@x>")
    stage, code, text = await send(mail.lmtp, forward, lmtp=True)
    assert (stage, code) == ("data", 250), text

"""The whole mail loop, end to end (issue #17): a message posted through the API is told to
its subscribers by the notice worker, mailed over SMTP (a real aiosmtpd sink) with a signed
``Reply-To``; the recipient answers from their mail client, the answer reaches ``cairn mail
serve``'s LMTP listener (real ``aiosmtplib``), becomes a comment holding only the new text,
and that comment is mailed back to the poster in the same thread and lands in their inbox.
"""

from __future__ import annotations

import email.utils
from collections.abc import AsyncIterator
from email.message import EmailMessage

import aiosmtplib
import asyncpg
import pytest

from service.commands.caller import Services
from service.commands.folds import StreamStates
from service.domain.mail_addresses import ReplyTarget, parse_local_part
from service.domain.people import evolve_person
from service.domain.projects import evolve_project
from service.events.store import EventStore
from service.mail.inbound import Inbound, Listener, listen
from service.reads.mail_keys import keyring

from .support.api import Api, bearer, new_person
from .support.smtp_sink import Sink
from .support.waiting import eventually

DOMAIN = "cairn.test"


@pytest.fixture
def server_settings(sink: Sink) -> dict[str, object]:
    return {"smtp_url": sink.url, "mail_domain": DOMAIN, "poll_interval": 0.05}


@pytest.fixture
async def lmtp(api: Api) -> AsyncIterator[Listener]:
    """``cairn mail serve --lmtp``'s listener, in this process, on the server's database."""
    store = await EventStore.open(api.server.database_url, min_size=1, max_size=4)
    services = Services(
        store=store,
        project_states=StreamStates(evolve_project),
        person_states=StreamStates(evolve_person),
    )
    listener = await listen(
        Inbound(services, domain=DOMAIN, max_upload=1_000_000), "127.0.0.1", 0, lmtp=True
    )
    try:
        yield listener
    finally:
        await listener.close()
        await store.close()


async def mails_to(sink: Sink, address: str, n: int) -> list[EmailMessage]:
    def check() -> list[EmailMessage]:
        mine = [m for m, (_, to) in zip(sink.mails, sink.envelopes, strict=True) if address in to]
        assert len(mine) >= n, f"{len(mine)} mails to {address} so far"
        return mine

    return await eventually(check, timeout=15)


async def hand_over(listener: Listener, sender: str, message: EmailMessage) -> int:
    """Deliver ``message`` over LMTP as a site's mail server would; the answer's code."""
    client = aiosmtplib.SMTP(hostname=listener.host, port=listener.port, start_tls=False)
    await client.connect()
    try:
        greeted = await client.execute_command(b"LHLO", b"mx.example.com")
        assert greeted.code == 250, greeted
        client.last_ehlo_response = greeted
        await client.mail(sender)
        await client.rcpt(str(message["To"]))
        return (await client.data(message.as_bytes())).code
    finally:
        client.close()


async def test_a_reply_by_mail_becomes_a_comment_mailed_back_in_the_same_thread(
    api: Api, sink: Sink, lmtp: Listener
) -> None:
    admin = (await api.client.get("/v1/me")).json()
    mia_id, mia_token = await new_person(api, "Mia")
    mia_address = "mia@example.com"
    project = await api.client.post("/v1/projects", json={"name": "Launch"})
    project_id = project.json()["id"]
    added = await api.client.put(
        f"/v1/projects/{project_id}/people/{mia_id}", json={"project_role": "member"}
    )
    assert added.status_code == 201, added.text
    posted = await api.client.post(
        f"/v1/projects/{project_id}/messages",
        json={
            "subject": "Kick-off",
            "body": "<p>Shall we start on Monday?</p>",
            "subscriber_ids": [api.admin_id, mia_id],
        },
    )
    assert posted.status_code == 201, posted.text
    message_id = posted.json()["id"]

    # 1. Mia is mailed the message (the poster is not: never the actor).
    [to_mia] = await mails_to(sink, mia_address, 1)
    assert "Kick-off" in str(to_mia["Subject"])
    assert "Shall we start on Monday?" in to_mia.get_body(("plain",)).get_content()
    root_id = to_mia["Message-ID"]
    assert root_id.endswith(f"@{DOMAIN}>")
    reply_to = email.utils.parseaddr(str(to_mia["Reply-To"]))[1]
    local, _, domain = reply_to.partition("@")
    assert domain == DOMAIN
    conn = await asyncpg.connect(api.server.database_url)
    try:
        keys = await keyring(conn)
    finally:
        await conn.close()
    target = parse_local_part(keys, local)
    assert target == ReplyTarget(person_id=mia_id, recording_id=message_id)

    # 2. Mia answers from her mail client, above the quoted mail.
    answer = EmailMessage()
    answer["From"] = f"Mia <{mia_address}>"
    answer["To"] = reply_to
    answer["Subject"] = f"Re: {to_mia['Subject']}"
    answer["Message-ID"] = "<answer-1@mail.example.com>"
    answer["In-Reply-To"] = root_id
    answer.set_content(
        "Monday works for me.\n\n"
        f"On Mon, 7 Dec 2026 at 10:00, Cairn <cairn@{DOMAIN}> wrote:\n"
        "> Shall we start on Monday?\n"
    )
    assert await hand_over(lmtp, mia_address, answer) == 250

    # 3. It is a comment by Mia on the message, holding only what she wrote.
    async def commented() -> dict[str, object]:
        listed = await api.client.get(f"/v1/recordings/{message_id}/comments")
        assert listed.status_code == 200, listed.text
        comments = listed.json()
        assert len(comments) == 1, comments
        return dict(comments[0])

    comment = await eventually(commented, timeout=10)
    assert comment["creator"]["id"] == mia_id  # type: ignore[index]
    assert "Monday works for me." in str(comment["content"])
    assert "Shall we start" not in str(comment["content"])

    # 4. The poster is mailed the comment, threaded under the message: each recipient's
    # mails have ids of their own (each is composed for them), the thread's root being the
    # message's position (the part before the dot) in every mailbox.
    [to_admin] = await mails_to(sink, admin["email"], 1)
    thread = str(to_admin["In-Reply-To"])
    assert thread.split(".")[0] == root_id.split(".")[0]
    assert thread.endswith(f"@{DOMAIN}>")
    assert thread in str(to_admin["References"])
    assert to_admin["Message-ID"] != thread
    assert "Monday works for me." in to_admin.get_body(("plain",)).get_content()

    # 5. And it waits in their inbox, unread; Mia's own comment is not in hers.
    inbox = await api.client.get("/v1/my/notifications")
    assert inbox.status_code == 200, inbox.text
    [notification] = [n for n in inbox.json() if n["kind"] == "comment"]
    assert notification["read"] is False
    hers = await api.client.get("/v1/my/notifications", headers=bearer(mia_token))
    assert [n["kind"] for n in hers.json()] == ["message"]

    # 6. The same mail delivered again (a retrying mail server) makes nothing new.
    assert await hand_over(lmtp, mia_address, answer) == 250
    listed = await api.client.get(f"/v1/recordings/{message_id}/comments")
    assert len(listed.json()) == 1

    # 7. The poster answers through the API: Mia's mail of it replies to the very mail she
    # got first, so her mail client shows one conversation.
    answered = await api.client.post(
        f"/v1/recordings/{message_id}/comments", json={"content": "<p>Monday it is.</p>"}
    )
    assert answered.status_code == 201, answered.text
    [_, second] = await mails_to(sink, mia_address, 2)
    assert second["In-Reply-To"] == root_id
    assert root_id in str(second["References"])
    assert "Monday it is." in second.get_body(("plain",)).get_content()

"""E-mail out (service/mail/): notices become mail in the recipient's language, threaded,
with a reply address and a one-click unsubscribe, only about what the recipient may see,
retried on temporary failures, never sent twice but after a crash, never for history.

A real aiosmtpd server (tests/support/smtp_sink.py) receives every mail; the tests parse
it with the ``email`` package. The notices (``PeopleNotified``) are the notice worker's
(service/workers/notices.py), made of what the tests do through the API: each test waits
for the notice of the event it caused and checks who it tells, then for the mail.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest

from service.bootstrap import NewAdmin
from service.domain.mail_addresses import ReplyTarget, parse_local_part
from service.events.base import Metadata
from service.events.notices import PeopleNotified
from service.events.store import NO_STREAM, EventStore
from service.events.streams import notice_stream, project_stream, recording_stream
from service.reads.mail_keys import keyring

from .support.api import Api, add_admin, bearer, known_token, new_person, problem
from .support.cli import child_env, run_cairn
from .support.servers import FixedClock, Server, free_port, serving
from .support.smtp_sink import Sink, smtp_sink
from .support.teams import Team, make_team
from .support.waiting import eventually

DOMAIN = "cairn.test"
START = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
SYSTEM = Metadata(actor="system", request_id="notices")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def server_settings(sink: Sink, clock: FixedClock) -> dict[str, object]:
    return {
        "smtp_url": sink.url,
        "mail_domain": DOMAIN,
        "poll_interval": 0.05,
        "mail_retry_seconds": 60.0,
        "clock": clock,
        "alert_interval": 0.05,
    }


@pytest.fixture
async def team(api: Api) -> Team:
    return await make_team(api)


async def noticed(
    store: EventStore,
    recording_id: str,
    kind: str,
    recipients: list[str],
    *,
    source_type: str | None = None,
) -> int:
    """Wait for the notice the notice worker appends for the last event of ``recording_id``'s
    stream (the last of ``source_type`` if given) and check it tells ``recipients`` (in any
    order) of ``kind``; that event's position."""

    async def check() -> tuple[int, PeopleNotified]:
        events = await store.read_stream(recording_stream(recording_id))
        sources = [e for e in events if source_type in (None, e.event_type)]
        assert sources, f"no {source_type} in {recording_id}'s stream yet"
        source = sources[-1]
        told = await store.read_stream(notice_stream(source.position))
        assert told, f"no notice of {source.event_type} at {source.position} yet"
        [notice] = told
        assert isinstance(notice.event, PeopleNotified), notice
        return source.position, notice.event

    found: tuple[int, PeopleNotified] = await eventually(check, timeout=10)
    position, notice = found
    assert notice.kind == kind, notice
    assert sorted(notice.recipient_ids) == sorted(recipients), notice
    return position


async def received(sink: Sink, n: int, timeout: float = 10.0) -> list[EmailMessage]:  # noqa: ASYNC109
    def check() -> list[EmailMessage]:
        assert len(sink.mails) >= n, f"{len(sink.mails)} mails so far"
        return sink.mails

    return await eventually(check, timeout=timeout)


async def states(store: EventStore) -> list[tuple[str, str, int]]:
    rows = await store.pool.fetch("SELECT person_id, state, attempts FROM mail_outbox ORDER BY id")
    return [(r["person_id"], r["state"], r["attempts"]) for r in rows]


async def settled(store: EventStore, n: int, now: datetime = START) -> list[tuple[str, str, int]]:
    """The outbox (person, state, attempts) once ``n`` rows exist and none is due at ``now``
    or being sent."""

    async def check() -> list[tuple[str, str, int]]:
        rows = await store.pool.fetch(
            "SELECT person_id, state, attempts, due_at FROM mail_outbox ORDER BY id"
        )
        assert len(rows) == n, rows
        for r in rows:
            assert r["state"] != "sending", rows
            assert r["state"] != "planned" or r["due_at"] > now, rows
        return [(r["person_id"], r["state"], r["attempts"]) for r in rows]

    return await eventually(check, timeout=10)


def parts(mail: EmailMessage) -> tuple[str, str]:
    plain = mail.get_body(("plain",))
    rich = mail.get_body(("html",))
    assert plain is not None
    assert rich is not None
    return plain.get_content(), rich.get_content()


async def message(team: Team, **fields: Any) -> dict[str, Any]:
    return await team.message(**fields)


async def comment(team: Team, parent_id: str, content: str) -> dict[str, Any]:
    return await team.post(f"/v1/recordings/{parent_id}/comments", {"content": content})


# ------------------------------------------------------------------ content and headers


async def test_a_message_and_its_comment_reach_a_french_reader_threaded(
    team: Team, store: EventStore, sink: Sink
) -> None:
    """Mia reads French: the message and the comment on it come in French, in plain text and
    HTML, the comment threaded under the message, each with a reply address naming Mia and
    the message, a one-click unsubscribe and Auto-Submitted."""
    assert (
        await team.c.patch(f"/v1/people/{team.mia_id}", json={"locale": "fr"})
    ).status_code == 200
    posted = await message(team, subject="Plan de lancement", body="<p>Bonjour <b>à tous</b></p>")
    await noticed(store, posted["id"], "message", [team.mia_id])
    [first] = await received(sink, 1)
    said = await comment(team, posted["id"], "<p>Je valide.</p>")
    await noticed(store, said["id"], "comment", [team.mia_id])
    _, second = await received(sink, 2)

    assert first["To"] == "Mia <mia@example.com>"
    assert first["Subject"] == "[Launch] Plan de lancement"
    assert second["Subject"] == "Re: [Launch] Plan de lancement"
    text, rich = parts(first)
    assert "Ada Admin a publié un message dans Launch" in text
    assert "Bonjour à tous" in text
    assert "<b>à tous</b>" in rich
    assert "<script" not in rich
    assert "Ne plus recevoir ce genre de courriels" in text
    assert first["Content-Language"] == "fr"
    text2, _ = parts(second)
    assert "Ada Admin a commenté" in text2
    assert "Je valide." in text2

    mid = first["Message-ID"]
    assert re.fullmatch(rf"<\d+\.[0-9a-f]{{20}}@{re.escape(DOMAIN)}>", mid), mid
    assert first["In-Reply-To"] is None
    assert second["In-Reply-To"] == mid
    assert second["References"] == mid
    assert second["Message-ID"] != mid

    keys = await keyring(store.pool)
    for mail in (first, second):
        local, _, domain = mail["Reply-To"].partition("@")
        assert domain == DOMAIN
        assert parse_local_part(keys, local) == ReplyTarget(
            person_id=team.mia_id, recording_id=posted["id"]
        )
        assert mail["Auto-Submitted"] == "auto-generated"
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert re.fullmatch(
            r"<https?://[^>]+/v1/mail/unsubscribe\?token=[^>]+>", mail["List-Unsubscribe"]
        )
    assert sink.envelopes[0] == (f"cairn@{DOMAIN}", ["mia@example.com"])
    assert await settled(store, 2) == [(team.mia_id, "sent", 1)] * 2


# ------------------------------------------------------------------ preferences, unsubscribe


async def test_the_unsubscribe_link_turns_that_kind_off_in_one_click(
    team: Team, store: EventStore, sink: Sink
) -> None:
    """POSTing a comment mail's List-Unsubscribe address (RFC 8058, no API token) turns
    Mia's comment mail off: her preferences say so and the next comment is not mailed,
    while messages still are; a GET of the link changes nothing; a forged token is a 404.

    Mia posts the message (subscribing only herself: its notice tells nobody), so her first
    mail is the admin's comment on it."""
    posted = await team.post(
        f"/v1/projects/{team.project_id}/messages",
        {"subject": "Kick-off", "body": "<p>Hello</p>", "subscriber_ids": [team.mia_id]},
        as_=team.mia,
    )
    said = await comment(team, posted["id"], "<p>One</p>")
    await noticed(store, said["id"], "comment", [team.mia_id])
    [mail] = await received(sink, 1)
    link = mail["List-Unsubscribe"].strip("<>")
    path = urlsplit(link)
    async with httpx.AsyncClient(base_url=team.api.server.base_url) as anonymous:
        page = await anonymous.get(f"{path.path}?{path.query}")
        assert page.status_code == 200
        assert 'method="post"' in page.text
        assert (await team.c.get("/v1/me/notifications", headers=team.mia)).json()["email"][
            "comment"
        ] is True
        done = await anonymous.post(
            f"{path.path}?{path.query}",
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert done.status_code == 200, done.text
        assert done.json() == {"person_id": team.mia_id, "kind": "comment"}
        token = parse_qs(path.query)["token"][0]
        forged = token[:-2] + ("aa" if not token.endswith("aa") else "bb")
        problem(await anonymous.post(f"/v1/mail/unsubscribe?token={forged}"), 404)
    prefs = (await team.c.get("/v1/me/notifications", headers=team.mia)).json()
    assert prefs["email"]["comment"] is False
    assert prefs["email"]["message"] is True

    again = await comment(team, posted["id"], "<p>Two</p>")
    await noticed(store, again["id"], "comment", [team.mia_id])
    other = await message(team, subject="Still mailed")
    await noticed(store, other["id"], "message", [team.mia_id])
    mails = await received(sink, 2)
    assert [m["Subject"] for m in mails] == ["Re: [Launch] Kick-off", "[Launch] Still mailed"]
    rows = await settled(store, 3)
    assert [s for _, s, _ in rows] == ["sent", "skipped", "sent"]


async def test_preferences_are_read_and_set_and_bad_ones_refused(team: Team) -> None:
    """GET shows the defaults; PUT sets kinds, digest and quiet hours (kinds left out keep
    their switch); unknown kinds, malformed times and empty spans are problems."""
    me = team.mia
    shown = (await team.c.get("/v1/me/notifications", headers=me)).json()
    assert shown["digest"] is False
    assert shown["quiet_hours"] is None
    assert shown["digest_hour"] == 8
    assert all(shown["email"].values())
    assert set(shown["email"]) >= {"message", "comment", "assignment", "todo_overdue"}
    body = {
        "email": {"assignment": False},
        "digest": True,
        "quiet_hours": {"start": "22:00", "end": "07:30"},
    }
    put = await team.c.put("/v1/me/notifications", json=body, headers=me)
    assert put.status_code == 200, put.text
    assert put.json()["email"]["assignment"] is False
    assert put.json()["email"]["message"] is True
    assert put.json()["quiet_hours"] == {"start": "22:00", "end": "07:30"}
    assert (await team.c.get("/v1/me/notifications", headers=me)).json() == put.json()
    for bad in (
        {**body, "email": {"gossip": True}},
        {**body, "quiet_hours": {"start": "25:00", "end": "07:00"}},
        {**body, "quiet_hours": {"start": "07:00", "end": "07:00"}},
        {**body, "digest": "yes"},
        {"email": {}, "digest": False},
    ):
        answer = await team.c.put("/v1/me/notifications", json=bad, headers=me)
        assert answer.status_code in (400, 422), (bad, answer.text)
        problem(answer, answer.status_code)


# ------------------------------------------------------------------ access


async def test_a_client_gets_no_mail_about_a_hidden_item_nor_hidden_names(
    team: Team, store: EventStore, sink: Sink, clock: FixedClock
) -> None:
    """What a client may see is checked when her mail is sent, not only when she is told:
    Cleo (a client, quiet until 12:00 in Paris) is told of a message shown to clients, which
    is then hidden from them before her quiet hours end: that mail is skipped (Mia's went).
    On a visible message posted by an admin who is not in the project (a person Cleo may not
    be told about), the actor is "Someone"."""
    edited = await team.c.patch(f"/v1/people/{team.cleo_id}", json={"time_zone": "Europe/Paris"})
    assert edited.status_code == 200, edited.text
    quiet = {"email": {}, "digest": False, "quiet_hours": {"start": "10:00", "end": "12:00"}}
    put = await team.c.put("/v1/me/notifications", json=quiet, headers=team.cleo)
    assert put.status_code == 200, put.text
    noon = datetime(2026, 12, 7, 11, 0, tzinfo=UTC)  # 12:00 in Paris
    hidden = await message(
        team,
        subject="Internal budget",
        visible_to_clients=True,
        subscriber_ids=[team.cleo_id, team.mia_id],
    )
    await noticed(store, hidden["id"], "message", [team.cleo_id, team.mia_id])
    assert sorted(await settled(store, 2)) == sorted(
        [(team.cleo_id, "planned", 0), (team.mia_id, "sent", 1)]
    )
    hid = await team.c.put(
        f"/v1/recordings/{hidden['id']}/client_visibility", json={"visible_to_clients": False}
    )
    assert hid.status_code == 200, hid.text
    oscar_id, oscar = await new_person(team.api, "Oscar", "admin")
    shown = await team.post(
        f"/v1/projects/{team.project_id}/messages",
        {
            "subject": "For the client",
            "body": "<p>Hello</p>",
            "visible_to_clients": True,
            "subscriber_ids": [team.cleo_id],
        },
        as_=bearer(oscar),
    )
    await noticed(store, shown["id"], "message", [team.cleo_id])
    assert len(await settled(store, 3)) == 3
    assert len(sink.mails) == 1
    clock.now = noon
    rows = await settled(store, 3, noon)
    assert sorted(rows) == sorted(
        [(team.cleo_id, "skipped", 1), (team.mia_id, "sent", 1), (team.cleo_id, "sent", 1)]
    )
    skipped = await store.pool.fetchval(
        "SELECT last_error FROM mail_outbox WHERE state = 'skipped'"
    )
    assert skipped == "not visible to the person"
    mails = await received(sink, 2)
    to_cleo = [m for m in mails if "cleo" in m["To"]]
    assert [m["Subject"] for m in to_cleo] == ["[Launch] For the client"]
    text, rich = parts(to_cleo[0])
    assert "Someone posted a message" in text
    assert "Oscar" not in text
    assert "Oscar" not in rich
    assert oscar_id not in text
    assert all("Internal budget" not in m.as_string() for m in to_cleo)


# ------------------------------------------------------------------ failures


async def test_a_temporary_failure_is_retried_with_backoff_then_sent(
    team: Team, store: EventStore, sink: Sink, clock: FixedClock
) -> None:
    """A 451 puts the mail back for CAIRN_MAIL_RETRY_SECONDS; once the clock passes it, the
    mail goes, with the same Message-ID it would have had."""
    sink.refuse.append("451 4.3.0 try again later")
    posted = await message(team)
    await noticed(store, posted["id"], "message", [team.mia_id])

    async def put_back() -> asyncpg.Record:
        row = await store.pool.fetchrow("SELECT * FROM mail_outbox")
        assert row is not None
        assert row["state"] == "planned"
        assert row["attempts"] == 1
        return row

    row = await eventually(put_back, timeout=10)
    assert "451" in row["last_error"]
    assert row["due_at"] == START + timedelta(seconds=60)
    assert sink.mails == []
    clock.now = START + timedelta(seconds=61)
    [mail] = await received(sink, 1)
    assert sink.refused == 1
    assert await settled(store, 1) == [(team.mia_id, "sent", 2)]
    sent = await store.pool.fetchrow("SELECT message_id, last_error FROM mail_outbox")
    assert sent["message_id"] == mail["Message-ID"]
    assert sent["last_error"] is None


async def test_a_permanent_failure_marks_the_mail_failed(
    team: Team, store: EventStore, sink: Sink, clock: FixedClock
) -> None:
    """A 550 is final: the row is failed with the server's answer, never tried again."""
    sink.refuse.append("550 5.1.1 no such mailbox")
    posted = await message(team)
    await noticed(store, posted["id"], "message", [team.mia_id])
    assert await settled(store, 1) == [(team.mia_id, "failed", 1)]
    error = await store.pool.fetchval("SELECT last_error FROM mail_outbox")
    assert error.startswith("550")
    clock.now = START + timedelta(days=1)
    metrics = (await team.c.get("/metrics")).text
    assert "cairn_mail_failed_rows 1.0" in metrics
    assert sink.mails == []
    assert sink.refused == 1


# ------------------------------------------------------------------ exactly once, history


def _mailing(sink_url: str, clock: FixedClock) -> dict[str, Any]:
    return {
        "smtp_url": sink_url,
        "mail_domain": DOMAIN,
        "poll_interval": 0.05,
        "mail_retry_seconds": 60.0,
        "clock": clock,
    }


async def _team_on(server: Server, client: httpx.AsyncClient, admin: NewAdmin) -> Team:
    await known_token(client, timeout=5.0)
    return await make_team(Api(server, client, admin.person_id, admin.token))


async def test_a_planned_mail_is_sent_once_across_a_restart_and_at_most_once_more_after_a_crash(
    database_url: str, store: EventStore, sink: Sink, clock: FixedClock
) -> None:
    """The first instance plans the mail but cannot reach its SMTP server; a second one,
    started after the first stopped, sends it exactly once. A send whose "sent" mark was lost
    (an instance dying in between: the row stays "sending" past its lease) is sent once
    more, with the same Message-ID."""
    admin = await add_admin(database_url)
    dead = f"smtp://127.0.0.1:{free_port()}"
    async with (
        serving(database_url, **_mailing(dead, clock)) as first,
        httpx.AsyncClient(base_url=first.base_url, headers=bearer(admin.token)) as client,
    ):
        team = await _team_on(first, client, admin)
        posted = await team.message()
        await noticed(store, posted["id"], "message", [team.mia_id])
        assert await settled(store, 1) == [(team.mia_id, "planned", 1)]
    async with serving(database_url, **_mailing(sink.url, clock)):
        clock.now = START + timedelta(seconds=61)
        [mail] = await received(sink, 1)
        assert await settled(store, 1, clock.now) == [(team.mia_id, "sent", 2)]
        # The mark lost: the row is still "sending" and its lease has run out.
        await store.pool.execute(
            "UPDATE mail_outbox SET state = 'sending', due_at = $1, lease_until = $1", clock.now
        )
        _, again = await received(sink, 2)
        assert await settled(store, 1, clock.now) == [(team.mia_id, "sent", 3)]
    assert again["Message-ID"] == mail["Message-ID"]
    assert len(sink.mails) == 2


async def test_history_is_never_mailed_nor_anything_after_a_rebuild(
    database_url: str, store: EventStore, sink: Sink, clock: FixedClock
) -> None:
    """Notices in the log before mail is enabled are never mailed; `cairn projections
    rebuild --all` mails nothing; the next notice is mailed. /readyz and the metrics say
    whether mail is sent."""
    admin = await add_admin(database_url)
    async with (
        serving(database_url, clock=clock, poll_interval=0.05) as quiet,
        httpx.AsyncClient(base_url=quiet.base_url, headers=bearer(admin.token)) as client,
    ):
        team = await _team_on(quiet, client, admin)
        for subject in ("Old news", "Older news"):
            posted = await team.message(subject=subject)
            await noticed(store, posted["id"], "message", [team.mia_id])
        ready = (await client.get("/readyz")).json()
        [check] = [c for c in ready["checks"] if c["name"] == "mail"]
        assert check["ready"] is True
        assert check["detail"].startswith("not configured")
        assert "cairn_mail_configured 0.0" in (await client.get("/metrics")).text
    async with (
        serving(database_url, **_mailing(sink.url, clock)) as mailing,
        httpx.AsyncClient(base_url=mailing.base_url, headers=bearer(admin.token)) as client,
    ):
        code, output = await run_cairn(
            "projections", "rebuild", "--all", env=child_env(database_url)
        )
        assert code == 0, output
        fresh = await client.post(
            f"/v1/projects/{team.project_id}/messages",
            json={"subject": "New news", "body": "<p>Hi</p>"},
        )
        assert fresh.status_code == 201, fresh.text
        await noticed(store, fresh.json()["id"], "message", [team.mia_id])
        [mail] = await received(sink, 1)
        assert mail["Subject"] == "[Launch] New news"
        assert await settled(store, 1) == [(team.mia_id, "sent", 1)]
        ready = (await client.get("/readyz")).json()
        [check] = [c for c in ready["checks"] if c["name"] == "mail"]
        assert check == {
            "name": "mail",
            "ready": True,
            "detail": "configured, sending; 0 mails waiting, 0 failed",
        }
        metrics = (await client.get("/metrics")).text
        assert "cairn_mail_configured 1.0" in metrics
        assert 'cairn_worker_queue_rows{worker="mail"} 0.0' in metrics
        assert 'cairn_worker_attempts_total{worker="mail"}' in metrics
    assert len(sink.mails) == 1


# ------------------------------------------------------------------ digest, quiet hours


async def test_a_digest_lists_the_days_notices_in_one_mail_at_the_digest_hour(
    team: Team, store: EventStore, sink: Sink, clock: FixedClock
) -> None:
    """With the digest on, Mia's notices wait for 08:00 in her zone (Europe/Paris) the next
    morning and go out as one mail listing each of them."""
    edited = await team.c.patch(f"/v1/people/{team.mia_id}", json={"time_zone": "Europe/Paris"})
    assert edited.status_code == 200, edited.text
    put = await team.c.put(
        "/v1/me/notifications",
        json={"email": {}, "digest": True, "quiet_hours": None},
        headers=team.mia,
    )
    assert put.status_code == 200, put.text
    posted = await message(team, subject="Roadmap")
    await noticed(store, posted["id"], "message", [team.mia_id])
    said = await comment(team, posted["id"], "<p>Looks good</p>")
    await noticed(store, said["id"], "comment", [team.mia_id])
    assert await settled(store, 2) == [(team.mia_id, "planned", 0)] * 2
    days = await store.pool.fetch("SELECT digest_day, due_at FROM mail_outbox")
    eight = datetime(2026, 12, 8, 7, 0, tzinfo=UTC)  # 08:00 in Paris
    assert {(str(r["digest_day"]), r["due_at"]) for r in days} == {("2026-12-08", eight)}
    clock.now = eight - timedelta(seconds=1)
    assert sink.mails == []
    clock.now = eight
    [mail] = await received(sink, 1)
    assert mail["Subject"] == "Your Cairn digest of 2026-12-08"
    text, rich = parts(mail)
    assert "2 notifications since the last digest" in text
    assert "Ada Admin posted a message in Launch: “Roadmap”." in text
    assert "Ada Admin commented on “Roadmap” in Launch." in text
    assert "Roadmap" in rich
    assert mail["Message-ID"].startswith("<digest.20261208.")
    assert await settled(store, 2, eight) == [(team.mia_id, "sent", 1)] * 2


async def test_quiet_hours_hold_a_mail_until_they_end(
    team: Team, store: EventStore, sink: Sink, clock: FixedClock
) -> None:
    """Quiet from 22:00 to 07:00 in Paris: a notice at 23:30 there is mailed at 07:00."""
    assert (
        await team.c.patch(f"/v1/people/{team.mia_id}", json={"time_zone": "Europe/Paris"})
    ).status_code == 200
    put = await team.c.put(
        "/v1/me/notifications",
        json={"email": {}, "digest": False, "quiet_hours": {"start": "22:00", "end": "07:00"}},
        headers=team.mia,
    )
    assert put.status_code == 200, put.text
    night = datetime(2026, 12, 7, 22, 30, tzinfo=UTC)  # 23:30 in Paris
    clock.now = night
    posted = await message(team, subject="Late thought")
    await noticed(store, posted["id"], "message", [team.mia_id])
    assert await settled(store, 1, night) == [(team.mia_id, "planned", 0)]
    seven = datetime(2026, 12, 8, 6, 0, tzinfo=UTC)
    assert await store.pool.fetchval("SELECT due_at FROM mail_outbox") == seven
    assert sink.mails == []
    clock.now = seven
    [mail] = await received(sink, 1)
    assert mail["Subject"] == "[Launch] Late thought"


# ------------------------------------------------------------------ files, assignments, instances


async def test_files_are_linked_through_the_authenticated_download_and_alerts_name_the_date(
    team: Team, store: EventStore, sink: Sink, clock: FixedClock
) -> None:
    """A message's file is linked through the API's download route (which asks for a token),
    never a signed link that would expire; an assignment and a due-soon alert name the
    to-do, the French one with its date the French way."""
    sent = await team.c.post("/v1/attachments", params={"name": "plan.pdf"}, content=b"%PDF-1")
    assert sent.status_code == 201, sent.text
    posted = await message(
        team, subject="With a file", attachment_ids=[sent.json()["attachable_id"]]
    )
    await noticed(store, posted["id"], "message", [team.mia_id])
    [mail] = await received(sink, 1)
    text, rich = parts(mail)
    [link] = re.findall(r"plan\.pdf: (\S+)", text)
    assert link.startswith(team.api.server.base_url + f"/v1/recordings/{posted['id']}/attachments/")
    assert link.endswith("/download")
    assert f'href="{link}"' in rich
    async with httpx.AsyncClient() as anonymous:
        assert (await anonymous.get(link)).status_code == 401
    assert (await team.c.get(link, headers=team.mia)).content == b"%PDF-1"

    assert (
        await team.c.patch(f"/v1/people/{team.mia_id}", json={"locale": "fr"})
    ).status_code == 200
    todolist = await team.post(f"/v1/projects/{team.project_id}/todolists", {"name": "Launch"})
    todo = await team.post(
        f"/v1/todolists/{todolist['id']}/todos",
        {"content": "Print the posters", "assignee_ids": [team.mia_id], "due_on": "2026-12-09"},
    )
    await noticed(store, todo["id"], "assignment", [team.mia_id], source_type="TodoAdded")
    # 48 hours before the end of 9 December the alert scheduler raises TodoDueSoon (acting
    # as Cairn), and the notice worker tells the assignee.
    clock.now = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
    await noticed(store, todo["id"], "todo_due_soon", [team.mia_id], source_type="TodoDueSoon")
    _, assigned, due = await received(sink, 3)
    assert assigned["Subject"] == "[Launch] Assigné à vous\u00a0: Print the posters"
    assert due["Subject"] == "[Launch] Tâche pour le 9 décembre 2026\u00a0: Print the posters"
    assert "est à faire pour le 9 décembre 2026" in parts(due)[0]
    # The assignment came with the to-do's creation: its mail starts the to-do's thread.
    assert assigned["In-Reply-To"] is None
    assert due["In-Reply-To"] == assigned["Message-ID"]


async def test_two_instances_share_the_sending_and_send_each_mail_once(
    database_url: str, api: Api, store: EventStore, sink: Sink, clock: FixedClock
) -> None:
    """With a second instance sending too, 40 recipients get one mail each: instances claim
    rows with SKIP LOCKED and never take the same one."""
    team = await make_team(api)
    people = [team.mia_id]
    for i in range(39):
        made = await team.c.post(
            "/v1/people", json={"name": f"P{i}", "email": f"p{i}@example.com", "role": "member"}
        )
        assert made.status_code == 201, made.text
        people.append(made.json()["id"])
        added = await team.c.put(
            f"/v1/projects/{team.project_id}/people/{made.json()['id']}",
            json={"project_role": "member"},
        )
        assert added.status_code == 201, added.text
    async with serving(database_url, **_mailing(sink.url, clock)):
        posted = await message(team, subject="Everyone")
        await noticed(store, posted["id"], "message", people)
        mails = await received(sink, 40)
        assert sorted(await settled(store, 40)) == sorted((p, "sent", 1) for p in people)
    assert len(sink.mails) == 40
    assert len({m["Message-ID"] for m in mails}) == 40
    assert sorted(to for _, [to] in sink.envelopes) == sorted(
        ["mia@example.com", *(f"p{i}@example.com" for i in range(39))]
    )


async def test_a_notice_ahead_of_the_read_models_is_tried_again_not_dropped(
    team: Team, store: EventStore, sink: Sink
) -> None:
    """A notice naming a recording the read models do not show (yet) is put back for later,
    not skipped as if hidden.

    The notice worker waits for the read models before telling anyone, so it never makes
    such a notice: this one is appended by hand, as a notice of the project's own last event
    (a ``project-`` stream, which the worker does not read: it will never append a notice at
    that position), about a recording id nothing made."""
    source = (await store.read_stream(project_stream(team.project_id)))[-1]
    ahead = PeopleNotified(
        source_position=source.position,
        source_event_id="ahead",
        source_type=source.event_type,
        kind="comment",
        project_id=team.project_id,
        recording_id="rec_" + "f" * 20,
        thread_id="rec_" + "f" * 20,
        actor_id=team.api.admin_id,
        at=START,
        recipient_ids=(team.mia_id,),
    )
    await store.append(notice_stream(source.position), [ahead], NO_STREAM, SYSTEM, project_id=None)
    assert await settled(store, 1) == [(team.mia_id, "planned", 1)]
    error = await store.pool.fetchval("SELECT last_error FROM mail_outbox")
    assert error == f"rec_{'f' * 20} is not in the read models yet"
    assert sink.mails == []


@pytest.mark.parametrize("server_settings", [{"poll_interval": 0.05}])  # sends nothing
async def test_the_smtp_url_logs_in_and_a_refused_login_is_retried_not_failed(
    database_url: str, api: Api, store: EventStore, clock: FixedClock
) -> None:
    """With user and password in CAIRN_SMTP_URL Cairn logs in (AUTH) before sending; a
    server refusing the login (535) is a problem of the settings, not of the mail: it is
    tried again, then sent once the right password is given."""
    team = await make_team(api)
    async with smtp_sink(login=("cairn", "p@ss:word")) as guarded:
        wrong = f"smtp://cairn:nope@127.0.0.1:{guarded.port}"
        async with serving(database_url, **_mailing(wrong, clock)):
            posted = await message(team, subject="Behind a login")
            await noticed(store, posted["id"], "message", [team.mia_id])
            # The live server (CAIRN_SMTP_URL unset) plans nothing; this one tries and fails.
            assert await settled(store, 1) == [(team.mia_id, "planned", 1)]
        error = await store.pool.fetchval("SELECT last_error FROM mail_outbox")
        assert error.startswith("connecting: SMTPAuthenticationError")
        right = f"smtp://cairn:p%40ss%3Aword@127.0.0.1:{guarded.port}"
        async with serving(database_url, **_mailing(right, clock)):
            clock.now = START + timedelta(seconds=61)
            [mail] = await received(guarded, 1)
            assert await settled(store, 1, clock.now) == [(team.mia_id, "sent", 2)]
    assert mail["Subject"] == "[Launch] Behind a login"

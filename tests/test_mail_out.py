"""E-mail out (service/mail/): notices become mail in the recipient's language, threaded,
with a reply address and a one-click unsubscribe, only about what the recipient may see,
retried on temporary failures, never sent twice but after a crash, never for history.

A real aiosmtpd server (tests/support/smtp_sink.py) receives every mail; the tests parse
it with the ``email`` package. The notices (``PeopleNotified``, made by the notice worker
of part B once merged) are appended here as that worker appends them: one per source
event, about recordings made through the API, for real people.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest

from service.domain.mail_addresses import ReplyTarget, parse_local_part
from service.events.base import Metadata
from service.events.notices import PeopleNotified
from service.events.store import NO_STREAM, EventStore
from service.events.streams import notice_stream, recording_stream
from service.reads.mail_keys import keyring

from .support.api import Api
from .support.servers import FixedClock
from .support.smtp_sink import Sink, smtp_sink
from .support.teams import Team, make_team
from .support.waiting import eventually

DOMAIN = "cairn.test"
START = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
SYSTEM = Metadata(actor="system", request_id="notices")


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    async with smtp_sink() as sink:
        yield sink


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
    }


@pytest.fixture
async def team(api: Api) -> Team:
    return await make_team(api)


async def notify(
    store: EventStore,
    recording_id: str,
    kind: str,
    recipients: list[str],
    *,
    project_id: str,
    actor_id: str | None,
    thread_id: str | None = None,
    at: datetime = START,
) -> int:
    """Append the notice the notice worker would append for the last event of
    ``recording_id``'s stream; that event's position."""
    source = (await store.read_stream(recording_stream(recording_id)))[-1]
    notice = PeopleNotified(
        source_position=source.position,
        source_event_id=f"{source.stream_id}@{source.stream_version}",
        source_type=source.event_type,
        kind=kind,  # type: ignore[arg-type]
        project_id=project_id,
        recording_id=recording_id,
        thread_id=thread_id or recording_id,
        actor_id=actor_id,
        at=at,
        recipient_ids=tuple(recipients),
    )
    await store.append(notice_stream(source.position), [notice], NO_STREAM, SYSTEM, project_id=None)
    return source.position


async def received(sink: Sink, n: int, timeout: float = 10.0) -> list[EmailMessage]:  # noqa: ASYNC109
    def check() -> list[EmailMessage]:
        assert len(sink.mails) >= n, f"{len(sink.mails)} mails so far"
        return sink.mails

    return await eventually(check, timeout=timeout)


async def states(store: EventStore) -> list[tuple[str, str, int]]:
    rows = await store.pool.fetch("SELECT person_id, state, attempts FROM mail_outbox ORDER BY id")
    return [(r["person_id"], r["state"], r["attempts"]) for r in rows]


async def settled(store: EventStore, n: int) -> list[tuple[str, str, int]]:
    """The outbox once ``n`` rows exist and none waits to be sent now."""

    async def check() -> list[tuple[str, str, int]]:
        rows = await states(store)
        assert len(rows) == n, rows
        assert all(s in ("sent", "failed", "skipped", "planned") for _, s, _ in rows), rows
        return rows

    return await eventually(check, timeout=10)


def parts(mail: EmailMessage) -> tuple[str, str]:
    plain = mail.get_body(("plain",))
    rich = mail.get_body(("html",))
    assert plain is not None and rich is not None
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
    await notify(
        store,
        posted["id"],
        "message",
        [team.mia_id],
        project_id=team.project_id,
        actor_id=team.api.admin_id,
    )
    [first] = await received(sink, 1)
    said = await comment(team, posted["id"], "<p>Je valide.</p>")
    await notify(
        store,
        said["id"],
        "comment",
        [team.mia_id],
        project_id=team.project_id,
        actor_id=team.api.admin_id,
        thread_id=posted["id"],
    )
    _, second = await received(sink, 2)

    assert first["To"] == "Mia <mia@example.com>"
    assert first["Subject"] == "[Launch] Plan de lancement"
    assert second["Subject"] == "Re: [Launch] Plan de lancement"
    text, rich = parts(first)
    assert "Ada Admin a publié un message dans Launch" in text
    assert "Bonjour à tous" in text
    assert "<b>à tous</b>" in rich and "<script" not in rich
    assert "Ne plus recevoir ce genre de courriels" in text
    assert first["Content-Language"] == "fr"
    text2, _ = parts(second)
    assert "Ada Admin a commenté" in text2 and "Je valide." in text2

    mid = first["Message-ID"]
    assert re.fullmatch(rf"<\d+\.[0-9a-f]{{20}}@{re.escape(DOMAIN)}>", mid), mid
    assert first["In-Reply-To"] is None
    assert second["In-Reply-To"] == mid and second["References"] == mid
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

"""Signed reply and project addresses (service/domain/mail_addresses.py) with the mail keys
of the database (service/reads/mail_keys.py)."""

from __future__ import annotations

import asyncpg

from service.domain.mail_addresses import (
    ProjectTarget,
    ReplyTarget,
    parse_local_part,
    project_local_part,
    reply_local_part,
)
from service.events.store import EventStore
from service.reads.mail_keys import keyring, rotate

from .support.cli import child_env, run_cairn


async def test_mail_addresses_round_trip_with_the_database_keys(store: EventStore) -> None:
    person, recording, project = "per_" + "1" * 20, "rec_" + "2" * 20, "prj_" + "3" * 20
    first = await keyring(store.pool)
    reply = reply_local_part(first, person, recording)
    assert len(reply) <= 64
    await rotate(store.pool)
    later = await keyring(store.pool)
    assert later.current != first.current
    # Tokens signed before a rotation still check; case does not matter.
    assert parse_local_part(later, reply.upper()) == ReplyTarget(person, recording)
    forward = project_local_part(later, project)
    assert parse_local_part(later, forward) == ProjectTarget(project)
    tampered = reply[:-2] + ("aa" if not reply.endswith("aa") else "bb")
    assert parse_local_part(later, tampered) is None
    assert parse_local_part(later, "reply+" + "a" * 10) is None
    assert parse_local_part(later, "someone") is None


async def test_cairn_mail_rotate_key_keeps_older_tokens_good(database_url: str) -> None:
    person, recording = "per_" + "4" * 20, "rec_" + "5" * 20
    conn = await asyncpg.connect(database_url)
    try:
        before = await keyring(conn)
        reply = reply_local_part(before, person, recording)
        code, output = await run_cairn("mail", "rotate-key", env=child_env(database_url))
        assert code == 0, output
        after = await keyring(conn)
    finally:
        await conn.close()
    assert after.current != before.current
    assert f"mail key {after.current} signs from now on" in output
    assert parse_local_part(after, reply) == ReplyTarget(person, recording)
    assert reply_local_part(after, person, recording) != reply

"""The outbox (table ``mail_outbox``, migration 0010): every mail planned, sending, sent,
failed or skipped, one row per notice and recipient.

**Planning**: the ``mail`` delivery reader (:class:`~service.workers.reader.DeliveryReader`
over ``notice-`` streams) turns each :class:`~service.events.notices.PeopleNotified` into
rows, in the transaction that moves its checkpoint: a batch's rows commit with its
checkpoint or not at all, so a notice is planned exactly once, across restarts and
instances. Each row follows its recipient's preferences as they stand when planned
(:func:`~service.domain.preferences.plan`): skipped (that kind's mail is off), due now, due
when their quiet hours end, or gathered into a day's digest.

The outbox is **not a read model**: it records what left (or will leave) for the outside
world, so it is never rebuilt from the log, and like every delivery reader the planner
starts at the head of the log the first time it runs: history is never mailed.

**Claiming** (:func:`claim`, :func:`claim_digest`): one short statement
(``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED LIMIT n) RETURNING``) marks due rows
``sending`` with a lease; never a transaction held over SMTP (the log's readers wait on the
oldest open transaction). Instances skip each other's rows. A row still ``sending`` past its
lease belongs to an instance that died between claiming and marking: it is claimed again
and sent with the same ``Message-ID``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

import asyncpg

from ..commands.caller import Services
from ..domain.people import PersonState, evolve_person
from ..domain.preferences import plan
from ..events.base import RecordedEvent
from ..events.notices import PeopleNotified
from ..events.store import EventStore
from ..events.streams import NOTICE, person_stream
from ..workers.reader import DeliveryReader

LEASE: Final = timedelta(minutes=10)
"""How long a claimed row is an instance's to send before another may take it."""
MAX_BACKOFF: Final = 3600.0
"""The longest wait (s) before a mail is tried again."""


def retry_delay(first: float, attempts: int) -> timedelta:
    """The wait before try ``attempts + 1`` of a mail: ``first`` seconds (the
    ``mail_retry_seconds`` setting), doubled on each further try, at most an hour."""
    return timedelta(seconds=min(first * 2 ** (attempts - 1), MAX_BACKOFF))


READER: Final = "mail"
"""The delivery reader's (and checkpoint's) name."""

_INSERT: Final = """
INSERT INTO mail_outbox (person_id, notice_position, kind, project_id, recording_id,
                         thread_id, actor_id, noticed_at, state, digest_day, due_at)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[],
                     $6::text[], $7::text[], $8::timestamptz[], $9::text[], $10::date[],
                     $11::timestamptz[])
ON CONFLICT (notice_position, person_id) DO NOTHING
"""
_COLUMNS: Final = (
    "id, person_id, notice_position, kind, project_id, recording_id, thread_id, actor_id, "
    "noticed_at, digest_day, attempts"
)
_CLAIM: Final = f"""
UPDATE mail_outbox SET state = 'sending', due_at = $2, lease_until = $2,
       attempts = attempts + 1
WHERE id IN (
    SELECT id FROM mail_outbox
    WHERE state IN ('planned', 'sending') AND due_at <= $1 AND digest_day IS NULL
    ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED
)
RETURNING {_COLUMNS}
"""
_DIGEST_LOCK: Final = "SELECT pg_try_advisory_xact_lock(1296125524, 1)"  # "MAIL", digests
_CLAIM_DIGEST: Final = f"""
WITH one AS (
    SELECT person_id, digest_day FROM mail_outbox
    WHERE state IN ('planned', 'sending') AND due_at <= $1 AND digest_day IS NOT NULL
    ORDER BY due_at LIMIT 1
)
UPDATE mail_outbox o SET state = 'sending', due_at = $2, lease_until = $2,
       attempts = attempts + 1
FROM one
WHERE o.person_id = one.person_id AND o.digest_day = one.digest_day
  AND o.state IN ('planned', 'sending') AND o.due_at <= $1
RETURNING {", ".join("o." + c.strip() for c in _COLUMNS.split(","))}
"""
_SENT: Final = (
    "UPDATE mail_outbox o SET state = 'sent', sent_at = $3, message_id = s.message_id, "
    "last_error = NULL, lease_until = NULL "
    "FROM unnest($1::bigint[], $2::text[]) AS s(id, message_id) WHERE o.id = s.id"
)
_RETRY: Final = (
    "UPDATE mail_outbox SET state = 'planned', due_at = $2, last_error = $3, "
    "lease_until = NULL WHERE id = ANY($1::bigint[])"
)
_FINAL: Final = (
    "UPDATE mail_outbox SET state = $2, last_error = $3, message_id = $4, lease_until = NULL "
    "WHERE id = ANY($1::bigint[])"
)
_BACKLOG: Final = (
    "SELECT count(*) FILTER (WHERE state IN ('planned', 'sending')) AS waiting, "
    "count(*) FILTER (WHERE state = 'failed') AS failed FROM mail_outbox"
)


@dataclass(frozen=True)
class Row:
    """A claimed row: one notice for one person."""

    id: int
    person_id: str
    position: int
    kind: str
    project_id: str
    recording_id: str | None
    thread_id: str | None
    actor_id: str | None
    noticed_at: datetime
    digest_day: date | None
    attempts: int


def _row(r: asyncpg.Record) -> Row:
    return Row(
        id=r["id"],
        person_id=r["person_id"],
        position=r["notice_position"],
        kind=r["kind"],
        project_id=r["project_id"],
        recording_id=r["recording_id"],
        thread_id=r["thread_id"],
        actor_id=r["actor_id"],
        noticed_at=r["noticed_at"],
        digest_day=r["digest_day"],
        attempts=r["attempts"],
    )


async def people(
    services: Services, person_ids: Sequence[str], *, concurrency: int = 8
) -> dict[str, PersonState]:
    """The people of ``person_ids`` (folded from their streams: their preferences are
    there), those found, by id."""
    states = services.person_states
    limit = asyncio.Semaphore(concurrency)

    async def one(person_id: str) -> tuple[str, PersonState | None]:
        async with limit:
            stream = person_stream(person_id)
            if states is not None:
                _, state = await states.load(services.store, stream)
                return person_id, state
            folded: PersonState | None = None
            for e in await services.store.read_stream(stream):
                folded = evolve_person(folded, e.event)
            return person_id, folded

    found = await asyncio.gather(*(one(p) for p in dict.fromkeys(person_ids)))
    return {p: s for p, s in found if s is not None}


def _zone(name: str | None, default: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or default)
    except (KeyError, ValueError, OSError):
        return ZoneInfo(default)


class Planner:
    """The ``mail`` delivery reader and what it does with each batch of notices.

    Args:
        services: the store, the clock, the default time zone, the fold cache of people.
        digest_hour: the local hour digests are sent at.
        wake: set once a step that planned rows has committed (the sender looks at once).
    """

    def __init__(self, services: Services, *, digest_hour: int, wake: asyncio.Event) -> None:
        self.services = services
        self.digest_hour = digest_hour
        self.wake = wake
        self.planned = False
        self.reader = _Reader(services.store, READER, self._plan, stream_prefixes=(NOTICE,))
        self.reader.planner = self

    async def _plan(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        notices = [e.event for e in events if isinstance(e.event, PeopleNotified)]
        if not notices:
            return
        who = await people(self.services, [p for n in notices for p in n.recipient_ids])
        now = self.services.clock()
        columns: list[list[object]] = [[] for _ in range(11)]
        for notice in notices:
            for person_id in dict.fromkeys(notice.recipient_ids):
                person = who.get(person_id)
                if person is None:
                    continue
                zone = _zone(person.time_zone, self.services.time_zone)
                planned = plan(person.notifications, notice.kind, zone, now, self.digest_hour)
                state = "skipped" if planned.plan == "skip" else "planned"
                row = (
                    person_id,
                    notice.source_position,
                    notice.kind,
                    notice.project_id,
                    notice.recording_id,
                    notice.thread_id,
                    notice.actor_id,
                    notice.at,
                    state,
                    planned.day,
                    planned.due_at,
                )
                for column, value in zip(columns, row, strict=True):
                    column.append(value)
        if columns[0]:
            await conn.execute(_INSERT, *columns)
            self.planned = True  # the sender is woken once this commits (_Reader.step)


class _Reader(DeliveryReader):
    """The delivery reader, waking the sender after a step that planned rows has committed
    (woken before, it would find nothing and sleep until its next poll)."""

    planner: Planner

    async def step(self) -> int:
        try:
            return await super().step()
        finally:
            if self.planner.planned:
                self.planner.planned = False
                self.planner.wake.set()


async def claim(pool: asyncpg.Pool, now: datetime, lease_until: datetime, limit: int) -> list[Row]:
    """Claim up to ``limit`` single mails due at ``now`` (planned, or sending past their
    lease), leased until ``lease_until``; their attempts counted."""
    return [_row(r) for r in await pool.fetch(_CLAIM, now, lease_until, limit)]


async def claim_digest(pool: asyncpg.Pool, now: datetime, lease_until: datetime) -> list[Row]:
    """Claim every due row of one person's digest of one day (none: nothing due, or another
    instance is claiming digests now). One instance claims digests at a time, so that a
    digest is never split between two."""
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval(_DIGEST_LOCK):
            return []
        return [_row(r) for r in await conn.fetch(_CLAIM_DIGEST, now, lease_until)]


async def sent(pool: asyncpg.Pool, mails: Sequence[tuple[int, str]], at: datetime) -> None:
    """Mark rows sent (their mail accepted by the SMTP server), each with its mail's
    ``Message-ID``: (row id, Message-ID) pairs, in one statement."""
    if mails:
        await pool.execute(_SENT, [i for i, _ in mails], [m for _, m in mails], at)


async def retry(pool: asyncpg.Pool, ids: Sequence[int], at: datetime, error: str) -> None:
    """Put rows back, due at ``at``, after a temporary failure."""
    await pool.execute(_RETRY, list(ids), at, error)


async def finish(
    pool: asyncpg.Pool, ids: Sequence[int], state: str, reason: str, message_id: str | None = None
) -> None:
    """Mark rows ``failed`` or ``skipped``, saying why."""
    await pool.execute(_FINAL, list(ids), state, reason, message_id)


async def backlog(pool: asyncpg.Pool) -> tuple[int, int]:
    """Mails waiting (planned or sending) and mails failed."""
    row = await pool.fetchrow(_BACKLOG)
    return int(row["waiting"]), int(row["failed"])


async def start_at_head(store: EventStore) -> None:
    """Create the mail reader's checkpoint at the head of the log unless it exists."""
    await DeliveryReader(store, READER, _nothing).start_at_head()


async def _nothing(conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
    return None

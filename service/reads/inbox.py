"""The read side of notices and the inbox: the facts the notice worker decides on
(tables ``recordings``, ``subscriptions``, ``people``, ``projects``, ``project_members``)
and each person's notifications (table ``notifications`` of the ``inbox`` read model).

Shared by channels: the notice worker, the HTTP inbox and the WebSocket's notification
frames read through here.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Final

import asyncpg

from ..domain.access import RecordingFacts, Viewer
from ..domain.notices import NoticeFacts
from .access import projects_facts, recording_facts

_RECORDINGS: Final = (
    "SELECT recording_id, kind, project_id, parent_id, status, visible_to_clients, "
    "creator_id, assignee_ids, responsible_id FROM recordings "
    "WHERE recording_id = ANY($1::text[])"
)
_SUBSCRIBERS: Final = (
    "SELECT recording_id, person_id FROM subscriptions WHERE recording_id = ANY($1::text[])"
)
_PEOPLE: Final = "SELECT person_id, role, active FROM people WHERE person_id = ANY($1::text[])"


@dataclass(frozen=True)
class _Recording:
    facts: RecordingFacts
    parent_id: str | None
    responsible_id: str | None


async def notice_facts(
    pool: asyncpg.Pool, recording_ids: Collection[str]
) -> dict[str, NoticeFacts]:
    """What :func:`~service.domain.notices.notice_of` needs about each of
    ``recording_ids`` (as the read models hold it now; the caller waits for them first):
    the recording's and its project's access facts, the subscribers of its parent (a
    comment) or of itself, its assignees and responsible person, and every person among
    them as a viewer. A recording the read models lack is left out."""
    rows = await pool.fetch(_RECORDINGS, list(recording_ids))
    found = {
        r["recording_id"]: _Recording(recording_facts(r), r["parent_id"], r["responsible_id"])
        for r in rows
    }
    if not found:
        return {}
    followed = {
        (rec.parent_id if rec.facts.kind == "comment" and rec.parent_id else rid)
        for rid, rec in found.items()
    }
    subscribers: dict[str, set[str]] = {}
    for row in await pool.fetch(_SUBSCRIBERS, list(followed)):
        subscribers.setdefault(row["recording_id"], set()).add(row["person_id"])
    projects = await projects_facts(pool, list({r.facts.project_id for r in found.values()}))
    named: set[str] = set()
    for rid, rec in found.items():
        named |= rec.facts.assignee_ids
        named |= subscribers.get(_followed(rid, rec), set())
        if rec.responsible_id is not None:
            named.add(rec.responsible_id)
    people = {
        r["person_id"]: Viewer(person_id=r["person_id"], role=r["role"], active=r["active"])
        for r in await pool.fetch(_PEOPLE, list(named))
    }
    return {
        rid: NoticeFacts(
            project=projects.get(rec.facts.project_id),
            recording=rec.facts,
            parent_id=rec.parent_id,
            subscribers=frozenset(subscribers.get(_followed(rid, rec), ())),
            assignees=rec.facts.assignee_ids,
            responsible_id=rec.responsible_id,
            people=people,
        )
        for rid, rec in found.items()
    }


def _followed(recording_id: str, rec: _Recording) -> str:
    """Whose subscribers hear of what happens to a recording: a comment's parent's."""
    return rec.parent_id if rec.facts.kind == "comment" and rec.parent_id else recording_id


# ----------------------------------------------------------------- the inbox

_COLUMNS: Final = (
    "notification_id, person_id, source_position, kind, project_id, recording_id, "
    "thread_id, actor_id, at, read_at"
)
_PAGE: Final = (
    f"SELECT {_COLUMNS} FROM notifications WHERE person_id = $1 "
    "AND ((read_at IS NOT NULL), -source_position) > ($2::boolean, -$3::bigint) "
    "ORDER BY (read_at IS NOT NULL), source_position DESC LIMIT $4"
)
_FIRST: Final = (
    f"SELECT {_COLUMNS} FROM notifications WHERE person_id = $1 "
    "ORDER BY (read_at IS NOT NULL), source_position DESC LIMIT $2"
)
_ONE: Final = f"SELECT {_COLUMNS} FROM notifications WHERE notification_id = $1"
_UNREAD: Final = "SELECT count(*) FROM notifications WHERE person_id = $1 AND read_at IS NULL"
_NEWEST_UNREAD: Final = (
    "SELECT source_position FROM notifications WHERE person_id = $1 AND read_at IS NULL "
    "ORDER BY (read_at IS NOT NULL), source_position DESC LIMIT 1"
)

After = tuple[bool, int]
"""Where a page of the inbox starts: after the notification (read or not, source position)."""


async def page(
    pool: asyncpg.Pool, person_id: str, after: After | None, limit: int
) -> list[asyncpg.Record]:
    """Up to ``limit`` of ``person_id``'s notifications after ``after`` (from the first):
    unread first, then read, each newest first (by the position of the event told of)."""
    if after is None:
        return list(await pool.fetch(_FIRST, person_id, limit))
    read, position = after
    return list(await pool.fetch(_PAGE, person_id, read, position, limit))


async def notification(pool: asyncpg.Pool, notification_id: str) -> asyncpg.Record | None:
    """One notification (anyone's: the caller checks whose it is)."""
    return await pool.fetchrow(_ONE, notification_id)


async def notifications(
    pool: asyncpg.Pool, notification_ids: Sequence[str]
) -> list[asyncpg.Record]:
    """The given notifications (anyone's), missing ids left out."""
    return list(
        await pool.fetch(
            f"SELECT {_COLUMNS} FROM notifications WHERE notification_id = ANY($1::text[])",
            list(notification_ids),
        )
    )


async def unread_count(pool: asyncpg.Pool, person_id: str) -> int:
    """How many of ``person_id``'s notifications are unread."""
    count: int = await pool.fetchval(_UNREAD, person_id)
    return count


async def total(pool: asyncpg.Pool, person_id: str) -> int:
    """How many notifications ``person_id`` has (those about what they may no longer see
    included)."""
    count: int = await pool.fetchval(
        "SELECT count(*) FROM notifications WHERE person_id = $1", person_id
    )
    return count


async def newest_unread(pool: asyncpg.Pool, person_id: str) -> int | None:
    """The source position of ``person_id``'s newest unread notification (None: none)."""
    position: int | None = await pool.fetchval(_NEWEST_UNREAD, person_id)
    return position

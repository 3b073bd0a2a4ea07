"""What external feed subscriptions keep besides the log (migration 0017): table
``external_feeds``, one row per subscription, written in the same transaction as the event
telling of each change (:mod:`service.events.external_feeds`), plus the poller's own state
(validators, failures, status, the next poll, its lease), which the log never sees.

The poller claims due feeds with a lease in one statement (``FOR UPDATE SKIP LOCKED``: two
instances never poll one feed at once), fetches with no transaction open, then records the
outcome in another statement (:func:`record`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final, TypeAlias

import asyncpg

Executor: TypeAlias = "asyncpg.Pool | asyncpg.Connection"

_COLUMNS: Final = (
    "feed_id, project_id, url, title, visible_to_clients, interval_seconds, creator_id, "
    "created_at, removed_at, feed_title, etag, last_modified, next_poll_at, last_polled_at, "
    "failures, status, error"
)


async def insert(
    db: Executor,
    *,
    feed_id: str,
    project_id: str,
    url: str,
    title: str | None,
    visible_to_clients: bool,
    interval: int,
    creator_id: str,
    now: datetime,
) -> None:
    """A new subscription, due for its first poll at once."""
    await db.execute(
        "INSERT INTO external_feeds (feed_id, project_id, url, title, visible_to_clients, "
        "interval_seconds, creator_id, created_at, next_poll_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        feed_id, project_id, url, title, visible_to_clients, interval, creator_id, now,
    )  # fmt: skip


async def update(db: Executor, feed_id: str, changes: dict[str, Any], now: datetime) -> None:
    """Apply an edit's ``changes`` (field: new value); a new address forgets the old one's
    validators and is polled at once."""
    columns = {"interval": "interval_seconds"}
    sets: list[str] = []
    args: list[Any] = [feed_id]
    for field, value in changes.items():
        args.append(value)
        sets.append(f"{columns.get(field, field)} = ${len(args)}")
    if "url" in changes:
        args.append(now)
        sets.append(
            f"etag = NULL, last_modified = NULL, failures = 0, status = 'pending', "
            f"error = NULL, next_poll_at = ${len(args)}"
        )
    if sets:
        await db.execute(f"UPDATE external_feeds SET {', '.join(sets)} WHERE feed_id = $1", *args)


async def remove(db: Executor, feed_id: str, now: datetime) -> None:
    """Stop polling ``feed_id`` (its row stays, its items too)."""
    await db.execute(
        "UPDATE external_feeds SET removed_at = $2 WHERE feed_id = $1 AND removed_at IS NULL",
        feed_id,
        now,
    )


async def one(db: Executor, feed_id: str) -> asyncpg.Record | None:
    """The subscription ``feed_id`` (removed ones too)."""
    row: asyncpg.Record | None = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM external_feeds WHERE feed_id = $1", feed_id
    )
    return row


async def of_project(db: Executor, project_id: str) -> list[asyncpg.Record]:
    """The live subscriptions of ``project_id``, oldest first."""
    rows: list[asyncpg.Record] = await db.fetch(
        f"SELECT {_COLUMNS} FROM external_feeds WHERE project_id = $1 AND removed_at IS NULL "
        "ORDER BY created_at, feed_id",
        project_id,
    )
    return rows


async def count(db: Executor, project_id: str) -> int:
    """How many live subscriptions ``project_id`` has."""
    n: int = await db.fetchval(
        "SELECT count(*) FROM external_feeds WHERE project_id = $1 AND removed_at IS NULL",
        project_id,
    )
    return n


_CLAIM: Final = f"""
UPDATE external_feeds f SET leased_until = $2
FROM (
    SELECT feed_id FROM external_feeds
    WHERE removed_at IS NULL AND next_poll_at <= $1
      AND (leased_until IS NULL OR leased_until <= $1)
      -- Archived and trashed projects take no new items (polled again once active).
      AND project_id IN (SELECT p.project_id FROM projects p WHERE p.status = 'active')
    ORDER BY next_poll_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
) due
WHERE f.feed_id = due.feed_id
RETURNING {", ".join("f." + c.strip() for c in _COLUMNS.split(","))}
"""


async def claim(db: Executor, now: datetime, lease: timedelta, limit: int) -> list[asyncpg.Record]:
    """Claim up to ``limit`` feeds due at ``now`` for ``lease`` (one statement; rows another
    instance holds are skipped, not waited for)."""
    rows: list[asyncpg.Record] = await db.fetch(_CLAIM, now, now + lease, limit)
    return rows


async def record(
    db: Executor,
    feed_id: str,
    *,
    now: datetime,
    next_poll_at: datetime,
    ok: bool,
    error: str | None = None,
    etag: str | None = None,
    last_modified: str | None = None,
    feed_title: str | None = None,
    keep_validators: bool = False,
) -> None:
    """The outcome of a poll: validators (kept as they were on a 304 or an error),
    status, failures in a row, the next poll; the lease ends."""
    await db.execute(
        """
        UPDATE external_feeds SET
            last_polled_at = $2, next_poll_at = $3,
            status = CASE WHEN $4 THEN 'ok' ELSE 'error' END,
            error = $5,
            failures = CASE WHEN $4 THEN 0 ELSE failures + 1 END,
            etag = CASE WHEN $6 THEN etag ELSE $7 END,
            last_modified = CASE WHEN $6 THEN last_modified ELSE $8 END,
            feed_title = coalesce($9, feed_title),
            leased_until = NULL
        WHERE feed_id = $1
        """,
        feed_id, now, next_poll_at, ok, error, keep_validators or not ok, etag, last_modified,
        feed_title,
    )  # fmt: skip


async def known_items(db: Executor, recording_ids: list[str]) -> set[str]:
    """Which of ``recording_ids`` the recordings read model has (posted before; one that
    lags is caught by the append, which expects no stream)."""
    found = await db.fetch(
        "SELECT recording_id FROM recordings WHERE recording_id = ANY($1::text[])", recording_ids
    )
    return {r["recording_id"] for r in found}

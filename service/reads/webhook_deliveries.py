"""Webhook deliveries (tables ``webhook_deliveries`` and ``webhook_attempts``, migration
0016): not a read model, not derived from the log: what left (or will leave) for endpoints.

**Planning** (:func:`plan`): rows are inserted by the ``webhooks`` delivery reader in the
transaction that moves its checkpoint, one per (endpoint, event): planned exactly once.

**Claiming** (:func:`claim`): one call of ``cairn_webhook_claim`` (migration 0016), no
network I/O: an advisory lock serialises claimers across instances (so that the
per-endpoint cap holds across them), then one ``UPDATE`` marks due rows ``sending`` with a
lease, at most ``cap`` in flight per endpoint. The request goes out after the commit; the outcome is marked
in one statement per delivery that also logs the attempt (:func:`finish`, :func:`retry`).
A row still ``sending`` past its lease belongs to an instance that died mid-request: it is
claimed again and sent with the same ``webhook-id`` (at least once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

import asyncpg

KEEP: Final = 100
"""Finished deliveries and attempts kept per endpoint."""

# "WHKK": claims. The commit of a claim or a mark does not wait for the WAL flush: one lost
# in a crash leaves its rows as they were, and they are sent again with the same webhook-id
# (at least once, as promised).
_INSERT: Final = """
INSERT INTO webhook_deliveries (webhook_id, position, msg_id, kind, payload, url, audience,
                                due_at, created_at)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::timestamptz[], $8::timestamptz[])
ON CONFLICT (webhook_id, position) DO NOTHING
"""
_CLAIM: Final = "SELECT * FROM cairn_webhook_claim($1, $2, $3, $4)"
_DELIVERED_NEXT: Final = (
    "SELECT * FROM cairn_webhook_delivered_next($1, $2, $3, $4, $5, $6, $7, $8)"
)
"""Migration 0016's function: the lock, then the claim, in one round trip (its comment says
how the cap holds)."""
_ATTEMPT: Final = """
INSERT INTO webhook_attempts (delivery_id, webhook_id, at, status, duration_ms, response, error)
SELECT id, webhook_id, $2, $3, $4, $5, $6 FROM done
"""
_DELIVERED: Final = """
WITH async_commit AS (SELECT set_config('synchronous_commit', 'off', true) AS off),
outcome AS (
    SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::int[], $4::int[], $5::text[])
        AS o(id, at, status, duration_ms, response)
), done AS (
    UPDATE webhook_deliveries d SET state = 'delivered', lease_until = NULL,
           last_status = o.status, last_error = NULL, finished_at = o.at
    FROM outcome o, async_commit WHERE d.id = o.id RETURNING d.id, d.webhook_id
)
INSERT INTO webhook_attempts (delivery_id, webhook_id, at, status, duration_ms, response)
SELECT done.id, done.webhook_id, o.at, o.status, o.duration_ms, o.response
FROM done JOIN outcome o USING (id)
"""
_FAILED: Final = f"""
WITH done AS (
    UPDATE webhook_deliveries SET state = 'failed', lease_until = NULL, last_status = $3,
           last_error = $6, finished_at = $2
    WHERE id = $1 RETURNING id, webhook_id
)
{_ATTEMPT}
"""
_RETRY: Final = f"""
WITH done AS (
    UPDATE webhook_deliveries SET state = 'pending', lease_until = NULL, last_status = $3,
           last_error = $6, due_at = $7
    WHERE id = $1 RETURNING id, webhook_id
)
{_ATTEMPT}
"""
_DROP: Final = """
UPDATE webhook_deliveries SET state = 'failed', lease_until = NULL, last_error = $3,
       finished_at = $2
WHERE id = ANY($1::bigint[])
"""
_SKIP: Final = """
UPDATE webhook_deliveries SET state = 'skipped', lease_until = NULL, last_error = u.why,
       finished_at = $2
FROM unnest($1::bigint[], $3::text[]) AS u(id, why)
WHERE webhook_deliveries.id = u.id
"""
_PRUNE_DELIVERIES: Final = """
DELETE FROM webhook_deliveries d
WHERE d.webhook_id = $1 AND d.state IN ('delivered', 'failed', 'skipped') AND d.id < (
    SELECT min(id) FROM (SELECT id FROM webhook_deliveries WHERE webhook_id = $1
                         ORDER BY id DESC LIMIT $2) newest
)
"""
_PRUNE_ATTEMPTS: Final = """
DELETE FROM webhook_attempts a
WHERE a.webhook_id = $1 AND a.id < (
    SELECT min(id) FROM (SELECT id FROM webhook_attempts WHERE webhook_id = $1
                         ORDER BY id DESC LIMIT $2) newest
)
"""
_LIST: Final = """
SELECT d.id, d.msg_id, d.position, d.kind, d.state, d.attempts, d.last_status, d.last_error,
       d.due_at, d.created_at, d.finished_at,
       a.status AS attempt_status, a.duration_ms, a.response, a.error AS attempt_error,
       a.at AS attempted_at
FROM webhook_deliveries d
LEFT JOIN LATERAL (
    SELECT * FROM webhook_attempts x WHERE x.delivery_id = d.id ORDER BY x.id DESC LIMIT 1
) a ON true
WHERE d.webhook_id = $1 ORDER BY d.id DESC LIMIT $2
"""
_REDELIVER: Final = """
UPDATE webhook_deliveries SET state = 'pending', due_at = $3, attempts = 0,
       lease_until = NULL, finished_at = NULL
WHERE webhook_id = $1 AND id = $2 AND state <> 'sending' AND url = $4 AND audience = $5
RETURNING id
"""
_EXISTS: Final = """
SELECT state, url = $3 AND audience = $4 AS fits FROM webhook_deliveries
WHERE webhook_id = $1 AND id = $2
"""
_WAITING: Final = "SELECT count(*) FROM webhook_deliveries WHERE state IN ('pending', 'sending')"


@dataclass(frozen=True)
class Planned:
    """A delivery to plan: one event for one endpoint, its payload already built."""

    webhook_id: str
    position: int
    msg_id: str
    kind: str
    payload: bytes
    url: str
    audience: str


@dataclass(frozen=True)
class Claimed:
    """A delivery claimed for sending (``attempts``: this one included), with the URL and
    audience it was planned for (``url``, ``audience``) and its hook's now (``hook_url``,
    ``hook_audience``; None: the hook is gone)."""

    id: int
    webhook_id: str
    position: int
    msg_id: str
    payload: bytes
    attempts: int
    url: str = ""
    audience: str = ""
    hook_url: str | None = None
    hook_audience: str | None = None

    def changed(self) -> str | None:
        """Why the delivery must not be sent: its hook's audience or URL is no longer the
        one it was planned for (the payload was redacted for that audience, for that
        receiver); None when they are the same, or the hook is gone."""
        if self.hook_audience is not None and self.hook_audience != self.audience:
            return (
                f"the hook's audience changed from {self.audience} to {self.hook_audience} "
                "after this event was planned"
            )
        if self.hook_url is not None and self.hook_url != self.url:
            return "the hook's URL changed after this event was planned"
        return None


async def plan(conn: asyncpg.Connection, rows: Sequence[Planned], due: datetime) -> None:
    """Insert deliveries due at ``due`` (in the caller's transaction); a (endpoint,
    position) already planned is left as it is."""
    if rows:
        await conn.execute(
            _INSERT,
            [r.webhook_id for r in rows],
            [r.position for r in rows],
            [r.msg_id for r in rows],
            [r.kind for r in rows],
            [r.payload.decode() for r in rows],
            [r.url for r in rows],
            [r.audience for r in rows],
            [due] * len(rows),
        )


async def claim(
    pool: asyncpg.Pool, now: datetime, lease_until: datetime, limit: int, cap: int
) -> list[Claimed]:
    """Claim up to ``limit`` deliveries due at ``now``, leased until ``lease_until``, leaving
    at most ``cap`` in flight per endpoint across instances."""
    # Claimers queue on the lock before writing anything (no transaction id is held while
    # waiting); each sees the rows the previous one marked.
    return _claimed(await pool.fetch(_CLAIM, now, lease_until, limit, cap))


async def delivered_then_claim(
    pool: asyncpg.Pool,
    delivery_id: int,
    attempt: Attempt,
    now: datetime,
    lease_until: datetime,
    cap: int,
) -> list[Claimed]:
    """Mark a delivery delivered (a 2xx), logging its attempt, and claim the next due one
    (as :func:`claim` with a limit of 1), in one round trip."""
    rows = await pool.fetch(
        _DELIVERED_NEXT,
        delivery_id,
        attempt.at,
        attempt.status,
        attempt.duration_ms,
        attempt.response,
        now,
        lease_until,
        cap,
    )
    return _claimed(rows)


def _claimed(rows: Sequence[asyncpg.Record]) -> list[Claimed]:
    return [
        Claimed(
            id=r["id"],
            webhook_id=r["webhook_id"],
            position=r["position"],
            msg_id=r["msg_id"],
            payload=r["payload"].encode(),
            attempts=r["attempts"],
            url=r["url"],
            audience=r["audience"],
            hook_url=r["hook_url"],
            hook_audience=r["hook_audience"],
        )
        for r in rows
    ]


@dataclass(frozen=True)
class Attempt:
    """What one attempt came to: the status (None: no answer), its duration, the start of
    the answer or the error."""

    at: datetime
    status: int | None
    duration_ms: int
    response: str | None = None
    error: str | None = None

    def args(self) -> tuple[Any, ...]:
        return (self.at, self.status, self.duration_ms, self.response, self.error)


async def delivered(pool: asyncpg.Pool, done: Sequence[tuple[int, Attempt]]) -> None:
    """Mark deliveries delivered (a 2xx), logging their attempts: (delivery id, attempt)
    pairs, in one statement."""
    if done:
        await pool.execute(
            _DELIVERED,
            [i for i, _ in done],
            [a.at for _, a in done],
            [a.status for _, a in done],
            [a.duration_ms for _, a in done],
            [a.response for _, a in done],
        )


async def failed(pool: asyncpg.Pool, delivery_id: int, attempt: Attempt) -> None:
    """Mark a delivery failed for good, logging the attempt."""
    await pool.execute(_FAILED, delivery_id, *attempt.args())


async def retry(pool: asyncpg.Pool, delivery_id: int, attempt: Attempt, due: datetime) -> None:
    """Put a delivery back, due at ``due``, logging the attempt."""
    await pool.execute(_RETRY, delivery_id, *attempt.args(), due)


async def drop(pool: asyncpg.Pool, delivery_ids: Sequence[int], at: datetime, why: str) -> None:
    """Mark deliveries failed without an attempt (their endpoint is gone or disabled)."""
    if delivery_ids:
        await pool.execute(_DROP, list(delivery_ids), at, why)


async def skip(pool: asyncpg.Pool, skipped: Sequence[tuple[int, str]], at: datetime) -> None:
    """Mark deliveries skipped, never sent: (delivery id, why) pairs."""
    if skipped:
        await pool.execute(_SKIP, [i for i, _ in skipped], at, [w for _, w in skipped])


async def prune(pool: asyncpg.Pool, webhook_id: str, keep: int = KEEP) -> None:
    """Forget an endpoint's finished deliveries and attempts older than its newest
    ``keep``."""
    await pool.execute(_PRUNE_DELIVERIES, webhook_id, keep)
    await pool.execute(_PRUNE_ATTEMPTS, webhook_id, keep)


async def recent(pool: asyncpg.Pool, webhook_id: str, limit: int = KEEP) -> list[asyncpg.Record]:
    """An endpoint's last ``limit`` deliveries, newest first, each with its last attempt."""
    return list(await pool.fetch(_LIST, webhook_id, limit))


async def redeliver(
    pool: asyncpg.Pool, webhook_id: str, delivery_id: int, now: datetime, url: str, audience: str
) -> Literal["queued", "sending", "changed"] | None:
    """Send a delivery again (same payload, same ``webhook-id``), due at ``now`` with a fresh
    retry schedule, if the hook still has the ``url`` and ``audience`` it was planned for:
    ``"queued"``; ``"sending"`` when it is being sent right now; ``"changed"`` when the hook's
    URL or audience is no longer the delivery's (its payload is never sent); None when the
    endpoint has no such delivery."""
    if await pool.fetchval(_REDELIVER, webhook_id, delivery_id, now, url, audience) is not None:
        return "queued"
    found = await pool.fetchrow(_EXISTS, webhook_id, delivery_id, url, audience)
    if found is None:
        return None
    return "changed" if not found["fits"] else "sending"


async def waiting(pool: asyncpg.Pool) -> int:
    """Deliveries pending or being sent."""
    return int(await pool.fetchval(_WAITING))

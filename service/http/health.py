"""Liveness and readiness, for orchestrators and load balancers.

``GET /healthz``: the process answers (it touches nothing: restart the process when this
fails). ``GET /readyz``: this instance can serve now (send it traffic only while this is
200): PostgreSQL answers within ``CAIRN_DB_TIMEOUT``, its schema has every migration of
this code, every read model is within ``CAIRN_READY_LAG_SECONDS`` of the log, and the
real-time hub follows the log (the ``mail`` check says whether e-mail is sent and how many
wait in the outbox; only a sender that should run and does not fails it). Neither takes a token; neither is under ``/v1``, like
``/openapi.json``: they speak of this process, not of the API's resources. ``/v1/health``
(liveness and the log's head, reading the database) stays as it was.
"""

from __future__ import annotations

import asyncio
from typing import Final, Literal

import asyncpg
import msgspec

from ..database.migrate import Migration, unapplied
from ..errors import DatabaseUnavailable, NotReady
from ..events.store import EventStore
from ..events.wakeup import TRANSIENT_ERRORS
from ..mail.sender import MailOut
from ..projections.engine import ProjectionEngine, ProjectionStatus
from ..realtime.endpoint import Realtime
from .api import Api, Ctx, Reply

api = Api()

UNREACHABLE: Final = (*TRANSIENT_ERRORS, DatabaseUnavailable, asyncpg.PostgresError)
"""What a probe of PostgreSQL may raise when it cannot have an answer (refused, lost, too slow,
refused by the server)."""


class Liveness(msgspec.Struct, frozen=True, kw_only=True):
    """The process answers."""

    status: Literal["ok"]


class Check(msgspec.Struct, frozen=True, kw_only=True):
    """One condition of readiness."""

    name: str
    """``database``, ``migrations``, ``projection:<name>`` (one per read model), ``realtime``,
    ``mail``."""
    ready: bool
    detail: str


class Readiness(msgspec.Struct, frozen=True, kw_only=True):
    """This instance can serve; what was checked."""

    status: Literal["ready"]
    checks: list[Check]


@api.get(
    "/healthz",
    summary="Liveness: the process answers (touches no database)",
    response=Liveness,
    auth="none",
    tags=["operations"],
)
async def healthz(ctx: Ctx) -> Reply:
    return Reply(Liveness(status="ok"))


@api.get(
    "/readyz",
    summary="Readiness: database reachable, migrations current, read models within their lag "
    "bound, real-time hub following the log, mail (configured or not, its backlog); 503 names "
    "what is not ready",
    response=Readiness,
    auth="none",
    tags=["operations"],
)
async def readyz(ctx: Ctx) -> Reply:
    checks = await readiness(
        ctx.services.store,
        ctx.services.engine,
        ctx.state["realtime"],
        lag_bound=ctx.settings.ready_lag_seconds,
        db_timeout=ctx.settings.db_timeout,
    )
    checks.append(await mail_check(ctx.state["mail"], ctx.settings.db_timeout))
    failing = [f"{c.name} {c.detail}" for c in checks if not c.ready]
    if failing:
        raise NotReady("not ready: " + "; ".join(failing))
    return Reply(Readiness(status="ready", checks=checks))


async def readiness(
    store: EventStore,
    engine: ProjectionEngine | None,
    realtime: Realtime,
    *,
    lag_bound: float,
    db_timeout: float,
) -> list[Check]:
    """Every readiness condition, met or not (see the module's docstring); no read model
    to check without ``engine``; PostgreSQL is unreachable past ``db_timeout`` seconds.

    An unreachable database fails ``database`` and leaves ``migrations`` and the read models
    unknown (failing too); the error is named by its kind only, never with the server's
    address (this answer is public).
    """
    checks: list[Check] = []
    try:
        async with asyncio.timeout(db_timeout):
            missing = await unapplied(store.pool)
            statuses = [] if engine is None else await engine.status()
    except UNREACHABLE as exc:
        unknown = "unknown: the database is unreachable"
        checks.append(Check(name="database", ready=False, detail=f"unreachable ({_kind(exc)})"))
        checks.append(Check(name="migrations", ready=False, detail=unknown))
        checks += [
            Check(name=f"projection:{name}", ready=False, detail=unknown)
            for name in ([] if engine is None else engine.projections)
        ]
    else:
        checks.append(Check(name="database", ready=True, detail="reachable"))
        checks.append(_migrations(missing))
        checks += [_lag(status, lag_bound) for status in statuses]
    following = realtime.following()
    checks.append(
        Check(
            name="realtime",
            ready=following,
            detail="following the log" if following else "not following the log",
        )
    )
    return checks


async def mail_check(mail: MailOut, db_timeout: float) -> Check:
    """E-mail out: configured or not, and its outbox's backlog. Never what makes an instance
    unready (mail waits in the outbox), except a sender that should run and does not."""
    if not mail.configured:
        return Check(
            name="mail",
            ready=True,
            detail="not configured (CAIRN_SMTP_URL or CAIRN_MAIL_DOMAIN unset): no mail is sent",
        )
    try:
        async with asyncio.timeout(db_timeout):
            waiting, failed = await mail.backlog()
    except UNREACHABLE:
        backlog = "outbox unknown"
    else:
        backlog = f"{waiting} mails waiting, {failed} failed"
    if not mail.running:
        return Check(name="mail", ready=False, detail=f"configured, sender stopped; {backlog}")
    return Check(name="mail", ready=True, detail=f"configured, sending; {backlog}")


def _kind(exc: BaseException) -> str:
    return "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__


def _migrations(missing: list[Migration]) -> Check:
    if not missing:
        return Check(name="migrations", ready=True, detail="current")
    names = ", ".join(f"{m.version:04d}_{m.name}" for m in missing)
    return Check(name="migrations", ready=False, detail=f"not applied: {names}")


def _lag(status: ProjectionStatus, bound: float) -> Check:
    name = f"projection:{status.name}"
    if status.lag_events < 0:
        return Check(name=name, ready=False, detail="not installed")
    detail = f"{status.lag_events} events, {status.lag_seconds:.1f} s behind (bound {bound:g} s)"
    return Check(name=name, ready=status.lag_seconds <= bound, detail=detail)

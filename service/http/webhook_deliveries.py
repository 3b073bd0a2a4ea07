"""A webhook's deliveries: ``GET /v1/webhooks/{id}/deliveries`` (the last 100, newest first,
each with its last attempt: status, duration, the start of the answer or the error) and
``POST /v1/webhooks/{id}/deliveries/{delivery}/redeliver`` (the same payload and
``webhook-id`` sent again, due now, with a fresh retry schedule). Who may manage a hook may
see and redeliver its deliveries (docs/WEBHOOKS.md); others are answered 404.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

from ..domain.context import Timestamp
from ..domain.webhooks import require_manager
from ..errors import Conflict, NotFound
from ..events.streams import WEBHOOK_ID, id_pattern
from ..reads import webhook_deliveries as deliveries
from ..reads import webhooks as hooks
from ..reads.access import project_facts
from .api import Api, Ctx, Reply
from .params import Param

api = Api()

_TAGS: Final = ["webhooks"]
_ID: Final = {
    "webhook_id": Param(
        "a webhook's id", Annotated[str, msgspec.Meta(pattern=id_pattern(WEBHOOK_ID))]
    )
}
_DELIVERY: Final = {
    **_ID,
    "delivery_id": Param("a delivery's id", Annotated[int, msgspec.Meta(ge=1, le=2**62)]),
}


class LastAttempt(msgspec.Struct, frozen=True, kw_only=True):
    """The last attempt at a delivery: when, the HTTP status (``null``: no answer), how long
    it took, the start of the answer's body (at most 1 KiB) or the error."""

    at: Timestamp
    status: int | None
    duration_ms: int
    response: str | None
    error: str | None


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """One event sent (or to be sent) to a webhook. ``webhook_id`` is the ``webhook-id``
    header (the same on every retry and redelivery); ``state``: ``pending`` (waiting for
    ``next_attempt_at``), ``sending``, ``delivered`` (a 2xx), ``failed`` (410, retries ran
    out, or the endpoint was disabled), ``skipped`` (never sent: the hook's audience or URL
    changed after the event was planned; ``reason`` says which)."""

    id: int
    webhook_id: str
    position: int
    kind: str
    state: Literal["pending", "sending", "delivered", "failed", "skipped"]
    attempts: int
    created_at: Timestamp
    next_attempt_at: Timestamp | None
    finished_at: Timestamp | None
    last_attempt: LastAttempt | None
    reason: str | None = None
    """Why a delivery was ``skipped``, or ``failed`` (the last error)."""


class Redelivery(msgspec.Struct, frozen=True, kw_only=True):
    """A delivery queued again."""

    id: int
    state: Literal["pending"] = "pending"


async def _managed(ctx: Ctx, webhook_id: str, *, write: bool) -> hooks.Endpoint:
    """Hook ``webhook_id``; raises NotFound unless the caller may manage it."""
    pool = ctx.store.pool
    endpoint = await hooks.endpoint(pool, webhook_id)
    if endpoint is None:
        raise NotFound("there is no such webhook")
    project = None
    if endpoint.project_id is not None:
        project = await project_facts(pool, endpoint.project_id)
        if project is None:
            raise NotFound("there is no such webhook")
    require_manager(ctx.me, project, write=write)
    return endpoint


@api.get(
    "/v1/webhooks/{webhook_id}/deliveries",
    summary="A webhook's last 100 deliveries, newest first, with their last attempt",
    response=list[Delivery],
    tags=_TAGS,
    path_params=_ID,
)
async def list_deliveries(ctx: Ctx) -> Reply:
    webhook_id = ctx.path("webhook_id")
    await _managed(ctx, webhook_id, write=False)
    shown = []
    for r in await deliveries.recent(ctx.store.pool, webhook_id):
        last = None
        if r["attempted_at"] is not None:
            last = LastAttempt(
                at=r["attempted_at"],
                status=r["attempt_status"],
                duration_ms=r["duration_ms"],
                response=r["response"],
                error=r["attempt_error"],
            )
        shown.append(
            Delivery(
                id=r["id"],
                webhook_id=r["msg_id"],
                position=r["position"],
                kind=r["kind"],
                state=r["state"],
                attempts=r["attempts"],
                created_at=r["created_at"],
                next_attempt_at=r["due_at"] if r["state"] == "pending" else None,
                finished_at=r["finished_at"],
                last_attempt=last,
                reason=r["last_error"] if r["state"] in ("failed", "skipped") else None,
            )
        )
    return Reply(shown)


@api.post(
    "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
    summary="Send a delivery again (same payload and webhook-id), now",
    response=Redelivery,
    status=202,
    tags=_TAGS,
    path_params=_DELIVERY,
    versioned=False,
)
async def redeliver(ctx: Ctx) -> Reply:
    webhook_id = ctx.path("webhook_id")
    delivery_id = int(ctx.path("delivery_id"))
    endpoint = await _managed(ctx, webhook_id, write=True)
    queued = await deliveries.redeliver(
        ctx.store.pool,
        webhook_id,
        delivery_id,
        ctx.services.clock(),
        endpoint.url,
        endpoint.audience,
    )
    if queued is None:
        raise NotFound("there is no such delivery")
    if queued == "changed":
        raise Conflict(
            "the hook's audience or URL changed after this delivery was planned: "
            "its payload is never sent"
        )
    if queued == "sending":
        raise Conflict("the delivery is being sent right now; try again in a moment")
    ctx.state["webhooks"].wake.set()
    return Reply(Redelivery(id=delivery_id), 202)

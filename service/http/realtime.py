"""``GET /v1/realtime/stats``: the counters of this instance's real-time hub, for admins.
The ``/v1/stream`` WebSocket itself is :mod:`service.realtime.endpoint`'s, mounted by the app."""

from __future__ import annotations

from ..errors import Forbidden
from ..realtime.endpoint import Counters
from .api import Api, Ctx, Reply

api = Api()


@api.get(
    "/v1/realtime/stats",
    summary="Counters of this instance's real-time hub (admins)",
    response=Counters,
    tags=["realtime"],
)
async def realtime_stats(ctx: Ctx) -> Reply:
    if ctx.me.role != "admin":
        raise Forbidden("only admins see the real-time hub's counters")
    return Reply(ctx.state["realtime"].stats())

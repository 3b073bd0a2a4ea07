"""``/v1/stream``: the WebSocket of live project events (protocol in ``docs/REALTIME.md``),
and ``GET /v1/realtime/stats`` (the hub's counters, for admins)."""

from __future__ import annotations

from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from ..config import Settings
from ..errors import Forbidden
from ..events.store import EventStore
from ..projections.engine import ProjectionEngine
from ..realtime.connection import Connection, Limits
from ..realtime.counters import Counters
from ..realtime.hub import Hub
from ..realtime.protocol import CLOSE_UNAUTHORIZED
from .api import Api, Ctx, Reply
from .context import hash_secret, principal_for_token

api = Api()


def create_hub(store: EventStore, engine: ProjectionEngine, settings: Settings) -> Hub:
    """The instance's hub, configured from ``settings`` (start it with :meth:`Hub.start`)."""
    limits = Limits(
        messages=settings.ws_buffer_messages,
        bytes=settings.ws_buffer_bytes,
        close_timeout=settings.ping_timeout,
    )
    return Hub(store, engine, limits=limits, settle_timeout=settings.read_your_writes_timeout)


def _token(websocket: WebSocket) -> str | None:
    header = websocket.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        return token.strip() or None if scheme.lower() == "bearer" else None
    # Browsers cannot set headers on a WebSocket: they pass the token in the query.
    return websocket.query_params.get("access_token") or None


class StreamEndpoint:
    """The ASGI app of ``/v1/stream``: serves one WebSocket until either side closes it.

    A missing, malformed, unknown or revoked token closes with 4401 right after the
    handshake (close codes exist only once the socket is accepted). Frames go out through
    the raw ASGI ``send`` (Starlette's wrapper only adds state checks the hub already makes).
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        hub: Hub = websocket.state.hub
        token = _token(websocket)
        # principal_for_token only reads ``.state`` (shared by requests and WebSockets).
        viewer = None if token is None else await principal_for_token(websocket, token)
        await websocket.accept()
        if token is None or viewer is None:
            await websocket.close(CLOSE_UNAUTHORIZED, "a valid API token is required")
            return
        conn = Connection(send, viewer, hash_secret(token), hub.limits, hub.counters)
        hub.attach(conn)
        try:
            await conn.serve(receive, lambda text: hub.receive(conn, text))
        finally:
            hub.detach(conn)


stream = StreamEndpoint()


@api.get(
    "/v1/realtime/stats",
    summary="Counters of this instance's real-time hub (admins)",
    response=Counters,
    tags=["realtime"],
)
async def realtime_stats(ctx: Ctx) -> Reply:
    if ctx.me.role != "admin":
        raise Forbidden("only admins see the real-time hub's counters")
    hub: Hub = ctx.request.state.hub
    return Reply(hub.counters.snapshot())

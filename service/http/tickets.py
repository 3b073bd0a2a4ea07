"""``POST /v1/stream/tickets``: a single-use, 30-second ticket for the WebSocket handshake
(``/v1/stream?ticket=…``), so that a browser never puts a long-lived API token in a URL.

The ticket carries the scope of the token that mints it (a read-only token may mint one: it
reads); a page signed in with the session cookie mints one for its session (with the
``X-CSRF-Token`` header, as every POST); see :mod:`service.reads.tickets`.
"""

from __future__ import annotations

import msgspec

from ..domain.context import Timestamp
from ..domain.tokens import hash_secret
from ..reads.tickets import mint_ticket
from .api import Api, Ctx, Reply
from .auth import bearer_token
from .problems import ApiError
from .session_auth import SESSION_COOKIE, current_session

api = Api()


class StreamTicket(msgspec.Struct, frozen=True, kw_only=True):
    """A WebSocket ticket: open ``stream_url`` (``/v1/stream?ticket=<ticket>``) before
    ``expires_at``, once. ``ticket`` and ``stream_url`` are shown in this response only
    (``null`` when an idempotent retry replays it)."""

    ticket: str | None
    stream_url: str | None
    expires_at: Timestamp


@api.post(
    "/v1/stream/tickets",
    summary="A single-use WebSocket ticket valid 30 s, with the calling token's scopes",
    response=StreamTicket,
    status=201,
    tags=["realtime"],
    scope="read",
)
async def create_ticket(ctx: Ctx) -> Reply:
    token = bearer_token(ctx.request)
    if token is None:
        # A first-party page signed in: the session cookie authenticated the request (and
        # passed the CSRF defence); the ticket names the session, checked again when used.
        token = ctx.request.cookies.get(SESSION_COOKIE)
        if not token or current_session(ctx.request) is None:
            raise ApiError(401, "this endpoint needs a bearer token or a session")
    ticket, expires_at = await mint_ticket(ctx.store.pool, hash_secret(token), ctx.services.clock())
    ws = ctx.request.url.replace(path="/v1/stream", query=f"ticket={ticket}")
    scheme = "wss" if ws.scheme == "https" else "ws"
    issued = StreamTicket(
        ticket=ticket, stream_url=str(ws.replace(scheme=scheme)), expires_at=expires_at
    )
    # A retry must not find the secret stored (see service.http.idempotency).
    ctx.replay_body = msgspec.json.encode(
        msgspec.structs.replace(issued, ticket=None, stream_url=None)
    )
    return Reply(issued, 201)

"""``/v1/stream``: the WebSocket of live project events (protocol in ``docs/REALTIME.md``).

:class:`Realtime` is all the rest of Cairn sees of this package: the app creates one, mounts
it as the ``/v1/stream`` endpoint (it is an ASGI app), starts it with the instance's store,
read models and token cache, reads its counters (:meth:`Realtime.stats`) and stops it at
shutdown. :func:`asyncapi_document` is the endpoint's contract, for the app to serve.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from ..config import Settings
from ..domain.access import Viewer
from ..domain.calendar import Clock
from ..domain.tokens import hash_secret
from ..errors import Forbidden
from ..events.store import EventStore
from ..projections.engine import ProjectionEngine
from ..reads.tickets import redeem_ticket
from ..reads.tokens import TokenCache, api_token_holder
from .asyncapi import document as asyncapi_document
from .connection import Connection, Limits
from .counters import Counters
from .hub import Hub, NotificationRenderer
from .protocol import CLOSE_UNAUTHORIZED, MAX_READ, TICKET_QUERY, TOKEN_QUERY

__all__ = ["MAX_READ", "Counters", "NotificationRenderer", "Realtime", "asyncapi_document"]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _token(websocket: WebSocket) -> str | None:
    header = websocket.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        return token.strip() or None if scheme.lower() == "bearer" else None
    # Browsers cannot set headers on a WebSocket: they pass the token in the query.
    return websocket.query_params.get(TOKEN_QUERY) or None


def _same_origin(origin: str, host: str | None) -> bool:
    """Whether a page of ``origin`` came from the server the socket is asking for (its
    ``Host``).

    Schemes are not compared: behind a proxy that ends TLS, an ``https`` page's socket
    arrives here as plain ``ws``; the host and port are what an attacker's page cannot share.
    """
    return host is not None and urlsplit(origin).netloc == host.lower()


class Realtime:
    """This instance's live updates: its hub, and the ASGI app serving ``/v1/stream``.

    A handshake whose ``Origin`` (sent by browsers, not by other clients) is neither this
    server's own nor one of ``CAIRN_CORS_ORIGINS`` is refused with a 403 problem before it
    is accepted: otherwise any site a person visits could open a socket with what their
    browser holds for us (cross-site WebSocket hijacking). A missing, malformed, unknown or
    revoked token, or a ticket unknown, used, expired or whose token no longer works (see
    :mod:`service.reads.tickets`; the clock given tells when tickets expire), closes with 4401
    right after the handshake (close codes exist only once
    the socket is accepted). Frames go out through the raw ASGI ``send`` (Starlette's
    wrapper only adds state checks the hub already makes).
    """

    def __init__(self, settings: Settings, *, clock: Clock = _utc_now) -> None:
        self._limits = Limits(
            messages=settings.ws_buffer_messages,
            bytes=settings.ws_buffer_bytes,
            close_timeout=settings.ping_timeout,
        )
        self._settle_timeout = settings.ryw_timeout
        self._origins = frozenset(settings.cors_origins)
        self._session_idle = timedelta(seconds=settings.session_idle)
        self._hub: Hub | None = None
        self._tokens: TokenCache | None = None
        self._clock = clock

    async def start(
        self,
        store: EventStore,
        engine: ProjectionEngine,
        tokens: TokenCache | None,
        notifications: NotificationRenderer | None = None,
    ) -> None:
        """Start following the log (from its head) for this instance's sockets;
        ``notifications`` shows the ``notification`` frames (None: none are sent).

        Raises:
            DatabaseUnavailable: PostgreSQL cannot be reached.
        """
        hub = Hub(
            store,
            engine,
            limits=self._limits,
            settle_timeout=self._settle_timeout,
            notifications=notifications,
        )
        self._hub = hub
        self._tokens = tokens
        await hub.start()

    async def stop(self) -> None:
        """Close every socket with 1012 and stop following."""
        hub, self._hub = self._hub, None
        if hub is not None:
            await hub.stop()

    def stats(self) -> Counters:
        """The hub's counters now (a copy)."""
        return self._running().counters.snapshot()

    def following(self) -> bool:
        """Whether the hub runs and follows the log (for readiness)."""
        return self._hub is not None and self._hub.following

    def _running(self) -> Hub:
        if self._hub is None:
            # A bug: the app starts this before it serves and stops it after.
            raise RuntimeError("the real-time hub is not running")
        return self._hub

    async def _holder(self, hub: Hub, websocket: WebSocket) -> tuple[Viewer, str] | None:
        """Who opens ``websocket`` and the hash of their API token: by a ticket
        (``?ticket=``, used up here), else by the token itself; None: neither works."""
        ticket = websocket.query_params.get(TICKET_QUERY)
        if ticket:
            return await redeem_ticket(hub.store.pool, ticket, self._clock(), self._session_idle)
        token = _token(websocket)
        if token is None:
            return None
        viewer = await api_token_holder(hub.store, self._tokens, token, self._clock())
        return None if viewer is None else (viewer, hash_secret(token))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one WebSocket until either side closes it.

        Raises:
            Forbidden: before the handshake is accepted, for a page of another origin than
                this server's and the allowed ones (the app answers 403).
        """
        hub = self._running()
        websocket = WebSocket(scope, receive, send)
        origin = websocket.headers.get("origin")
        if (
            origin is not None
            and origin not in self._origins
            and not _same_origin(origin, websocket.headers.get("host"))
        ):
            raise Forbidden(f"pages of {origin} may not open this stream")
        holder = await self._holder(hub, websocket)
        await websocket.accept()
        if holder is None:
            await websocket.close(CLOSE_UNAUTHORIZED, "a valid API token or ticket is required")
            return
        viewer, token_hash = holder
        conn = Connection(send, viewer, token_hash, hub.limits, hub.counters, scope=scope)
        hub.attach(conn)
        try:
            if viewer.scope.expires_at is not None:
                conn.expire_at(viewer.scope.expires_at, self._clock)
            await conn.serve(receive, lambda text: hub.receive(conn, text))
        finally:
            conn.stop_expiry()
            hub.detach(conn)

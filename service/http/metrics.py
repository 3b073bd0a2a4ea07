"""Prometheus metrics over HTTP: every request counted by its route's template
(:class:`RequestMetrics`, around the whole app), and ``GET /metrics``: the text format of
what :mod:`service.metrics` holds (of every process, under ``cairn serve --workers N``) and of
what is measured when scraped: each read model's lag, read from the database by the one
process answering (so never counted once per process)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Final

from prometheus_client import Counter, Histogram
from prometheus_client.metrics_core import Metric
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..mail.sender import MailOut
from ..metrics import (
    CONTENT_TYPE,
    HTTP_DURATION,
    HTTP_REQUESTS,
    MAIL_CONFIGURED,
    MAIL_FAILED,
    PROJECTION_LAG_EVENTS,
    PROJECTION_LAG_SECONDS,
    WORKER_QUEUE_ROWS,
    exposition,
)
from ..projections.engine import ProjectionEngine
from .api import Api, Ctx
from .health import UNREACHABLE

api = Api()

UNMATCHED: Final = "unmatched"
"""The ``route`` of a request no route answered (an unknown path, a CORS preflight)."""

_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods counted by name; any other is ``other`` (a client may send any token)."""


@api.get(
    "/metrics",
    summary="Prometheus metrics of this instance (all its processes), in the text format",
    auth="none",
    tags=["operations"],
)
async def metrics(ctx: Ctx) -> Response:
    lag = await _lag(ctx.services.engine, ctx.settings.db_timeout)
    mail = await _mail(ctx.state["mail"], ctx.settings.db_timeout)
    return Response(exposition([*lag, *mail]), media_type=CONTENT_TYPE)


async def _mail(mail: MailOut, db_timeout: float) -> list[Metric]:
    """Whether mail is sent (``cairn_mail_configured``), and the outbox's rows waiting
    (``cairn_worker_queue_rows{worker="mail"}``) and failed, when it is."""
    configured = MAIL_CONFIGURED.family({(): 1.0 if mail.configured else 0.0})
    if not mail.configured:
        return [configured]
    try:
        async with asyncio.timeout(db_timeout):
            waiting, failed = await mail.backlog()
    except UNREACHABLE:
        return [configured]
    return [
        configured,
        WORKER_QUEUE_ROWS.family({("mail",): waiting}),
        MAIL_FAILED.family({(): failed}),
    ]


async def _lag(engine: ProjectionEngine | None, db_timeout: float) -> list[Metric]:
    """Each read model's lag in events and seconds; none while the database is unreachable
    (the rest of the metrics matter most then: they are served without)."""
    if engine is None:
        return []
    try:
        async with asyncio.timeout(db_timeout):
            statuses = [s for s in await engine.status() if s.lag_events >= 0]
    except UNREACHABLE:
        return []
    return [
        PROJECTION_LAG_EVENTS.family({(s.name,): s.lag_events for s in statuses}),
        PROJECTION_LAG_SECONDS.family({(s.name,): s.lag_seconds for s in statuses}),
    ]


class RequestMetrics:
    """ASGI middleware counting every HTTP request (``cairn_http_requests_total``) and its
    duration (``cairn_http_request_duration_seconds``) by the template of the route that
    answered it: its path as declared (``/v1/todos/{todo_id}``), never the path asked for,
    so that ids do not multiply the series. :data:`UNMATCHED` when no route did.

    A request is counted as the last byte of its answer is handed to the server: a client
    holding its answer finds it counted. WebSockets are not requests here (their metric is
    the hub's ``cairn_websocket_connections``).

    Args:
        app: the application.
        routes: its routes, whose endpoints name the templates (Starlette's router puts the
            matched route's endpoint in the scope).
    """

    def __init__(self, app: ASGIApp, routes: Iterable[BaseRoute]) -> None:
        self.app = app
        self._templates = _templates(routes)
        # Labelled children, made once per (route, method, status): labels() costs more
        # than the increment itself.
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500
        counted = False

        async def sending(message: Message) -> None:
            nonlocal status, counted
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                counted = True
                self._count(scope, status, time.perf_counter() - began)
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            # No last byte: the answer went another way (a file sent whole by the server),
            # or none did (an error no middleware answered: counted as the 500 it becomes).
            if not counted:
                self._count(scope, status, time.perf_counter() - began)

    def _count(self, scope: Scope, status: int, seconds: float) -> None:
        method = scope["method"] if scope["method"] in _METHODS else "other"
        route = self._templates.get(scope.get("endpoint"), UNMATCHED)
        key = (route, method, status)
        series = self._series.get(key)
        if series is None:
            series = (
                HTTP_REQUESTS.labels(route, method, str(status)),
                HTTP_DURATION.labels(route, method),
            )
            self._series[key] = series
        series[0].inc()
        series[1].observe(seconds)


def _templates(routes: Iterable[BaseRoute]) -> dict[object, str]:
    """The template of each route, by the endpoint the router puts in the scope."""
    found: dict[object, str] = {}
    for route in routes:
        if isinstance(route, Route | WebSocketRoute):
            found[route.endpoint] = route.path
        elif isinstance(route, Mount):
            found[route.app] = route.path + "/{path}"
    return found

"""Request ids and the access log, around the whole app (CORS and errors included).

* **Request id**: ``X-Request-Id`` when the client sent a sane one (1 to 200 visible ASCII
  characters), else a new one (32 hex digits). It is answered in ``X-Request-Id`` (on a
  WebSocket, in the handshake's answer), set in :data:`~service.http.logs.request_id` for
  the request's task, so every line logged while serving it carries it, and recorded in the
  metadata of the request's events (:attr:`Ctx.request_id <service.http.context.Ctx>`).
* **Access log**: one line per request on the ``cairn.access`` logger at INFO, once the
  request ends (a WebSocket: once it closes): the client's address, the method, the route's
  *template* (``/v1/projects/{project_id}``: never the path with its ids, nor the query
  string, which may carry a token), the status (101 for an accepted WebSocket), the
  duration in ms, and the request id. No route matched: ``-``.

It replaces uvicorn's access log (``access_log=False``), which shows paths with their query.
"""

from __future__ import annotations

import logging
import os
import re
import time
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .logs import request_id

_log = logging.getLogger("cairn.access")

_HEADER: Final = b"x-request-id"
_SANE: Final = re.compile(rb"[\x21-\x7e]{1,200}")
"""A request id taken from a client: visible ASCII (no spaces, no control characters, so it
cannot forge or break a log line), at most as long as event metadata keeps."""


def request_id_of(headers: list[tuple[bytes, bytes]]) -> str:
    """The request's ``X-Request-Id`` if it is sane, else a new id."""
    for name, value in headers:
        if name == _HEADER:
            if _SANE.fullmatch(value):
                return value.decode("ascii")
            break
    return os.urandom(16).hex()


class AccessLog:
    """ASGI middleware: request ids and the access log (see the module)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        rid = request_id_of(scope["headers"])
        header = (_HEADER, rid.encode("ascii"))
        # Not reset afterwards: each request runs in a task (and a context) of its own, and
        # uvicorn logs an exception that escaped the app after this returns, in that task.
        request_id.set(rid)
        status = 0
        began = time.perf_counter()

        async def answer(message: Message) -> None:
            nonlocal status
            kind = message["type"]
            if kind == "http.response.start" or kind == "websocket.http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), header]}
            elif kind == "websocket.accept":
                status = 101
                message = {**message, "headers": [*message.get("headers", ()), header]}
            elif kind == "websocket.close" and status == 0:
                status = 403  # refused before the handshake's answer (uvicorn sends 403)
            await send(message)

        try:
            await self.app(scope, receive, answer)
        except BaseException:
            if status == 0:
                status = 500  # uvicorn answers what escaped the app before an answer
            raise
        finally:
            if _log.isEnabledFor(logging.INFO):
                _line(scope, status, (time.perf_counter() - began) * 1000)


def _line(scope: Scope, status: int, duration_ms: float) -> None:
    route = scope.get("route")
    template: str | None = getattr(route, "path", None)
    client = scope.get("client")
    address = f"{client[0]}:{client[1]}" if client else "-"
    if scope["type"] == "websocket":
        method, request = "WEBSOCKET", f"WebSocket {template or '-'}"
    else:
        method = scope["method"]
        request = f"{method} {template or '-'} HTTP/{scope['http_version']}"
    _log.info(
        '%s - "%s" %d %.1fms',
        address,
        request,
        status,
        duration_ms,
        extra={
            "client": address,
            "method": method,
            "route": template,
            "status": status,
            "duration_ms": round(duration_ms, 1),
        },
    )

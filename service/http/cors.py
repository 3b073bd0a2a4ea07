"""CORS: which other origins' pages may call the API (``CAIRN_CORS_ORIGINS``), and how.

Starlette's ``CORSMiddleware`` with Cairn's lists; a refused preflight is problem+json like
every other error. The app puts it around everything else (:mod:`service.http.app`).
"""

from __future__ import annotations

from typing import Final

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from .problems import problem_response

ALLOWED_METHODS: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
"""What a page may send (a preflight for OPTIONS itself is not needed by any route)."""

ALLOWED_HEADERS: Final = (
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "If-Match",
    "If-None-Match",
    "X-Request-Id",
    "X-Correlation-Id",
)
"""Request headers a page may set, besides the CORS-safelisted ones."""

EXPOSED_HEADERS: Final = (
    "Link",
    "X-Total-Count",
    "ETag",
    "Location",
    "Retry-After",
    "X-Request-Id",
    "Idempotent-Replayed",
    "Content-Disposition",
    "Content-Range",
    "Accept-Ranges",
)
"""Response headers a page may read, besides the CORS-safelisted ones (paging, conditional
requests, creations, back-off, idempotent replays, a download's file name and range)."""

MAX_AGE: Final = 600
"""How long (s) a browser may keep a preflight's answer."""


class Cors(CORSMiddleware):
    """CORS for ``origins`` (exact ``scheme://host[:port]`` strings).

    No credentials mode: pages of other origins authenticate by bearer tokens, which they
    send themselves in ``Authorization``; the session cookie (docs/API.md "Sessions") is for
    Cairn's own pages, so ``Access-Control-Allow-Credentials`` is never sent (a page asking
    for credentials cannot read the answers).
    """

    def __init__(self, app: ASGIApp, origins: tuple[str, ...]) -> None:
        # Starlette's allow_credentials stays False: see above.
        super().__init__(
            app,
            origins,
            ALLOWED_METHODS,
            ALLOWED_HEADERS,
            max_age=MAX_AGE,
            expose_headers=EXPOSED_HEADERS,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a preflight (on any path: routes and their errors alike), or pass the
        request on and add the CORS headers to its answer."""
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            headers = Headers(scope=scope)
            if "origin" in headers and "access-control-request-method" in headers:
                answer = self.preflight_response(request_headers=headers)
                if answer.status_code != 200:
                    # Starlette's refusal is text naming what is not allowed.
                    what = bytes(answer.body).decode().removeprefix("Disallowed CORS ")
                    kept = {
                        name: value
                        for name, value in answer.headers.items()
                        if name.startswith("access-control-") or name == "vary"
                    }
                    answer = problem_response(
                        403,
                        f"a page of {headers['origin']} may not send this request "
                        f"(not allowed: {what})",
                        instance=scope["path"],
                        headers=kept,
                    )
                await answer(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

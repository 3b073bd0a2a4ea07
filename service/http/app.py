"""The ASGI application: routes, and the resources shared by them (typed lifespan state)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .. import __version__
from ..config import Settings
from ..events.store import EventStore


class State(TypedDict):
    """Resources living as long as the app."""

    settings: Settings
    store: EventStore


async def _health(request: Request) -> JSONResponse:
    store: EventStore = request.state.store
    head = await store.head()
    return JSONResponse({"status": "ok", "version": __version__, "head_position": head[1]})


def create_app(settings: Settings) -> Starlette:
    """Build the app for ``settings``; resources open on startup and close on shutdown."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        store = await EventStore.open(settings.database_url, poll_interval=settings.poll_interval)
        try:
            yield {"settings": settings, "store": store}
        finally:
            await store.close()

    return Starlette(routes=[Route("/v1/health", _health)], lifespan=lifespan)

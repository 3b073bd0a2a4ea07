"""The ASGI application: routes, and the resources shared by them (typed lifespan state)."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

from .. import __version__
from ..config import Settings
from ..domain.projects import ProjectState, evolve_project
from ..events.store import EventStore
from ..projections import all_projections
from ..projections.engine import ProjectionEngine
from ..realtime.hub import Hub
from .api import Api, Ctx, Reply
from .context import RateLimiter, TokenCache
from .folds import StreamStates
from .logs import install_log_redaction
from .problems import exception_handlers
from .stream import create_hub, stream

# Route modules, each with a module-level ``api = Api()``. Listed here so the app and the
# OpenAPI document see the same set.
ROUTE_MODULES: list[str] = [
    "feeds",
    "people",
    "projects",
    "overview",
    "reports",
    "snapshot",
    "activity",
    "recordings",
    "messages",
    "comments",
    "todos",
    "milestones",
    "stream",
]


class State(TypedDict):
    """Resources living as long as the app (Starlette's typed lifespan state)."""

    settings: Settings
    store: EventStore
    engine: ProjectionEngine
    limiter: RateLimiter
    tokens: TokenCache
    project_states: StreamStates[ProjectState]
    hub: Hub


system = Api()


class Health(msgspec.Struct, frozen=True):
    status: str
    version: str
    head_position: int


@system.get("/v1/health", summary="Liveness and the log's head", response=Health, auth="none")
async def health(ctx: Ctx) -> Reply:
    head = await ctx.store.head()
    return Reply(Health(status="ok", version=__version__, head_position=head[1]))


def all_apis() -> list[Api]:
    """The system endpoints and every route module's."""
    apis = [system]
    for name in ROUTE_MODULES:
        module = importlib.import_module(f"service.http.{name}")
        apis.append(module.api)
    return apis


def create_app(
    settings: Settings, *, rate: float | None = None, burst: float | None = None
) -> Starlette:
    """Build the app for ``settings``; resources open on startup and close on shutdown.

    ``rate`` and ``burst`` override the settings' rate limit (requests/s per person; 0: off).
    """
    per_second = settings.rate_limit if rate is None else rate
    allowance = settings.rate_burst if burst is None else burst
    install_log_redaction()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        store = await EventStore.open(
            settings.database_url, min_size=2, max_size=20, poll_interval=settings.poll_interval
        )
        engine = ProjectionEngine(store, all_projections())
        hub = create_hub(store, engine, settings)
        try:
            await engine.prepare()
            engine.start()
            await hub.start()
            yield {
                "settings": settings,
                "store": store,
                "engine": engine,
                "limiter": RateLimiter(per_second, allowance),
                "tokens": TokenCache(ttl=settings.token_cache_ttl),
                "project_states": StreamStates(evolve_project),
                "hub": hub,
            }
        finally:
            await hub.stop()
            await engine.stop()
            await store.close()

    merged = Api()
    for api in all_apis():
        merged.endpoints.extend(api.endpoints)
    spec = msgspec.json.encode(merged.openapi(title="Cairn API", version=__version__))

    async def openapi(request: Request) -> Response:
        return Response(spec, media_type="application/json")

    routes: list[BaseRoute] = [
        Route("/openapi.json", openapi),
        WebSocketRoute("/v1/stream", stream),
        *merged.starlette_routes(),
    ]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers=exception_handlers())

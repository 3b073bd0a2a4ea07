"""The ASGI application: routes, and the resources shared by them (typed lifespan state)."""

from __future__ import annotations

import importlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import ASGIApp

from .. import __version__
from ..blobs.postgres import PostgresBlobStore
from ..commands.caller import Services, utc_now
from ..commands.folds import StreamStates
from ..config import Settings
from ..domain.calendar import Clock
from ..domain.people import evolve_person
from ..domain.projects import evolve_project
from ..errors import ConfigurationError, Forbidden
from ..events.store import EventStore
from ..feeds.cache import FeedCache
from ..mail.sender import MailOut
from ..outbound import OutboundPolicy, Resolver
from ..projections import all_projections
from ..projections.engine import ProjectionEngine
from ..reads.signing_keys import KeyringCache
from ..reads.tokens import TokenCache
from ..realtime.endpoint import Counters, Realtime, asyncapi_document
from ..workers.alerts import AlertScheduler
from ..workers.feeds_poller import FeedPoller
from ..workers.notices import Notices
from ..workers.webhook_sender import WebhookSender
from . import docs, notifications, oauth
from .accesslog import AccessLog
from .api import Api, Ctx, Reply
from .cors import Cors
from .logs import configure_logging, install_log_redaction
from .metrics import RequestMetrics
from .openapi import document
from .problems import exception_handlers
from .ratelimit import RateLimiter
from .server import WorkerProtocol, limits_of
from .signin_limits import SignInLimits
from .state import State

# Route modules, each with a module-level ``api = Api()``. Listed here so the app and the
# OpenAPI document see the same set.
ROUTE_MODULES: list[str] = [
    "tickets",
    # Before "feeds": /feeds/projects/{id}.ics would match its /feeds/projects/{id}.{fmt}.
    "calendar",
    "feeds",
    "feed_token",
    "people",
    "projects",
    "overview",
    "reports",
    "search",
    "snapshot",
    "activity",
    "recordings",
    "messages",
    "comments",
    "todos",
    "milestones",
    "attachments",
    "uploads",
    "avatars",
    "files",
    "notifications",
    "sessions",
    "invitations",
    "external_feeds",
    "health",
    "metrics",
    "mail",
    "oauth_apps",
    "webhooks",
    "webhook_deliveries",
]


system = Api()


class Health(msgspec.Struct, frozen=True):
    status: str
    version: str
    head_position: int


@system.get("/v1/health", summary="Liveness and the log's head", response=Health, auth="none")
async def health(ctx: Ctx) -> Reply:
    head = await ctx.store.head()
    return Reply(Health(status="ok", version=__version__, head_position=head[1]))


@system.get(
    "/v1/realtime/stats",
    summary="Counters of this instance's real-time hub (admins)",
    response=Counters,
    tags=["realtime"],
)
async def realtime_stats(ctx: Ctx) -> Reply:
    if ctx.me.role != "admin":
        raise Forbidden("only admins see the real-time hub's counters")
    return Reply(ctx.state["realtime"].stats())


def all_apis() -> list[Api]:
    """The system endpoints and every route module's."""
    apis = [system]
    for name in ROUTE_MODULES:
        module = importlib.import_module(f"service.http.{name}")
        apis.append(module.api)
    return apis


class _App(Starlette):
    """Starlette with CORS (for ``cors_origins``; none: no CORS) around all of it, and the
    request ids and access log (:mod:`.accesslog`) around that, and the request metrics
    around all (preflights and refusals counted too).

    Not as Starlette's ``middleware``: Starlette puts the middleware answering a 500
    outside those, and a page cannot read an answer without CORS headers (it sees "Failed to
    fetch" instead of the problem); a 500 and a refused preflight get a request id and an
    access line too.
    """

    def __init__(self, *, cors_origins: tuple[str, ...], **options: Any) -> None:
        self._cors_origins = cors_origins
        super().__init__(**options)

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        stack = Cors(stack, self._cors_origins) if self._cors_origins else stack
        return RequestMetrics(AccessLog(stack), self.routes)


async def _prepare_read_models(database_url: str) -> None:
    """Create the missing read models and rebuild those whose version changed, on a store of
    its own: a rebuild's statements may run far longer than ``CAIRN_DB_TIMEOUT`` lets the
    serving store's run."""
    projections = all_projections()
    store = await EventStore.open(database_url, min_size=1, max_size=len(projections) + 2)
    try:
        await ProjectionEngine(store, projections).prepare()
    finally:
        await store.close()


def create_app(
    settings: Settings,
    *,
    rate: float | None = None,
    burst: float | None = None,
    clock: Clock = utc_now,
    resolver: Resolver | None = None,
) -> Starlette:
    """Build the app for ``settings``; resources open on startup and close on shutdown.

    ``rate`` and ``burst`` override the settings' rate limit (requests/s per person; 0: off).
    ``clock`` tells "now" (the system's; a test may fix it): what commands record, and the
    instant each caller's "today" is taken at. ``resolver`` resolves the host names of
    outbound requests (the system's; a test gives its own: :mod:`service.outbound`).
    """
    per_second = settings.rate_limit if rate is None else rate
    allowance = settings.rate_burst if burst is None else burst
    install_log_redaction()
    realtime = Realtime(settings, clock=clock)
    outbound = OutboundPolicy.from_settings(settings, resolver)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        await _prepare_read_models(settings.database_url)
        store = await EventStore.open(
            settings.database_url,
            min_size=2,
            max_size=20,
            poll_interval=settings.poll_interval,
            timeout=settings.db_timeout,
        )
        engine = ProjectionEngine(store, all_projections())
        tokens = TokenCache(ttl=settings.token_cache_ttl)
        services = Services(
            store=store,
            engine=engine,
            project_states=StreamStates(evolve_project),
            person_states=StreamStates(evolve_person),
            wait_timeout=settings.ryw_timeout,
            tokens=tokens,
            clock=clock,
            time_zone=settings.time_zone,
            outbound=outbound,
        )
        notices = Notices(store, engine, settle_timeout=settings.ryw_timeout)
        alerts = AlertScheduler(services, settings.alert_interval)
        app.state.alerts = alerts  # for tests: its ticks
        app.state.outbound = services.outbound  # for tests: the policy workers get
        poller = FeedPoller(
            services,
            interval=settings.feed_poll_interval,
            timeout=settings.feed_timeout,
            max_bytes=settings.feed_max_bytes,
        )
        app.state.feeds_poller = poller  # for tests: its ticks
        mail = MailOut(services, settings, poll=settings.poll_interval)
        webhooks = WebhookSender(
            services,
            concurrency=settings.webhook_concurrency,
            timeout=settings.webhook_timeout,
            poll=settings.poll_interval,
            settle_timeout=settings.ryw_timeout,
        )
        try:
            await engine.prepare()
            engine.start()
            notices.start()
            await realtime.start(store, engine, tokens, notifications.for_socket)
            alerts.start()
            poller.start()
            await mail.start()
            await webhooks.start()
            yield {
                "settings": settings,
                "services": services,
                "limiter": RateLimiter(per_second, allowance),
                "realtime": realtime,
                "feeds": FeedCache(),
                "blobs": PostgresBlobStore(store.pool),
                "signing_keys": KeyringCache(),
                "mail": mail,
                "sign_in": SignInLimits(settings.sign_in_burst, settings.sign_in_rate),
                "webhooks": webhooks,
            }
        finally:
            await webhooks.stop()
            await mail.stop()
            await poller.stop()
            await alerts.stop()
            await realtime.stop()
            await notices.stop()
            await engine.stop()
            await store.close()

    merged = Api()
    for api in all_apis():
        merged.endpoints.extend(api.endpoints)
    spec = msgspec.json.encode(document(merged.endpoints, title="Cairn API", version=__version__))
    stream_spec = msgspec.json.encode(
        asyncapi_document(version=__version__, host=f"{settings.host}:{settings.port}")
    )

    async def openapi(request: Request) -> Response:
        return Response(spec, media_type="application/json")

    async def asyncapi(request: Request) -> Response:
        return Response(stream_spec, media_type="application/json")

    routes: list[BaseRoute] = [
        Route("/openapi.json", openapi),
        Route("/asyncapi.json", asyncapi),
        *docs.routes("Cairn API"),
        WebSocketRoute("/v1/stream", realtime),
        *oauth.routes(),
        *merged.starlette_routes(),
    ]
    return _App(
        cors_origins=settings.cors_origins,
        routes=routes,
        lifespan=lifespan,
        exception_handlers=exception_handlers(),
    )


WORKER_SETTINGS: Final = "CAIRN_SERVE_SETTINGS"
"""The variable through which ``cairn serve --workers N`` hands its settings to its worker
processes (:class:`Settings` as JSON); not a setting itself."""


def worker_environment(settings: Settings) -> dict[str, str]:
    """What ``cairn serve --workers N`` adds to its environment for :func:`app_from_env`."""
    return {
        WORKER_SETTINGS: msgspec.json.encode(msgspec.to_builtins(settings, enc_hook=str)).decode()
    }


def app_from_env() -> Starlette:
    """The app of one worker process of ``cairn serve --workers N`` (uvicorn's factory), on
    the settings the command decided (:func:`worker_environment`).

    Raises:
        ConfigurationError: the environment holds no such settings.
    """
    given = os.environ.get(WORKER_SETTINGS)
    if given is None:
        raise ConfigurationError(f"{WORKER_SETTINGS} is not set (cairn serve sets it)")
    try:
        settings = msgspec.json.decode(given, type=Settings, dec_hook=_paths)
    except msgspec.ValidationError as exc:
        raise ConfigurationError(f"{WORKER_SETTINGS}: {exc}") from None
    configure_logging(settings.log_format, settings.log_level)
    WorkerProtocol.limits = limits_of(settings)
    return create_app(settings)


def _paths(kind: type, value: object) -> object:
    if kind is Path and isinstance(value, str):
        return Path(value)
    raise NotImplementedError

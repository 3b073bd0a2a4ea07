"""A small typed routing layer over Starlette: one declaration per endpoint gives the route,
body decoding, response encoding, conditional GET, idempotent POST and the OpenAPI entry
(:mod:`.openapi`).

Handlers are ``async def handler(ctx: Ctx) -> Reply | Response``, or, for an endpoint that
takes a JSON body, ``async def handler(ctx: Ctx, body: NewThing)``: the second parameter's
annotation is the body's type, decoded and checked before the handler runs. They raise
:class:`~service.errors.CairnError` subclasses for refusals; :mod:`.problems` maps them.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..domain.access import require_write
from .auth import authenticate, confirm_writer
from .bodies import decode_body
from .conditions import etag_for, if_none_match
from .context import Ctx
from .idempotency import replay_or_run
from .params import PATH_IDS, Param, check_path, query_values
from .state import state_of

__all__ = ["Api", "Ctx", "Endpoint", "Reply"]

_encoder = msgspec.json.Encoder()
_PATH_PARAM = re.compile(r"\{(\w+)\}")


@dataclass
class Reply:
    """What a handler returns when it does not build a Response itself."""

    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str = "application/json"
    version: int | None = None
    """The version of the resource shown (its ETag names it; see :mod:`.conditions`)."""


Handler = Callable[..., Awaitable["Reply | Response"]]
"""``handler(ctx)``, or ``handler(ctx, body)`` for endpoints with a JSON body."""


@dataclass
class Endpoint:
    """One declared endpoint."""

    method: str
    path: str
    handler: Handler
    summary: str
    body: Any
    response: Any
    status: int
    also: tuple[int, ...]
    auth: str
    tags: list[str]
    query: dict[str, Param]
    path_params: dict[str, Param]
    """Every parameter of the path, with its type."""
    strict_query: bool
    body_schema: Any
    """What OpenAPI shows of the body (None: its decoded type)."""
    decoder: msgspec.json.Decoder[Any] | None = None
    versioned: bool = True
    """Whether a write changes a versioned resource (False: sign-in, sessions, passwords,
    which have no ETag, so take no ``If-Match``)."""
    streamed_body: Mapping[str, Any] | None = None
    """The media types (with their OpenAPI media type objects) of a body the handler reads
    itself (see :meth:`Api.route`); None: a JSON body, or none."""
    scope: str = "write"
    """The token scope a call needs besides GET (``read``: a POST that changes nothing the
    token's holder could not read, e.g. minting a WebSocket ticket)."""

    @property
    def conditional(self) -> bool:
        """Whether the endpoint changes one resource, so that ``If-Match`` applies to it:
        PATCH, PUT and DELETE, and the POSTs that create nothing (completion, archiving…)."""
        return self.versioned and (
            self.method in ("PATCH", "PUT", "DELETE")
            or (self.method == "POST" and self.status != 201)
        )


def json_response(request: Request, reply: Reply) -> Response:
    """Encode ``reply``; GET answers carry an ETag and honour If-None-Match with 304, and so
    does every answer showing a versioned resource (see :mod:`.conditions`)."""
    body = _encoder.encode(reply.body)
    headers = dict(reply.headers)
    if reply.version is not None and 200 <= reply.status < 300:
        headers["ETag"] = etag_for(body, reply.version)
    if request.method in ("GET", "HEAD") and reply.status == 200:
        etag = headers.setdefault("ETag", etag_for(body))
        headers.setdefault("Cache-Control", "private, no-cache")
        if if_none_match(request, etag):
            return Response(status_code=304, headers=headers)
    return Response(body, reply.status, headers=headers, media_type=reply.media_type)


class Api:
    """The registry of endpoints."""

    def __init__(self) -> None:
        self.endpoints: list[Endpoint] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        response: Any = None,
        status: int = 200,
        also: tuple[int, ...] = (),
        auth: str = "bearer",
        tags: list[str] | None = None,
        query: Mapping[str, Param] | None = None,
        path_params: Mapping[str, Param] | None = None,
        strict_query: bool = True,
        body_schema: Any = None,
        streamed_body: Mapping[str, Any] | None = None,
        scope: str = "write",
        versioned: bool = True,
    ) -> Callable[[Handler], Handler]:
        """Declare an endpoint.

        The JSON request body's type, if any, is the annotation of the handler's second
        parameter.

        Args:
            response: msgspec type of the JSON response body (for OpenAPI).
            status: success status.
            also: other success statuses with the same body (e.g. 201 of a PUT that creates).
            auth: ``"bearer"`` (a person's API token) or ``"none"``.
            query: the query parameters (checked before the handler runs; their values
                are in ``ctx.params``).
            path_params: the path's parameters whose names are not in
                :data:`~.params.PATH_IDS` (which types ``project_id``, ``id``...), or that
                are of another type than there. Every path parameter is checked before
                the handler runs: one that is not of its type is a 404.
            strict_query: whether a parameter not in ``query`` is refused (400); feed
                routes take any (readers add cache-busters).
            body_schema: what OpenAPI shows of the body when it is decoded as something
                looser (e.g. one of several types chosen by the resource).
            streamed_body: for a handler that reads its body itself, as it arrives
                (``ctx.request.stream()``: a file upload), the media types it takes, each
                with its OpenAPI media type object. Such a body is not decoded, nor bounded
                by ``CAIRN_MAX_BODY`` (the handler bounds it), and the route takes no
                ``Idempotency-Key``: a retry could only be recognised by reading the whole
                body again, and the handler must be harmless to repeat.
            scope: the token scope any method but GET needs: ``"write"`` (a read-only
                token gets 403 ``insufficient_scope`` before the handler runs) or ``"read"``.
            versioned: False for a write that changes no versioned resource (no
                ``If-Match``).
        """

        def decorate(fn: Handler) -> Handler:
            body = _body_type(fn)
            if body is not None and streamed_body is not None:
                raise TypeError(f"{path}: a streamed body is not also a decoded one")
            self.endpoints.append(
                Endpoint(
                    method=method,
                    path=path,
                    handler=fn,
                    summary=summary,
                    body=body,
                    response=response,
                    status=status,
                    also=also,
                    auth=auth,
                    tags=tags or [],
                    query=dict(query or {}),
                    path_params=_path_params(path, path_params or {}),
                    strict_query=strict_query,
                    body_schema=body_schema,
                    decoder=msgspec.json.Decoder(body) if body is not None else None,
                    streamed_body=streamed_body,
                    scope=scope,
                    versioned=versioned,
                )
            )
            return fn

        return decorate

    def get(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **kw)

    def patch(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("PATCH", path, **kw)

    def put(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, **kw)

    def delete(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **kw)

    def starlette_routes(self) -> list[Route]:
        """One Starlette route per path, dispatching on method (405 for the others)."""
        by_path: dict[str, dict[str, Endpoint]] = {}
        for ep in self.endpoints:
            by_path.setdefault(ep.path, {})[ep.method] = ep
        return [
            Route(
                path,
                _dispatcher(methods),
                methods=[*methods, *(["HEAD"] if "GET" in methods else [])],
            )
            for path, methods in by_path.items()
        ]


def _path_params(path: str, declared: Mapping[str, Param]) -> dict[str, Param]:
    """Every parameter of ``path`` with its type: ``declared``, else :data:`PATH_IDS`'."""
    params: dict[str, Param] = {}
    for name in _PATH_PARAM.findall(path):
        param = declared.get(name) or PATH_IDS.get(name)
        if param is None:
            raise TypeError(f"{path}: declare the type of {{{name}}} (path_params=)")
        params[name] = param
    return params


def _body_type(fn: Handler) -> Any:
    """The type of the JSON body ``fn`` takes: its second parameter's annotation (None when
    it takes only the context)."""
    params = list(inspect.signature(fn).parameters)
    if len(params) < 2:
        return None
    # With its Annotated constraints (a body that must not be empty, say).
    return typing.get_type_hints(fn, include_extras=True)[params[1]]


def _dispatcher(methods: dict[str, Endpoint]) -> Callable[[Request], Awaitable[Response]]:
    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        ep = methods[method]
        viewer = await authenticate(request) if ep.auth == "bearer" else None
        if viewer is not None and method != "GET":
            # Reads may trust a holder remembered for a moment; a write may not.
            viewer = await confirm_writer(request, viewer)
            if ep.scope == "write":
                # The one check of every HTTP write; the rules check it again per action.
                require_write(viewer)
        state = state_of(request)
        params = query_values(request.query_params, ep.query, strict=ep.strict_query)
        ctx = Ctx(request=request, viewer=viewer, state=state, params=params)
        args: tuple[Any, ...] = ()
        if ep.decoder is not None:
            limit = state["settings"].max_body
            ctx.raw_body, body = await decode_body(request, ep.decoder, limit)
            args = (body,)
        # After the body (a malformed body is a 4xx whatever the path), before the handler
        # looks anything up.
        check_path(request.url.path, request.path_params, ep.path_params)

        async def run() -> Response:
            result = await ep.handler(ctx, *args)
            if isinstance(result, Response):
                return result
            return json_response(request, result)

        if method == "POST" and ep.streamed_body is None:
            return await replay_or_run(ctx, run)
        return await run()

    return dispatch

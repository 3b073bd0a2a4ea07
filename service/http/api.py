"""A small typed routing layer over Starlette: one declaration per endpoint gives the route,
body decoding, response encoding, conditional GET, idempotent POST and the OpenAPI entry.

Handlers are ``async def handler(ctx: Ctx) -> Reply | Response``. They raise
:class:`~service.errors.CairnError` subclasses for refusals; :mod:`.problems` maps them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .context import Ctx, authenticate, decode_body

__all__ = ["Api", "Ctx", "Endpoint", "Reply"]
from .idempotency import IDEMPOTENCY_HEADER, replay_or_run
from .problems import PROBLEM_JSON, Problem

JSON = "application/json"
_encoder = msgspec.json.Encoder()


@dataclass
class Reply:
    """What a handler returns when it does not build a Response itself."""

    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str = "application/json"


Handler = Callable[[Ctx], Awaitable["Reply | Response"]]


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
    query: dict[str, str]
    decoder: msgspec.json.Decoder[Any] | None = None


def etag_for(body: bytes) -> str:
    """A strong ETag of a representation's bytes."""
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def if_none_match(request: Request, etag: str) -> bool:
    """Whether the request's If-None-Match matches ``etag`` (weak comparison, ``*`` too)."""
    header = request.headers.get("if-none-match")
    if not header:
        return False
    candidates = [c.strip().removeprefix("W/") for c in header.split(",")]
    return "*" in candidates or etag in candidates


def json_response(request: Request, reply: Reply) -> Response:
    """Encode ``reply``; GET answers carry an ETag and honour If-None-Match with 304."""
    body = _encoder.encode(reply.body)
    headers = dict(reply.headers)
    if request.method in ("GET", "HEAD") and reply.status == 200:
        etag = etag_for(body)
        headers["ETag"] = etag
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
        body: Any = None,
        response: Any = None,
        status: int = 200,
        also: tuple[int, ...] = (),
        auth: str = "bearer",
        tags: list[str] | None = None,
        query: dict[str, str] | None = None,
    ) -> Callable[[Handler], Handler]:
        """Declare an endpoint.

        Args:
            body: msgspec type of the JSON request body (None: no body).
            response: msgspec type of the JSON response body (for OpenAPI).
            status: success status.
            also: other success statuses with the same body (e.g. 201 of a PUT that creates).
            auth: ``"bearer"`` (a person's API token) or ``"none"``.
            query: query parameters, name to description (for OpenAPI).
        """

        def decorate(fn: Handler) -> Handler:
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
                    query=query or {},
                    decoder=msgspec.json.Decoder(body) if body is not None else None,
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

    def openapi(self, *, title: str, version: str) -> dict[str, Any]:
        """The OpenAPI 3.1 document, with schemas generated from the msgspec types."""
        types: list[Any] = [Problem]
        for ep in self.endpoints:
            types.extend(t for t in (ep.body, ep.response) if t is not None)
        schemas, components = msgspec.json.schema_components(
            types, ref_template="#/components/schemas/{name}"
        )
        schema_of = dict(zip(map(id, types), schemas, strict=True))
        problem = {PROBLEM_JSON: {"schema": schema_of[id(Problem)]}}
        paths: dict[str, Any] = {}
        for ep in self.endpoints:
            op: dict[str, Any] = {
                "summary": ep.summary,
                "operationId": ep.handler.__name__,
                "tags": ep.tags,
                "responses": {
                    "default": {"description": "a problem (RFC 9457)", "content": problem},
                },
            }
            params = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in _path_params(ep.path)
            ]
            params += [
                {
                    "name": name,
                    "in": "query",
                    "required": False,
                    "description": desc,
                    "schema": {"type": "string"},
                }
                for name, desc in ep.query.items()
            ]
            if ep.method == "POST":
                params.append(
                    {
                        "name": IDEMPOTENCY_HEADER,
                        "in": "header",
                        "required": False,
                        "description": "a retry with the same key gets the first response and changes nothing",
                        "schema": {"type": "string", "maxLength": 255},
                    }
                )
            if params:
                op["parameters"] = params
            if ep.body is not None:
                op["requestBody"] = {
                    "required": True,
                    "content": {JSON: {"schema": schema_of[id(ep.body)]}},
                }
            ok: dict[str, Any] = {"description": "success"}
            if ep.response is not None:
                ok["content"] = {JSON: {"schema": schema_of[id(ep.response)]}}
            for code in (ep.status, *ep.also):
                op["responses"][str(code)] = ok
            if ep.method == "GET":
                op["responses"]["304"] = {"description": "not modified (If-None-Match)"}
            if ep.auth == "bearer":
                op["security"] = [{"bearer": []}]
            paths.setdefault(ep.path, {})[ep.method.lower()] = op
        return {
            "openapi": "3.1.0",
            "info": {"title": title, "version": version},
            "paths": paths,
            "components": {
                "schemas": components,
                "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            },
        }


def _path_params(path: str) -> list[str]:
    return [part[1:-1].split(":")[0] for part in path.split("/") if part.startswith("{")]


def _dispatcher(methods: dict[str, Endpoint]) -> Callable[[Request], Awaitable[Response]]:
    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        ep = methods[method]
        viewer = await authenticate(request) if ep.auth == "bearer" else None
        ctx = Ctx(request=request, viewer=viewer, endpoint_path=ep.path)
        if ep.decoder is not None:
            ctx.body = await decode_body(request, ep.decoder)

        async def run() -> Response:
            result = await ep.handler(ctx)
            if isinstance(result, Response):
                return result
            return json_response(request, result)

        if method == "POST":
            return await replay_or_run(ctx, run)
        return await run()

    return dispatch

"""The OpenAPI 3.1 document of the API, generated from the endpoints' declarations and their
msgspec types: as strict as the server (types, enums, bounds, formats), with the headers the
server sends declared, so that generated clients type and page correctly."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import msgspec

from .api import Endpoint
from .idempotency import IDEMPOTENCY_HEADER, REPLAYED_HEADERS
from .params import Param
from .problems import PROBLEM_JSON, Problem

_JSON: Final = "application/json"
_TEXT: Final = {"type": "string"}
_COMPONENT: Final = "#/components/schemas/"
_NO_NUL: Final = "^[^\\x00]*$"
"""What a string without a pattern of its own is: no string may hold NUL (see .bodies)."""


def _header(description: str, schema: dict[str, Any] = _TEXT) -> dict[str, Any]:
    return {"description": description, "schema": schema}


_ETAG: Final = _header("the representation's tag, for If-None-Match (and If-Match on writes)")
_CACHE: Final = _header("private, no-cache (archive feed pages: long-lived)")
_PAGE: Final = {
    "Link": _header('the next (and, on activity, previous) page: <url>; rel="next"'),
    "X-Total-Count": _header(
        "how many items the whole list holds", {"type": "integer", "minimum": 0}
    ),
}
_LOCATION: Final = _header("the URL of what was created")
_REPLAYED: Final = _header(
    "true when the answer replays an earlier request with the same Idempotency-Key",
    {"type": "string", "enum": list(REPLAYED_HEADERS.values())},
)
_RETRY: Final = _header("seconds to wait before trying again", {"type": "integer", "minimum": 1})


def document(endpoints: Sequence[Endpoint], *, title: str, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``endpoints``, with schemas generated from the msgspec
    types."""
    types: list[Any] = [Problem]
    for ep in endpoints:
        types.extend(t for t in (*_body_types(ep), ep.response) if t is not None)
    schemas, components = msgspec.json.schema_components(types, ref_template=_COMPONENT + "{name}")
    schema_of = dict(zip(map(id, types), schemas, strict=True))
    problem = {PROBLEM_JSON: {"schema": schema_of[id(Problem)]}}
    paths: dict[str, Any] = {}
    for ep in endpoints:
        op: dict[str, Any] = {
            "summary": ep.summary,
            "operationId": ep.handler.__name__,
            "tags": ep.tags,
            "responses": _responses(ep, schema_of, problem),
        }
        params = _parameters(ep)
        if params:
            op["parameters"] = params
        bodies = [schema_of[id(t)] for t in _body_types(ep)]
        if bodies:
            schema = bodies[0] if len(bodies) == 1 else {"anyOf": bodies}
            op["requestBody"] = {
                # No body at all reads as {} (service.http.bodies): required only where {}
                # is not a body the route takes.
                "required": not _takes_empty(ep),
                "content": {_JSON: {"schema": schema}},
            }
        if ep.streamed_body is not None:
            # An empty body is a body (an empty file): not required.
            op["requestBody"] = {"required": False, "content": dict(ep.streamed_body)}
        if ep.auth == "bearer":
            # Either a bearer token or a browser session's cookie (docs/API.md "Sessions").
            # Or an OAuth 2 access token (docs/API.md "OAuth 2"), which is a bearer token too.
            needs = "read" if ep.method == "GET" or ep.scope == "read" else "write"
            op["security"] = [{"bearer": []}, {"session": []}, {"oauth2": [needs]}]
        paths.setdefault(ep.path, {})[ep.method.lower()] = op
    spec = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "servers": [{"url": "/", "description": "this server"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "cairn_session",
                    "description": "the session cookie set by POST /v1/session; unsafe methods "
                    "also need the X-CSRF-Token header (the cairn_csrf cookie)",
                },
                "oauth2": {
                    "type": "oauth2",
                    "description": "for third-party front ends: apps registered at "
                    "/v1/oauth/apps; PKCE (S256) required; access tokens last one hour; "
                    "metadata at /.well-known/oauth-authorization-server (RFC 8414)",
                    "flows": {
                        "authorizationCode": {
                            "authorizationUrl": "/oauth/authorize",
                            "tokenUrl": "/oauth/token",
                            "refreshUrl": "/oauth/token",
                            "scopes": {
                                "read": "read what the person can read",
                                "write": "write as the person (implies read)",
                                "project:<id>": "only project <id> (any number of them)",
                            },
                        }
                    },
                },
            },
        },
    }
    _say_no_nul(spec)
    return spec


def _say_no_nul(spec: dict[str, Any]) -> None:
    """Give the strings a request may hold (parameters, bodies and the components these
    use) that have no pattern (nor an enum, a constant or a format) :data:`_NO_NUL` as
    their pattern. Answers are left as they are: a problem names what it was sent."""
    components = spec["components"]["schemas"]
    reached: set[str] = set()
    for operation in (op for ops in spec["paths"].values() for op in ops.values()):
        for param in operation.get("parameters", []):
            param["schema"] = _without_nul(param["schema"], components, reached)
        if "requestBody" in operation:
            for content in operation["requestBody"]["content"].values():
                content["schema"] = _without_nul(content["schema"], components, reached)


def _without_nul(node: Any, components: dict[str, Any], reached: set[str]) -> Any:
    """A copy of schema ``node`` saying that its strings hold no NUL; the components it
    refers to are changed in place, once (``reached``: those already done)."""
    if isinstance(node, list):
        return [_without_nul(value, components, reached) for value in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_COMPONENT):
        name = ref.removeprefix(_COMPONENT)
        if name not in reached:
            reached.add(name)
            components[name] = _without_nul(components[name], components, reached)
    copy = {key: _without_nul(value, components, reached) for key, value in node.items()}
    if copy.get("type") == "string" and not {"pattern", "enum", "const", "format"} & set(copy):
        copy["pattern"] = _NO_NUL
    return copy


def _body_types(ep: Endpoint) -> tuple[Any, ...]:
    """The types OpenAPI shows the body as: ``body_schema`` (one type, or a tuple of the
    types one of which the server takes), else the decoded type."""
    shown = ep.body_schema if ep.body_schema is not None else ep.body
    if shown is None:
        return ()
    return shown if isinstance(shown, tuple) else (shown,)


def _takes_empty(ep: Endpoint) -> bool:
    if ep.decoder is None:
        return False
    try:
        ep.decoder.decode(b"{}")
    except msgspec.ValidationError:
        return False
    return True


def _parameters(ep: Endpoint) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    for name, declared in ep.path_params.items():
        params.append(
            {
                "name": name,
                "in": "path",
                "required": True,
                "description": declared.description,
                "schema": _param_schema(declared),
            }
        )
    for name, param in ep.query.items():
        entry = {
            "name": name,
            "in": "query",
            "required": param.required,
            "description": param.description,
            "schema": _param_schema(param),
        }
        if param.repeated:
            entry.update(style="form", explode=True)
        params.append(entry)
    if ep.conditional:
        params.append(
            {
                "name": "If-Match",
                "in": "header",
                "required": False,
                "description": "the ETag last read: the write answers 412 and changes nothing "
                "if the resource changed since (* : any version)",
                "schema": {"type": "string"},
            }
        )
    if ep.method == "POST" and ep.streamed_body is None and ep.auth == "bearer":
        # Keys are scoped per person: a request of no one (signing in) takes none.
        params.append(
            {
                "name": IDEMPOTENCY_HEADER,
                "in": "header",
                "required": False,
                "description": "a retry with the same key gets the first response and changes nothing",
                "schema": {"type": "string", "pattern": "^[\\x20-\\x7e]{1,255}$"},
            }
        )
    return params


def _param_schema(param: Param) -> dict[str, Any]:
    return msgspec.json.schema(param.converted)


def _responses(ep: Endpoint, schema_of: dict[int, Any], problem: dict[str, Any]) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "default": {"description": "a problem (RFC 9457)", "content": problem},
        "429": {
            "description": "too many requests (per person and instance)",
            "headers": {"Retry-After": _RETRY},
            "content": problem,
        },
        "503": {
            "description": "the database is unavailable",
            "headers": {"Retry-After": _RETRY},
            "content": problem,
        },
    }
    for code in (ep.status, *ep.also):
        ok: dict[str, Any] = {"description": "success"}
        if ep.response is not None:
            ok["content"] = {_JSON: {"schema": schema_of[id(ep.response)]}}
        headers: dict[str, Any] = {"ETag": _ETAG}
        if ep.method == "GET":
            headers["Cache-Control"] = _CACHE
            if "cursor" in ep.query:
                headers.update(_PAGE)
        if code == 201:
            headers["Location"] = _LOCATION
        if ep.method == "POST" and ep.streamed_body is None and ep.auth == "bearer":
            headers["Idempotent-Replayed"] = _REPLAYED
        ok["headers"] = headers
        responses[str(code)] = ok
    if ep.streamed_body is not None:
        responses["413"] = {
            "description": "the body is larger than the route takes",
            "content": problem,
        }
    if ep.conditional:
        responses["412"] = {
            "description": "the resource changed since the If-Match ETag was read",
            "content": problem,
        }
    if ep.method == "GET":
        responses["304"] = {
            "description": "not modified (If-None-Match)",
            "headers": {"ETag": _ETAG},
        }
    return responses

"""The OpenAPI 3.1 document of the API, generated from the endpoints' declarations and their
msgspec types."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from .api import Endpoint
from .idempotency import IDEMPOTENCY_HEADER
from .problems import PROBLEM_JSON, Problem

_JSON = "application/json"


def document(endpoints: Sequence[Endpoint], *, title: str, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``endpoints``, with schemas generated from the msgspec
    types."""
    types: list[Any] = [Problem]
    for ep in endpoints:
        types.extend(t for t in (ep.body, ep.response) if t is not None)
    schemas, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    schema_of = dict(zip(map(id, types), schemas, strict=True))
    problem = {PROBLEM_JSON: {"schema": schema_of[id(Problem)]}}
    paths: dict[str, Any] = {}
    for ep in endpoints:
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
                "content": {_JSON: {"schema": schema_of[id(ep.body)]}},
            }
        ok: dict[str, Any] = {"description": "success"}
        if ep.response is not None:
            ok["content"] = {_JSON: {"schema": schema_of[id(ep.response)]}}
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

"""HTTP conventions that hold on every route: problem+json errors, OpenAPI, health."""

from __future__ import annotations

import httpx

from .conftest import LiveServer


async def test_health_and_openapi(live_server: LiveServer) -> None:
    """The health endpoint answers with an ETag and the OpenAPI document is 3.1."""
    async with httpx.AsyncClient(base_url=live_server.base_url) as client:
        health = await client.get("/v1/health")
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        again = await client.get("/v1/health", headers={"If-None-Match": health.headers["etag"]})
        assert again.status_code == 304
        spec = (await client.get("/openapi.json")).json()
        assert spec["openapi"] == "3.1.0"
        assert "/v1/health" in spec["paths"]


async def test_unknown_route_and_method_are_problems(live_server: LiveServer) -> None:
    """404 and 405 come back as application/problem+json with a stable type."""
    async with httpx.AsyncClient(base_url=live_server.base_url) as client:
        missing = await client.get("/v1/nothing-here")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.json()["type"] == "urn:cairn:problem:not-found"
        wrong = await client.delete("/v1/health")
        assert wrong.status_code == 405
        assert wrong.json()["status"] == 405

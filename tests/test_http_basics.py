"""HTTP conventions that hold on every route: problem+json errors, OpenAPI, health."""

from __future__ import annotations

import httpx

from .support.api import add_admin, bearer, known_token
from .support.servers import Server, serving


async def test_health_and_openapi(live_server: Server) -> None:
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


async def test_unknown_route_and_method_are_problems(live_server: Server) -> None:
    """404 and 405 come back as application/problem+json with a stable type."""
    async with httpx.AsyncClient(base_url=live_server.base_url) as client:
        missing = await client.get("/v1/nothing-here")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.json()["type"] == "urn:cairn:problem:not-found"
        wrong = await client.delete("/v1/health")
        assert wrong.status_code == 405
        assert wrong.json()["status"] == 405


async def test_rate_limit_answers_429_with_retry_after(database_url: str) -> None:
    """Past the per-person rate limit a caller gets 429 problem+json with Retry-After, and
    other people are not affected."""
    async with serving(database_url, rate_limit=1.0, rate_burst=3.0) as server:
        ada = await add_admin(database_url, "Ada", "ada@example.com")
        bob = await add_admin(database_url, "Bob", "bob@example.com")
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            # The directory follows the log: wait until Bob's token works (a 401 is not
            # counted against anyone's rate), so that his later answer can only be about rates.
            probe = await known_token(client, bearer(bob.token), timeout=5.0)
            assert probe.status_code == 200
            statuses = []
            for _ in range(200):
                r = await client.get("/v1/me", headers=bearer(ada.token))
                if r.status_code != 401:  # 401: the directory has not caught up yet
                    statuses.append(r.status_code)
                if r.status_code == 429:
                    break
            limited = r
            assert limited.status_code == 429
            assert limited.headers["content-type"] == "application/problem+json"
            assert limited.json()["type"] == "urn:cairn:problem:rate-limited"
            assert int(limited.headers["retry-after"]) >= 1
            assert statuses.count(200) <= 3
            other = await client.get("/v1/me", headers=bearer(bob.token))
            assert other.status_code == 200

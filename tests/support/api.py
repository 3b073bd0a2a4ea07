"""Talking to a live Cairn over HTTP: the first admin's client (:class:`Api`), people made
through the API, and checks every route's answers share (problem+json, pages)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from service.bootstrap import NewAdmin, create_admin
from service.events.store import EventStore

from .servers import Server
from .waiting import eventually


@dataclass
class Api:
    """An HTTP client on a live server, authenticated as the first admin."""

    server: Server
    client: httpx.AsyncClient
    admin_id: str
    admin_token: str


def ref(api: Api, person_id: str, name: str) -> dict[str, str]:
    """A person as recordings and activity name them (``PersonRef``) on ``api``'s server."""
    base = api.server.base_url.rstrip("/")
    return {"id": person_id, "name": name, "avatar_url": f"{base}/v1/people/{person_id}/avatar"}


def bearer(token: str) -> dict[str, str]:
    """Headers authenticating as the holder of ``token``."""
    return {"Authorization": f"Bearer {token}"}


async def add_admin(
    database_url: str, name: str = "Ada Admin", email: str = "ada@example.com"
) -> NewAdmin:
    """An admin and their API token, written straight to the log (as ``cairn people
    create-admin`` does): the way in to a fresh database."""
    store = await EventStore.open(database_url, min_size=1, max_size=2)
    try:
        return await create_admin(store, name, email)
    finally:
        await store.close()


async def known_token(
    client: httpx.AsyncClient,
    headers: dict[str, str] | None = None,
    *,
    timeout: float,  # noqa: ASYNC109 - handed to eventually(), which explains
) -> httpx.Response:
    """``GET /v1/me`` (with ``headers``) until the server knows the token: its first answer
    other than 401.

    The server's directory follows the log, so a token written a moment ago (by
    :func:`add_admin`, by another process) may be unknown for a while.
    """

    async def known() -> httpx.Response:
        me = await client.get("/v1/me", headers=headers)
        assert me.status_code != 401, me.text
        return me

    return await eventually(known, timeout=timeout)


async def new_person(api: Api, name: str, role: str = "member", **extra: Any) -> tuple[str, str]:
    """Create a person (as the admin) and an API token for them: (person id, token secret).

    Their address is made of ``name``; a client's company is "Client Co" unless given.
    """
    if role == "client":
        extra.setdefault("company", "Client Co")
    email = f"{name.lower().replace(' ', '.')}@example.com"
    created = await api.client.post(
        "/v1/people", json={"name": name, "email": email, "role": role, **extra}
    )
    assert created.status_code == 201, created.text
    person_id: str = created.json()["id"]
    issued = await api.client.post(f"/v1/people/{person_id}/tokens", json={"label": "tests"})
    assert issued.status_code == 201, issued.text
    return person_id, issued.json()["token"]


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The problem+json body of ``response``, checked to have ``status``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith("urn:cairn:problem:")
    assert body["detail"]
    return body


async def all_pages(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str] | None = None,
    between: Callable[[], Awaitable[None]] | None = None,
) -> tuple[list[dict[str, Any]], list[int]]:
    """Every item of a paginated list, following Link rel=next; and each page's X-Total-Count.

    ``between`` (an async callable) runs after each page, e.g. to add items meanwhile.
    """
    items: list[dict[str, Any]] = []
    totals: list[int] = []
    next_url: str | None = url
    while next_url is not None:
        page = await client.get(next_url, headers=headers)
        assert page.status_code == 200, page.text
        items.extend(page.json())
        totals.append(int(page.headers["x-total-count"]))
        next_url = page.links.get("next", {}).get("url")
        if between is not None:
            await between()
    return items, totals

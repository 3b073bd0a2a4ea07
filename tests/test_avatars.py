"""People's pictures over real HTTP: ``PUT``/``DELETE /v1/me/avatar``, ``GET
/v1/people/{id}/avatar`` and ``avatar_url`` on the shapes that name people; checked by
content, bounded, served safely, hidden from those who may not see the person, and the
directory rebuilt from the log gives the same picture."""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import AsyncIterator

import asyncpg
import httpx

from service.domain.people import MAX_AVATAR
from service.events.store import EventStore
from service.projections import all_projections
from service.projections.engine import ProjectionEngine

from .support.api import Api, problem
from .support.teams import Team


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = (b"\x00" + bytes(rgb) * width) * height
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


RED = _png(8, 8, (255, 0, 0))
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4 + b"\xff\xd9"


async def _put(
    c: httpx.AsyncClient, body: bytes, headers: dict[str, str] | None = None, **more: str
) -> httpx.Response:
    return await c.put(
        "/v1/me/avatar",
        content=body,
        headers={**(headers or {}), "Content-Type": more.get("type", "image/png")},
    )


async def test_a_picture_is_set_served_inline_and_removed(api: Api) -> None:
    """A PNG becomes the caller's picture: their shape's avatar_url serves its bytes inline,
    with the download's safety headers, an ETag that answers 304, and a range; DELETE
    brings the default picture back."""
    c = api.client
    me = (await c.get("/v1/me")).json()
    assert me["avatar_url"].endswith(f"/v1/people/{api.admin_id}/avatar")
    default = await c.get(me["avatar_url"])
    assert default.status_code == 200
    assert default.headers["content-type"] == "image/png"
    assert default.content.startswith(b"\x89PNG")

    r = await _put(c, RED)
    assert r.status_code == 200, r.text
    got = await c.get(r.json()["avatar_url"])
    assert got.status_code == 200
    assert got.content == RED
    assert got.headers["content-type"] == "image/png"
    assert got.headers["content-disposition"].startswith("inline")
    assert got.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in got.headers["content-security-policy"]
    assert got.headers["etag"] == f'"{hashlib.sha256(RED).hexdigest()}"'
    again = await c.get(me["avatar_url"], headers={"If-None-Match": got.headers["etag"]})
    assert again.status_code == 304
    part = await c.get(me["avatar_url"], headers={"Range": "bytes=0-7"})
    assert part.status_code == 206
    assert part.content == RED[:8]

    # JPEG too, whatever type the request claims: the content decides.
    r = await _put(c, JPEG, type="application/octet-stream")
    assert r.status_code == 200, r.text
    got = await c.get(me["avatar_url"])
    assert (got.content, got.headers["content-type"]) == (JPEG, "image/jpeg")

    removed = await c.delete("/v1/me/avatar")
    assert removed.status_code == 200, removed.text
    back = await c.get(me["avatar_url"])
    assert back.content == default.content


async def test_only_raster_images_are_taken_and_nothing_is_kept_of_the_others(api: Api) -> None:
    """An SVG, HTML named .png, an empty body and a lone byte are refused with 415; a
    picture over 5 MiB with 413 (declared or not). The picture stays what it was and no blob
    of the refused bytes is left."""
    c = api.client
    assert (await _put(c, RED)).status_code == 200
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    html = b"<html><script>alert(1)</script></html>"
    for body in (svg, html, b"", b"\x89"):
        problem(await _put(c, body, type="image/png"), 415)
    huge = b"\x89PNG\r\n\x1a\n" + b"\x00" * MAX_AVATAR
    problem(await _put(c, huge), 413)

    async def chunked() -> AsyncIterator[bytes]:
        yield huge[: 1 << 20]
        for start in range(1 << 20, len(huge), 1 << 20):
            yield huge[start : start + (1 << 20)]

    streamed = await c.put(
        "/v1/me/avatar", content=chunked(), headers={"Content-Type": "image/png"}
    )
    problem(streamed, 413)
    got = await c.get(f"/v1/people/{api.admin_id}/avatar")
    assert got.content == RED
    conn = await _connect(api)
    try:
        kept = {r["sha256"] for r in await conn.fetch("SELECT sha256 FROM blobs")}
        staged = await conn.fetchval("SELECT count(*) FROM blob_uploads")
    finally:
        await conn.close()
    for refused in (svg, html, huge):
        assert hashlib.sha256(refused).hexdigest() not in kept
    assert staged == 0


async def test_avatar_urls_follow_who_may_see_whom(team: Team) -> None:
    """Everyone the caller sees has an avatar_url, in people, members, envelopes and activity;
    a client gets 404 for the picture of someone outside their projects, as for the person,
    and a person a client may not be told about has none."""
    c = team.c
    assert (await _put(c, RED, headers=team.mia)).status_code == 200
    message = await team.post(
        f"/v1/projects/{team.project_id}/messages",
        {"subject": "Hi", "body": "<p>x</p>", "visible_to_clients": True},
        as_=team.mia,
    )
    assert message["creator"]["avatar_url"].endswith(f"/v1/people/{team.mia_id}/avatar")
    members = (await c.get(f"/v1/projects/{team.project_id}/people")).json()
    assert all(m["avatar_url"].endswith(f"/v1/people/{m['id']}/avatar") for m in members)
    activity = (await c.get(f"/v1/projects/{team.project_id}/activity")).json()
    assert activity[0]["actor"]["avatar_url"].endswith(f"/v1/people/{team.mia_id}/avatar")

    # Cleo (a client) sees Mia's picture: they share a project.
    seen = await c.get(f"/v1/people/{team.mia_id}/avatar", headers=team.cleo)
    assert (seen.status_code, seen.content) == (200, RED)
    # Otto is on none of Cleo's projects: his picture is as hidden as he is.
    problem(await c.get(f"/v1/people/{team.otto_id}", headers=team.cleo), 404)
    problem(await c.get(f"/v1/people/{team.otto_id}/avatar", headers=team.cleo), 404)
    problem(await c.get("/v1/people/per_" + "0" * 20 + "/avatar"), 404)


async def test_the_directory_rebuilt_from_the_log_shows_the_same_picture(api: Api) -> None:
    """AvatarChanged is folded by the directory's incremental and bulk paths alike."""
    c = api.client
    assert (await _put(c, RED)).status_code == 200
    before = await c.get(f"/v1/people/{api.admin_id}/avatar")
    store = await EventStore.open(api.server.database_url, min_size=1, max_size=2)
    try:
        for bulk in (True, False):
            engine = ProjectionEngine(store, all_projections(), bulk=bulk)
            await engine.prepare()
            await engine.rebuild("directory")
            row = await store.pool.fetchrow(
                "SELECT avatar_sha256, avatar_type FROM people WHERE person_id = $1",
                api.admin_id,
            )
            assert tuple(row) == (hashlib.sha256(RED).hexdigest(), "image/png")
    finally:
        await store.close()
    after = await c.get(f"/v1/people/{api.admin_id}/avatar")
    assert after.content == before.content == RED


async def _connect(api: Api) -> asyncpg.Connection:
    return await asyncpg.connect(api.server.database_url)

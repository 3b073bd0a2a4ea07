"""``POST /v1/attachments`` on a live server: raw and multipart bodies byte-exact, names
checked, the upload limit (at once, and as it passes), nothing left by a refused or
abandoned upload, identical bytes stored once across people, and no stall of the log's
readers while an upload trickles in."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from service.blobs.postgres import PostgresBlobStore

from .support.api import Api, bearer, new_person, problem
from .support.servers import error_log
from .support.teams import Team
from .support.waiting import eventually

MiB = 1024 * 1024


async def _rows(database_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(database_url)
    try:
        return {
            table: await conn.fetchval(f"SELECT count(*) FROM {table}")
            for table in ("blob_chunks", "blob_uploads", "blobs", "attachables")
        }
    finally:
        await conn.close()


async def _stored(database_url: str, sha256: str) -> bytes:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        blobs = PostgresBlobStore(pool)
        return b"".join([piece async for piece in blobs.read(sha256)])
    finally:
        await pool.close()


@pytest.mark.parametrize("size", [0, 1, 10 * MiB])
async def test_a_raw_body_is_stored_byte_exact(api: Api, size: int) -> None:
    """A raw body of 0 B, 1 B and 10 MiB: 201 with its facts, the bytes stored exactly."""
    data = os.urandom(size)
    answer = await api.client.post(
        "/v1/attachments",
        params={"name": "report.pdf"},
        content=data,
        headers={"Content-Type": "application/pdf"},
    )
    assert answer.status_code == 201, answer.text
    shown = answer.json()
    assert shown["attachable_id"].startswith("att_")
    assert {k: v for k, v in shown.items() if k != "attachable_id"} == {
        "name": "report.pdf",
        "size": size,
        "content_type": "application/pdf",
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert await _stored(api.server.database_url, shown["sha256"]) == data


async def test_no_content_type_is_octet_stream_and_names_are_checked(api: Api) -> None:
    """Without Content-Type the file is application/octet-stream; a missing, blank, long or
    NUL-holding name is a 400 naming ``name``, and nothing is stored."""
    sent = await api.client.post(
        "/v1/attachments?name=%E2%80%AEcod.exe%20%F0%9F%98%80", content=b"abc"
    )
    assert sent.status_code == 201, sent.text
    assert sent.json()["content_type"] == "application/octet-stream"
    assert sent.json()["name"] == "\u202ecod.exe \U0001f600"
    before = await _rows(api.server.database_url)
    for query in ("", "?name=", "?name=%20%20", "?name=" + "x" * 256, "?name=a%00b"):
        refused = problem(await api.client.post(f"/v1/attachments{query}", content=b"abc"), 400)
        assert [e["field"] for e in refused["errors"]] == ["name"], query
    assert await _rows(api.server.database_url) == before


async def test_multipart_takes_the_parts_filename_and_type(api: Api) -> None:
    """multipart/form-data with one part named file: its filename and type, unless
    ``?name=`` says otherwise; other shapes are 422 or 400 and store nothing."""
    data = os.urandom(3 * MiB + 11)
    files = {"file": ("photo ünï.png", data, "image/png")}
    sent = await api.client.post("/v1/attachments", files=files)
    assert sent.status_code == 201, sent.text
    assert sent.json()["name"] == "photo ünï.png"
    assert sent.json()["content_type"] == "image/png"
    assert sent.json()["size"] == len(data)
    assert await _stored(api.server.database_url, sent.json()["sha256"]) == data
    renamed = await api.client.post("/v1/attachments?name=b.png", files=files)
    assert renamed.json()["name"] == "b.png"
    assert renamed.json()["sha256"] == sent.json()["sha256"]
    before = await _rows(api.server.database_url)
    two = {"file": ("a", b"1"), "other": ("b", b"2")}
    assert problem(await api.client.post("/v1/attachments", files=two), 422)
    misnamed = {"upload": ("a", b"1")}
    assert problem(await api.client.post("/v1/attachments", files=misnamed), 422)
    nameless = await api.client.post(
        "/v1/attachments",
        content=b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc\r\n--b--\r\n',
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert problem(nameless, 400)["errors"][0]["field"] == "name"
    cut = await api.client.post(
        "/v1/attachments?name=x",
        content=b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc',
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert problem(cut, 400)
    assert await _rows(api.server.database_url) == before


@pytest.mark.parametrize("server_settings", [{"max_upload": 2 * MiB}])
async def test_an_oversize_upload_is_413_and_leaves_nothing(api: Api) -> None:
    """Over CAIRN_MAX_UPLOAD: 413 at once when Content-Length says so, and as soon as the
    limit is passed when the body comes chunked; either way no row of it stays. The limit
    itself is accepted."""

    async def chunked() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield os.urandom(100_000)

    declared = await api.client.post("/v1/attachments?name=big", content=b"x" * (2 * MiB + 1))
    assert problem(declared, 413)
    streamed = await api.client.post("/v1/attachments?name=big", content=chunked())
    assert problem(streamed, 413)
    files = {"file": ("big", os.urandom(2 * MiB + 1))}
    assert problem(await api.client.post("/v1/attachments", files=files), 413)
    assert await _rows(api.server.database_url) == {
        "blob_chunks": 0,
        "blob_uploads": 0,
        "blobs": 0,
        "attachables": 0,
    }
    exact = await api.client.post("/v1/attachments?name=ok", content=os.urandom(2 * MiB))
    assert exact.status_code == 201, exact.text


async def test_a_client_that_leaves_mid_upload_leaves_no_chunk(api: Api) -> None:
    """A raw socket declares 8 MiB, sends 3 and closes: the staged chunks go."""
    host, port = api.server.base_url.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        (
            f"POST /v1/attachments?name=cut HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {api.admin_token}\r\n"
            f"Content-Length: {8 * MiB}\r\nContent-Type: application/zip\r\n\r\n"
        ).encode()
    )
    writer.write(os.urandom(3 * MiB))
    await writer.drain()

    async def staged() -> None:
        assert (await _rows(api.server.database_url))["blob_chunks"] >= 2

    await eventually(staged, timeout=10)
    writer.close()
    await writer.wait_closed()

    async def cleaned() -> None:
        assert await _rows(api.server.database_url) == {
            "blob_chunks": 0,
            "blob_uploads": 0,
            "blobs": 0,
            "attachables": 0,
        }

    await eventually(cleaned, timeout=10, interval=0.05)


async def test_identical_uploads_by_two_people_at_once_are_one_blob(api: Api) -> None:
    """The admin and a client post the same bytes at once (four times each): one blob, eight
    attachables, each person's own."""
    _, token = await new_person(api, "Cleo", "client", company="Acme")
    data = os.urandom(2 * MiB + 5)

    async def send(headers: dict[str, str] | None) -> dict[str, Any]:
        sent = await api.client.post("/v1/attachments?name=same", content=data, headers=headers)
        assert sent.status_code == 201, sent.text
        body: dict[str, Any] = sent.json()
        return body

    shown = await asyncio.gather(*(send(h) for h in [None, bearer(token)] * 4))
    assert len({s["sha256"] for s in shown}) == 1
    assert len({s["attachable_id"] for s in shown}) == 8
    rows = await _rows(api.server.database_url)
    assert rows == {"blob_chunks": 3, "blob_uploads": 0, "blobs": 1, "attachables": 8}


async def test_uploads_need_a_token_and_are_rate_limited_like_any_route(api: Api) -> None:
    """No token: 401, nothing read or stored."""
    async with httpx.AsyncClient(base_url=api.server.base_url) as anonymous:
        assert problem(await anonymous.post("/v1/attachments?name=a", content=b"x"), 401)
    assert (await _rows(api.server.database_url))["blobs"] == 0


async def test_a_slow_upload_does_not_stall_the_log_readers(team: Team) -> None:
    """While an upload trickles in for seconds, a to-do posted through the API answers 201
    and shows at once (read-your-writes), and so does its list: no transaction stays open
    across the upload to hold the log's readers back."""
    api = team.api
    todolist = await team.post(f"/v1/projects/{team.project_id}/todolists", {"name": "Files"})
    sending = asyncio.Event()
    finish = asyncio.Event()

    async def trickle() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield os.urandom(MiB)  # whole chunks, written while the upload goes on
        sending.set()
        while not finish.is_set():
            yield b"x" * 1000
            await asyncio.sleep(0.05)

    upload = asyncio.create_task(api.client.post("/v1/attachments?name=slow", content=trickle()))
    await sending.wait()
    await eventually(lambda: _staged_three(api.server.database_url), timeout=10, interval=0.05)
    with error_log() as errors:
        for n in range(3):
            loop = asyncio.get_running_loop()
            began = loop.time()
            created = await team.post(f"/v1/todolists/{todolist['id']}/todos", {"content": f"T{n}"})
            shown = await api.client.get(f"/v1/todos/{created['id']}")
            listed = await api.client.get(f"/v1/todolists/{todolist['id']}/todos")
            assert shown.status_code == 200, shown.text
            assert created["id"] in [t["id"] for t in listed.json()]
            # CAIRN_RYW_TIMEOUT is 5 s: a stalled reader would make the POST wait that long.
            assert loop.time() - began < 2.0
    assert not upload.done()
    finish.set()
    answer = await upload
    assert answer.status_code == 201, answer.text
    assert errors == []


async def _staged_three(database_url: str) -> None:
    assert (await _rows(database_url))["blob_chunks"] >= 3

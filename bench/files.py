"""Files: a 200 MiB upload over HTTP to Cairn and a read back from its blob store, next to the
floor of the same work done directly, and the server's memory during the upload.

Run ``python -m bench.files`` (200 MiB, three rounds) or ``python -m bench.files --quick``
(64 MiB, one round). Uses ``DATABASE_URL`` if set, else starts a throwaway embedded
PostgreSQL.

In one run, on one PostgreSQL server:

* **upload**: ``POST /v1/attachments`` of the file (streamed from disk by httpx, raw body) to
  Cairn served as ``cairn serve`` serves it, in a child process on a fresh database
  (``CAIRN_MAX_UPLOAD`` raised to fit). Each round changes the file's first bytes, so that
  no round is deduplicated.
* **upload floor**: read the file, SHA-256 it, ``COPY`` it in 1 MiB rows into a plain table
  of the same shape (``bytea`` stored EXTERNAL) of a second fresh database, commit: the least
  any design storing files in PostgreSQL must do.
* **read**: ``PostgresBlobStore.read`` of the uploaded blob, from this process (one statement
  per chunk, as the store does).
* **read floor**: ``SELECT data FROM chunks ORDER BY n`` through a cursor, on the floor's table.
* **server memory**: the Cairn process's ``VmRSS`` (``/proc/<pid>/status``) sampled every
  20 ms during the upload, its peak minus its value just before; and ``VmHWM`` (the peak
  since start) before and after.
* **download over HTTP**: the uploaded file made an upload of a project
  (``POST /v1/projects/{id}/uploads``), then ``GET /v1/uploads/{id}/download`` streamed by
  httpx and counted, against the read floor.

Exits 1 when a target is missed: upload, read and download >= 0.5 x their floors' rates,
server RSS growth during the upload < 32 MiB.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx

from service.blobs.postgres import CHUNK_SIZE, PostgresBlobStore
from service.database.migrate import migrate_url

from ._common import (
    arguments,
    first_admin,
    fresh_database,
    machine_facts,
    median,
    postgres_server,
    serve_cairn,
    server_facts,
    server_process,
    table,
    verdict,
    wait_for_token,
)

MiB = 1024 * 1024
PIECE = 256 * 1024
"""What the client reads from disk and sends at a time."""


async def _file(path: Path, round_: int) -> AsyncIterator[bytes]:
    """The file's bytes in pieces, its first 8 bytes replaced by the round's number."""
    with path.open("rb") as f:
        first = True
        while piece := f.read(PIECE):
            if first:
                piece = round_.to_bytes(8, "big") + piece[8:]
                first = False
            yield piece
            await asyncio.sleep(0)


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of process ``pid``, in bytes."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) * 1024
    return found


async def _upload(
    client: httpx.AsyncClient, path: Path, round_: int, pid: int
) -> tuple[float, str, int, int, str]:
    """Seconds, sha256, RSS growth (peak sampled minus before), VmHWM growth and the
    attachable id."""
    before = _status(pid)
    peak = before["VmRSS"]
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _status(pid)["VmRSS"])
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    began = time.perf_counter()
    answer = await client.post(
        "/v1/attachments?name=big.bin",
        content=_file(path, round_),
        headers={"Content-Type": "application/octet-stream"},
    )
    seconds = time.perf_counter() - began
    done.set()
    await sampler
    assert answer.status_code == 201, answer.text
    after = _status(pid)
    return (
        seconds,
        answer.json()["sha256"],
        peak - before["VmRSS"],
        after["VmHWM"] - before["VmHWM"],
        answer.json()["attachable_id"],
    )


async def _upload_floor(url: str, path: Path, round_: int) -> float:
    began = time.perf_counter()
    digest = hashlib.sha256()
    conn = await asyncpg.connect(url)
    try:

        async def rows() -> AsyncIterator[tuple[int, int, bytes]]:
            buffer = bytearray()
            n = 0
            async for piece in _file(path, round_):
                digest.update(piece)
                buffer += piece
                while len(buffer) >= CHUNK_SIZE:
                    yield (round_, n, bytes(buffer[:CHUNK_SIZE]))
                    del buffer[:CHUNK_SIZE]
                    n += 1
            if buffer:
                yield (round_, n, bytes(buffer))

        async with conn.transaction():
            await conn.copy_records_to_table("chunks", records=rows())
    finally:
        await conn.close()
    digest.hexdigest()
    return time.perf_counter() - began


async def _read(blobs: PostgresBlobStore, sha256: str, size: int) -> float:
    began = time.perf_counter()
    got = 0
    async for piece in blobs.read(sha256):
        got += len(piece)
    assert got == size, (got, size)
    return time.perf_counter() - began


async def _read_floor(url: str, round_: int, size: int) -> float:
    began = time.perf_counter()
    conn = await asyncpg.connect(url)
    got = 0
    try:
        async with conn.transaction():
            query = "SELECT data FROM chunks WHERE round = $1 ORDER BY n"
            async for record in conn.cursor(query, round_, prefetch=4):
                got += len(record[0])
    finally:
        await conn.close()
    assert got == size, (got, size)
    return time.perf_counter() - began


async def _download(
    client: httpx.AsyncClient, project_id: str, attachable_id: str, size: int
) -> float:
    """Seconds to download the file over HTTP once it is an upload of ``project_id``."""
    made = await client.post(
        f"/v1/projects/{project_id}/uploads", json={"attachable_id": attachable_id}
    )
    assert made.status_code == 201, made.text
    began = time.perf_counter()
    got = 0
    async with client.stream("GET", f"/v1/uploads/{made.json()['id']}/download") as answer:
        assert answer.status_code == 200, answer.status_code
        async for piece in answer.aiter_raw():
            got += len(piece)
    assert got == size, (got, size)
    return time.perf_counter() - began


async def run(quick: bool) -> int:
    size = (64 if quick else 200) * MiB
    rounds = 1 if quick else 3
    print(f"machine {machine_facts()}; file {size // MiB} MiB, {rounds} rounds")
    folder = Path(tempfile.mkdtemp(prefix="cairn-bench-files-"))
    path = folder / "big.bin"
    with path.open("wb") as f:
        for _ in range(size // MiB):
            f.write(os.urandom(MiB))
    os.environ["CAIRN_MAX_UPLOAD"] = str(size + MiB)
    up, up_floor, read, read_floor, rss, hwm, down = [], [], [], [], [], [], []
    try:
        with postgres_server() as server:
            print(f"server {await server_facts(server.admin_url)}")
            async with (
                fresh_database(server, "cairn") as cairn_url,
                fresh_database(server, "floor") as floor_url,
            ):
                await migrate_url(cairn_url)
                floor = await asyncpg.connect(floor_url)
                await floor.execute(
                    "CREATE TABLE chunks (round integer, n integer, data bytea, "
                    "PRIMARY KEY (round, n)); "
                    "ALTER TABLE chunks ALTER COLUMN data SET STORAGE EXTERNAL"
                )
                await floor.close()
                token = await first_admin(cairn_url, "Bench", "bench@example.com")
                pool = await asyncpg.create_pool(cairn_url, min_size=1, max_size=2)
                blobs = PostgresBlobStore(pool)
                async with (
                    server_process("bench.files", "cairn", cairn_url) as cairn,
                    httpx.AsyncClient(
                        base_url=cairn.base,
                        headers={"Authorization": f"Bearer {token}"},
                        timeout=600,
                    ) as client,
                ):
                    await wait_for_token(client)
                    made = await client.post("/v1/projects", json={"name": "Bench files"})
                    assert made.status_code == 201, made.text
                    project_id = made.json()["id"]
                    for round_ in range(rounds):
                        seconds, sha256, grew, peak, attachable = await _upload(
                            client, path, round_, cairn.popen.pid
                        )
                        up.append(seconds)
                        rss.append(grew)
                        hwm.append(peak)
                        up_floor.append(await _upload_floor(floor_url, path, round_))
                        read.append(await _read(blobs, sha256, size))
                        read_floor.append(await _read_floor(floor_url, round_, size))
                        down.append(await _download(client, project_id, attachable, size))
                await pool.close()
    finally:
        path.unlink(missing_ok=True)
        folder.rmdir()  # noqa: ASYNC240 - once, at the end

    def rate(seconds: list[float]) -> float:
        return size / MiB / median(seconds)

    rows = [
        [
            "upload over HTTP (POST /v1/attachments)",
            f"{rate(up):.0f}",
            f"{rate(up) / rate(up_floor):.2f}",
        ],
        ["upload floor (read, SHA-256, COPY, commit)", f"{rate(up_floor):.0f}", "1.00"],
        [
            "read (PostgresBlobStore.read)",
            f"{rate(read):.0f}",
            f"{rate(read) / rate(read_floor):.2f}",
        ],
        ["read floor (SELECT through a cursor)", f"{rate(read_floor):.0f}", "1.00"],
        [
            "download over HTTP (GET /v1/uploads/{id}/download)",
            f"{rate(down):.0f}",
            f"{rate(down) / rate(read_floor):.2f}",
        ],
    ]
    print()
    print(table(["workload", "MiB/s (median)", "x floor"], rows))
    print(
        f"\nserver RSS growth during the upload: {max(rss) / MiB:.1f} MiB at most "
        f"(VmHWM growth {max(hwm) / MiB:.1f} MiB)"
    )
    missed = []
    if rate(up) < 0.5 * rate(up_floor):
        missed.append(f"upload {rate(up):.0f} MiB/s < 0.5 x floor {rate(up_floor):.0f}")
    if rate(read) < 0.5 * rate(read_floor):
        missed.append(f"read {rate(read):.0f} MiB/s < 0.5 x floor {rate(read_floor):.0f}")
    if rate(down) < 0.5 * rate(read_floor):
        missed.append(f"download {rate(down):.0f} MiB/s < 0.5 x floor {rate(read_floor):.0f}")
    if max(rss) >= 32 * MiB:
        missed.append(f"server RSS grew {max(rss) / MiB:.1f} MiB >= 32 MiB")
    return verdict(missed)


def main() -> None:
    parser = arguments("bench.files", __doc__, "64 MiB, one round")
    parser.add_argument("--serve", choices=["cairn"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_cairn(args.port)
        return
    sys.exit(asyncio.run(run(args.quick)))


if __name__ == "__main__":
    main()

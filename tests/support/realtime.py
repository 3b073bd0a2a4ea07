"""What the real-time tests share: people and projects made through the HTTP API as the
first admin (:class:`World`), WebSocket clients (real ``websockets`` ones, and a raw one
that can stop reading or answering pings), and the log as the table holds it."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from .api import add_admin, bearer, known_token
from .servers import Server, serving

GUARD = 30.0
"""Only there to turn a hang into a failure; no assertion depends on timing."""


class World:
    """People, projects and messages, made through the HTTP API as the first admin."""

    def __init__(self, client: httpx.AsyncClient, admin_id: str, admin_token: str) -> None:
        self.client = client
        self.admin_id = admin_id
        self.admin_token = admin_token

    @classmethod
    @asynccontextmanager
    async def on(cls, base_url: str, database_url: str) -> AsyncIterator[World]:
        """A new admin (of their own address) on the server at ``base_url``, serving
        ``database_url``, once the server knows their token."""
        admin = await add_admin(database_url, email=f"ada-{uuid.uuid4().hex[:6]}@example.com")
        async with httpx.AsyncClient(
            base_url=base_url, headers=bearer(admin.token), timeout=GUARD
        ) as client:
            await known_token(client, timeout=GUARD)
            yield cls(client, admin.person_id, admin.token)

    async def _ok(self, response: httpx.Response) -> Any:
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    async def person(self, role: str = "member") -> tuple[str, str, str]:
        """A new person: (person id, API token, token id)."""
        name = uuid.uuid4().hex[:8]
        body: dict[str, Any] = {"name": f"P {name}", "email": f"{name}@example.com", "role": role}
        if role == "client":
            body["company"] = "Client Co"
        person = await self._ok(await self.client.post("/v1/people", json=body))
        issued = await self._ok(
            await self.client.post(f"/v1/people/{person['id']}/tokens", json={"label": "ws"})
        )
        return person["id"], issued["token"], issued["id"]

    async def project(self, *, clients_enabled: bool = False) -> str:
        body = {"name": f"Project {uuid.uuid4().hex[:6]}", "clients_enabled": clients_enabled}
        project = await self._ok(await self.client.post("/v1/projects", json=body))
        return str(project["id"])

    async def add(self, project_id: str, person_id: str, role: str = "member") -> None:
        await self._ok(
            await self.client.put(
                f"/v1/projects/{project_id}/people/{person_id}", json={"project_role": role}
            )
        )

    async def remove(self, project_id: str, person_id: str) -> None:
        await self._ok(await self.client.delete(f"/v1/projects/{project_id}/people/{person_id}"))

    async def post(self, project_id: str, subject: str = "Hello", *, visible: bool = False) -> str:
        """Post a message; returns its id."""
        body = {"subject": subject, "body": "<p>Hi</p>", "visible_to_clients": visible}
        message = await self._ok(
            await self.client.post(f"/v1/projects/{project_id}/messages", json=body)
        )
        return str(message["id"])

    async def stats(self) -> dict[str, int]:
        return dict(await self._ok(await self.client.get("/v1/realtime/stats")))


@dataclass
class Rt:
    """A Cairn server in this event loop and the first admin's :class:`World` on it."""

    server: Server
    world: World

    @property
    def database_url(self) -> str:
        return self.server.database_url


@asynccontextmanager
async def realtime_server(database_url: str, **settings: Any) -> AsyncIterator[Rt]:
    """A server (``settings`` as :func:`~tests.support.servers.start_server` takes them) and
    a world on it, for as long as the block runs."""
    async with (
        serving(database_url, **settings) as server,
        World.on(server.base_url, database_url) as world,
    ):
        yield Rt(server, world)


async def log_positions(url: str, project_id: str) -> list[int]:
    """The project's events in log order, straight from the table."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT position FROM events WHERE project_id = $1 ORDER BY tx_id, position",
            project_id,
        )
    finally:
        await conn.close()
    return [r["position"] for r in rows]


# ------------------------------------------------------------------ WebSocket clients


@asynccontextmanager
async def ws(url: str, token: str | None) -> AsyncIterator[ClientConnection]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with connect(url, additional_headers=headers, max_size=None, open_timeout=GUARD) as conn:
        yield conn


async def frame(conn: ClientConnection) -> dict[str, Any]:
    """The next frame, decoded."""
    async with asyncio.timeout(GUARD):
        return dict(json.loads(await conn.recv()))


async def subscribe(conn: ClientConnection, project_id: str, since: int | None = None) -> None:
    """Subscribe and wait for ``subscribed``."""
    message: dict[str, Any] = {"type": "subscribe", "project_id": project_id}
    if since is not None:
        message["since"] = since
    await conn.send(json.dumps(message))
    answer = await frame(conn)
    assert answer == {"type": "subscribed", "subscription": project_id}, answer


async def events(conn: ClientConnection, count: int) -> list[dict[str, Any]]:
    """The next ``count`` frames, which must be events."""
    got = [await frame(conn) for _ in range(count)]
    assert all(f["type"] == "event" for f in got), got
    return got


async def recording_events(conn: ClientConnection, count: int) -> list[dict[str, Any]]:
    """The next ``count`` events about recordings, skipping those about projects and people
    (an ``all`` subscription may still receive the set-up's own, written just before it
    began, when the hub learns of them after the subscription started)."""
    got: list[dict[str, Any]] = []
    while len(got) < count:
        [event] = await events(conn, 1)
        if event.get("recording") is not None:
            got.append(event)
    return got


async def close_code(conn: ClientConnection) -> int | None:
    """Read until the server closes; the close code it sent."""
    async with asyncio.timeout(GUARD):
        try:
            while True:
                await conn.recv()
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd is not None else None


class RawClient:
    """A WebSocket client on a plain socket that does only what it is told: it can stop
    reading altogether, or read without ever answering a ping."""

    def __init__(self, url: str, token: str, *, receive_buffer: int = 4096) -> None:
        self._url = url
        self._token = token
        self._receive_buffer = receive_buffer
        self.protocol = ClientProtocol(parse_uri(url), max_size=None)
        self.reader: asyncio.StreamReader
        self.writer: asyncio.StreamWriter

    async def open(self) -> None:
        uri = parse_uri(self._url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # A small window, so that a client that stops reading backs up the server quickly.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._receive_buffer)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (uri.host, uri.port))
        self.reader, self.writer = await asyncio.open_connection(sock=sock)
        request = self.protocol.connect()
        request.headers["Authorization"] = f"Bearer {self._token}"
        self.protocol.send_request(request)
        await self._flush()
        while self.protocol.handshake_exc is None and not self._opened():
            self.protocol.receive_data(await self.reader.read(65536))
            for _ in self.protocol.events_received():
                pass
        if self.protocol.handshake_exc is not None:
            raise self.protocol.handshake_exc

    def _opened(self) -> bool:
        from websockets.protocol import State

        return self.protocol.state is State.OPEN

    async def _flush(self) -> None:
        for chunk in self.protocol.data_to_send():
            if chunk:
                self.writer.write(chunk)
        await self.writer.drain()

    async def send(self, message: dict[str, Any]) -> None:
        self.protocol.send_text(json.dumps(message).encode())
        await self._flush()

    async def read_frames(self) -> list[Frame]:
        """Read until the server closes the TCP connection, answering nothing (not even the
        close or pings); every frame received, in order."""
        frames: list[Frame] = []
        async with asyncio.timeout(GUARD):
            while data := await self.reader.read(65536):
                self.protocol.receive_data(data)
                frames.extend(e for e in self.protocol.events_received() if isinstance(e, Frame))
                # Drop whatever the protocol would answer: this peer never answers.
                self.protocol.data_to_send()
        return frames

    async def read_until_close(self) -> tuple[list[dict[str, Any]], int | None]:
        """Read (answering nothing) until a close frame: the text frames before it and
        the close code."""
        texts: list[dict[str, Any]] = []
        async with asyncio.timeout(GUARD):
            while True:
                data = await self.reader.read(65536)
                if not data:
                    return texts, None
                self.protocol.receive_data(data)
                self.protocol.data_to_send()
                for event in self.protocol.events_received():
                    if not isinstance(event, Frame):
                        continue
                    if event.opcode is Opcode.TEXT:
                        texts.append(json.loads(event.data))
                    elif event.opcode is Opcode.CLOSE:
                        from websockets.frames import Close

                        return texts, Close.parse(event.data).code

    def close(self) -> None:
        self.writer.close()

"""Logs: text or JSON lines (service/http/logs.py), request ids and the access log
(service/http/accesslog.py), and no secret in any line of a real ``cairn serve``."""

from __future__ import annotations

import asyncio
import base64
import contextvars
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from starlette.types import Receive, Scope, Send
from websockets.asyncio.client import connect

from service.http.accesslog import AccessLog
from service.http.logs import JsonFormatter, TextFormatter, request_id

from .support.api import add_admin, bearer, known_token
from .support.cli import cairn_serve, child_env
from .support.postgres import embedded_data_dir
from .support.realtime import close_code, events, subscribe, ws
from .support.servers import free_port, serving, serving_other
from .support.waiting import eventually

GUARD = 30.0
"""Only there to turn a hang into a failure."""

HEX_ID = re.compile(r"[0-9a-f]{32}")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


# ------------------------------------------------------------------ formats (no server)


def _record(
    message: str, *args: object, exc: BaseException | None = None, **fields: Any
) -> logging.LogRecord:
    record = logging.LogRecord(
        "service.probe",
        logging.WARNING,
        __file__,
        1,
        message,
        args,
        (type(exc), exc, exc.__traceback__) if exc is not None else None,
    )
    record.__dict__.update(fields)
    return record


def _failure(message: str) -> BaseException:
    try:
        raise RuntimeError(message)
    except RuntimeError as exc:
        return exc


def test_a_json_line_is_one_object_with_the_record_its_fields_and_its_traceback() -> None:
    """A JSON line is a single line holding time, level, logger, message, the request id,
    the fields given by ``extra=`` and the traceback as one string."""
    record = _record(
        "%d to-dos moved", 3, exc=_failure("the disk\nis full"), route="/v1/x", status=503
    )
    line = contextvars.copy_context().run(
        lambda: (request_id.set("req-1"), JsonFormatter().format(record))[1]
    )
    assert "\n" not in line
    entry = json.loads(line)
    assert TIME.fullmatch(entry.pop("time"))
    assert entry.pop("exception").startswith("Traceback (most recent call last):")
    assert entry == {
        "level": "warning",
        "logger": "service.probe",
        "message": "3 to-dos moved",
        "request_id": "req-1",
        "route": "/v1/x",
        "status": 503,
    }


def test_a_text_line_names_time_level_logger_and_the_request_id_within_a_request() -> None:
    """A text line reads ``time LEVEL logger: message request_id=…``; outside a request it
    has no request id."""
    record = _record("hello %s", "there")
    inside = contextvars.copy_context().run(
        lambda: (request_id.set("abc"), TextFormatter().format(record))[1]
    )
    outside = contextvars.copy_context().run(TextFormatter().format, record)
    assert re.fullmatch(
        rf"{TIME.pattern} WARNING service\.probe: hello there request_id=abc", inside
    )
    assert re.fullmatch(rf"{TIME.pattern} WARNING service\.probe: hello there", outside)


SECRET = "cairn_" + "S3cr3t-" * 6
FEED_SECRET = "cairnfeed_" + "F33d_" * 9


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()], ids=["text", "json"])
def test_secrets_are_blanked_in_messages_arguments_fields_and_tracebacks(
    formatter: logging.Formatter,
) -> None:
    """Tokens in a message, its arguments, a field or a traceback, and the credentials of an
    Authorization header, never reach the line."""
    basic = base64.b64encode(f":{FEED_SECRET}".encode()).decode()
    record = _record(
        "< %s: %s; GET %s",
        "Authorization",
        f"Bearer {SECRET}",
        f"/feeds/activity.atom?token={FEED_SECRET}",
        exc=_failure(f"could not use {SECRET} or Basic {basic}"),
        note=f"had {FEED_SECRET}",
    )
    line = formatter.format(record)
    for secret in (SECRET, FEED_SECRET, basic):
        assert secret not in line
    assert "Bearer [redacted]" in line
    assert "token=[redacted]" in line


def test_a_signed_links_signature_is_blanked() -> None:
    """A signed link's signature (valid for minutes, but a key to a file meanwhile) never
    reaches a line; its expiry does."""
    signature = "k1.Zm9vYmFyYmF6cXV4LXNpZ25lZC1saW5rLXNlY3JldA"
    record = _record("GET %s", f"/files/rec_1/versions/2?expires=1765000000&signature={signature}")
    line = TextFormatter().format(record)
    assert signature not in line
    assert "expires=1765000000&signature=[redacted]" in line


# ------------------------------------------------------------------ request ids, access log


@dataclass
class Kept:
    """A record of the access log and the request id set while it was written."""

    record: logging.LogRecord
    request_id: str | None


@contextmanager
def access_records() -> Iterator[list[Kept]]:
    """The records ``cairn.access`` writes while the block runs (the server must log at
    info)."""
    kept: list[Kept] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            kept.append(Kept(record, request_id.get()))

    handler = Keep()
    logger = logging.getLogger("cairn.access")
    logger.addHandler(handler)
    try:
        yield kept
    finally:
        logger.removeHandler(handler)


@asynccontextmanager
async def admin_client(database_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A server logging at info, and an httpx client on it as a new admin (and their id)."""
    async with serving(database_url, log_level="info") as server:
        admin = await add_admin(database_url)
        async with httpx.AsyncClient(
            base_url=server.base_url, headers=bearer(admin.token), timeout=GUARD
        ) as client:
            await known_token(client, timeout=GUARD)
            yield client, admin.token


async def test_a_sane_request_id_is_answered_logged_and_recorded(database_url: str) -> None:
    """A client's ``X-Request-Id`` comes back in the answer, in the access line and in the
    metadata of the events the request appended."""
    async with admin_client(database_url) as (client, _):
        with access_records() as kept:
            created = await client.post(
                "/v1/projects", json={"name": "Ids"}, headers={"X-Request-Id": "client-7:a/b"}
            )
    assert created.status_code == 201, created.text
    assert created.headers["x-request-id"] == "client-7:a/b"
    [line] = [k for k in kept if k.record.route == "/v1/projects"]
    assert line.request_id == "client-7:a/b"
    conn = await asyncpg.connect(database_url)
    try:
        recorded = await conn.fetchval(
            "SELECT metadata->>'request_id' FROM events WHERE stream_id = $1",
            f"project-{created.json()['id']}",
        )
    finally:
        await conn.close()
    assert recorded == "client-7:a/b"


@pytest.mark.parametrize(
    "sent",
    [None, b"", b"two words", b"x" * 201, "caf\u00e9".encode(), b"tab\there"],
    ids=["none", "empty", "space", "too-long", "not-ascii", "tab"],
)
async def test_a_missing_or_unfit_request_id_is_replaced_by_a_new_one(
    database_url: str, sent: bytes | None
) -> None:
    """Without a sane ``X-Request-Id`` (1 to 200 visible ASCII characters) the request gets
    a new id of 32 hex digits, answered and logged; two requests never share one."""
    headers = {} if sent is None else {"X-Request-Id": sent}
    async with admin_client(database_url) as (client, _):
        with access_records() as kept:
            first = await client.get("/v1/me", headers=headers)
            second = await client.get("/v1/me", headers=headers)
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert all(HEX_ID.fullmatch(i) for i in ids), ids
    assert ids[0] != ids[1]
    assert [k.request_id for k in kept] == ids


async def test_one_access_line_per_request_naming_its_route_not_its_path(database_url: str) -> None:
    """Each request, WebSocket included, is one access line at its end: client, method, the
    route's template (no ids, no query string), status, duration and request id; a request
    no route matches shows ``-``."""
    async with admin_client(database_url) as (client, token):
        project = (await client.post("/v1/projects", json={"name": "Lines"})).json()["id"]
        with access_records() as kept:
            got = await client.get(f"/v1/projects/{project}", params={"x": "1"})
            missing = await client.get("/nowhere/at/all", params={"token": "s3cret"})
            url = str(client.base_url).replace("http", "ws") + "/v1/stream"
            async with ws(url, token) as conn:
                await subscribe(conn, project)

            def three() -> None:  # the WebSocket's line comes once the server has closed it
                assert len(kept) == 3

            await eventually(three, timeout=GUARD)
    assert got.status_code == 400  # strict query: `x` is no parameter of this route
    by_route = {k.record.route: k for k in kept}
    assert set(by_route) == {"/v1/projects/{project_id}", None, "/v1/stream"}
    line = by_route["/v1/projects/{project_id}"]
    assert (line.record.method, line.record.status) == ("GET", 400)
    assert line.request_id == got.headers["x-request-id"]
    assert line.record.duration_ms >= 0
    assert '"GET /v1/projects/{project_id} HTTP/1.1" 400' in line.record.getMessage()
    nowhere = by_route[None]
    assert (nowhere.record.status, nowhere.request_id) == (404, missing.headers["x-request-id"])
    assert '"GET - HTTP/1.1" 404' in nowhere.record.getMessage()
    stream = by_route["/v1/stream"]
    assert (stream.record.method, stream.record.status) == ("WEBSOCKET", 101)
    assert HEX_ID.fullmatch(stream.request_id or "")
    messages = " ".join(k.record.getMessage() for k in kept)
    assert project not in messages
    assert "?" not in messages
    assert "s3cret" not in messages


async def _logs_in_and_out_of_its_task(scope: Scope, receive: Receive, send: Send) -> None:
    """An app that logs while it serves, from its own task and from a task it starts."""
    log = logging.getLogger("service.probe")
    log.warning("in the request's task")
    await asyncio.get_running_loop().create_task(_log_later(log))
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def _log_later(log: logging.Logger) -> None:
    await asyncio.sleep(0)
    log.warning("in a task it started")


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()], ids=["text", "json"])
async def test_every_line_logged_while_serving_a_request_carries_its_id(
    formatter: logging.Formatter,
) -> None:
    """Whatever logger writes while a request is served (in its task or a task it starts)
    writes the request's id, the one the answer carries; a line outside requests has none."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Keep()
    handler.setFormatter(formatter)
    log = logging.getLogger("service.probe")
    log.addHandler(handler)
    try:
        async with (
            serving_other(AccessLog(_logs_in_and_out_of_its_task)) as base_url,
            httpx.AsyncClient(base_url=base_url, timeout=GUARD) as client,
        ):
            answers = [
                await client.get("/"),
                await client.get("/", headers={"X-Request-Id": "mine"}),
            ]
        log.warning("between requests")
    finally:
        log.removeHandler(handler)
    ids = [a.headers["x-request-id"] for a in answers]
    assert ids[1] == "mine"
    assert len(lines) == 5
    for rid, pair in zip(ids, (lines[0:2], lines[2:4]), strict=True):
        assert all(rid in line for line in pair), (rid, pair)
    assert "request_id" not in lines[4]


# ------------------------------------------------------------------ no secret in the logs of cairn serve


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data folder where no Cairn has run yet (its PostgreSQL stopped if a test left it)."""
    with embedded_data_dir() as path:
        yield path


@dataclass
class Session:
    """What a scenario did: the secrets it made or sent, the request ids it was answered."""

    secrets: list[str] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)
    websockets: int = 0
    ids: list[str] = field(default_factory=list)
    """Ids of what it made (people, projects, tokens): never in an access line."""


async def _scenario(base_url: str, admin_token: str) -> Session:
    """People and API tokens made, a feed token rotated and read with ``?token=``, Basic and
    Bearer, WebSockets with ``?access_token=`` and a Bearer header, Idempotency-Key POSTs
    (one replayed), wrong secrets, a token revoked and used again."""
    session = Session(secrets=[admin_token])

    async def answered(response: httpx.Response) -> None:
        session.request_ids.append(response.headers["x-request-id"])

    async with httpx.AsyncClient(
        base_url=base_url,
        headers=bearer(admin_token),
        timeout=GUARD,
        event_hooks={"response": [answered]},
    ) as client:
        await known_token(client, timeout=GUARD)
        key = {"Idempotency-Key": uuid.uuid4().hex}
        person = {"name": "Bob", "email": "bob@example.com", "role": "member"}
        bob = await client.post("/v1/people", json=person, headers=key)
        again = await client.post("/v1/people", json=person, headers=key)
        assert (bob.status_code, again.headers.get("idempotent-replayed")) == (201, "true")
        bob_id = bob.json()["id"]
        issued = await client.post(f"/v1/people/{bob_id}/tokens", json={"label": "laptop"})
        assert issued.status_code == 201, issued.text
        bob_token, bob_token_id = issued.json()["token"], issued.json()["id"]
        project = await client.post(
            "/v1/projects", json={"name": "Secrets"}, headers={"Idempotency-Key": uuid.uuid4().hex}
        )
        project_id = project.json()["id"]
        joined = await client.put(
            f"/v1/projects/{project_id}/people/{bob_id}", json={"project_role": "member"}
        )
        assert joined.status_code < 300, joined.text
        old_feed = (await client.post("/v1/me/feed_token")).json()["token"]
        feed = (await client.post("/v1/me/feed_token")).json()["token"]
        wrong = f"cairn_{uuid.uuid4().hex}{uuid.uuid4().hex}"
        session.secrets += [bob_token, old_feed, feed, wrong, "not-a-token-at-all-42"]
        session.ids += [bob_id, bob_token_id, project_id]

        assert (await client.get("/feeds/activity.atom", params={"token": feed})).status_code == 200
        assert (
            await client.get(f"/feeds/projects/{project_id}.rss", params={"token": feed})
        ).status_code == 200
        assert (
            await client.get("/feeds/activity.atom", params={"token": old_feed})
        ).status_code == 401
        basic = await client.get(
            "/feeds/activity.rss", auth=("", feed), headers={"Authorization": ""}
        )
        session.secrets.append(base64.b64encode(f":{feed}".encode()).decode())
        assert basic.status_code == 200, basic.text
        assert (await client.get("/v1/me", headers=bearer(wrong))).status_code == 401
        assert (
            await client.get("/v1/me", headers=bearer("not-a-token-at-all-42"))
        ).status_code == 401

        stream = base_url.replace("http", "ws") + "/v1/stream"
        async with connect(f"{stream}?access_token={bob_token}", open_timeout=GUARD) as conn:
            await subscribe(conn, project_id)
            async with ws(stream, admin_token) as watcher:
                await subscribe(watcher, project_id)
                message = await client.post(
                    f"/v1/projects/{project_id}/messages",
                    json={"subject": "Hi", "body": "<p>Bob</p>"},
                )
                assert message.status_code == 201, message.text
                await events(watcher, 1)
            await events(conn, 1)
        async with connect(f"{stream}?access_token={wrong}", open_timeout=GUARD) as refused:
            assert await close_code(refused) == 4401
        session.websockets += 3

        assert (await client.delete(f"/v1/tokens/{bob_token_id}")).status_code == 204
        assert (await client.get("/v1/me", headers=bearer(bob_token))).status_code == 401
    return session


def _access(line: str, log_format: str) -> tuple[str, str | None] | None:
    """(the request part, the request id) of an access line; None for another line."""
    if log_format == "json":
        entry = json.loads(line)
        if entry["logger"] != "cairn.access":
            return None
        assert entry["route"] is not None, entry
        return entry["message"], entry.get("request_id")
    found = re.fullmatch(rf"{TIME.pattern} INFO cairn\.access: (.*?)(?: request_id=(\S+))?", line)
    return None if found is None else (found[1], found[2])


@pytest.mark.parametrize("log_format", ["json", "text"])
async def test_no_secret_reaches_a_line_of_cairn_serve(data_dir: Path, log_format: str) -> None:
    """A whole session against ``cairn serve --log-level debug`` (first-run admin, tokens,
    feed tokens, WebSockets, idempotent POSTs, wrong and revoked secrets): no secret in any
    log line; in JSON every line is an object; each request and WebSocket is one access line
    naming its route's template and the request id it was answered with."""
    port = free_port()
    async with cairn_serve(
        port,
        *("--data-dir", str(data_dir), "--log-level", "debug", "--log-format", log_format),
        env=child_env(),
    ) as serve:
        [admin_token] = re.findall(r"Bearer (cairn_[\w-]+)", "\n".join(serve.printed))
        session = await _scenario(serve.base_url, admin_token)
        assert await serve.stop() == 0
    assert "\n".join(serve.printed).count(admin_token) == 1  # the first run's curl line, once
    for secret in session.secrets:
        leaked = [line for line in serve.logged if secret in line]
        assert not leaked, (secret, leaked)
    if log_format == "json":
        entries = [json.loads(line) for line in serve.logged]
        assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    access = [a for a in (_access(line, log_format) for line in serve.logged) if a is not None]
    assert len(access) == len(session.request_ids) + session.websockets
    answered = [rid for _, rid in access if rid in session.request_ids]
    assert sorted(answered) == sorted(session.request_ids)
    routes = [
        re.search(r'"(?:\w+ (\S+) HTTP/1\.1|WebSocket (\S+))"', request) for request, _ in access
    ]
    assert all(r is not None and (r[1] or r[2]).startswith("/") for r in routes), access
    for request, rid in access:
        assert rid is not None
        assert "?" not in request
        assert not any(made in request for made in session.ids), request
    assert any("Bearer [redacted]" in line for line in serve.logged)  # the handshake, at debug
    assert not any("[accepted]" in line for line in serve.logged)  # uvicorn's own access line

"""A webhook receiver for tests: a tiny Starlette app on a free port of 127.0.0.1 that
verifies every request with the ``standardwebhooks`` package (as any receiver following the
spec would), records what it verified, and answers what the test scripts (500s, a hang past
the sender's timeout, 410) before answering 200."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .servers import serving_other

HANG = -1
"""A scripted answer: hold the request open for :attr:`Receiver.hang` seconds (past the
sender's timeout), then answer 200 (to nobody): recorded as :data:`HUNG`."""
DRIP = -2
"""A scripted answer: 200 with its headers at once, then the body one byte every
:attr:`Receiver.drip` seconds for :attr:`Receiver.hang` seconds (each byte well within a read
timeout, the whole far past the sender's): recorded as :data:`DRIPPED`; stops when the
sender hangs up (``dripping``: the drips going on now, ``most_dripping``: the most at once)."""
DRIPPED = 598
"""The status :attr:`Receiver.got` records for a request it dripped its answer to."""
HUNG = 599
"""The status :attr:`Receiver.got` records for a request it hung on."""


@dataclass
class Got:
    """A verified request: its ``webhook-id``, its payload, its headers."""

    msg_id: str
    payload: dict[str, Any]
    headers: dict[str, str]
    status: int


@dataclass
class Receiver:
    """Verifies with ``secrets`` (any one of them must match, as a receiver holding one
    secret does); ``script``: the statuses of the next requests (:data:`HANG`: hang), then
    200 for all, each after ``delay`` seconds (``most``: the most requests it held at once). ``got``: the verified requests with the status answered; ``refused``:
    requests whose signature did not verify; ``signatures``: each request's header."""

    secrets: list[str] = field(default_factory=list)
    script: list[int] = field(default_factory=list)
    hang: float = 3.0
    delay: float = 0.0
    in_flight: int = 0
    most: int = 0
    got: list[Got] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    signatures: list[str] = field(default_factory=list)
    url: str = ""
    drip: float = 0.05
    dripping: int = 0
    most_dripping: int = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.signatures.append(headers.get("webhook-signature", ""))
        payload = None
        for secret in self.secrets:
            try:
                payload = Webhook(secret).verify(body, headers)
                break
            except WebhookVerificationError:
                continue
        if payload is None:
            self.refused.append(headers.get("webhook-id", ""))
            await Response(status_code=401)(scope, receive, send)
            return
        status = self.script.pop(0) if self.script else 200
        if self.delay:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            await asyncio.sleep(self.delay)  # a slow receiver
            self.in_flight -= 1
        if status == HANG:
            self.got.append(Got(headers["webhook-id"], payload, headers, HUNG))
            await asyncio.sleep(self.hang)  # the sender gave up long ago
            await Response(status_code=200)(scope, receive, send)
            return
        if status == DRIP:
            self.got.append(Got(headers["webhook-id"], payload, headers, DRIPPED))
            await self._drip(receive, send)
            return
        self.got.append(Got(headers["webhook-id"], payload, headers, status))
        await Response(json.dumps({"ok": status < 300}), status_code=status)(scope, receive, send)

    async def _drip(self, receive: Receive, send: Send) -> None:
        self.dripping += 1
        self.most_dripping = max(self.most_dripping, self.dripping)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            loop = asyncio.get_running_loop()
            until = loop.time() + self.hang
            while loop.time() < until:
                await send({"type": "http.response.body", "body": b".", "more_body": True})
                try:  # the pause between two bytes, or the sender hanging up
                    message = await asyncio.wait_for(receive(), self.drip)
                except TimeoutError:
                    continue
                if message["type"] == "http.disconnect":
                    return
            await send({"type": "http.response.body", "body": b""})
        finally:
            self.dripping -= 1

    def delivered(self) -> list[Got]:
        """The requests answered with a 2xx."""
        return [g for g in self.got if 200 <= g.status < 300]

    def delivered_ids(self) -> Counter[str]:
        """How many times each ``webhook-id`` was answered with a 2xx."""
        return Counter(g.msg_id for g in self.delivered())

    def positions(self) -> list[int]:
        """The positions delivered (2xx), sorted."""
        return sorted(g.payload["position"] for g in self.delivered())


@asynccontextmanager
async def receiving(
    secrets: Sequence[str] = (), script: Sequence[int] = ()
) -> AsyncIterator[Receiver]:
    """A :class:`Receiver` listening on 127.0.0.1 (its ``url``) while the block runs."""
    receiver = Receiver(secrets=list(secrets), script=list(script))
    async with serving_other(receiver) as base:
        receiver.url = f"{base}/hooks"
        yield receiver

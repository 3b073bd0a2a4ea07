"""Webhooks out for one instance (:class:`WebhookSender`): the ``webhooks`` planner
(:mod:`.webhooks`) and a sender loop that claims due deliveries, signs them and POSTs them.

**Claims, never a transaction over I/O**: due rows are claimed ``sending`` with a lease in
one short transaction (:func:`~service.reads.webhook_deliveries.claim`), at most
``CAIRN_WEBHOOK_CONCURRENCY`` in flight per endpoint across instances, so one failing or
slow event never holds back the others (there is no ordering promise: receivers order by
``position``). Each request goes out through ``services.outbound`` (the SSRF-safe client:
every connection checked after DNS resolution, redirects not followed, 10 s for the whole
request and the answer's start), signed
with every secret valid now (both while a rotated one lasts); the outcome is marked in one
statement that also logs the attempt.

**Outcomes**: a 2xx is delivered. A 410 fails the delivery and disables the endpoint
(``commands.webhooks.disable``, reason ``gone``). Anything else (another status, a refused
or lost connection, a timeout, any unforeseen error of the attempt) is retried on the schedule of
:data:`~service.domain.webhook_payload.SCHEDULE`, jittered, by ``services.clock``; after the
last retry the delivery fails and the endpoint is disabled (reason ``failing``). A delivery
whose endpoint is no longer active (disabled, deleted, its owner deactivated) fails
without a request; one planned for another audience or URL than its hook's now (an edit
since) is skipped, never sent.

**At least once**: an instance dying mid-request leaves its rows ``sending``; once their
lease has run out another instance sends them again with the same ``webhook-id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

import httpx

from ..commands import webhooks as commands
from ..commands.caller import Services
from ..domain import webhook_payload as wp
from ..errors import NotFound
from ..events.wakeup import TRANSIENT_ERRORS
from ..outbound import Undecodable, read_limited
from ..reads import webhook_deliveries as deliveries
from ..reads.webhook_deliveries import Attempt, Claimed
from ..reads.webhooks import Endpoint, active_endpoints, signing_secrets
from .webhooks import Planner

_log = logging.getLogger(__name__)

LEASE: Final = timedelta(minutes=2)
"""How long a claimed delivery is an instance's to send (well over a request's timeout)."""
ENDPOINTS_TTL: Final = 1.0
"""Seconds the sender keeps the active endpoints and their secrets between two reads: a
hook disabled, deleted or given a new secret meanwhile may be sent deliveries already
planned, signed as before, for that long."""
PRUNE_EVERY: Final = 10.0
"""Seconds between two prunings of an endpoint's old deliveries and attempts."""


def wall_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class WebhookSender:
    """Webhooks out of one instance.

    Args:
        services: store, read models, clock, and ``outbound`` (the HTTP client's policy).
        concurrency: deliveries in flight per endpoint, across instances.
        timeout: seconds a request may take, connecting included.
        in_flight: deliveries in flight in this instance, over all endpoints.
        poll: how often (s) the sender looks for due rows when nothing wakes it (retries,
            other instances' plans, room freed by other instances).

    The ``webhook-timestamp`` is the real time (:func:`wall_clock`), never the injectable
    clock: receivers compare it with their own clock to refuse replays.
    """

    services: Services
    concurrency: int = 4
    timeout: float = 10.0
    in_flight: int = 64
    poll: float = 1.0
    settle_timeout: float = 5.0
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self.wake = asyncio.Event()
        self.planner = Planner(self.services, self.wake, settle_timeout=self.settle_timeout)
        self._task: asyncio.Task[None] | None = None
        self._pruned: dict[str, float] = {}
        self._known: dict[str, tuple[Endpoint, list[str]]] = {}
        self._endpoints_read = float("-inf")
        self._stopping = False
        self.sent = 0

    async def start(self) -> None:
        """Plan and send in tasks until :meth:`stop`."""
        await self.planner.reader.start_at_head()
        self.planner.reader.start()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="webhook-sender")

    async def stop(self) -> None:
        """Stop planning and sending: nothing more is claimed, and the requests in flight
        are finished and marked (for at most a request's timeout and a second), so that a
        restart sends nothing twice. One still in flight after that is abandoned: its row
        stays ``sending`` and is sent again, with the same ``webhook-id``, once its lease
        runs out."""
        await self.planner.reader.stop()
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self.wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), self.timeout + 1.0)
        except (TimeoutError, Exception):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # ----------------------------------------------------------- the loop

    async def _run(self) -> None:
        tasks: set[asyncio.Task[None]] = set()
        client = self.services.outbound.client(timeout=self.timeout, follow_redirects=False)
        try:
            while not self._stopping or tasks:
                self.wake.clear()
                claimed = 0
                room = self.in_flight - len(tasks)
                if room > 0 and not self._stopping:
                    try:
                        claimed = await self._claim(client, room, tasks)
                    except TRANSIENT_ERRORS as exc:
                        _log.info("webhooks lost PostgreSQL (%s); retrying", exc)
                    except Exception:
                        _log.exception("webhook sender failed; retrying in 1 s")
                        await asyncio.sleep(1.0)
                if claimed and claimed == room:
                    continue
                waiter = asyncio.ensure_future(self.wake.wait())
                try:
                    done, _ = await asyncio.wait(
                        {*tasks, waiter}, timeout=self.poll, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    waiter.cancel()
                tasks.difference_update(done)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await client.aclose()

    async def _claim(
        self, client: httpx.AsyncClient, room: int, tasks: set[asyncio.Task[None]]
    ) -> int:
        """Claim up to ``room`` due deliveries and start a task sending each."""
        loop = asyncio.get_running_loop()
        ready = await self._claimed(room)
        for endpoint, secrets, row in ready:
            tasks.add(loop.create_task(self._deliver(client, endpoint, secrets, row)))
        return len(ready)

    async def _claimed(self, limit: int) -> list[tuple[Endpoint, list[str], Claimed]]:
        """Up to ``limit`` due deliveries claimed, each with its endpoint and secrets; those
        of endpoints no longer active are failed."""
        now = self.services.clock()
        pool = self.services.store.pool
        return await self._ready(
            await deliveries.claim(pool, now, now + LEASE, limit, self.concurrency), now
        )

    async def _ready(
        self, rows: Sequence[Claimed], now: datetime
    ) -> list[tuple[Endpoint, list[str], Claimed]]:
        """Claimed ``rows`` with their endpoints and secrets; those of endpoints no longer
        active are failed; those planned for another audience or URL than their hook's now
        are skipped (never sent)."""
        if not rows:
            return []
        pool = self.services.store.pool
        endpoints = await self._endpoints(now)
        if any(r.webhook_id not in endpoints for r in rows):
            endpoints = await self._endpoints(now, again=True)  # a hook new since the read?
        gone = [r.id for r in rows if r.webhook_id not in endpoints]
        await deliveries.drop(pool, gone, now, "the endpoint is no longer active")
        changed = [(r.id, why) for r in rows if (why := r.changed()) is not None]
        await deliveries.skip(pool, changed, now)
        skipped = {i for i, _ in changed}
        return [
            (*endpoints[r.webhook_id], r)
            for r in rows
            if r.webhook_id in endpoints and r.id not in skipped
        ]

    async def _endpoints(
        self, now: datetime, *, again: bool = False
    ) -> dict[str, tuple[Endpoint, list[str]]]:
        """The active endpoints with their signing secrets, read again when
        :data:`ENDPOINTS_TTL` has passed since the last read (or ``again``)."""
        if not again and time.monotonic() - self._endpoints_read < ENDPOINTS_TTL:
            return self._known
        pool = self.services.store.pool
        known = {}
        for endpoint in await active_endpoints(pool):
            known[endpoint.id] = (endpoint, await signing_secrets(pool, endpoint.id, now))
        self._known, self._endpoints_read = known, time.monotonic()
        return known

    # ----------------------------------------------------------- one delivery

    async def _deliver(
        self, client: httpx.AsyncClient, endpoint: Endpoint, secrets: Sequence[str], row: Claimed
    ) -> None:
        """Send ``row`` and mark its outcome; then, while there is work and the instance is
        not stopping, claim one more delivery and do the same (the slot passes from one
        delivery to the next without waiting for the loop: the deliveries in flight each
        do their own database work, in parallel)."""
        current: tuple[Endpoint, Sequence[str], Claimed] | None = (endpoint, secrets, row)
        while current is not None:
            endpoint, secrets, row = current
            try:
                attempt = await self._send(client, endpoint, secrets, row)
                status = attempt.status
                if status is not None and 200 <= status < 300 and not self._stopping:
                    now = self.services.clock()
                    claimed = await deliveries.delivered_then_claim(
                        self.services.store.pool,
                        row.id,
                        attempt,
                        now,
                        now + LEASE,
                        self.concurrency,
                    )
                    self.sent += 1
                    await self._prune(endpoint.id)
                    more = await self._ready(claimed, now)
                    current = more[0] if more else None
                    continue
                await self._settle(endpoint, row, attempt)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Left `sending`: tried again once its lease runs out.
                _log.exception("webhook delivery %s failed", row.id)
                return
            if self._stopping:
                return
            try:
                more = await self._claimed(1)
            except Exception:
                return  # the loop claims again
            current = more[0] if more else None

    async def _send(
        self, client: httpx.AsyncClient, endpoint: Endpoint, secrets: Sequence[str], row: Claimed
    ) -> Attempt:
        """One attempt at ``row``, to the URL it was planned for, within :attr:`timeout`
        seconds in all (connecting, sending, the answer's status and excerpt: a receiver
        dripping its answer is cut off like one that never answers). Never raises but
        :class:`asyncio.CancelledError`: whatever else goes wrong is the attempt's error,
        so that the delivery is settled (retried or failed), never left ``sending``."""
        at = self.services.clock()
        if not secrets:
            return Attempt(at=at, status=None, duration_ms=0, error="no signing secret")
        started = time.perf_counter()
        status: int | None = None
        excerpt: str | None = None
        error: str | None = None
        try:
            headers = wp.headers(secrets, row.msg_id, wall_clock(), row.payload)
            async with asyncio.timeout(self.timeout):
                async with client.stream(
                    "POST", row.url, content=row.payload, headers=headers
                ) as answer:
                    excerpt = await _excerpt(answer)
            status = answer.status_code
        except TimeoutError:
            status, excerpt = None, None
            error = f"TimeoutError: no complete answer within {self.timeout:g} s"
        except httpx.HTTPError as exc:
            status, excerpt = None, None
            error = f"{type(exc).__name__}: {exc}".rstrip(": ") or type(exc).__name__
        except Exception as exc:  # a bug or an unforeseen failure: still an attempt
            _log.exception("webhook delivery %s: unexpected failure", row.id)
            status, excerpt = None, None
            error = f"{type(exc).__name__}: the request failed"
        duration = round((time.perf_counter() - started) * 1000)
        return Attempt(at=at, status=status, duration_ms=duration, response=excerpt, error=error)

    async def _settle(self, endpoint: Endpoint, row: Claimed, attempt: Attempt) -> None:
        pool = self.services.store.pool
        status = attempt.status
        if status is not None and 200 <= status < 300:
            await deliveries.delivered(pool, [(row.id, attempt)])
            self.sent += 1
        elif status == 410:
            await deliveries.failed(pool, row.id, attempt)
            await self._disable(endpoint, "gone", "the endpoint answered 410 Gone")
        else:
            delay = wp.retry_delay(row.attempts, self.rng)
            if delay is None:
                await deliveries.failed(pool, row.id, attempt)
                what = f"status {status}" if status is not None else attempt.error
                await self._disable(
                    endpoint,
                    "failing",
                    f"{row.attempts} attempts at a delivery failed (the last: {what})",
                )
            else:
                await deliveries.retry(pool, row.id, attempt, attempt.at + delay)
        await self._prune(endpoint.id)

    async def _disable(self, endpoint: Endpoint, reason: str, detail: str) -> None:
        _log.warning("webhook %s disabled (%s): %s", endpoint.id, reason, detail)
        with contextlib.suppress(NotFound):
            await commands.disable(self.services, endpoint.id, reason, detail)

    async def _prune(self, webhook_id: str) -> None:
        now = time.monotonic()
        if now - self._pruned.get(webhook_id, 0.0) < PRUNE_EVERY:
            return
        self._pruned[webhook_id] = now
        await deliveries.prune(self.services.store.pool, webhook_id)


async def _excerpt(answer: httpx.Response) -> str:
    """The first :data:`~service.domain.webhook_payload.EXCERPT` characters of an answer's
    body (read no further, decompressed with a bound: see :func:`~service.outbound.read_limited`)."""
    try:
        got = await read_limited(answer, wp.EXCERPT, truncate=True)
    except Undecodable as exc:
        return f"({exc})"
    return got.decode("utf-8", errors="replace")

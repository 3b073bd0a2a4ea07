"""A worker that ticks: ``tick`` every ``interval`` seconds in a task of its own until
stopped, a lost PostgreSQL or a bug in one tick never ending the loop (the alert scheduler,
the external feeds' poller)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ..commands.caller import Services
from ..events.wakeup import TRANSIENT_ERRORS
from ..metrics import Worker

_log = logging.getLogger(__name__)


class Ticking:
    """Calls :meth:`tick` every ``interval`` seconds (after each tick ends) until
    :meth:`stop`; subclasses name themselves (``name``: the task's, the logs' and the
    metrics' worker label) and say what a tick does.

    ``ticks`` counts the ticks that have ended (done or failed): a tick begun after a test
    moved the clock has ended once it moved by two.
    """

    name = "worker"

    def __init__(self, services: Services, interval: float) -> None:
        self.services = services
        self.interval = interval
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None
        self._metrics = Worker(self.name)

    async def tick(self) -> int:
        """One round of work; how much it did (the subclass says of what)."""
        raise NotImplementedError

    def start(self) -> None:
        """Tick in a task until :meth:`stop`."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Stop ticking (a tick in flight is cancelled: what it appended is whole or not
        at all; a lease it held ends by itself)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except TRANSIENT_ERRORS as exc:
                _log.info("%s lost PostgreSQL (%s); retrying", self.name, exc)
            except Exception:
                _log.exception("%s: a tick failed; next one in %s s", self.name, self.interval)
            self.ticks += 1
            await asyncio.sleep(self.interval)

"""Live readers of the log: catch up, then follow commits as they come.

Part of :class:`~service.events.store.EventStore`. Woken by LISTEN/NOTIFY (see wakeup.py),
polling as a fallback; they survive PostgreSQL restarts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any, Final

from .base import RecordedEvent
from .reading import Cursor, Reading
from .rows import decode_rows
from .sql import PAGE, PAGE_PROJECT
from .wakeup import TRANSIENT_ERRORS, Listener

_log = logging.getLogger(__name__)

_FIRST_BACKOFF: Final = 0.002
_MAX_BACKOFF: Final = 0.05
_RETRY_DELAY: Final = 0.2


class Following(Reading):
    """The store's live readers: a base of :class:`~service.events.store.EventStore`, which
    sets up the wake-ups and the poll interval."""

    _listener: Listener
    poll_interval: float

    async def subscribe(
        self, after: int = 0, *, project_id: str | None = None, batch: int = 500
    ) -> AsyncIterator[RecordedEvent]:
        """Every event after position ``after``: catch up, then follow live, until closed.

        Never skips an event that commits late and never yields one twice. Survives
        PostgreSQL restarts: it waits, reconnects and resumes from the last event yielded.
        Ends when the store is closed.

        Raises:
            UnknownPosition: ``after`` is not a position in the log.
        """
        cursor = await self._retrying(lambda: self.cursor_of(after))
        if cursor is None:
            return
        async for event in self.follow(cursor, project_id=project_id, batch=batch):
            yield event

    async def follow(
        self, cursor: Cursor, *, project_id: str | None = None, batch: int = 500
    ) -> AsyncIterator[RecordedEvent]:
        """Like :meth:`subscribe`, from a log-order cursor."""
        self._listener.start()
        backoff = _FIRST_BACKOFF
        while not self._closed:
            # Taken before reading: a wake-up for a commit this read misses moves it.
            seen = self._listener.generation
            try:
                if project_id is None:
                    rows = await self._lane.fetch(PAGE, cursor[0], cursor[1], batch)
                else:
                    rows = await self._lane.fetch(
                        PAGE_PROJECT, cursor[0], cursor[1], batch, project_id
                    )
            except TRANSIENT_ERRORS as exc:
                if self.closed():
                    return
                _log.info("log reader lost PostgreSQL (%s); retrying", exc)
                await asyncio.sleep(_RETRY_DELAY)
                continue
            ready = [r for r in rows if r["ready"]]
            for event in decode_rows(ready):
                cursor = event.cursor
                yield event
            if len(ready) == batch:
                continue
            if len(ready) < len(rows):
                # Committed events wait behind an open transaction, which may yet end by
                # a rollback (no wake-up at all): look again soon.
                await self._listener.wait(seen, backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
            else:
                backoff = _FIRST_BACKOFF
                await self._listener.wait(seen, self.poll_interval)

    async def _retrying(self, fn: Any) -> Any:
        """``await fn()``, retried while PostgreSQL is unreachable; None once closed."""
        while not self._closed:
            try:
                return await fn()
            except TRANSIENT_ERRORS as exc:
                if self.closed():
                    break
                _log.info("PostgreSQL unavailable (%s); retrying", exc)
                await asyncio.sleep(_RETRY_DELAY)
        return None

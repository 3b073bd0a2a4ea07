"""What a feed server remembers between polls: answers by read-model state, bodies by ETag.

Feed readers poll the same URLs again and again, and nearly always nothing changed. Two
bounded LRU maps make that cheap, per app instance:

* :class:`Answers`: for one (credential, URL), the ETag and headers computed when the read
  models stood at a given state (their checkpoints). While the checkpoints have not moved,
  nothing a feed is made of (tokens, memberships, activity, names) can have changed, so the
  same ETag holds without asking anything else. The checkpoint must be read *before* the
  facts the answer is computed from: facts read later are at least as new, so an answer
  stored under an old checkpoint can never be reused once anything changed (a rotated token
  included).
* :class:`Bodies`: rendered documents by strong ETag. A strong ETag names exactly one byte
  sequence, so any request computing that ETag may be answered with those bytes.

The checkpoints themselves are read at most every :data:`CHECKPOINT_TTL` seconds
(:class:`Checkpoint`), and again at once after any append the store hears of (its wake-up
generation moves: appends of this process at once, other processes' through NOTIFY). So a
poll that finds nothing changed costs no query at all. The price, stated plainly: a change
made while a checkpoint is remembered (the projection applying an append after the wake-up
was seen) shows in feeds up to :data:`CHECKPOINT_TTL` late; the feed-token route forgets
the checkpoint after a rotation, so on the instance that rotated, the old token stops
working at once, and on other instances within :data:`CHECKPOINT_TTL`.

No locks: one event loop per instance, and no ``await`` inside these methods.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Final

CHECKPOINT_TTL: Final = 0.5
"""Seconds a read of the projections' checkpoints is trusted while no append was heard of."""
MAX_ANSWERS: Final = 10_000
MAX_BODY_BYTES: Final = 32 * 1024 * 1024


@dataclass(frozen=True)
class Answer:
    """A feed's validators (and the response headers made of them) as computed at read-model
    state ``checkpoint``."""

    checkpoint: str
    person_id: str
    etag: str
    last_modified: datetime | None
    headers: dict[str, str]
    headers_304: dict[str, str]


class Answers:
    """Answers by (credential digest, URL), least recently used dropped first."""

    def __init__(self, limit: int = MAX_ANSWERS) -> None:
        self.limit = limit
        self._items: OrderedDict[tuple[str, ...], Answer] = OrderedDict()

    def get(self, key: tuple[str, ...], checkpoint: str) -> Answer | None:
        """The answer for ``key`` if it was computed at ``checkpoint``."""
        answer = self._items.get(key)
        if answer is None or answer.checkpoint != checkpoint:
            return None
        self._items.move_to_end(key)
        return answer

    def put(self, key: tuple[str, ...], answer: Answer) -> None:
        self._items[key] = answer
        self._items.move_to_end(key)
        while len(self._items) > self.limit:
            self._items.popitem(last=False)


class Bodies:
    """Rendered bodies by ETag, at most ``limit`` bytes in all."""

    def __init__(self, limit: int = MAX_BODY_BYTES) -> None:
        self.limit = limit
        self.size = 0
        self._items: OrderedDict[str, bytes] = OrderedDict()

    def get(self, etag: str) -> bytes | None:
        body = self._items.get(etag)
        if body is not None:
            self._items.move_to_end(etag)
        return body

    def put(self, etag: str, body: bytes) -> None:
        if len(body) > self.limit or etag in self._items:
            return
        self._items[etag] = body
        self.size += len(body)
        while self.size > self.limit:
            _, dropped = self._items.popitem(last=False)
            self.size -= len(dropped)


class Checkpoint:
    """The last read of the read models' checkpoints, with when and at which wake-up
    generation it was read."""

    def __init__(self, ttl: float = CHECKPOINT_TTL) -> None:
        self.ttl = ttl
        self._value: str | None = None
        self._read_at = 0.0
        self._generation = -1

    def get(self, now: float, generation: int) -> str | None:
        """The remembered checkpoint if still trusted at ``now`` and ``generation``."""
        if self._value is None or generation != self._generation or now - self._read_at > self.ttl:
            return None
        return self._value

    def put(self, value: str, read_at: float, generation: int) -> None:
        """Remember ``value``, read at ``read_at`` (taken before the read) and ``generation``
        (taken before the read too, so an append heard of during the read is not missed)."""
        self._value, self._read_at, self._generation = value, read_at, generation

    def forget(self) -> None:
        self._value = None


class FeedCache:
    """The per-instance caches of the feed routes."""

    def __init__(self) -> None:
        self.checkpoint = Checkpoint()
        self.answers = Answers()
        self.bodies = Bodies()

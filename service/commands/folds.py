"""States folded from streams, remembered at the stream version they were folded to.

Writes are decided on states folded from the streams (never on read models), and every
command on a recording folds its project's stream. A project's stream grows for as long as
the project lives (memberships, role changes, edits, archiving): on a 1,000,000-event
database from the benchmarks' workload it held ~1,350 events, and reading and folding them
cost every write to that project ~5 ms. The log is immutable and the fold a pure function of
it, so the state at stream version ``v`` never changes: :class:`StreamStates` keeps the
last state folded for each stream and its version, and a load reads only the events after
that version (usually none: one index probe) and folds them on top.

Nothing here can go stale: a stream's events after ``v`` are always read from the database,
and a stream version is only ever taken once its predecessor committed, so a read that sees
version ``v + 2`` sees ``v + 1``. The cache is per process and bounded (least recently used
out); a new process starts empty. A change of the fold's code takes effect with the process
that runs it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

from ..events.base import Event
from ..events.store import EventStore

S = TypeVar("S")


class StreamStates(Generic[S]):
    """The state of each stream folded with ``evolve`` (``evolve(None, first_event)`` starts
    it), kept for the ``size`` most recently loaded streams."""

    def __init__(self, evolve: Callable[[S | None, Event], S], size: int = 4096) -> None:
        if size < 1:
            raise ValueError("a fold cache holds at least one stream")
        self._evolve = evolve
        self._size = size
        self._states: OrderedDict[str, tuple[int, S]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._states)

    async def load(self, store: EventStore, stream_id: str) -> tuple[int, S | None]:
        """``stream_id``'s version and state now (0 and None for an empty stream): the
        remembered state with the events after it folded on top."""
        known = self._states.get(stream_id)
        version, state = known if known is not None else (0, None)
        events = await store.read_stream(stream_id, from_version=version + 1)
        for recorded in events:
            state = self._evolve(state, recorded.event)
            version = recorded.stream_version
        if state is None:
            return 0, None
        self._states[stream_id] = (version, state)
        self._states.move_to_end(stream_id)
        while len(self._states) > self._size:
            self._states.popitem(last=False)
        return version, state

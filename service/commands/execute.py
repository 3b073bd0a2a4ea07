"""Running a command: load the aggregate from its stream, decide, append, wait for the read
models. The optimistic-concurrency loop lives here, once for every caller (HTTP, the CLI and
background workers alike)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import asyncpg

from ..errors import Conflict, InvalidCommand, WrongExpectedVersion
from ..events.base import Event, RecordedEvent
from ..events.store import NO_STREAM, AppendResult
from ..events.streams import is_person_stream
from .caller import Caller
from .folds import StreamStates

S = TypeVar("S")

_ATTEMPTS = 5


@dataclass(frozen=True)
class Loaded:
    """An aggregate's events and folded state."""

    events: list[RecordedEvent]
    version: int


async def load(caller: Caller, stream_id: str) -> Loaded:
    """Every event of ``stream_id`` (stream order) and its version."""
    events = await caller.store.read_stream(stream_id)
    return Loaded(events=events, version=events[-1].stream_version if events else 0)


async def execute(
    caller: Caller,
    stream_id: str,
    fold: Callable[[Sequence[Event]], S],
    decide: Callable[[S], list[Event]],
    *,
    project_id: str | None,
    wait: bool = True,
    states: StreamStates[Any] | None = None,
) -> tuple[S, AppendResult | None]:
    """Fold ``stream_id``'s events into a state, ``decide`` on it, append what it returns with
    the version read as the expected version, and (``wait``) wait until the read models show
    it. On a concurrent change the whole thing runs again on the new state; a decision
    that no longer holds raises its own error then.

    With ``states`` (whose fold must be ``fold``'s, event by event), the state comes from
    there: the last fold this process made, with the stream's newer events folded on top.

    The caller's precondition, if any, is checked against the version decided on (see
    :func:`decided`) before anything is appended.

    Returns the state decided on and the append (None when ``decide`` returned nothing).
    """
    key = caller.store_key(stream_id)
    if key is not None:
        # Asked before the stream is read, so that the read holds the append found.
        prior = await _made_before(caller, stream_id, key, project_id)
        if prior is not None:
            # A retry of a request whose response was lost: answer from its append, with
            # the state it was decided on.
            loaded = await load(caller, stream_id)
            before = prior.stream_version - len(prior.positions)
            state = fold([e.event for e in loaded.events if e.stream_version <= before])
            if wait:
                await settle(caller, prior, [stream_id])
            return state, prior
    for attempt in range(_ATTEMPTS):
        if states is not None:
            # The same fold as ``fold`` (None for an empty stream, as fold gives).
            version, folded = await states.load(caller.store, stream_id)
            state = cast(S, folded)
        else:
            loaded = await load(caller, stream_id)
            version, state = loaded.version, fold([e.event for e in loaded.events])
        new_events = decided(caller, version, decide, state)
        if not new_events:
            return state, None
        try:
            result = await caller.store.append(
                stream_id,
                new_events,
                version,  # 0 is NO_STREAM
                caller.metadata,
                key,
                project_id=project_id,
                fingerprint=caller.fingerprint,
            )
        except WrongExpectedVersion:
            if attempt == _ATTEMPTS - 1:
                raise
            continue
        if wait:
            await settle(caller, result, [stream_id])
        return state, result
    raise AssertionError("unreachable")


def decided(
    caller: Caller, version: int, decide: Callable[[S], list[Event]], state: S
) -> list[Event]:
    """``decide(state)`` for a state at stream ``version``, under the caller's precondition.

    The decision is taken first, so that a caller who may not see or touch the resource gets
    its 404 or 403 whatever tag it sent; a precondition that fails then wins over the
    decision's other refusals (a conflict, an invalid value): the caller decided on a state
    that is gone, and must read again.

    Raises:
        PreconditionFailed: the resource is not at a version the caller expects.
        NotFound, Forbidden, Conflict, InvalidCommand: from the decision.
    """
    precondition = caller.precondition
    try:
        events = decide(state)
    except (Conflict, InvalidCommand):
        if precondition is not None:
            precondition.check(version)
        raise
    if precondition is not None:
        precondition.check(version)
    return events


async def _made_before(
    caller: Caller, stream_id: str, key: str, project_id: str | None
) -> AppendResult | None:
    fingerprint = caller.fingerprint
    if fingerprint is None:
        return None
    return await caller.store.appended(
        stream_id, key, project_id=project_id, fingerprint=fingerprint
    )


async def append_new(
    caller: Caller,
    appends: Sequence[tuple[str, list[Event], str | None]],
) -> AppendResult:
    """Append to brand-new streams (expected NO_STREAM) in one transaction: all or none.

    Each item is (stream id, events, project id). Used for creations that claim something
    (a person and their e-mail address).
    """
    return await _append_all(caller, [(s, e, NO_STREAM, p) for s, e, p in appends])


Plan = list[tuple[str, list[Event], int]]
"""(stream id, events, expected version) triples, appended together by :func:`append_together`."""


async def append_together(
    caller: Caller, plan: Callable[[], Awaitable[Plan]]
) -> AppendResult | None:
    """Append to several streams in one transaction, then wait for the read models.

    ``plan`` reads the streams and decides; it returns (stream, events, expected version)
    triples (empty event lists are skipped). When a concurrent writer got there first, the
    whole plan runs again on the new state: a decision that no longer holds then raises its
    own error (e.g. the e-mail address was just taken).

    Returns the last append, or None when the plan appends nothing.
    """
    for attempt in range(_ATTEMPTS):
        appends = [(s, e, v, None) for s, e, v in await plan() if e]
        if not appends:
            return None
        try:
            return await _append_all(caller, appends)
        except WrongExpectedVersion:
            if attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


async def _append_all(
    caller: Caller, appends: Sequence[tuple[str, list[Event], int, str | None]]
) -> AppendResult:
    """Append (stream id, events, expected version, project id) items in one transaction,
    then wait for the read models; returns the last append."""
    store = caller.store
    meta = caller.metadata
    streams = [stream_id for stream_id, _, _, _ in appends]

    async def append_one(
        item: tuple[str, list[Event], int, str | None], conn: asyncpg.Connection | None
    ) -> AppendResult:
        stream_id, events, expected, project_id = item
        return await store.append(
            stream_id,
            events,
            expected,
            meta,
            caller.store_key(stream_id),
            project_id=project_id,
            connection=conn,
            fingerprint=caller.fingerprint,
        )

    if len(appends) == 1:
        # One append is atomic on its own (one statement): no BEGIN and COMMIT round trips.
        last = await append_one(appends[0], None)
    else:
        async with store.pool.acquire() as conn, conn.transaction():
            for item in appends:
                last = await append_one(item, conn)
        store.committed()
    await settle(caller, last, streams)
    return last


async def append_alongside(
    caller: Caller,
    stream: str,
    events: Sequence[Event],
    expected: int,
    alongside: Callable[[asyncpg.Connection], Awaitable[object]],
    *,
    project_id: str | None = None,
) -> AppendResult:
    """Append ``events`` to ``stream`` and, in the same transaction, write what goes with
    them outside the log (``alongside(conn)``: a secret, a row of operational state); then
    wait for the read models."""
    store = caller.store
    async with store.pool.acquire() as conn, conn.transaction():
        result = await store.append(
            stream, list(events), expected, caller.metadata, project_id=project_id,
            connection=conn,
        )  # fmt: skip
        await alongside(conn)
    store.committed()
    await settle(caller, result, [stream])
    return result


async def settle(caller: Caller, result: AppendResult, streams: Sequence[str]) -> None:
    """Read-your-writes: wait (bounded) until every projection has applied ``result``, the
    append (or transaction) that wrote to ``streams`` (no wait in a process without read
    models)."""
    services = caller.services
    engine = services.engine
    try:
        if engine is not None:
            # Only the read models that read these streams can change: the others need not
            # have stepped over the append for the caller to read what it wrote.
            await engine.wait_for(result.cursor, services.wait_timeout, engine.reading(streams))
    finally:
        tokens = services.tokens
        if tokens is not None and any(map(is_person_stream, streams)):
            # A change of a person (a token revoked, a role changed, a deactivation) now
            # shows in the read models (or the wait gave up): token holders read before must
            # be read again (see TokenCache). Other writes leave who holds which token as it
            # was.
            tokens.written()

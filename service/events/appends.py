"""Appending to the log: expected versions, idempotency keys and the hash chain.

Part of :class:`~service.events.store.EventStore`. A single event without an idempotency key
is one SQL statement; anything else one call of the PL/pgSQL function ``cairn_append``
(expected version, idempotency key and hash chain are all checked inside it). Both compute
the same chain link with ``cairn_event_canonical``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Final

import asyncpg
import msgspec

from ..errors import DatabaseUnavailable, IdempotencyKeyReused, ImmutableLog, WrongExpectedVersion
from ..metrics import APPEND_CONFLICTS, APPENDS, EVENTS_APPENDED
from .base import Event, Metadata, encode_data, encode_metadata, type_name
from .reading import START, Cursor, Reading
from .sql import APPEND, APPEND_EXACT, APPEND_ONE, APPENDED, STREAM_VERSION
from .wakeup import TRANSIENT_ERRORS, Listener, Notifier

ANY: Final = -1
"""Expected version: append whatever the stream's version is."""
NO_STREAM: Final = 0
"""Expected version: the stream must not exist yet."""


class AppendResult(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What an append wrote (or, for a retried idempotency key, had written)."""

    positions: list[int]
    stream_version: int
    tx_id: int
    replayed: bool

    @property
    def cursor(self) -> Cursor:
        """Log-order place of the last event appended."""
        return (self.tx_id, self.positions[-1]) if self.positions else START


_events_encoder = msgspec.json.Encoder()


class _Item(msgspec.Struct, array_like=False):
    type: str
    schema_version: int
    data: msgspec.Raw


class Appends(Reading):
    """The store's appends: a base of :class:`~service.events.store.EventStore`, which sets
    up the wake-ups named here (see :meth:`committed`)."""

    _listener: Listener
    _notifier: Notifier

    async def append(
        self,
        stream_id: str,
        events: Sequence[Event],
        expected_version: int,
        metadata: Metadata | None = None,
        idempotency_key: str | None = None,
        *,
        project_id: str | None = None,
        connection: asyncpg.Connection | None = None,
        fingerprint: bytes | None = None,
    ) -> AppendResult:
        """Append ``events`` to ``stream_id`` atomically: all of them or none.

        Args:
            expected_version: :data:`ANY`, :data:`NO_STREAM`, or the exact version the
                stream must be at (the number of events in it).
            metadata: stored with every event (actor, correlation id, ...).
            idempotency_key: a retry with the same key returns the first append's result,
                appending nothing, even when the two race.
            project_id: the project the stream belongs to, if any.
            connection: run inside the caller's transaction on this connection (the caller
                then owns commit and rollback, and must call :meth:`committed` after commit).
                After an error the transaction may or may not be aborted already (a wrong
                expected version of a single event inserts nothing and aborts nothing):
                roll it back.
            fingerprint: what makes a retry under ``idempotency_key`` "the same append"; by
                default the events' bytes. A caller whose retries decide again, and so may
                stamp new times into the events, names the request instead.

        Raises:
            WrongExpectedVersion: the stream is not at ``expected_version``; nothing written.
            IdempotencyKeyReused: the key was used for a different append.
            DatabaseUnavailable: PostgreSQL could not be reached; the append may or may not
                have happened (retry with the same idempotency key to find out).
        """
        if not events:
            raise ValueError("append needs at least one event")
        if expected_version < ANY:
            raise ValueError(
                f"expected_version must be ANY, NO_STREAM or >= 1, not {expected_version}"
            )
        metadata = metadata or Metadata()
        if idempotency_key is None and len(events) == 1:
            return await self._append_one(
                stream_id, events[0], expected_version, metadata, project_id, connection
            )
        if idempotency_key is not None and metadata.idempotency_key != idempotency_key:
            metadata = msgspec.structs.replace(metadata, idempotency_key=idempotency_key)
        items = [
            _Item(
                type=type_name(type(e)),
                schema_version=e.schema_version,
                data=msgspec.Raw(encode_data(e)),
            )
            for e in events
        ]
        payload = _events_encoder.encode(items)
        digest = None
        if idempotency_key is not None:
            digest = _fingerprint(stream_id, project_id, payload, fingerprint)
        args = (
            stream_id,
            expected_version,
            project_id,
            payload.decode(),
            encode_metadata(metadata).decode(),
            idempotency_key,
            digest,
        )
        rows = await self._run_append(APPEND, args, stream_id, expected_version, connection)
        result = AppendResult(
            positions=[r["out_position"] for r in rows],
            stream_version=rows[-1]["out_stream_version"] if rows else 0,
            tx_id=rows[-1]["out_tx_id"] if rows else 0,
            replayed=bool(rows) and rows[0]["out_replayed"],
        )
        if not result.replayed:
            APPENDS.inc()
            EVENTS_APPENDED.inc(len(result.positions))
            if connection is None:
                self.committed()
        return result

    async def _append_one(
        self,
        stream_id: str,
        event: Event,
        expected_version: int,
        metadata: Metadata,
        project_id: str | None,
        connection: asyncpg.Connection | None,
    ) -> AppendResult:
        """The common case, one event and no idempotency key: one plain SQL statement.

        Same rows and hash bytes as ``cairn_append`` (tested), at about two thirds of its
        server cost: no PL/pgSQL call, no set-returning function.
        """
        args = (
            stream_id,
            expected_version,
            project_id,
            type_name(type(event)),
            event.schema_version,
            encode_data(event).decode(),
            encode_metadata(metadata).decode(),
        )
        statement = APPEND_ONE if expected_version == ANY else APPEND_EXACT
        rows = await self._run_append(statement, args, stream_id, expected_version, connection)
        if not rows:
            # The statement inserts nothing when the stream is not at the expected version.
            actual = await self._version_seen(stream_id, connection)
            raise _conflict(stream_id, expected_version, actual)
        row = rows[0]
        result = AppendResult(
            positions=[row[0]], stream_version=row[2], tx_id=row[1], replayed=False
        )
        APPENDS.inc()
        EVENTS_APPENDED.inc()
        if connection is None:
            self.committed()
        return result

    async def _run_append(
        self,
        statement: str,
        args: tuple[Any, ...],
        stream_id: str,
        expected_version: int,
        connection: asyncpg.Connection | None,
    ) -> list[asyncpg.Record]:
        """Run an append statement and translate its errors into the store's."""
        while True:
            try:
                if connection is not None:
                    rows: list[asyncpg.Record] = await connection.fetch(statement, *args)
                    return rows
                return await self._lane.fetch(statement, *args)
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name != "events_stream_version_key":
                    raise
                # A concurrent writer took the version we computed. With ANY that is no
                # conflict: try again on top of it (only possible outside a caller's tx).
                if expected_version == ANY and connection is None:
                    continue
                # The violation aborted any transaction of the caller's: ask the pool.
                actual = await self.stream_version(stream_id)
                raise _conflict(stream_id, expected_version, actual) from exc
            except asyncpg.PostgresError as exc:
                translated = _translate(exc, stream_id, expected_version)
                if translated is None:
                    raise
                raise translated from exc
            except TRANSIENT_ERRORS as exc:
                raise DatabaseUnavailable(f"append to {stream_id!r} failed: {exc}") from exc

    async def _version_seen(self, stream_id: str, connection: asyncpg.Connection | None) -> int:
        if connection is None:
            return await self.stream_version(stream_id)
        # Inside the caller's transaction (which may be aborted by now: ask the pool).
        try:
            return int(await connection.fetchval(STREAM_VERSION, stream_id))
        except asyncpg.PostgresError:
            return await self.stream_version(stream_id)

    async def appended(
        self,
        stream_id: str,
        idempotency_key: str,
        *,
        project_id: str | None = None,
        fingerprint: bytes,
    ) -> AppendResult | None:
        """The append made earlier under ``idempotency_key``, if it committed (else None).

        For callers that decide again on a retry (which may then refuse, the change being
        there already) and want to learn first whether there is anything to decide.
        ``fingerprint`` must be the one given to :meth:`append`.

        Raises:
            IdempotencyKeyReused: the key was used for a different append.
        """
        rows = await self.pool.fetch(APPENDED, idempotency_key)
        if not rows or rows[0]["position"] is None:
            return None
        if bytes(rows[0]["fingerprint"]) != _fingerprint(stream_id, project_id, b"", fingerprint):
            raise IdempotencyKeyReused(idempotency_key)
        return AppendResult(
            positions=[r["position"] for r in rows],
            stream_version=rows[-1]["stream_version"],
            tx_id=rows[-1]["tx_id"],
            replayed=True,
        )

    def committed(self) -> None:
        """Tell live readers that a transaction holding appends has committed."""
        # Readers in this process directly, the others through a coalesced NOTIFY.
        self._listener.wake()
        self._notifier.poke()


def _fingerprint(
    stream_id: str, project_id: str | None, payload: bytes, given: bytes | None
) -> bytes:
    """What identifies an append under an idempotency key (see :meth:`EventStore.append`)."""
    digest = hashlib.sha256(stream_id.encode())
    digest.update(b"\x00" + str(project_id).encode() + b"\x00")
    if given is None:
        digest.update(payload)
    else:
        digest.update(b"\x00given\x00" + given)
    return digest.digest()


def _translate(exc: asyncpg.PostgresError, stream_id: str, expected: int) -> Exception | None:
    code = getattr(exc, "sqlstate", None)
    if code == "CA001":
        actual = int(getattr(exc, "detail", None) or 0)
        return _conflict(stream_id, expected, actual)
    if code == "CA002":
        return IdempotencyKeyReused(str(getattr(exc, "detail", "")))
    if code == "CA003":
        return ImmutableLog(str(exc))
    return None


def _conflict(stream_id: str, expected: int, actual: int) -> WrongExpectedVersion:
    """The error of an append whose stream is not at ``expected``, counted
    (``cairn_append_conflicts_total``) as it is made: every conflict raises one."""
    APPEND_CONFLICTS.inc()
    return WrongExpectedVersion(stream_id, expected, actual)

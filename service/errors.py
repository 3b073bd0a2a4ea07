"""The one exception tree of Cairn.

Every error Cairn raises on purpose derives from :class:`CairnError`. The store translates
asyncpg errors into these (``raise ... from exc``); only the HTTP layer maps them to
problem+json statuses, and the WebSocket hub to error frames.
"""

from __future__ import annotations


class CairnError(Exception):
    """Root of every error Cairn raises on purpose."""


class ConfigurationError(CairnError):
    """Raised when settings or the environment cannot give Cairn a working database."""


class DatabaseUnavailable(CairnError):
    """Raised when PostgreSQL cannot be reached (refused, restarting, connection lost)."""


class StoreError(CairnError):
    """Base of the errors raised by the event store."""


class WrongExpectedVersion(StoreError):
    """Raised when an append's expected version does not match the stream's current version.

    The append wrote nothing. ``stream_id``, ``expected`` and ``actual`` say what was found.
    """

    def __init__(self, stream_id: str, expected: int | str, actual: int) -> None:
        super().__init__(
            f"stream {stream_id!r}: expected version {expected}, but the stream is at {actual}"
        )
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


class IdempotencyKeyReused(StoreError):
    """Raised when an idempotency key comes back with a different stream or different events."""

    def __init__(self, key: str) -> None:
        super().__init__(f"idempotency key {key!r} was already used for a different append")
        self.key = key


class UnknownPosition(StoreError):
    """Raised when a reader asks to start after a position that is not in the log."""

    def __init__(self, position: int) -> None:
        super().__init__(f"there is no event at position {position}")
        self.position = position


class UnknownEventType(StoreError):
    """Raised when a stored event type has no registered class (or a class is unregistered)."""


class EventDecodeError(StoreError):
    """Raised when a stored event cannot be decoded into its registered type."""


class ImmutableLog(StoreError):
    """Raised when something tries to change or remove a stored event (refused by PostgreSQL)."""


class ChainBroken(StoreError):
    """Raised by verification when the tamper-evident hash chain does not hold."""

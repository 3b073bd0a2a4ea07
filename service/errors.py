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


class NotReady(CairnError):
    """Raised by the readiness check when this instance should get no traffic now: the
    database unreachable or behind the code's migrations, a read model too far behind the log,
    or the real-time hub not following it. The message names each failing check."""


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


class DomainError(CairnError):
    """Base of the errors raised by the pure domain rules (``service.domain``).

    ``detail`` is a readable sentence meant for the caller of the API.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(DomainError):
    """Raised when the thing does not exist, or the viewer may not know that it exists.

    The two cases are deliberately indistinguishable: never a hint that a hidden item exists.
    """


class Forbidden(DomainError):
    """Raised when the viewer may see the thing but not do this to it; ``detail`` says why."""


class InsufficientScope(Forbidden):
    """Raised when the viewer's person may do this but the token they present does not allow
    it (a read-only token writing, a project-limited token acting outside its projects, a
    token minted with more power than its minter's); ``detail`` says which."""


class InvalidCommand(DomainError):
    """Raised when a command carries a bad value: ``field`` names it, ``detail`` says what is wrong."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field


class Conflict(DomainError):
    """Raised when the current state forbids the command, e.g. an archived project is read-only,
    a to-do is already completed, or an e-mail address is already taken."""


class PreconditionFailed(CairnError):
    """Raised when a write names the version of the resource it expects (HTTP ``If-Match``)
    and the resource is at another: someone changed it since the caller read it. Nothing was
    written."""


class Contended(CairnError):
    """Raised when a command ran again and again because what it decides on kept changing
    under it (e.g. a to-do kept moving between lists); nothing was written, and trying
    again may succeed."""


class InconsistentStream(DomainError):
    """Raised when a stream's events cannot be folded into a state (an event before the creation
    event, or an event of another aggregate): a bug or a damaged log, never bad input."""


class TooLarge(CairnError):
    """Raised when more bytes arrive than the limit allows (an upload past ``CAIRN_MAX_UPLOAD``,
    an avatar past its own); nothing of them was kept. ``limit`` is the limit in bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"larger than the limit of {limit} bytes")
        self.limit = limit


class LinkRefused(CairnError):
    """Raised when a signed link (``/files/...?expires=&signature=``) is not honoured: a
    parameter missing or malformed, expired, expiring too far ahead, signed with a key no
    longer kept, or a signature that does not match. The message says which."""


class UnsafeUrl(CairnError):
    """Raised when a URL Cairn is asked to reach (a webhook's, an external feed's) is not one
    it may reach: not ``https`` (nor ``http`` when allowed), no host, a user name or password,
    too long, or a non-public address not in the allow-list (``service.outbound``).
    ``reason`` says which; ``field`` is the request field it came in (``url``)."""

    def __init__(self, reason: str, *, field: str = "url") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = reason
        self.field = field

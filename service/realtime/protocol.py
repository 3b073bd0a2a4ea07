"""The ``/v1/stream`` wire protocol: JSON text frames, typed with msgspec, no I/O.

Client frames (one tagged union, one decoder built at import):

* ``{"type": "subscribe", "project_id": "prj_…" | "all" | "notifications", "since": <position>?}``
* ``{"type": "unsubscribe", "project_id": "prj_…" | "all" | "notifications"}``

Server frames: ``subscribed``, ``unsubscribed``, ``event`` and ``error``; and, on a socket
subscribed to ``"notifications"`` (its person's own; independent of project subscriptions),
``notification`` and ``notifications_read``. A subscription is
named by what it follows (a project id, or ``"all"``); one connection may hold several, as
long as they do not overlap. ``docs/REALTIME.md`` documents the protocol with examples.

Close codes are the ``CLOSE_*`` constants below, explained in :data:`CLOSE_CODES`.
:mod:`service.realtime.asyncapi` publishes all of it as an AsyncAPI document.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Final, Literal

import msgspec

from ..domain.context import Timestamp
from ..events.base import RecordedEvent, encode_data
from ..events.streams import recording_id_of

ALL: Final = "all"
"""The ``project_id`` of a subscription to every project the person may see."""
NOTIFICATIONS: Final = "notifications"
"""The ``project_id`` of a subscription to the person's own notifications (frames
``notification`` and ``notifications_read``); it takes no ``since``."""

TOKEN_QUERY: Final = "access_token"
"""The query parameter carrying the API token, for clients that cannot set headers on a
WebSocket and are no browser (a browser uses a ticket, :data:`TICKET_QUERY`); others send
``Authorization: Bearer``."""
TICKET_QUERY: Final = "ticket"
"""The query parameter carrying a single-use ticket (``POST /v1/stream/tickets``): how a
browser opens the stream without putting a long-lived token in a URL."""

MAX_FRAME: Final = 4096
"""The longest client frame decoded, in characters (real ones are under 200): a longer one is
answered with a short ``bad_frame``, never echoed."""
MAX_READ: Final = 2 * 1024 * 1024
"""The largest frame the server reads at all, in bytes (uvicorn's ``ws_max_size``, whose
default is 16 MiB): a larger one closes the socket with :data:`CLOSE_TOO_BIG`."""
MAX_POSITION: Final = 2**63 - 1
"""The largest log position there can be (PostgreSQL's bigint)."""

CLOSE_SHUTDOWN: Final = 1012
CLOSE_NO_PONG: Final = 1011
CLOSE_TOO_BIG: Final = 1009
CLOSE_UNAUTHORIZED: Final = 4401
CLOSE_DEACTIVATED: Final = 4403
CLOSE_SLOW: Final = 4008

CLOSE_CODES: Final[Mapping[int, str]] = {
    CLOSE_SHUTDOWN: "the server is going away (restart or shutdown): reconnect, elsewhere if "
    "need be, with `since`",
    # Sent by the WebSocket layer (uvicorn's keepalive), not by Cairn's code.
    CLOSE_NO_PONG: "the client did not answer the server's pings in time: reconnect with `since`",
    # Sent by the WebSocket layer too (uvicorn's ws_max_size: MAX_READ).
    CLOSE_TOO_BIG: f"the client sent a frame over {MAX_READ // 1024 // 1024} MiB: send only "
    "the frames documented (a few hundred bytes each)",
    CLOSE_SLOW: "the client read too slowly and its send buffer overflowed: reconnect with "
    "`since` (and read faster)",
    CLOSE_UNAUTHORIZED: "the token is missing, unknown or revoked (at connect, or revoked "
    "while connected), or expired while connected (an OAuth access token, at its expiry on "
    "the server's clock): get a valid token",
    CLOSE_DEACTIVATED: "the person's account was deactivated while connected: do not reconnect",
}
"""What each close code the server sends means, and what a client does then."""

ErrorCode = Literal[
    "bad_frame",
    "not_found",
    "unknown_position",
    "already_subscribed",
    "not_subscribed",
    "too_many_subscriptions",
    "access_revoked",
    "unavailable",
]


# ------------------------------------------------------------------ client → server

SubscriptionName = Annotated[str, msgspec.Meta(pattern=r"^[^\x00]*$")]
"""A project id or :data:`ALL`: any text but NUL, which no id holds (and PostgreSQL text
cannot); a name that is no project's is ``not_found``."""


class Subscribe(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    tag="subscribe",
    tag_field="type",
    forbid_unknown_fields=True,
):
    """Follow a project's events (or ``"all"`` visible projects'), replaying those after
    position ``since`` first when it is given; or, with ``"notifications"`` (no
    ``since``), your own notifications."""

    project_id: SubscriptionName
    since: Annotated[int, msgspec.Meta(ge=0, le=MAX_POSITION)] | None = None


class Unsubscribe(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    tag="unsubscribe",
    tag_field="type",
    forbid_unknown_fields=True,
):
    """Stop following ``project_id`` (a subscription's name)."""

    project_id: SubscriptionName


ClientFrame = Subscribe | Unsubscribe
_client_decoder: Final = msgspec.json.Decoder(ClientFrame)


class BadFrame(ValueError):
    """Raised by :func:`decode_client_frame` for a frame that is not a valid client frame;
    the message says what is wrong."""


def decode_client_frame(data: str | bytes) -> ClientFrame:
    """Decode one client frame.

    Raises:
        BadFrame: longer than :data:`MAX_FRAME`, not JSON, an unknown ``type``, or fields
            that do not fit it.
    """
    if len(data) > MAX_FRAME:
        raise BadFrame(f"a client frame is at most {MAX_FRAME} characters long")
    try:
        frame: ClientFrame = _client_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise BadFrame(str(exc)) from None
    return frame


# ------------------------------------------------------------------ server → client


class Subscribed(msgspec.Struct, frozen=True, kw_only=True, tag="subscribed", tag_field="type"):
    """The subscription exists; its events follow (replayed ones first)."""

    subscription: str


class Unsubscribed(msgspec.Struct, frozen=True, kw_only=True, tag="unsubscribed", tag_field="type"):
    """The subscription ended at the client's request; no more of its events follow."""

    subscription: str


class ErrorFrame(
    msgspec.Struct, frozen=True, kw_only=True, tag="error", tag_field="type", omit_defaults=True
):
    """Something went wrong; ``subscription`` names the subscription concerned, if any
    (an error about a subscription also ends it)."""

    code: ErrorCode
    detail: str
    subscription: str | None = None


class EventFrame(msgspec.Struct, frozen=True, kw_only=True, tag="event", tag_field="type"):
    """One event of the log. ``position`` is what a reconnecting client sends as ``since``.

    ``data`` is the event as stored, redacted for the audience as on every channel: a
    recording it may not see left out, a person it may not be told about ``null``. Two kinds
    carry no event: ``recording_hidden`` (``recording`` and everything under it are no longer
    visible to you) and ``project_hidden`` (on an ``all`` subscription: the project is no
    longer visible to you); their ``actor`` and ``data`` are ``null``. A frame carries nothing
    specific to one subscription or one person: every audience told the same gets the same
    frame.
    """

    position: int
    project_id: str
    kind: str
    recording: str | None
    actor: str | None
    data: msgspec.Raw
    at: Timestamp


RECORDING_HIDDEN: Final = "recording_hidden"
"""The ``kind`` of an event frame saying that ``recording`` (and everything under it) is no
longer visible to its receiver."""
PROJECT_HIDDEN: Final = "project_hidden"
"""The ``kind`` of an event frame saying that the project is no longer visible to its
receiver (sent on ``all`` subscriptions; a project subscription ends with
``access_revoked`` instead)."""


class NotificationFrame(
    msgspec.Struct, frozen=True, kw_only=True, tag="notification", tag_field="type"
):
    """A notification for the socket's own person has arrived (sent to each of their sockets
    subscribed to ``"notifications"``, on every instance; never to anyone else).
    ``notification`` is the notification as ``GET /v1/my/notifications`` shows it;
    ``unread_notifications`` their unread count once it arrived."""

    notification: Annotated[
        msgspec.Raw,
        msgspec.Meta(
            description="a `Notification` as `GET /v1/my/notifications` shows it (the "
            "OpenAPI document at `/openapi.json` describes it)",
            extra_json_schema={"type": "object"},
        ),
    ]
    unread_notifications: int


class NotificationsReadFrame(
    msgspec.Struct, frozen=True, kw_only=True, tag="notifications_read", tag_field="type"
):
    """The socket's own person marked notifications read (through any instance or client;
    sent as ``notification`` frames are): ``ids`` those notifications, or null when they read all of them up to the
    event at log position ``up_to_position``; ``unread_notifications`` what is left unread."""

    ids: list[str] | None
    up_to_position: int | None
    unread_notifications: int


ServerFrame = (
    Subscribed | Unsubscribed | ErrorFrame | EventFrame | NotificationFrame | NotificationsReadFrame
)
_encoder: Final = msgspec.json.Encoder()


class Outgoing:
    """An encoded server frame, ready for any number of sockets.

    ASGI text frames are ``str``: the frame is encoded once and decoded once, and this very
    ``text`` object is handed to every socket (the WebSocket layer then writes it as UTF-8).
    ``size`` is its encoded length, counted against send buffers.
    """

    __slots__ = ("size", "text")

    def __init__(self, payload: bytes) -> None:
        self.text = payload.decode()
        self.size = len(payload)


def encode(frame: ServerFrame) -> Outgoing:
    """Encode one server frame."""
    return Outgoing(_encoder.encode(frame))


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def kind_of(event_type: str) -> str:
    """The machine ``kind`` of an event type: ``MessagePosted`` → ``message_posted``."""
    return _CAMEL.sub("_", event_type).lower()


def recording_of(event: RecordedEvent) -> str | None:
    """The recording an event belongs to (its stream's id), or None."""
    return recording_id_of(event.stream_id)


_NULL: Final = msgspec.Raw(b"null")


def event_frame(
    event: RecordedEvent,
    kind: str | None = None,
    *,
    actor: str | msgspec.UnsetType | None = msgspec.UNSET,
    data: bytes | None = None,
) -> EventFrame:
    """The frame of a project event (``event.project_id`` must be set); ``kind`` defaults to
    :func:`kind_of` its type. ``actor`` and ``data`` (JSON) replace the event's own, for an
    audience told a redacted event."""
    who = event.metadata.actor if actor is msgspec.UNSET else actor
    raw = msgspec.Raw(encode_data(event.event) if data is None else data)
    return _frame(event, kind or kind_of(event.event_type), recording_of(event), who, raw)


def hidden_frame(event: RecordedEvent, kind: str, recording: str | None) -> EventFrame:
    """The frame telling, in ``event``'s place in the log, that ``recording`` (None: the
    project) is no longer visible to its receiver (``kind``: :data:`RECORDING_HIDDEN` or
    :data:`PROJECT_HIDDEN`)."""
    return _frame(event, kind, recording, None, _NULL)


def _frame(
    event: RecordedEvent, kind: str, recording: str | None, actor: str | None, data: msgspec.Raw
) -> EventFrame:
    assert event.project_id is not None
    at, position, project_id = event.recorded_at, event.position, event.project_id
    return EventFrame(
        position=position, project_id=project_id, kind=kind, recording=recording, actor=actor,
        data=data, at=at,
    )  # fmt: skip

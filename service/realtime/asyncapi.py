"""The AsyncAPI 3.0 document of ``/v1/stream``, generated from the protocol's msgspec types.

Point of view: the document describes the **server**. In AsyncAPI 3 a document describes
one application and an operation's ``action`` is what *that* application does, so the frames
a client sends are ``receive`` operations here and the frames the server sends are ``send``
operations; a client (or a client generator) reads them the other way round.

Pure: no I/O. The app builds the document once at start-up and serves it at
``/asyncapi.json``.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, Final

import msgspec

from .protocol import (
    CLOSE_CODES,
    TICKET_QUERY,
    TOKEN_QUERY,
    ErrorFrame,
    EventFrame,
    NotificationFrame,
    NotificationsReadFrame,
    Subscribe,
    Subscribed,
    Unsubscribe,
    Unsubscribed,
)

ADDRESS: Final = "/v1/stream"
"""The channel's address (the WebSocket's path)."""

Frame = type[msgspec.Struct]

CLIENT_FRAMES: Final[Sequence[Frame]] = (Subscribe, Unsubscribe)
SERVER_FRAMES: Final[Sequence[Frame]] = (
    Subscribed,
    Unsubscribed,
    EventFrame,
    ErrorFrame,
    NotificationFrame,
    NotificationsReadFrame,
)

# What answers a client frame. Events follow a subscription without being asked for, and
# an error may come unasked too (``access_revoked``), hence also a send operation for each.
_REPLIES: Final[dict[Frame, Sequence[Frame]]] = {
    Subscribe: (Subscribed, ErrorFrame),
    Unsubscribe: (Unsubscribed, ErrorFrame),
}

_CHANNEL: Final = "stream"
_CHANNEL_PATH: Final = f"#/channels/{_CHANNEL}"
_SERVER: Final = "instance"
_WS_BINDING_VERSION: Final = "0.1.0"


def document(*, version: str, host: str) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of ``/v1/stream``.

    Each frame type is one message whose payload is its struct's JSON Schema (as
    ``msgspec.json.schema_components`` makes it, under ``components.schemas``), named by its
    ``type`` tag. The union of the client frames is not published as a schema: msgspec
    describes a tagged union with an OpenAPI ``discriminator`` object, which AsyncAPI's
    Schema Object (``discriminator``: a property name) does not allow; the messages of an
    operation are that union, told apart by their ``type`` enums.

    Args:
        version: Cairn's version (``info.version``).
        host: ``host:port`` where this instance listens (the ``instance`` server).
    """
    frames = [*CLIENT_FRAMES, *SERVER_FRAMES]
    payloads, schemas = msgspec.json.schema_components(
        frames, ref_template="#/components/schemas/{name}"
    )
    messages = {
        _tag(frame): {
            "name": _tag(frame),
            "title": frame.__name__,
            "summary": _summary(frame),
            "contentType": "application/json",
            "payload": payload,
        }
        for frame, payload in zip(frames, payloads, strict=True)
    }
    operations: dict[str, Any] = {}
    for frame in CLIENT_FRAMES:
        operations[f"receive{_tag(frame).capitalize()}"] = {
            **_operation("receive", frame, f"A client sends `{_tag(frame)}`"),
            "reply": {
                "channel": {"$ref": _CHANNEL_PATH},
                "messages": [_in_channel(answer) for answer in _REPLIES[frame]],
            },
        }
    for frame in SERVER_FRAMES:
        operations[f"send{_tag(frame).capitalize()}"] = _operation(
            "send", frame, f"The server sends `{_tag(frame)}`"
        )
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Cairn real-time stream",
            "version": version,
            "description": (
                "Live project events over a WebSocket: every event the token's holder may "
                "see, in log order, resumable after a disconnect with `since`, on any "
                "instance. Operations are from the server's point of view: what a client "
                "sends is `receive`, what the server sends is `send`."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            _SERVER: {
                "host": host,
                "protocol": "ws",
                "title": "This instance",
                "description": (
                    "This instance as it listens; behind a proxy that terminates TLS, use "
                    "`wss` and the proxy's host."
                ),
                "security": [
                    {"$ref": "#/components/securitySchemes/bearer"},
                    {"$ref": "#/components/securitySchemes/accessToken"},
                    {"$ref": "#/components/securitySchemes/ticket"},
                ],
            }
        },
        "channels": {
            _CHANNEL: {
                "address": ADDRESS,
                "title": "Live project events",
                "description": (
                    "Frames are JSON text, one object each, with a `type`. A missing, "
                    "malformed, unknown or revoked token is accepted and then closed at once "
                    "with 4401. A handshake whose `Origin` is neither this server's nor one of "
                    "`CAIRN_CORS_ORIGINS` is refused before it is accepted (HTTP 403). The "
                    "close codes the server sends are listed in `x-close-codes`."
                ),
                "servers": [{"$ref": f"#/servers/{_SERVER}"}],
                "messages": {tag: {"$ref": f"#/components/messages/{tag}"} for tag in messages},
                "bindings": {
                    "ws": {
                        "method": "GET",
                        "headers": {
                            "type": "object",
                            "properties": {
                                "Authorization": {
                                    "type": "string",
                                    "description": "`Bearer ` and an API token",
                                }
                            },
                        },
                        "query": {
                            "type": "object",
                            "properties": {
                                TOKEN_QUERY: {
                                    "type": "string",
                                    "description": (
                                        "an API token, for non-browser clients that cannot "
                                        "set headers; keep such URLs out of logs"
                                    ),
                                },
                                TICKET_QUERY: {
                                    "type": "string",
                                    "description": (
                                        "a single-use ticket valid 30 s (POST "
                                        "/v1/stream/tickets), how browsers connect"
                                    ),
                                },
                            },
                        },
                        "bindingVersion": _WS_BINDING_VERSION,
                    }
                },
                "x-close-codes": [
                    {"code": code, "description": meaning} for code, meaning in CLOSE_CODES.items()
                ],
            }
        },
        "operations": operations,
        "components": {
            "schemas": schemas,
            "messages": messages,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API token in `Authorization: Bearer …` on the upgrade",
                },
                "accessToken": {
                    "type": "httpApiKey",
                    "name": TOKEN_QUERY,
                    "in": "query",
                    "description": "An API token in the query, for non-browser clients",
                },
                "ticket": {
                    "type": "httpApiKey",
                    "name": TICKET_QUERY,
                    "in": "query",
                    "description": "A single-use, 30-second ticket (POST /v1/stream/tickets), "
                    "for browsers",
                },
            },
        },
    }


def _tag(frame: Frame) -> str:
    return str(frame.__struct_config__.tag)


def _operation(action: str, frame: Frame, who: str) -> dict[str, Any]:
    return {
        "action": action,
        "channel": {"$ref": _CHANNEL_PATH},
        "summary": f"{who}: {_summary(frame)}",
        "messages": [_in_channel(frame)],
    }


def _in_channel(frame: Frame) -> dict[str, str]:
    return {"$ref": f"{_CHANNEL_PATH}/messages/{_tag(frame)}"}


def _summary(frame: Frame) -> str:
    """The first paragraph of the frame's docstring, on one line, in CommonMark."""
    paragraph = (inspect.getdoc(frame) or "").split("\n\n")[0]
    return " ".join(paragraph.split()).replace("``", "`")

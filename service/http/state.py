"""What the app's requests share: the typed lifespan state, and reading it back typed."""

from __future__ import annotations

from typing import TypedDict, cast

from starlette.requests import HTTPConnection

from ..blobs.store import BlobStore
from ..commands.caller import Services
from ..config import Settings
from ..feeds.cache import FeedCache
from ..mail.sender import MailOut
from ..reads.signing_keys import KeyringCache
from ..realtime.endpoint import Realtime
from ..workers.webhook_sender import WebhookSender
from .ratelimit import RateLimiter
from .signin_limits import SignInLimits


class State(TypedDict):
    """Resources living as long as the app (Starlette's typed lifespan state)."""

    settings: Settings
    services: Services
    limiter: RateLimiter
    realtime: Realtime
    feeds: FeedCache
    blobs: BlobStore
    signing_keys: KeyringCache
    """The keys that sign and check links to files (:mod:`.links`), cached per process."""
    mail: MailOut
    """E-mail out of this instance (planner and sender; idle when mail is not configured)."""
    sign_in: SignInLimits
    """The rate limits of signing in (:mod:`.sessions`), per instance."""
    webhooks: WebhookSender
    """Webhooks out of this instance (planner and sender)."""


def state_of(connection: HTTPConnection) -> State:
    """The app's :class:`State` as a request or WebSocket sees it (the lifespan's dict)."""
    return cast(State, connection.scope["state"])

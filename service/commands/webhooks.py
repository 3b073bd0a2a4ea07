"""Commands on webhook endpoints (stream ``webhook-<id>``), for the API and for delivery.

Who may run them is the caller's to check first (:func:`service.domain.webhooks.require_manager`
needs the project's facts); these fold, decide and append. A secret is written to
``webhook_secrets`` in the transaction of the event that makes it, so a hook never exists
without one and a rotation that fails leaves the old secret alone.
"""

from __future__ import annotations

import uuid

from ..domain.access import SYSTEM
from ..domain.webhooks import (
    EditWebhook,
    WebhookState,
    decide_delete,
    decide_disable,
    decide_edit,
    decide_rotate,
    existing,
    fold_webhook,
)
from ..errors import NotFound
from ..events.base import Event, Metadata
from ..events.store import NO_STREAM, AppendResult
from ..events.streams import webhook_stream
from ..events.webhooks import WebhookCreated
from ..reads import webhooks as rows
from .caller import Caller, Services
from .execute import append_alongside, decided, execute, load


async def create(caller: Caller, event: WebhookCreated) -> str:
    """Append ``event`` (a new hook) with its first secret, in one transaction; returns the
    secret (to show once).

    Raises:
        WrongExpectedVersion: the hook's id exists already (an id derived from an
            idempotency key used before: the caller answers with what was made then).
    """
    secret = rows.new_secret()
    await append_alongside(
        caller, webhook_stream(event.webhook_id), [event], NO_STREAM,
        lambda conn: rows.add_secret(conn, event.webhook_id, secret, caller.services.clock()),
    )  # fmt: skip
    return secret


async def load_webhook(caller: Caller, webhook_id: str) -> tuple[WebhookState, int]:
    """The hook's state and stream version.

    Raises:
        NotFound: no such hook, or deleted.
    """
    loaded = await load(caller, webhook_stream(webhook_id))
    return existing(fold_webhook([e.event for e in loaded.events])), loaded.version


async def edit(caller: Caller, webhook_id: str, change: EditWebhook) -> None:
    """Apply ``change`` (nothing when it changes nothing).

    Raises:
        NotFound, InvalidCommand, PreconditionFailed: from the decision.
    """
    await execute(
        caller,
        webhook_stream(webhook_id),
        fold_webhook,
        lambda state: decide_edit(state, change),
        project_id=None,
    )


async def rotate_secret(caller: Caller, webhook_id: str) -> str:
    """A new current secret; the old one signs beside it for
    :data:`~service.reads.webhooks.ROTATION_OVERLAP`. Returns the new secret.

    Raises:
        NotFound: no such hook.
        WrongExpectedVersion: the hook changed meanwhile (try again).
    """
    stream = webhook_stream(webhook_id)
    loaded = await load(caller, stream)
    events: list[Event] = decided(
        caller, loaded.version, decide_rotate, fold_webhook([e.event for e in loaded.events])
    )
    secret = rows.new_secret()
    await append_alongside(
        caller, stream, events, loaded.version,
        lambda conn: rows.add_secret(conn, webhook_id, secret, caller.services.clock()),
    )  # fmt: skip
    return secret


async def delete(caller: Caller, webhook_id: str) -> AppendResult | None:
    """Delete the hook and forget its secrets.

    Raises:
        NotFound: no such hook.
    """
    _, result = await execute(
        caller, webhook_stream(webhook_id), fold_webhook, decide_delete, project_id=None
    )
    await rows.drop_secrets(caller.services.store.pool, webhook_id)
    return result


async def disable(services: Services, webhook_id: str, reason: str, detail: str) -> None:
    """Disable hook ``webhook_id`` as Cairn (``WebhookDisabled``: ``reason`` such as
    ``failing`` or ``gone``, ``detail`` for people); nothing when it is already inactive or
    deleted. Waits (bounded) until the read models show it.

    Raises:
        NotFound: there never was such a hook.
    """
    meta = Metadata(actor=SYSTEM.person_id, request_id=f"webhooks-{uuid.uuid4().hex[:12]}")
    caller = Caller(services=services, actor=SYSTEM, metadata=meta)
    loaded = await load(caller, webhook_stream(webhook_id))
    if not loaded.events:
        raise NotFound("there is no such webhook")
    await execute(
        caller,
        webhook_stream(webhook_id),
        fold_webhook,
        lambda state: decide_disable(state, reason, detail),
        project_id=None,
    )

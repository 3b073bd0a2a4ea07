"""Events of webhook endpoints (stream ``webhook-<id>``): created, edited, secret rotated,
disabled (by Cairn, when deliveries keep failing or the receiver answered 410), deleted.

Never the secret: secrets live in table ``webhook_secrets`` (migration 0015), written in the
same transaction as :class:`WebhookCreated` and :class:`WebhookSecretRotated`. A URL is
private to whoever manages the hook: these events are shown to a project's team only.
"""

from __future__ import annotations

from typing import Literal

from .base import Event, FieldChange, register

Audience = Literal["team", "clients"]
"""Whose view of the log a hook is sent: a project's team, or its clients (what clients see)."""


@register
class WebhookCreated(Event, frozen=True, kw_only=True):
    """Webhook ``webhook_id`` was created, for ``project_id`` (None: every project), sending
    ``kinds`` (None: every kind) to ``url`` as ``audience`` sees them; ``owner_id`` owns it
    (its deactivation disables the hook)."""

    webhook_id: str
    project_id: str | None = None
    url: str
    kinds: list[str] | None = None
    audience: Audience = "team"
    active: bool = True
    owner_id: str


@register
class WebhookEdited(Event, frozen=True, kw_only=True):
    """The hook's ``url``, ``kinds``, ``audience`` or ``active`` changed (before/after).
    Turning ``active`` on again clears a disabling."""

    webhook_id: str
    changes: list[FieldChange]


@register
class WebhookSecretRotated(Event, frozen=True, kw_only=True):
    """The hook got a new signing secret; the old one keeps signing until it retires (24 h)."""

    webhook_id: str


@register
class WebhookDisabled(Event, frozen=True, kw_only=True):
    """Cairn stopped delivering to the hook: ``reason`` (``failing``: retries ran out;
    ``gone``: the receiver answered 410) with a ``detail`` for people. ``project_id``: the
    hook's (None: account-wide), so that its project's activity can tell."""

    webhook_id: str
    reason: str
    detail: str = ""
    project_id: str | None = None


@register
class WebhookDeleted(Event, frozen=True, kw_only=True):
    """The hook (of ``project_id``; None: account-wide) was deleted: nothing more is sent
    to it."""

    webhook_id: str
    project_id: str | None = None

"""Webhook endpoints: who may manage them, what they may ask for, and their state as a fold
of their stream (``webhook-<id>``). Pure: no I/O.

A hook's ``kinds`` are the kinds of events it wants (None: all): the snake-case names of the
event types of projects' work (:func:`kind_of`: ``TodoCompleted`` → ``todo_completed``),
never those of accounts, sign-in, notices, invitations or hooks (:data:`PRIVATE_MODULES`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final

import msgspec

from ..errors import Conflict, InvalidCommand, NotFound
from ..events.base import Event, FieldChange, registered_types, type_name
from ..events.webhooks import (
    Audience,
    WebhookCreated,
    WebhookDeleted,
    WebhookDisabled,
    WebhookEdited,
    WebhookSecretRotated,
)
from .access import ProjectFacts, Viewer, can_see_project, in_scope, require_write

PER_PROJECT: Final = 20
"""How many hooks (not deleted) a project may have; the account-wide ones as many."""
PRIVATE_MODULES: Final = frozenset({"people", "signin", "notices", "invitations", "webhooks"})
"""Modules of :mod:`service.events` whose events no hook is sent (accounts, secrets,
bookkeeping)."""

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def kind_of(event_type: str) -> str:
    """The kind a hook asks for of events of stored type ``event_type`` (``TodoCompleted`` →
    ``todo_completed``)."""
    return _CAMEL.sub("_", event_type).lower()


def known_kinds() -> frozenset[str]:
    """Every kind a hook may ask for: those of the registered event types outside
    :data:`PRIVATE_MODULES`."""
    return frozenset(
        kind_of(type_name(cls))
        for cls in registered_types().values()
        if cls.__module__.rsplit(".", 1)[-1] not in PRIVATE_MODULES
    )


def check_kinds(kinds: Iterable[str] | None) -> list[str] | None:
    """``kinds`` sorted without repeats (None stays None: every kind).

    Raises:
        InvalidCommand: a kind is unknown, or the list is empty.
    """
    if kinds is None:
        return None
    wanted = sorted(set(kinds))
    if not wanted:
        raise InvalidCommand("kinds", "give at least one kind, or null for every kind")
    unknown = [k for k in wanted if k not in known_kinds()]
    if unknown:
        raise InvalidCommand("kinds", f"unknown kinds: {', '.join(unknown)}")
    return wanted


def may_manage(viewer: Viewer, project: ProjectFacts | None) -> bool:
    """Whether ``viewer`` may see and change the hooks of ``project`` (None: the account-wide
    hooks): active admins and the project's owners, with a token reaching the project
    (account-wide hooks: admins with a token limited to no projects). Never clients."""
    if not viewer.active or viewer.role == "client":
        return False
    if project is None:
        return viewer.role == "admin" and viewer.scope.projects is None
    if not in_scope(viewer, project.project_id) or not can_see_project(viewer, project):
        return False
    return viewer.role == "admin" or project.members.get(viewer.person_id) == "owner"


def require_manager(viewer: Viewer, project: ProjectFacts | None, *, write: bool) -> None:
    """Raises:
    NotFound: ``viewer`` may not manage the hooks of ``project`` (who may not, may not know
        of them either).
    InsufficientScope: a write with a read-only token.
    """
    if not may_manage(viewer, project):
        raise NotFound("there is no such webhook")
    if write:
        require_write(viewer)


class WebhookState(msgspec.Struct, frozen=True, kw_only=True):
    """A hook as its stream tells it."""

    webhook_id: str
    project_id: str | None
    url: str
    kinds: tuple[str, ...] | None
    audience: Audience
    active: bool
    owner_id: str
    disabled_reason: str | None = None
    deleted: bool = False


def evolve(state: WebhookState | None, event: Event) -> WebhookState | None:
    """The state after ``event``."""
    if isinstance(event, WebhookCreated):
        return WebhookState(
            webhook_id=event.webhook_id,
            project_id=event.project_id,
            url=event.url,
            kinds=tuple(event.kinds) if event.kinds is not None else None,
            audience=event.audience,
            active=event.active,
            owner_id=event.owner_id,
        )
    if state is None:
        return None
    if isinstance(event, WebhookEdited):
        fields: dict[str, object] = {}
        for change in event.changes:
            value = change.after
            if change.field == "kinds" and value is not None:
                value = tuple(value)
            fields[change.field] = value
        if fields.get("active") is True:
            fields["disabled_reason"] = None
        return msgspec.structs.replace(state, **fields)
    if isinstance(event, WebhookDisabled):
        return msgspec.structs.replace(state, active=False, disabled_reason=event.reason)
    if isinstance(event, WebhookDeleted):
        return msgspec.structs.replace(state, deleted=True, active=False)
    return state


def fold_webhook(events: Sequence[Event]) -> WebhookState | None:
    """A hook's state from its stream's events (None: no such hook)."""
    state: WebhookState | None = None
    for event in events:
        state = evolve(state, event)
    return state


def existing(state: WebhookState | None) -> WebhookState:
    """Raises:
    NotFound: there is no such hook (never created, or deleted).
    """
    if state is None or state.deleted:
        raise NotFound("there is no such webhook")
    return state


class EditWebhook(msgspec.Struct, frozen=True, kw_only=True):
    """What an edit sets (None: unchanged). ``kinds``: ``all_kinds`` True sets every kind."""

    url: str | None = None
    kinds: list[str] | None = None
    all_kinds: bool = False
    audience: Audience | None = None
    active: bool | None = None


def decide_edit(state: WebhookState | None, edit: EditWebhook) -> list[Event]:
    """The edit as one :class:`WebhookEdited` (nothing when nothing changes).

    Raises:
        NotFound: no such hook.
        InvalidCommand: an unknown kind.
    """
    hook = existing(state)
    changes: list[FieldChange] = []
    if edit.url is not None and edit.url != hook.url:
        changes.append(FieldChange(field="url", before=hook.url, after=edit.url))
    before_kinds = list(hook.kinds) if hook.kinds is not None else None
    if edit.all_kinds:
        after_kinds: list[str] | None = None
    elif edit.kinds is not None:
        after_kinds = check_kinds(edit.kinds)
    else:
        after_kinds = before_kinds
    if after_kinds != before_kinds:
        changes.append(FieldChange(field="kinds", before=before_kinds, after=after_kinds))
    if edit.audience is not None and edit.audience != hook.audience:
        changes.append(FieldChange(field="audience", before=hook.audience, after=edit.audience))
    if edit.active is not None and edit.active != hook.active:
        changes.append(FieldChange(field="active", before=hook.active, after=edit.active))
    return [WebhookEdited(webhook_id=hook.webhook_id, changes=changes)] if changes else []


def decide_rotate(state: WebhookState | None) -> list[Event]:
    """Raises:
    NotFound: no such hook.
    """
    return [WebhookSecretRotated(webhook_id=existing(state).webhook_id)]


def decide_delete(state: WebhookState | None) -> list[Event]:
    """Raises:
    NotFound: no such hook (deleted already included).
    """
    hook = existing(state)
    return [WebhookDeleted(webhook_id=hook.webhook_id, project_id=hook.project_id)]


def decide_disable(state: WebhookState | None, reason: str, detail: str) -> list[Event]:
    """Disable an active hook; nothing for one already inactive or deleted (idempotent).

    Raises:
        Conflict: there is no such hook at all.
    """
    if state is None:
        raise Conflict("there is no such webhook")
    if state.deleted or not state.active:
        return []
    return [
        WebhookDisabled(
            webhook_id=state.webhook_id, reason=reason, detail=detail, project_id=state.project_id
        )
    ]

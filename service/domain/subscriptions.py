"""Subscriptions: who gets notified about a recording. Everyone subscribes and unsubscribes
only themselves, on what they can see; both are idempotent.

Notifiers must still ask :func:`~service.domain.access.can_see_recording` before sending:
a subscriber may have lost sight of a recording since (hidden from clients, left the project).
"""

from __future__ import annotations

import msgspec

from ..events.base import Event
from ..events.recordings import SubscriberAdded, SubscriberRemoved
from .access import Action
from .context import Context
from .projects import ProjectState, require_writable
from .recordings import Lineage, RecordingState, authorize


class Subscribe(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Subscribe the actor to notifications about a recording."""


class Unsubscribe(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Unsubscribe the actor from notifications about a recording."""


def decide_subscribe(
    project: ProjectState,
    recording: RecordingState,
    cmd: Subscribe,
    ctx: Context,
    lineage: Lineage = (),
) -> list[Event]:
    """Subscribe the actor: ``[SubscriberAdded]``, or ``[]`` if subscribed already.

    Raises:
        NotFound: see :func:`~service.domain.access.check`.
        Conflict: the project is not active.
    """
    authorize(Action.SUBSCRIBE, project, recording, lineage, ctx)
    require_writable(project)
    if ctx.actor.person_id in recording.subscriber_ids:
        return []
    return [SubscriberAdded(at=ctx.now, person_id=ctx.actor.person_id)]


def decide_unsubscribe(
    project: ProjectState,
    recording: RecordingState,
    cmd: Unsubscribe,
    ctx: Context,
    lineage: Lineage = (),
) -> list[Event]:
    """Unsubscribe the actor: ``[SubscriberRemoved]``, or ``[]`` if not subscribed.

    Raises:
        NotFound: see :func:`~service.domain.access.check`.
        Conflict: the project is not active.
    """
    authorize(Action.SUBSCRIBE, project, recording, lineage, ctx)
    require_writable(project)
    if ctx.actor.person_id not in recording.subscriber_ids:
        return []
    return [SubscriberRemoved(at=ctx.now, person_id=ctx.actor.person_id)]

"""Marking notifications read: appends to the caller's inbox stream (``inbox-<person>``).

Both commands are idempotent: what is read already is not read again (nothing is appended),
and a repeat racing with the first appends an event the inbox applies as a no-op. Each
waits for the inbox read model to show it (read-your-writes).
"""

from __future__ import annotations

from typing import Final

from ..errors import NotFound, PreconditionFailed, WrongExpectedVersion
from ..events.base import Event
from ..events.notices import AllNotificationsRead, NotificationsRead
from ..events.store import ANY, AppendResult
from ..events.streams import inbox_stream
from ..reads import inbox
from .caller import Caller
from .execute import settle

UNREAD: Final = 1
READ: Final = 2
"""A notification's version (what ``If-Match`` names): unread, then read."""


async def read_notification(caller: Caller, notification_id: str) -> int:
    """The caller read their notification ``notification_id`` (nothing is appended if it
    was read already); its version now (:data:`READ`).

    Raises:
        NotFound: no such notification, or it is someone else's.
        PreconditionFailed: the caller's ``If-Match`` names another version.
    """
    person_id = caller.actor.person_id
    row = await inbox.notification(caller.store.pool, notification_id)
    if row is None or row["person_id"] != person_id:
        raise NotFound("there is no such notification")
    if caller.precondition is not None:
        caller.precondition.check(READ if row["read_at"] is not None else UNREAD)
    if row["read_at"] is None:
        now = caller.services.clock()
        event = NotificationsRead(notification_ids=(notification_id,), at=now)
        await _append(caller, event, ANY)
    return READ


async def read_all(caller: Caller) -> int:
    """The caller read every notification they have (nothing is appended when none was
    unread); the version of their inbox stream now (what ``If-Match`` names: it counts the
    reads marked).

    Raises:
        PreconditionFailed: the caller's ``If-Match`` names another version (someone marked
            notifications read since).
    """
    stream = inbox_stream(caller.actor.person_id)
    version = await caller.store.stream_version(stream)
    if caller.precondition is not None:
        caller.precondition.check(version)
    newest = await inbox.newest_unread(caller.store.pool, caller.actor.person_id)
    if newest is None:
        return version
    now = caller.services.clock()
    # Under If-Match, appended at the version checked: a read marked meanwhile fails it.
    expected = version if caller.precondition is not None else ANY
    event = AllNotificationsRead(up_to_position=newest, at=now)
    try:
        result = await _append(caller, event, expected)
    except WrongExpectedVersion:
        raise PreconditionFailed(
            "notifications were marked read since you read the inbox; read it again"
        ) from None
    return result.stream_version


async def _append(caller: Caller, event: Event, expected: int) -> AppendResult:
    # The decision stands on the read model, not on a fold of the stream (which only grows):
    # any version will do, and a concurrent read appends a no-op.
    stream = inbox_stream(caller.actor.person_id)
    result = await caller.store.append(
        stream,
        [event],
        expected,
        caller.metadata,
        caller.store_key(stream),
        fingerprint=caller.fingerprint,
    )
    await settle(caller, result, [stream])
    return result

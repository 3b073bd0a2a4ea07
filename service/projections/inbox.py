"""The inbox: each person's notifications, from the notices in the log.

One row per notice (:class:`~service.events.notices.PeopleNotified`, stream
``notice-<position>``) and recipient; its read state from the person's inbox stream
(``inbox-<person>``: :class:`~service.events.notices.NotificationsRead`,
:class:`~service.events.notices.AllNotificationsRead`). Ids and times come from the events
(:func:`~service.domain.notices.notification_id`, their ``at``), never from the clock, so a
rebuild gives the same rows; marking read only sets ``read_at`` where it is still null, so
a repeated or concurrent read changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from ..domain.notices import notification_id
from ..events import streams
from ..events.base import RecordedEvent
from ..events.notices import AllNotificationsRead, NotificationsRead, PeopleNotified

_INSERT = (
    "INSERT INTO notifications (notification_id, person_id, source_position, kind, "
    "project_id, recording_id, thread_id, actor_id, at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (notification_id) DO NOTHING"
)
_READ = (
    "UPDATE notifications SET read_at = $3 "
    "WHERE person_id = $1 AND notification_id = ANY($2::text[]) AND read_at IS NULL"
)
_READ_ALL = (
    "UPDATE notifications SET read_at = $3 "
    "WHERE person_id = $1 AND source_position <= $2 AND read_at IS NULL"
)


class Inbox:
    """Projection ``inbox``: table ``notifications``."""

    name = "inbox"
    version = 1
    tables: Sequence[str] = ("notifications",)
    stream_prefixes = (streams.NOTICE, streams.INBOX)

    def ddl(self) -> str:
        return """
        CREATE TABLE notifications (
            notification_id text PRIMARY KEY,
            person_id       text NOT NULL,
            source_position bigint NOT NULL,
            kind            text NOT NULL,
            project_id      text NOT NULL,
            recording_id    text,
            thread_id       text,
            actor_id        text,
            at              timestamptz NOT NULL,
            read_at         timestamptz
        );
        -- The inbox's order (unread first, newest first) and its unread count.
        CREATE INDEX notifications_person
            ON notifications (person_id, (read_at IS NOT NULL), source_position DESC);
        """

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        for recorded in events:
            event = recorded.event
            if isinstance(event, PeopleNotified):
                await conn.executemany(
                    _INSERT,
                    [
                        (
                            notification_id(event.source_position, person_id),
                            person_id,
                            event.source_position,
                            event.kind,
                            event.project_id,
                            event.recording_id,
                            event.thread_id,
                            event.actor_id,
                            event.at,
                        )
                        for person_id in event.recipient_ids
                    ],
                )
                continue
            person_id = recorded.stream_id.removeprefix(streams.INBOX)
            if isinstance(event, NotificationsRead):
                await conn.execute(_READ, person_id, list(event.notification_ids), event.at)
            elif isinstance(event, AllNotificationsRead):
                await conn.execute(_READ_ALL, person_id, event.up_to_position, event.at)

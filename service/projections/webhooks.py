"""The webhooks read model: one row per webhook endpoint not deleted.

``created_position`` is the log position of its ``WebhookCreated``: deliveries start after
it (a hook never receives the history before it). Times come from the events (their
``recorded_at``), never from the clock, and a row's ``version`` is its stream's, so a rebuild
gives the same rows. Secrets are not here (table ``webhook_secrets``, not derived from the
log)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from ..events import streams
from ..events.base import RecordedEvent
from ..events.webhooks import WebhookCreated, WebhookDeleted, WebhookDisabled, WebhookEdited

_COLUMNS = {"url": "url", "kinds": "kinds", "audience": "audience", "active": "active"}


class Webhooks:
    """Projection ``webhooks``: table ``webhooks``."""

    name = "webhooks"
    version = 1
    tables: Sequence[str] = ("webhooks",)
    stream_prefixes = (streams.WEBHOOK,)

    def ddl(self) -> str:
        return """
        CREATE TABLE webhooks (
            webhook_id       text PRIMARY KEY,
            project_id       text,
            url              text NOT NULL,
            kinds            text[],
            audience         text NOT NULL,
            active           boolean NOT NULL,
            owner_id         text NOT NULL,
            created_position bigint NOT NULL,
            disabled_reason  text,
            disabled_detail  text,
            created_at       timestamptz NOT NULL,
            updated_at       timestamptz NOT NULL,
            version          integer NOT NULL
        );
        CREATE INDEX webhooks_project ON webhooks (project_id, created_position);
        CREATE INDEX webhooks_owner ON webhooks (owner_id);
        """

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        for recorded in events:
            event = recorded.event
            at, version = recorded.recorded_at, recorded.stream_version
            if isinstance(event, WebhookCreated):
                await conn.execute(
                    "INSERT INTO webhooks (webhook_id, project_id, url, kinds, audience, active, "
                    "owner_id, created_position, created_at, updated_at, version) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10)",
                    event.webhook_id, event.project_id, event.url, event.kinds,
                    event.audience, event.active, event.owner_id, recorded.position, at, version,
                )  # fmt: skip
            elif isinstance(event, WebhookEdited):
                sets = [f"{_COLUMNS[c.field]} = ${i + 4}" for i, c in enumerate(event.changes)]
                cleared = any(c.field == "active" and c.after is True for c in event.changes)
                if cleared:
                    sets += ["disabled_reason = NULL", "disabled_detail = NULL"]
                await conn.execute(
                    f"UPDATE webhooks SET updated_at = $2, version = $3, {', '.join(sets)} "
                    "WHERE webhook_id = $1",
                    event.webhook_id, at, version, *(c.after for c in event.changes),
                )  # fmt: skip
            elif isinstance(event, WebhookDisabled):
                await conn.execute(
                    "UPDATE webhooks SET active = false, disabled_reason = $2, "
                    "disabled_detail = $3, updated_at = $4, version = $5 WHERE webhook_id = $1",
                    event.webhook_id, event.reason, event.detail, at, version,
                )  # fmt: skip
            elif isinstance(event, WebhookDeleted):
                await conn.execute("DELETE FROM webhooks WHERE webhook_id = $1", event.webhook_id)
            else:
                await conn.execute(
                    "UPDATE webhooks SET updated_at = $2, version = $3 WHERE webhook_id = $1",
                    recorded.stream_id.removeprefix(streams.WEBHOOK),
                    at,
                    version,
                )

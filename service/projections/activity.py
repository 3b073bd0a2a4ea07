"""The activity read model: one row per activity item, in log order.

Tables:

* ``activity``: one row per :class:`~service.domain.activity.ActivityItem`. ``seq`` is dense
  (1, 2, 3 ...) in log order and given by this projection, so it is the same after a rebuild
  and pages cut by it stay stable while new items arrive; ``position`` is the event's log
  position. ``at`` is the event's time (``at`` of recording events, the append time of
  project events). Rows carry ids only: names and titles are read at render time, so a
  rename shows in every past sentence.
* ``activity_counts``: how many items each (project, actor, kind, recording kind) has, with
  ``''`` for "none": totals for the API without counting rows (a count over a project's
  whole history grows with it; a sum over this table grows with its people and kinds).
* ``activity_targets``: what the creation event said about each recording (kind, project,
  parent), so later events of its stream, which do not repeat it, can be described without
  reading another projection (projections follow the log independently).

**Batches.** One query reads the targets a batch needs, then one COPY writes the batch's
targets and one its items: a rebuild over 200,000 events makes a few round trips per
batch, never one per event.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, Final

import asyncpg
import msgspec

from ..domain.activity import (
    ActivityItem,
    KnownRecording,
    activity_of,
    created_recording,
    recording_id_of,
)
from ..events.base import RecordedEvent

COLUMNS: Final = (
    "seq",
    "position",
    "project_id",
    "recording_id",
    "recording_kind",
    "parent_id",
    "person_id",
    "kind",
    "as_type",
    "actor_id",
    "at",
    "excerpt",
    "changes",
)
"""The columns of ``activity``, in table order."""

_TARGET_COLUMNS: Final = ("recording_id", "kind", "project_id", "parent_id")
_encoder = msgspec.json.Encoder()


class Activity:
    """Projection ``activity``: tables ``activity`` and ``activity_targets``."""

    name = "activity"
    version = 1
    tables: Sequence[str] = ("activity", "activity_targets", "activity_counts")
    stream_prefixes = ("recording-", "project-")
    """People's and e-mail claims' streams make no activity (see the domain module)."""

    def ddl(self) -> str:
        return """
        CREATE TABLE activity (
            seq             bigint PRIMARY KEY,
            position        bigint NOT NULL,
            project_id      text NOT NULL,
            recording_id    text,
            recording_kind  text,
            parent_id       text,
            person_id       text,
            kind            text NOT NULL,
            as_type         text NOT NULL,
            actor_id        text,
            at              timestamptz NOT NULL,
            excerpt         text,
            changes         jsonb NOT NULL
        );
        CREATE INDEX activity_project_seq ON activity (project_id, seq);
        CREATE INDEX activity_actor_seq ON activity (actor_id, seq);
        CREATE INDEX activity_recording ON activity (recording_id, seq);
        CREATE TABLE activity_counts (
            project_id      text NOT NULL,
            actor_id        text NOT NULL,
            kind            text NOT NULL,
            recording_kind  text NOT NULL,
            n               bigint NOT NULL,
            PRIMARY KEY (project_id, kind, recording_kind, actor_id)
        );
        CREATE TABLE activity_targets (
            recording_id    text PRIMARY KEY,
            kind            text NOT NULL,
            project_id      text NOT NULL,
            parent_id       text
        );
        """

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        created: dict[str, KnownRecording] = {}
        wanted: set[str] = set()
        rec_ids: list[str | None] = []
        for recorded in events:
            rec_id = recording_id_of(recorded.stream_id)
            rec_ids.append(rec_id)
            if rec_id is None or rec_id in created:
                continue
            known = created_recording(recorded.event)
            if known is not None:
                created[rec_id] = known
            else:
                wanted.add(rec_id)
        targets = dict(created)
        if wanted:
            rows = await conn.fetch(
                "SELECT recording_id, kind, project_id, parent_id FROM activity_targets "
                "WHERE recording_id = ANY($1::text[])",
                list(wanted),
            )
            for row in rows:
                targets[row["recording_id"]] = KnownRecording(
                    recording_id=row["recording_id"],
                    kind=row["kind"],
                    project_id=row["project_id"],
                    parent_id=row["parent_id"],
                )
        seq = int(await conn.fetchval("SELECT coalesce(max(seq), 0) FROM activity"))
        items: list[tuple[Any, ...]] = []
        for recorded, rec_id in zip(events, rec_ids, strict=True):
            item = activity_of(
                recorded.event,
                stream_id=recorded.stream_id,
                stream_version=recorded.stream_version,
                project_id=recorded.project_id,
                actor_id=recorded.metadata.actor,
                recorded_at=recorded.recorded_at,
                recording=targets.get(rec_id) if rec_id is not None else None,
            )
            if item is not None:
                seq += 1
                items.append(_row(seq, recorded.position, item))
        if created:
            await conn.copy_records_to_table(
                "activity_targets",
                records=[
                    (k.recording_id, k.kind, k.project_id, k.parent_id) for k in created.values()
                ],
                columns=_TARGET_COLUMNS,
            )
        if items:
            await conn.copy_records_to_table("activity", records=items, columns=COLUMNS)
            counts = Counter((i[2], i[9] or "", i[7], i[4] or "") for i in items)
            await conn.executemany(
                "INSERT INTO activity_counts (project_id, actor_id, kind, recording_kind, n) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (project_id, kind, recording_kind, "
                "actor_id) DO UPDATE SET n = activity_counts.n + EXCLUDED.n",
                # Sorted: concurrent writers would lock rows in the same order (and the
                # sums do not depend on it).
                sorted((*key, n) for key, n in counts.items()),
            )


def _row(seq: int, position: int, item: ActivityItem) -> tuple[Any, ...]:
    return (
        seq,
        position,
        item.project_id,
        item.recording_id,
        item.recording_kind,
        item.parent_id,
        item.person_id,
        item.kind,
        item.as_type,
        item.actor_id,
        item.at,
        item.excerpt,
        _encoder.encode(item.changes).decode(),
    )

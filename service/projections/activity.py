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
    recorded_activity,
)
from ..domain.as2 import AS_TYPES
from ..events import streams
from ..events.base import RecordedEvent, decode_event
from ..events.streams import recording_id_of, recording_id_sql
from .bulk import (
    CREATION_KIND,
    CREATIONS,
    EDITS,
    clip_sql,
    collapse_sql,
    indexes_deferred,
    plain_log,
    plain_text_sql,
    plain_text_unsure_sql,
    strip_tags_sql,
)

_RECORDING_ID: Final = recording_id_sql("e.stream_id")
"""The id of the recording whose stream an event ``e`` is in."""
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
    # 2: webhooks' items (created, disabled, deleted) in their project.
    version = 2
    tables: Sequence[str] = ("activity", "activity_targets", "activity_counts")
    stream_prefixes = (streams.RECORDING, streams.PROJECT, streams.WEBHOOK)
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
        for recorded, target_id in zip(events, rec_ids, strict=True):
            target = targets.get(target_id) if target_id is not None else None
            item = recorded_activity(recorded, target)
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

    async def bulk_fill(self, conn: asyncpg.Connection, log: str) -> bool:
        """Every item of ``log`` in three statements (see bulk.py): the targets from the
        creation events, the items (the domain's :func:`activity_of` written as one
        ``SELECT`` over the log, ``seq`` numbered in log order), then the counts. Excerpts
        SQL cannot make exactly (text with HTML entities, edits with numbers in them) are
        made again by the domain's own functions."""
        if not await plain_log(conn, log, self.stream_prefixes, _ODD):
            return False
        # Sorts of the whole log in memory, not on disk; dates printed as the domain does.
        await conn.execute("SET LOCAL work_mem = '256MB'; SET LOCAL DateStyle = 'ISO, YMD'")
        async with indexes_deferred(conn, ("activity", "activity_targets")):
            await conn.execute(_BULK_TARGETS.replace("{log}", log))
            unsure = await conn.fetch(_BULK_ITEMS.replace("{log}", log))
        if unsure:
            await _redo_excerpts(conn, log, [r["seq"] for r in unsure])
        await conn.execute(_BULK_COUNTS)
        return True


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


# ---------------------------------------------------------------- bulk fill (SQL)

# What the bulk fill does not model (plain_log's ``odd``): a recording stream whose first
# event is not its creation, a creation anywhere else or naming another recording. What
# the incremental path makes of those depends on where batches are cut.
_ODD: Final = f"""
    (e.event_type IN {CREATIONS}) <> (e.stream_id ^@ '{streams.RECORDING}' AND e.stream_version = 1)
    OR (e.event_type IN {CREATIONS}
        AND e.data->>'recording_id' IS DISTINCT FROM {_RECORDING_ID})"""
_BULK_TARGETS: Final = f"""
INSERT INTO activity_targets (recording_id, kind, project_id, parent_id)
SELECT e.data->>'recording_id', {CREATION_KIND}, e.data->>'project_id',
       coalesce(e.data->>'parent_id', e.data->>'todolist_id')
FROM {{log}} e
WHERE e.stream_id ^@ '{streams.RECORDING}' AND e.event_type IN {CREATIONS}
"""


def _change(field: str, before: str, after: str) -> str:
    return f"jsonb_build_object('field', '{field}', 'before', {before}, 'after', {after})"


def _short(value: str) -> str:
    """SQL for the domain's ``_short`` of a JSON value (numbers are left to Python)."""
    return f"""CASE jsonb_typeof({value})
        WHEN 'null' THEN 'none'
        WHEN 'boolean' THEN CASE WHEN {value} = 'true' THEN 'yes' ELSE 'no' END
        WHEN 'string' THEN CASE WHEN length({value} #>> '{{}}') <= 60 THEN {value} #>> '{{}}'
                                ELSE left({value} #>> '{{}}', 59) || '…' END
        END"""


# describe_changes() of e.data->'changes', and whether it needs Python (a value SQL does not
# render like Python's str(): a number, or a list shown as a before value).
_DESCRIBED: Final = f"""(
    SELECT string_agg(
        CASE WHEN c.ch->>'field' IN ('body', 'notes', 'description')
                  OR jsonb_typeof(c.ch->'after') IN ('array', 'object')
             THEN c.ch->>'field'
             ELSE (c.ch->>'field') || ' ' || {_short("c.ch->'before'")} || ' → '
                  || {_short("c.ch->'after'")} END,
        '; ' ORDER BY c.n)
    FROM jsonb_array_elements(e.data->'changes') WITH ORDINALITY AS c(ch, n))"""
_DESCRIBED_UNSURE: Final = """EXISTS (
    SELECT 1 FROM jsonb_array_elements(e.data->'changes') AS c(ch)
    WHERE NOT (c.ch->>'field' IN ('body', 'notes', 'description')
               OR jsonb_typeof(c.ch->'after') IN ('array', 'object'))
      AND (jsonb_typeof(c.ch->'before') NOT IN ('null', 'boolean', 'string')
           OR jsonb_typeof(c.ch->'after') NOT IN ('null', 'boolean', 'string')
           OR c.ch->'before' IS NULL OR c.ch->'after' IS NULL))"""
# A comment edit's excerpt: the plain text of every change's value, joined by spaces.
_COMMENT_TEXT: Final = f"""(
    SELECT string_agg({plain_text_sql("c.ch->>'after'")}, ' ' ORDER BY c.n)
    FROM jsonb_array_elements(e.data->'changes') WITH ORDINALITY AS c(ch, n))"""
_COMMENT_UNSURE: Final = f"""EXISTS (
    SELECT 1 FROM jsonb_array_elements(e.data->'changes') AS c(ch)
    WHERE jsonb_typeof(c.ch->'after') IS DISTINCT FROM 'string'
       OR {plain_text_unsure_sql("c.ch->>'after'")})"""
_FIELDS: Final = "ARRAY(SELECT jsonb_array_elements(e.data->'changes')->>'field')"
_AT: Final = "(e.data->>'at')::timestamptz"
_COLLAPSED: Final = collapse_sql("i.excerpt")
_KINDS: Final = ", ".join(f"'{kind}'" for kind in sorted(AS_TYPES))
_AS_TYPES: Final = " ".join(f"WHEN '{k}' THEN '{t}'" for k, t in sorted(AS_TYPES.items()))

# One row per event of the covered log that makes an item: (kind, actor, time, target ...,
# the excerpt's text before clipping, whether Python must make the excerpt). Mirrors
# service.domain.activity.activity_of case by case.
_BULK_ITEMS: Final = f"""
WITH created AS (
    SELECT e.tx_id, e.position,
           CASE e.event_type WHEN 'MessagePosted' THEN 'message_posted'
                WHEN 'CommentAdded' THEN 'comment_added' WHEN 'TodolistCreated' THEN 'todolist_created'
                WHEN 'TodoAdded' THEN 'todo_added' ELSE 'milestone_created' END AS kind,
           e.data->>'project_id' AS project_id,
           coalesce(nullif(e.metadata->>'actor', ''), e.data->>'creator_id') AS actor_id,
           {_AT} AS at,
           e.data->>'recording_id' AS recording_id, {CREATION_KIND} AS recording_kind,
           coalesce(e.data->>'parent_id', e.data->>'todolist_id') AS parent_id,
           NULL::text AS person_id,
           CASE e.event_type WHEN 'MessagePosted' THEN e.data->>'subject'
                WHEN 'CommentAdded' THEN {strip_tags_sql("e.data->>'content'")}
                WHEN 'TodolistCreated' THEN e.data->>'name'
                WHEN 'TodoAdded' THEN e.data->>'content'
                ELSE (e.data->>'title') || ' (due ' || ((e.data->>'due_on')::date)::text || ')'
           END AS excerpt,
           '[]'::jsonb AS changes,
           e.event_type = 'CommentAdded' AND {plain_text_unsure_sql("e.data->>'content'")} AS unsure
    FROM {{log}} e
    WHERE e.stream_id ^@ '{streams.RECORDING}' AND e.event_type IN {CREATIONS}
),
recorded AS (
    SELECT e.tx_id, e.position, x.kind, t.project_id,
           CASE WHEN e.event_type IN ('TodoCompleted', 'MilestoneCompleted')
                THEN coalesce(nullif(e.metadata->>'actor', ''), e.data->>'completer_id')
                ELSE e.metadata->>'actor' END AS actor_id,
           {_AT} AS at, t.recording_id, t.kind AS recording_kind,
           CASE WHEN e.event_type = 'TodoMoved' THEN e.data->>'to_todolist_id'
                WHEN t.kind = 'comment' THEN t.parent_id END AS parent_id,
           NULL::text AS person_id,
           x.excerpt, x.changes, x.unsure
    FROM {{log}} e
    JOIN activity_targets t ON t.recording_id = {_RECORDING_ID}
    CROSS JOIN LATERAL (
        SELECT CASE e.event_type
            WHEN 'MessageEdited' THEN 'message_edited'
            WHEN 'CommentEdited' THEN 'comment_edited'
            WHEN 'TodolistEdited' THEN 'todolist_edited'
            WHEN 'TodoEdited' THEN CASE
                WHEN 'assignee_ids' = ANY({_FIELDS}) THEN 'todo_assigned'
                WHEN cardinality({_FIELDS}) > 0
                     AND {_FIELDS} <@ ARRAY['due_on', 'starts_on'] THEN 'todo_rescheduled'
                ELSE 'todo_edited' END
            WHEN 'MilestoneEdited' THEN CASE WHEN 'due_on' = ANY({_FIELDS})
                THEN 'milestone_rescheduled' ELSE 'milestone_edited' END
            WHEN 'TodoCompleted' THEN t.kind || '_completed'
            WHEN 'MilestoneCompleted' THEN t.kind || '_completed'
            WHEN 'TodoReopened' THEN t.kind || '_reopened'
            WHEN 'MilestoneReopened' THEN t.kind || '_reopened'
            WHEN 'MilestoneDueSoon' THEN t.kind || '_due_soon'
            WHEN 'TodoDueSoon' THEN t.kind || '_due_soon'
            WHEN 'MilestoneOverdue' THEN t.kind || '_overdue'
            WHEN 'TodoOverdue' THEN t.kind || '_overdue'
            WHEN 'TodoMoved' THEN 'todo_moved'
            WHEN 'RecordingStatusChanged' THEN CASE e.data->>'after'
                WHEN 'archived' THEN 'recording_archived' WHEN 'trashed' THEN 'recording_trashed'
                WHEN 'active' THEN 'recording_restored' END
            WHEN 'ClientVisibilityChanged' THEN CASE WHEN (e.data->'after') = 'true'
                THEN 'recording_shown_to_clients' ELSE 'recording_hidden_from_clients' END
            END AS kind,
            CASE
                WHEN e.event_type = 'CommentEdited' THEN {_COMMENT_TEXT}
                WHEN e.event_type IN {EDITS} THEN {_DESCRIBED}
                WHEN e.event_type = 'TodoMoved' THEN 'to position ' || (e.data->>'position')
                WHEN e.event_type = 'RecordingStatusChanged'
                    THEN (e.data->>'before') || ' → ' || (e.data->>'after')
            END AS excerpt,
            CASE
                WHEN e.event_type IN {EDITS} THEN e.data->'changes'
                WHEN e.event_type = 'TodoMoved' THEN jsonb_build_array(
                    {_change("todolist_id", "e.data->'from_todolist_id'", "e.data->'to_todolist_id'")},
                    {_change("position", "'null'::jsonb", "e.data->'position'")})
                WHEN e.event_type = 'RecordingStatusChanged' THEN jsonb_build_array(
                    {_change("status", "e.data->'before'", "e.data->'after'")})
                WHEN e.event_type = 'ClientVisibilityChanged' THEN jsonb_build_array(
                    {_change("visible_to_clients", "e.data->'before'", "e.data->'after'")})
                WHEN e.event_type IN ('MilestoneDueSoon', 'TodoDueSoon') THEN jsonb_build_array(
                    {_change("due_at", "'null'::jsonb", "e.data->'due_at'")})
                ELSE '[]'::jsonb
            END AS changes,
            CASE
                WHEN e.event_type = 'CommentEdited' THEN {_COMMENT_UNSURE}
                WHEN e.event_type IN {EDITS} THEN {_DESCRIBED_UNSURE}
                ELSE false
            END AS unsure
    ) x
    WHERE e.stream_id ^@ '{streams.RECORDING}' AND e.event_type NOT IN {CREATIONS}
      AND x.kind IN ({_KINDS})
),
project AS (
    SELECT e.tx_id, e.position, x.kind, e.project_id, e.metadata->>'actor' AS actor_id, e.recorded_at AS at,
           NULL::text AS recording_id, NULL::text AS recording_kind, NULL::text AS parent_id,
           CASE WHEN e.event_type IN ('ProjectMemberAdded', 'ProjectMemberRoleChanged',
                                      'ProjectMemberRemoved')
                THEN e.data->>'person_id' END AS person_id,
           x.excerpt, x.changes, x.unsure
    FROM {{log}} e
    CROSS JOIN LATERAL (
        SELECT CASE e.event_type
            WHEN 'ProjectCreated' THEN 'project_created'
            WHEN 'ProjectEdited' THEN 'project_edited'
            WHEN 'ProjectMemberAdded' THEN CASE WHEN e.stream_version > 2
                THEN 'person_added_to_project' END
            WHEN 'ProjectMemberRoleChanged' THEN 'project_role_changed'
            WHEN 'ProjectMemberRemoved' THEN 'person_removed_from_project'
            WHEN 'ProjectArchived' THEN 'project_archived'
            WHEN 'ProjectUnarchived' THEN 'project_unarchived'
            WHEN 'ProjectTrashed' THEN 'project_trashed'
            WHEN 'ProjectRestored' THEN 'project_restored'
            END AS kind,
            CASE e.event_type
                WHEN 'ProjectCreated' THEN e.data->>'name'
                WHEN 'ProjectEdited' THEN {_DESCRIBED}
                WHEN 'ProjectMemberAdded' THEN 'as ' || (e.data->>'project_role')
                WHEN 'ProjectMemberRoleChanged'
                    THEN (e.data->>'before') || ' → ' || (e.data->>'after')
            END AS excerpt,
            CASE e.event_type
                WHEN 'ProjectEdited' THEN e.data->'changes'
                WHEN 'ProjectMemberAdded' THEN jsonb_build_array(
                    {_change("project_role", "'null'::jsonb", "e.data->'project_role'")})
                WHEN 'ProjectMemberRoleChanged' THEN jsonb_build_array(
                    {_change("project_role", "e.data->'before'", "e.data->'after'")})
                WHEN 'ProjectArchived' THEN jsonb_build_array(
                    {_change("status", "to_jsonb('active'::text)", "to_jsonb('archived'::text)")})
                WHEN 'ProjectUnarchived' THEN jsonb_build_array(
                    {_change("status", "to_jsonb('archived'::text)", "to_jsonb('active'::text)")})
                WHEN 'ProjectTrashed' THEN jsonb_build_array(
                    {_change("status", "to_jsonb('active'::text)", "to_jsonb('trashed'::text)")})
                WHEN 'ProjectRestored' THEN jsonb_build_array(
                    {_change("status", "to_jsonb('trashed'::text)", "to_jsonb('active'::text)")})
                ELSE '[]'::jsonb
            END AS changes,
            e.event_type = 'ProjectEdited' AND {_DESCRIBED_UNSURE} AS unsure
    ) x
    WHERE e.stream_id ^@ '{streams.PROJECT}' AND e.project_id IS NOT NULL AND x.kind IS NOT NULL
),
hooks AS (
    SELECT e.tx_id, e.position,
           CASE e.event_type WHEN 'WebhookCreated' THEN 'webhook_created'
                WHEN 'WebhookDisabled' THEN 'webhook_disabled' ELSE 'webhook_deleted' END AS kind,
           e.data->>'project_id' AS project_id, e.metadata->>'actor' AS actor_id,
           e.recorded_at AS at, NULL::text AS recording_id, NULL::text AS recording_kind,
           NULL::text AS parent_id, NULL::text AS person_id, NULL::text AS excerpt,
           '[]'::jsonb AS changes, false AS unsure
    FROM {{log}} e
    WHERE e.stream_id ^@ '{streams.WEBHOOK}'
      AND e.event_type IN ('WebhookCreated', 'WebhookDisabled', 'WebhookDeleted')
      AND e.data->>'project_id' IS NOT NULL
),
items AS (
    SELECT * FROM created UNION ALL SELECT * FROM recorded UNION ALL SELECT * FROM project
    UNION ALL SELECT * FROM hooks
),
numbered AS (
    SELECT row_number() OVER (ORDER BY tx_id, position) AS seq, i.*,
           {_COLLAPSED} AS collapsed
    FROM items i
),
inserted AS (
    INSERT INTO activity ({", ".join(COLUMNS)})
    SELECT seq, position, project_id, recording_id, recording_kind, parent_id, person_id, kind,
           CASE kind {_AS_TYPES} END, actor_id, at, {clip_sql("collapsed")}, changes
    FROM numbered
)
SELECT seq FROM numbered WHERE unsure
"""


async def _redo_excerpts(conn: asyncpg.Connection, log: str, seqs: list[int]) -> None:
    """Make the excerpts of items ``seqs`` with the domain's functions (the same item as
    :meth:`Activity.apply` makes, from the event and its recording's target row)."""
    rows = await conn.fetch(
        f"""
        SELECT a.seq, e.event_type, e.schema_version, e.data, e.stream_id, e.stream_version,
               e.project_id, e.metadata->>'actor' AS actor, e.recorded_at,
               t.recording_id, t.kind, t.project_id AS target_project, t.parent_id
        FROM activity a
        JOIN {log} e ON e.position = a.position
        LEFT JOIN activity_targets t ON t.recording_id = a.recording_id
        WHERE a.seq = ANY($1::bigint[])
        """,
        seqs,
    )
    fixed = []
    for row in rows:
        target = None
        if row["recording_id"] is not None:
            target = KnownRecording(
                recording_id=row["recording_id"],
                kind=row["kind"],
                project_id=row["target_project"],
                parent_id=row["parent_id"],
            )
        item = activity_of(
            decode_event(row["event_type"], row["schema_version"], row["data"]),
            stream_id=row["stream_id"],
            stream_version=row["stream_version"],
            project_id=row["project_id"],
            actor_id=row["actor"],
            recorded_at=row["recorded_at"],
            recording=target,
        )
        assert item is not None, row["seq"]
        fixed.append((row["seq"], item.excerpt))
    await conn.executemany("UPDATE activity SET excerpt = $2 WHERE seq = $1", fixed)


_BULK_COUNTS: Final = """
INSERT INTO activity_counts (project_id, actor_id, kind, recording_kind, n)
SELECT project_id, coalesce(actor_id, ''), kind, coalesce(recording_kind, ''), count(*)
FROM activity GROUP BY 1, 2, 3, 4
"""

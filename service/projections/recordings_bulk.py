"""The recordings read model computed from the whole log at once (its bulk fill, see bulk.py).

Every column of a row is a fact about the final state of its stream, which SQL reads off the
log directly: the creation event's values, the last value of each edited field, the last
status, visibility and completion, the last event's version and time. Two things are left to
Python, where they are plain and cheap: the order of to-dos in their lists (a replay of
additions and moves, ~20 % of the log's events with three columns each) and comments' titles
(the same :func:`~service.projections.recordings_tables.summary` as the incremental path, which an
HTML parser makes). Inherited visibility and status need the final rows of the lineage, at
most two levels up (a comment on a to-do in a list), so they are joined in last.

Logs the incremental path would fold differently depending on where batches are cut (a
comment on a comment or on something missing, a move of a non-to-do, an edit of a field its
kind does not have, ...) are declined, and rebuilt event by event.
"""

from __future__ import annotations

from typing import Final

import asyncpg

from ..events.streams import RECORDING, recording_id_sql
from .bulk import (
    CREATION_KIND,
    CREATIONS,
    EDITS,
    ODD_CREATIONS,
    collapse_sql,
    indexes_deferred,
    plain_log,
)
from .recordings_tables import COLUMNS, TITLE_LENGTH, summary

_RECORDING_ID: Final = recording_id_sql("e.stream_id")
"""The id of the recording whose stream an event ``e`` is in."""
_TOUCHING: Final = (
    "('MessageEdited', 'CommentEdited', 'TodolistEdited', 'TodoEdited', 'MilestoneEdited', "
    "'TodoCompleted', 'MilestoneCompleted', 'TodoReopened', 'MilestoneReopened', 'TodoMoved', "
    "'RecordingStatusChanged', 'ClientVisibilityChanged')"
)
"""Events that set ``updated_at`` (subscriptions do not)."""
_COMPLETIONS: Final = "('TodoCompleted', 'MilestoneCompleted', 'TodoReopened', 'MilestoneReopened')"
_DUE_SOON_TYPES: Final = ("MilestoneDueSoon", "TodoDueSoon")
_OVERDUE_TYPES: Final = ("MilestoneOverdue", "TodoOverdue")
_DUE_SOON: Final = "(" + ", ".join(f"'{t}'" for t in _DUE_SOON_TYPES) + ")"
_OVERDUE: Final = "(" + ", ".join(f"'{t}'" for t in _OVERDUE_TYPES) + ")"
_ALERTS: Final = "(" + ", ".join(f"'{t}'" for t in (*_DUE_SOON_TYPES, *_OVERDUE_TYPES)) + ")"


# Which edit field is which column, by kind: the fields the domain's edits have. An edit of
# another field (possible only in a log written by other code) declines the bulk fill.
_FIELDS: Final = {
    "message": {"subject": "title", "body": "content", "category": "category"},
    "comment": {"content": "content"},
    "todolist": {"name": "title", "description": "content"},
    "todo": {
        "content": "title",
        "notes": "content",
        "assignee_ids": "assignee_ids",
        "starts_on": "starts_on",
        "due_on": "due_on",
    },
    "milestone": {"title": "title", "notes": "content", "responsible_id": "responsible_id",
                  "due_on": "due_on"},
}  # fmt: skip
_ALLOWED: Final = ", ".join(
    f"('{kind}', '{field}')" for kind, fields in _FIELDS.items() for field in fields
)


def _edited(column: str, base: str) -> str:
    """SQL: ``column``'s final value: the last edit of the field that is that column for the
    row's kind, else ``base`` (the creation's value)."""
    cases = []
    for kind, fields in _FIELDS.items():
        for field, col in fields.items():
            if col != column:
                continue
            if column in ("starts_on", "due_on"):
                value = f"nullif(ed.ed->>'{field}', '')::date"
            elif column == "assignee_ids":
                value = (
                    f"coalesce(ARRAY(SELECT jsonb_array_elements_text("
                    f"nullif(ed.ed->'{field}', 'null'::jsonb))), '{{}}')"
                )
            else:
                value = f"ed.ed->>'{field}'"
            cases.append(f"WHEN b.kind = '{kind}' AND ed.ed ? '{field}' THEN {value}")
    return f"CASE {' '.join(cases)} ELSE {base} END"


_BASE: Final = f"""
CREATE TEMPORARY TABLE _bulk_base ON COMMIT DROP AS
SELECT {_RECORDING_ID} AS recording_id, e.tx_id, e.position AS seq,
       {CREATION_KIND} AS kind,
       e.data->>'project_id' AS project_id,
       coalesce(e.data->>'parent_id', e.data->>'todolist_id') AS parent_id,
       CASE e.event_type WHEN 'CommentAdded' THEN e.data->>'parent_kind'
            WHEN 'TodoAdded' THEN 'todolist' END AS parent_kind,
       e.data->>'creator_id' AS creator_id,
       (e.data->>'visible_to_clients')::boolean AS own_visible_to_clients,
       CASE e.event_type WHEN 'MessagePosted' THEN e.data->>'subject'
            WHEN 'TodolistCreated' THEN e.data->>'name' WHEN 'TodoAdded' THEN e.data->>'content'
            WHEN 'MilestoneCreated' THEN e.data->>'title' END AS title,
       CASE e.event_type WHEN 'MessagePosted' THEN e.data->>'body'
            WHEN 'CommentAdded' THEN e.data->>'content'
            WHEN 'TodolistCreated' THEN e.data->>'description'
            ELSE e.data->>'notes' END AS content,
       e.data->>'category' AS category,
       (e.data->>'at')::timestamptz AS created_at,
       (e.data->>'starts_on')::date AS starts_on,
       (e.data->>'due_on')::date AS due_on,
       CASE WHEN e.event_type = 'TodoAdded'
            THEN ARRAY(SELECT jsonb_array_elements_text(e.data->'assignee_ids'))
            ELSE '{{}}' END AS assignee_ids,
       e.data->>'responsible_id' AS responsible_id
FROM {{log}} e
WHERE e.stream_id ^@ '{RECORDING}' AND e.event_type IN {CREATIONS}
"""
_EVENTS: Final = f"""
CREATE TEMPORARY TABLE _bulk_events ON COMMIT DROP AS
SELECT {_RECORDING_ID} AS recording_id, e.tx_id, e.position, e.stream_version,
       e.event_type, (e.data->>'at')::timestamptz AS at,
       CASE WHEN e.event_type IN ('RecordingStatusChanged', 'ClientVisibilityChanged')
                THEN e.data->>'after'
            WHEN e.event_type IN ('TodoCompleted', 'MilestoneCompleted')
                THEN e.data->>'completer_id'
            WHEN e.event_type IN {_ALERTS} THEN e.data->>'due_on' END AS value,
       CASE WHEN e.event_type IN {EDITS} THEN e.data->'changes' END AS changes
FROM {{log}} e
WHERE e.stream_id ^@ '{RECORDING}' AND e.event_type NOT IN {CREATIONS}
"""
_ORDER: Final = "ORDER BY tx_id DESC, position DESC"
_SIMPLE_TAG: Final = (
    "</?(p|br|strong|em|b|i|a|ul|ol|li|blockquote|code|h1|h2|h3)"
    "([ \\t\\n\\r\\f](\"[^\"<>]*\"|''[^''<>]*''|[^<>\"''])*)?/?>"
)
"""Tags an HTML parser drops from a comment's text without touching the text around them
(the sanitiser's tags but ``pre``, whose first newline the parser drops). A comment whose
content is only text without ``&`` and such tags gets its title in SQL; the others get it
from :func:`~service.projections.recordings_tables.summary` in Python."""


def _last(value: str, where: str) -> str:
    """SQL aggregate: ``value`` of a stream's last event (log order) matching ``where``."""
    return f"(array_agg({value} {_ORDER}) FILTER (WHERE {where}))[1]"


# One sort of the events by stream and log order serves every "last" (PostgreSQL presorts
# the input once when the aggregates share their ORDER BY).
_ROWS: Final = f"""
CREATE TEMPORARY TABLE _bulk_rows ON COMMIT DROP AS
WITH changes AS (
    SELECT DISTINCT ON (ev.recording_id, c.ch->>'field') ev.recording_id, c.ch->>'field' AS field,
           c.ch->'after' AS after
    FROM _bulk_events ev, jsonb_array_elements(ev.changes) WITH ORDINALITY AS c(ch, n)
    WHERE ev.changes IS NOT NULL
    ORDER BY ev.recording_id, c.ch->>'field', ev.tx_id DESC, ev.position DESC, c.n DESC
),
edits AS (
    SELECT recording_id, jsonb_object_agg(field, after) AS ed FROM changes GROUP BY recording_id
),
lasts AS (
    SELECT recording_id,
           (array_agg(stream_version {_ORDER}))[1] AS version,
           {_last("at", f"event_type IN {_TOUCHING}")} AS touched_at,
           {_last("value", "event_type = 'RecordingStatusChanged'")} AS status,
           {_last("value", "event_type = 'ClientVisibilityChanged'")} AS visible,
           {_last("event_type", f"event_type IN {_COMPLETIONS}")} AS done,
           {_last("at", f"event_type IN {_COMPLETIONS}")} AS done_at,
           {_last("value", f"event_type IN {_COMPLETIONS}")} AS done_by,
           {_last("value", f"event_type IN {_DUE_SOON}")} AS due_soon_on,
           {_last("value", f"event_type IN {_OVERDUE}")} AS overdue_on
    FROM _bulk_events GROUP BY recording_id
)
SELECT q.*,
       CASE WHEN q.kind = 'comment' THEN regexp_replace(q.content, '{_SIMPLE_TAG}', '', 'gi') END
           AS stripped
FROM (
SELECT b.recording_id, b.kind, b.project_id,
       coalesce(pos.parent_id, b.parent_id) AS parent_id, b.parent_kind, b.creator_id,
       coalesce(l.status, 'active') AS status,
       CASE WHEN l.visible IS NOT NULL THEN l.visible::boolean ELSE b.own_visible_to_clients END
           AS own_visible_to_clients,
       {_edited("title", "b.title")} AS title,
       {_edited("content", "b.content")} AS content,
       {_edited("category", "b.category")} AS category,
       b.created_at, coalesce(l.touched_at, b.created_at) AS updated_at, b.seq,
       coalesce(l.version, 1)::integer AS version,
       coalesce(l.done IN ('TodoCompleted', 'MilestoneCompleted'), false) AS completed,
       CASE WHEN l.done IN ('TodoCompleted', 'MilestoneCompleted') THEN l.done_at END
           AS completed_at,
       CASE WHEN l.done IN ('TodoCompleted', 'MilestoneCompleted') THEN l.done_by END
           AS completer_id,
       {_edited("starts_on", "b.starts_on")} AS starts_on,
       {_edited("due_on", "b.due_on")} AS due_on,
       {_edited("assignee_ids", "b.assignee_ids")} AS assignee_ids,
       {_edited("responsible_id", "b.responsible_id")} AS responsible_id,
       pos.position, l.due_soon_on::date AS due_soon_alerted_on,
       l.overdue_on::date AS overdue_alerted_on, b.tx_id,
       b.parent_id AS first_parent_id
FROM _bulk_base b
LEFT JOIN _bulk_positions pos ON pos.recording_id = b.recording_id
LEFT JOIN edits ed ON ed.recording_id = b.recording_id
LEFT JOIN lasts l ON l.recording_id = b.recording_id
) q
"""
# What the incremental path's batch settling does not fold like the final state: an edit of
# a field the kind does not have, or a value of a type its column cannot take (and, checked
# with the insert below, a comment on a comment, a parent that is missing or of another kind
# than said, a recording created before its first parent). Counted, not EXISTS: the planner
# would bet on an early match and join by nested loops, while the answer is almost always
# "none".
_ODD_EDITS: Final = f"""
SELECT count(*) > 0 FROM _bulk_events ev
JOIN _bulk_base b ON b.recording_id = ev.recording_id,
jsonb_array_elements(ev.changes) AS c(ch)
WHERE ev.changes IS NOT NULL
  AND ((b.kind, c.ch->>'field') NOT IN ({_ALLOWED})
       OR jsonb_typeof(c.ch->'after') NOT IN ('string', 'null', 'array')
       OR (jsonb_typeof(c.ch->'after') = 'array' AND c.ch->>'field' <> 'assignee_ids')
       OR (jsonb_typeof(c.ch->'after') = 'string' AND c.ch->>'field' = 'assignee_ids')
       OR (c.ch->'after' = 'null'::jsonb
           AND (c.ch->>'field' IN ('subject', 'name', 'title')
                OR (b.kind, c.ch->>'field') = ('todo', 'content'))))
"""
_STATUS_RANK: Final = "CASE {} WHEN 'trashed' THEN 2 WHEN 'archived' THEN 1 ELSE 0 END"


def _most_removed(a: str, b: str) -> str:
    return f"CASE WHEN {_STATUS_RANK.format(b)} > {_STATUS_RANK.format(a)} THEN {b} ELSE {a} END"


# Inherited values through the lineage: a top-level row's own; below, the row's own
# visibility if it has one, else its parent's; the most removed status of the lineage.
_PARENT_VISIBLE: Final = (
    "CASE WHEN p.parent_id IS NULL THEN coalesce(p.own_visible_to_clients, false) "
    "ELSE coalesce(p.own_visible_to_clients, g.own_visible_to_clients, false) END"
)
_PARENT_STATUS: Final = (
    f"CASE WHEN p.parent_id IS NULL THEN p.status ELSE {_most_removed('p.status', 'g.status')} END"
)
_TITLE: Final = collapse_sql("r.stripped")
_INSERT: Final = f"""
WITH src AS MATERIALIZED (
    SELECT r.recording_id, r.kind, r.project_id, r.parent_id, r.parent_kind, r.creator_id,
           r.status,
           CASE WHEN r.parent_id IS NULL THEN r.status
                ELSE {_most_removed("r.status", _PARENT_STATUS)} END AS effective_status,
           r.own_visible_to_clients,
           CASE WHEN r.parent_id IS NULL THEN coalesce(r.own_visible_to_clients, false)
                ELSE coalesce(r.own_visible_to_clients, {_PARENT_VISIBLE}) END
               AS visible_to_clients,
           CASE WHEN r.kind <> 'comment' THEN r.title
                WHEN t.recording_id IS NOT NULL THEN t.title
                ELSE coalesce(rtrim(left({_TITLE}, {TITLE_LENGTH}), ' '), '') END AS title,
           r.content, r.category, r.created_at, r.updated_at, r.seq, r.version, r.completed,
           r.completed_at, r.completer_id, r.starts_on, r.due_on, r.assignee_ids,
           r.responsible_id, r.position, coalesce(n.active, 0) AS comments_count,
           '[]'::jsonb AS attachments, NULL::text AS folder, NULL::text AS file_sha256,
           NULL::bigint AS file_size, NULL::text AS content_type, NULL::text AS file_name,
           0 AS versions_count, r.due_soon_alerted_on, r.overdue_alerted_on,
           NULL::text AS link, NULL::text AS feed_id, NULL::timestamptz AS published_at,
           r.parent_id IS NOT NULL
             AND (p.recording_id IS NULL OR f.recording_id IS NULL
                  OR (f.tx_id, f.seq) > (r.tx_id, r.seq)
                  OR p.kind = 'comment' OR p.kind IS DISTINCT FROM r.parent_kind) AS odd
    FROM _bulk_rows r
    LEFT JOIN _bulk_titles t ON t.recording_id = r.recording_id
    LEFT JOIN _bulk_rows p ON p.recording_id = r.parent_id
    LEFT JOIN _bulk_rows g ON g.recording_id = p.parent_id
    LEFT JOIN _bulk_rows f ON f.recording_id = r.first_parent_id
    LEFT JOIN (
        SELECT parent_id, count(*)::integer AS active FROM _bulk_rows
        WHERE kind = 'comment' AND status = 'active' GROUP BY parent_id
    ) n ON n.parent_id = r.recording_id
),
inserted AS (
    INSERT INTO recordings ({", ".join(COLUMNS)}) SELECT {", ".join(COLUMNS)} FROM src
)
SELECT count(*) FILTER (WHERE odd) > 0 FROM src
"""
# The last change of each (recording, person) wins. Most recordings have no subscription
# events at all, and their subscribers are their creation's (which the domain lists once
# each: a repeated one fails the primary key, and the bulk fill declines).
_SUBSCRIPTIONS: Final = f"""
WITH changed AS (
    SELECT DISTINCT {_RECORDING_ID} AS recording_id FROM {{log}} e
    WHERE e.stream_id ^@ '{RECORDING}' AND e.event_type IN ('SubscriberAdded', 'SubscriberRemoved')
),
created AS (
    SELECT {_RECORDING_ID} AS recording_id, s.person_id, e.tx_id, e.position
    FROM {{log}} e, jsonb_array_elements_text(e.data->'subscriber_ids') AS s(person_id)
    WHERE e.stream_id ^@ '{RECORDING}' AND e.event_type IN {CREATIONS}
)
INSERT INTO subscriptions (recording_id, person_id)
SELECT recording_id, person_id FROM created
WHERE recording_id NOT IN (SELECT recording_id FROM changed)
UNION ALL
SELECT recording_id, person_id FROM (
    SELECT DISTINCT ON (recording_id, person_id) recording_id, person_id, subscribed
    FROM (
        SELECT recording_id, person_id, true AS subscribed, tx_id, position FROM created
        WHERE recording_id IN (SELECT recording_id FROM changed)
        UNION ALL
        SELECT {_RECORDING_ID}, e.data->>'person_id', e.event_type = 'SubscriberAdded',
               e.tx_id, e.position
        FROM {{log}} e
        WHERE e.stream_id ^@ '{RECORDING}'
          AND e.event_type IN ('SubscriberAdded', 'SubscriberRemoved')
    ) changes
    ORDER BY recording_id, person_id, tx_id DESC, position DESC
) last
WHERE subscribed
"""
_MOVES: Final = f"""
SELECT {_RECORDING_ID} AS recording_id, e.event_type = 'TodoMoved' AS moved,
       coalesce(e.data->>'to_todolist_id', e.data->>'todolist_id') AS list_id,
       e.data->>'from_todolist_id' AS from_id, (e.data->>'position')::integer AS position
FROM {{log}} e
WHERE e.stream_id ^@ '{RECORDING}' AND e.event_type IN ('TodoAdded', 'TodoMoved')
ORDER BY e.tx_id, e.position
"""


async def bulk_fill(conn: asyncpg.Connection, log: str) -> bool:
    """Fill the (empty) ``recordings`` and ``subscriptions`` tables of the current schema
    (``upload_versions`` stays empty: logs naming files are declined, see bulk.FILES)
    from ``log``; False (rows left to roll back) if the log holds what this does not model."""
    if not await plain_log(conn, log, (RECORDING,), ODD_CREATIONS):
        return False
    await conn.execute("SET LOCAL work_mem = '256MB'")  # JIT: off per session (lane.py)
    positions = _positions(await conn.fetch(_MOVES.replace("{log}", log)))
    if positions is None:
        return False
    await conn.execute(
        "CREATE TEMPORARY TABLE _bulk_positions "
        "(recording_id text, parent_id text, position integer) ON COMMIT DROP"
    )
    await conn.copy_records_to_table("_bulk_positions", records=positions)
    await conn.execute(_BASE.replace("{log}", log))
    await conn.execute(_EVENTS.replace("{log}", log))
    if await conn.fetchval(_ODD_EDITS):
        return False
    await conn.execute(_ROWS)
    unsure = await conn.fetch(
        "SELECT recording_id, content FROM _bulk_rows WHERE kind = 'comment' "
        "AND NOT coalesce(strpos(content, '&') = 0 AND strpos(stripped, '<') = 0, false)"
    )
    await conn.execute(
        "CREATE TEMPORARY TABLE _bulk_titles (recording_id text, title text) ON COMMIT DROP"
    )
    await conn.copy_records_to_table(
        "_bulk_titles", records=[(r["recording_id"], summary(r["content"])) for r in unsure]
    )
    # Hash joins: the planner has no statistics on the temporary tables and would sort them
    # all for merge joins.
    await conn.execute("SET LOCAL enable_mergejoin = off")
    try:
        async with indexes_deferred(conn, ("recordings", "subscriptions")):
            if await conn.fetchval(_INSERT):
                return False
            await conn.execute(_SUBSCRIPTIONS.replace("{log}", log))
    except asyncpg.UniqueViolationError:
        return False
    return True


def _positions(rows: list[asyncpg.Record]) -> list[tuple[str, str, int]] | None:
    """Every to-do's list and 1-based place in it after the additions and moves ``rows``
    (log order), as the incremental path's ``_move`` and ``settle`` leave them; None for a
    move of something that is not a to-do, or from another list than the one it is in (the
    incremental path would then not renumber the list it leaves)."""
    orders: dict[str, list[str]] = {}
    parent: dict[str, str] = {}
    for recording_id, moved, list_id, from_id, position in rows:
        if not moved:
            orders.setdefault(list_id, []).append(recording_id)
            parent[recording_id] = list_id
            continue
        source_id = parent.get(recording_id)
        if source_id is None or source_id != from_id:
            return None
        source = orders[source_id]
        source.remove(recording_id)
        target = orders.setdefault(list_id, [])
        # Clamped as in _Batch._move.
        target.insert(min(max(position, 1), len(target) + 1) - 1, recording_id)
        parent[recording_id] = list_id
    out: list[tuple[str, str, int]] = []
    for list_id, order in orders.items():
        out.extend((todo_id, list_id, place) for place, todo_id in enumerate(order, start=1))
    return out

"""The recordings read model: messages, comments, to-do lists, to-dos, milestones, uploads.

The tables and what their columns hold: see recordings_tables.py.

**Batches.** A batch is applied in memory, with a few queries per batch rather than per
event: one reads the recordings of the batch, their parents and the whole to-do order of the
lists a to-do moves in or out of; one the last position of lists that only get new to-dos; and,
when a visibility, status or list changed, up to two more read the descendants (a list's
to-dos and comments, then their comments). The events are folded over those rows in log
order, positions and inherited values are settled once, and the rows are written back with
``COPY`` (new rows) and one ``UPDATE`` (changed rows). Inherited values depend only on the
final state of the lineage, which is why settling them once per batch gives the same rows as
settling them per event, however the log is split into batches.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any, Final

import asyncpg
import msgspec

from ..events.alerts import MilestoneDueSoon, MilestoneOverdue, TodoDueSoon, TodoOverdue
from ..events.base import FieldChange, RecordedEvent
from ..events.recordings import (
    ClientVisibilityChanged,
    CommentAdded,
    CommentEdited,
    ExternalItemPosted,
    MessageEdited,
    MessagePosted,
    MilestoneCompleted,
    MilestoneCreated,
    MilestoneEdited,
    MilestoneReopened,
    RecordingStatusChanged,
    StoredFile,
    SubscriberAdded,
    SubscriberRemoved,
    TodoAdded,
    TodoCompleted,
    TodoEdited,
    TodolistCreated,
    TodolistEdited,
    TodoMoved,
    TodoReopened,
    UploadCreated,
    UploadEdited,
    UploadVersionAdded,
)
from ..events.streams import RECORDING
from . import recordings_bulk
from .recordings_tables import COLUMNS, DDL, summary

_SELECT = f"SELECT {', '.join(COLUMNS)} FROM recordings"
_LOAD = f"""
{_SELECT} WHERE recording_id = ANY($1::text[])
UNION ALL
{_SELECT} WHERE recording_id IN (
    SELECT parent_id FROM recordings WHERE recording_id = ANY($1::text[]) AND parent_id IS NOT NULL)
UNION ALL
{_SELECT} WHERE parent_id = ANY($2::text[]) AND kind = 'todo'
"""
_CHILDREN = f"{_SELECT} WHERE parent_id = ANY($1::text[])"
# The last position of each list, one index probe per list (a max() per list, not one
# GROUP BY over every to-do of the lists: that read whole lists, ~5 ms for one of 3,000).
_ENDS = (
    "SELECT l.parent_id, (SELECT max(r.position) FROM recordings r "
    "WHERE r.parent_id = l.parent_id AND r.kind = 'todo') AS last "
    "FROM unnest($1::text[]) AS l(parent_id)"
)
_UPSERT = (
    f"INSERT INTO recordings ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(COLUMNS) + 1))}) "
    "ON CONFLICT (recording_id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS[1:])
)
_CHANGES_TABLE = (
    "CREATE TEMPORARY TABLE _recording_changes (LIKE recordings INCLUDING DEFAULTS) ON COMMIT DROP"
)
_UPDATE_FROM_CHANGES = (
    "UPDATE recordings r SET "
    + ", ".join(f"{c} = u.{c}" for c in COLUMNS[1:])
    + " FROM _recording_changes u WHERE r.recording_id = u.recording_id"
)
# Up to this many changed rows, one statement per row costs less than a temporary table.
_FEW: Final = 20
_values = operator.itemgetter(*COLUMNS)
_STATUS_RANK: Final = {"active": 0, "archived": 1, "trashed": 2}
_TOP_LEVEL: Final = frozenset({"message", "todolist", "milestone"})

# A field of an edit event, by kind, to its column; fields not listed keep their name.
_FIELD_COLUMN: Final = {
    "subject": "title",
    "body": "content",
    "name": "title",
    "description": "content",
    "notes": "content",
}
_DATE_COLUMNS: Final = frozenset({"starts_on", "due_on"})
_CREATED = (
    MessagePosted,
    CommentAdded,
    TodolistCreated,
    TodoAdded,
    MilestoneCreated,
    UploadCreated,
    ExternalItemPosted,
)
_VERSION_COLUMNS: Final = (
    "recording_id",
    "n",
    "sha256",
    "size",
    "content_type",
    "name",
    "created_by",
    "created_at",
)
_json = msgspec.json.encode

Row = dict[str, Any]


class Recordings:
    """Projection ``recordings``: tables ``recordings``, ``upload_versions`` and
    ``subscriptions``."""

    name = "recordings"
    # 2: no index on subscriptions (person_id); nothing looked subscriptions up by person.
    # 3: uploads (their columns and upload_versions) and attachments.
    # 4: due_soon_alerted_on, overdue_alerted_on and the recordings_alerts index (alerts, #17).
    # 5: external items (#19): columns link, feed_id, published_at (category: the feed's name).
    version = 5
    tables: Sequence[str] = ("recordings", "upload_versions", "subscriptions")
    stream_prefixes = (RECORDING,)

    def ddl(self) -> str:
        return DDL

    async def bulk_fill(self, conn: asyncpg.Connection, log: str) -> bool:
        """The whole read model from ``log`` in SQL (see recordings_bulk.py and bulk.py)."""
        return await recordings_bulk.bulk_fill(conn, log)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        mine = [r for r in events if r.stream_id.startswith(RECORDING)]
        if not mine:
            return
        # A rebuild fills tables that have no statistics until autovacuum gets to them; the
        # planner then takes sequential scans for look-ups by parent, and every batch costs
        # as much as the whole table. Every statement here is an index look-up by design, so
        # sequential scans are turned off until the end of the transaction, which belongs to
        # this projection alone (the engine's rule: one projection per transaction).
        # Parallel workers too: their start-up costs more than these small look-ups. (Plans
        # that must still scan something, a temporary table, then cost 10^10, which would
        # make PostgreSQL JIT-compile them: the store's sessions have JIT off for that, see
        # lane.SESSION_SETUP.) Generic plans, as these look-ups by arrays of ids are index look-ups whatever the
        # ids: PostgreSQL otherwise kept planning them afresh on every batch, the custom plan's
        # estimate (which sees the arrays) always beating the generic one's; the planning was
        # two thirds of their cost (the batch's load: 370 -> 120 µs of the server's CPU).
        await conn.execute(
            "SET LOCAL enable_seqscan = off; SET LOCAL max_parallel_workers_per_gather = 0;"
            " SET LOCAL plan_cache_mode = force_generic_plan"
        )
        batch = _Batch()
        await batch.load(conn, mine)
        for recorded in mine:
            batch.apply(recorded)
        await batch.save(conn)


class _Batch:
    """The rows one batch touches, in memory, and what changes in them."""

    def __init__(self) -> None:
        self.rows: dict[str, Row] = {}
        self.loaded: dict[str, tuple[Any, ...]] = {}
        # Ids of recordings with an event in the batch (their parents are loaded).
        self.touched: set[str] = set()
        # The whole to-do order of each list a to-do moves in or out of in the batch.
        self.orders: dict[str, list[str]] = {}
        # The last position of the other lists that get to-dos (no need to read their order).
        self.ends: dict[str, int] = {}
        # Last subscription change per (recording, person): True = subscribed.
        self.subscriptions: dict[tuple[str, str], bool] = {}
        # Upload versions added in the batch (rows of upload_versions).
        self.versions: list[tuple[Any, ...]] = []

    async def load(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        lists: set[str] = set()
        growing: set[str] = set()
        roots: set[str] = set()
        for recorded in events:
            recording_id = recorded.stream_id[len(RECORDING) :]
            self.touched.add(recording_id)
            match recorded.event:
                case CommentAdded(parent_id=parent_id):
                    self.touched.add(parent_id)
                case TodoAdded(todolist_id=list_id):
                    self.touched.add(list_id)
                    growing.add(list_id)
                case TodoMoved(from_todolist_id=from_id, to_todolist_id=to_id):
                    self.touched |= {from_id, to_id}
                    lists |= {from_id, to_id}
                    roots.add(recording_id)
                case ClientVisibilityChanged() | RecordingStatusChanged():
                    roots.add(recording_id)
        self._keep(await conn.fetch(_LOAD, list(self.touched), list(lists)))
        # Descendants of what changed visibility, status or list: two levels at most (a
        # list's to-dos and comments, then the to-dos' comments; comments have none).
        if roots:
            children = await conn.fetch(_CHILDREN, list(roots))
            self._keep(children)
            todos = [r["recording_id"] for r in children if r["kind"] == "todo"]
            if todos:
                self._keep(await conn.fetch(_CHILDREN, todos))
        growing -= lists
        if growing:
            ends = await conn.fetch(_ENDS, list(growing))
            self.ends = {r["parent_id"]: r["last"] or 0 for r in ends}
        members: dict[str, list[Row]] = {list_id: [] for list_id in lists}
        for row in self.rows.values():
            if row["kind"] == "todo" and row["parent_id"] in members:
                members[row["parent_id"]].append(row)
        for list_id, in_list in members.items():
            in_list.sort(key=lambda r: (r["position"] or 0, r["seq"]))
            self.orders[list_id] = [r["recording_id"] for r in in_list]

    def _keep(self, records: Iterable[asyncpg.Record]) -> None:
        for record in records:
            recording_id = record["recording_id"]
            if recording_id not in self.rows:
                # The queries select COLUMNS in order, so the record is the row's snapshot.
                self.rows[recording_id] = dict(zip(COLUMNS, record, strict=True))
                self.loaded[recording_id] = tuple(record)

    def apply(self, recorded: RecordedEvent) -> None:
        """Fold one event into the rows (log order)."""
        event = recorded.event
        recording_id = recorded.stream_id[len(RECORDING) :]
        if isinstance(event, _CREATED):
            self._create(recorded, recording_id)
            return
        row = self.rows.get(recording_id)
        if row is None:
            # No creation event in the read model: a damaged log; nothing to attach to.
            return
        row["version"] = recorded.stream_version
        match event:
            case (
                MessageEdited(at=at, changes=changes)
                | CommentEdited(at=at, changes=changes)
                | TodolistEdited(at=at, changes=changes)
                | TodoEdited(at=at, changes=changes)
                | MilestoneEdited(at=at, changes=changes)
                | UploadEdited(at=at, changes=changes)
            ):
                _edit(row, changes)
                row["updated_at"] = at
            case (
                TodoCompleted(at=at, completer_id=who) | MilestoneCompleted(at=at, completer_id=who)
            ):
                row.update(completed=True, completed_at=at, completer_id=who, updated_at=at)
            case TodoReopened(at=at) | MilestoneReopened(at=at):
                row.update(completed=False, completed_at=None, completer_id=None, updated_at=at)
            case TodoMoved(at=at, to_todolist_id=to_id, position=position):
                self._move(row, to_id, position)
                row["updated_at"] = at
            case UploadVersionAdded(at=at, adder_id=who, n=n, file=file):
                self._version(row, n, file, who, at)
                row["updated_at"] = at
            case RecordingStatusChanged(at=at, after=after):
                self._count_comment(row, after)
                row["status"] = after
                row["updated_at"] = at
            case ClientVisibilityChanged(at=at, after=after):
                row["own_visible_to_clients"] = after
                row["updated_at"] = at
            case SubscriberAdded(person_id=person_id):
                self.subscriptions[(recording_id, person_id)] = True
            case SubscriberRemoved(person_id=person_id):
                self.subscriptions[(recording_id, person_id)] = False
            # Not updated_at: an alert is Cairn's, not a change of the recording.
            case MilestoneDueSoon(due_on=due_on) | TodoDueSoon(due_on=due_on):
                row["due_soon_alerted_on"] = due_on
            case MilestoneOverdue(due_on=due_on) | TodoOverdue(due_on=due_on):
                row["overdue_alerted_on"] = due_on
            case _:
                pass

    def _create(self, recorded: RecordedEvent, recording_id: str) -> None:
        e = recorded.event
        assert isinstance(e, _CREATED)
        row: Row = dict.fromkeys(COLUMNS)
        row.update(
            recording_id=recording_id,
            project_id=e.project_id,
            creator_id=e.creator_id,
            status="active",
            effective_status="active",
            created_at=e.at,
            updated_at=e.at,
            seq=recorded.position,
            version=recorded.stream_version,
            completed=False,
            assignee_ids=[],
            comments_count=0,
            attachments="[]",
            versions_count=0,
        )
        match e:
            case MessagePosted():
                row.update(kind="message", title=e.subject, content=e.body, category=e.category)
                row["own_visible_to_clients"] = e.visible_to_clients
                row["attachments"] = _json(e.attachments).decode()
            case CommentAdded():
                row.update(kind="comment", parent_id=e.parent_id, parent_kind=e.parent_kind)
                row.update(title=summary(e.content), content=e.content)
                row["attachments"] = _json(e.attachments).decode()
                parent = self.rows.get(e.parent_id)
                if parent is not None:
                    parent["comments_count"] += 1
            case TodolistCreated():
                row.update(kind="todolist", title=e.name, content=e.description)
                row["own_visible_to_clients"] = e.visible_to_clients
            case TodoAdded():
                row.update(kind="todo", parent_id=e.todolist_id, parent_kind="todolist")
                row.update(title=e.content, content=e.notes, assignee_ids=list(e.assignee_ids))
                row.update(starts_on=e.starts_on, due_on=e.due_on)
                if e.todolist_id in self.ends:
                    self.ends[e.todolist_id] += 1
                    row["position"] = self.ends[e.todolist_id]
                else:
                    self.orders.setdefault(e.todolist_id, []).append(recording_id)
            case MilestoneCreated():
                row.update(kind="milestone", title=e.title, content=e.notes, due_on=e.due_on)
                row["responsible_id"] = e.responsible_id
                row["own_visible_to_clients"] = e.visible_to_clients
            case UploadCreated():
                row.update(kind="upload", content=e.description, folder=e.folder)
                row["own_visible_to_clients"] = e.visible_to_clients
                self._version(row, 1, e.file, e.creator_id, e.at)
            case ExternalItemPosted():
                row.update(kind="external_item", title=e.title, content=e.summary)
                row.update(category=e.feed_title, link=e.link, feed_id=e.feed_id)
                row.update(published_at=e.published_at)
                row["own_visible_to_clients"] = e.visible_to_clients
        row["visible_to_clients"] = bool(row["own_visible_to_clients"])
        self.rows[recording_id] = row
        for person_id in e.subscriber_ids:
            self.subscriptions[(recording_id, person_id)] = True

    def _version(self, row: Row, n: int, file: StoredFile, who: str, at: datetime) -> None:
        row.update(title=file.name, file_sha256=file.sha256, file_size=file.size)
        row.update(content_type=file.content_type, file_name=file.name, versions_count=n)
        version = (file.sha256, file.size, file.content_type, file.name, who, at)
        self.versions.append((row["recording_id"], n, *version))

    def _move(self, row: Row, to_id: str, position: int) -> None:
        recording_id = row["recording_id"]
        source = self.orders.setdefault(row["parent_id"], [])
        if recording_id in source:
            source.remove(recording_id)
        target = self.orders.setdefault(to_id, [])
        # Clamped, so an out-of-range position (never decided, but possible in a log written
        # by other code) still gives a dense 1..n order.
        target.insert(min(max(position, 1), len(target) + 1) - 1, recording_id)
        row["parent_id"] = to_id

    def _count_comment(self, row: Row, after: str) -> None:
        if row["kind"] != "comment" or (row["status"] == "active") == (after == "active"):
            return
        parent = self.rows.get(row["parent_id"])
        if parent is not None:
            parent["comments_count"] += 1 if after == "active" else -1

    def settle(self) -> None:
        """Renumber the changed orders and resolve inherited visibility and status."""
        for list_id, order in self.orders.items():
            for place, todo_id in enumerate(order, start=1):
                todo = self.rows.get(todo_id)
                if todo is not None and todo["parent_id"] == list_id:
                    todo["position"] = place
        # Parents before children, so a child reads its parent's settled values.
        for row in sorted(self.rows.values(), key=_depth):
            parent_id = row["parent_id"]
            if parent_id is None:
                row["visible_to_clients"] = bool(row["own_visible_to_clients"])
                row["effective_status"] = row["status"]
                continue
            parent = self.rows.get(parent_id)
            if parent is None:
                # Not loaded, so nothing above this row changed in the batch (and this row's
                # own status did not either: a row with an event has its parent loaded).
                continue
            own = row["own_visible_to_clients"]
            row["visible_to_clients"] = parent["visible_to_clients"] if own is None else own
            row["effective_status"] = max(
                row["status"], parent["effective_status"], key=_STATUS_RANK.__getitem__
            )

    async def save(self, conn: asyncpg.Connection) -> None:
        self.settle()
        created: list[tuple[Any, ...]] = []
        changed: list[tuple[Any, ...]] = []
        for recording_id, row in self.rows.items():
            values = _values(row)
            before = self.loaded.get(recording_id)
            if before is None:
                created.append(values)
            elif before != values:
                changed.append(values)
        # COPY for new rows and one UPDATE from a COPY-filled temporary table for changed
        # ones: a rebuild writes most rows several times, and row-by-row statements were
        # where a batch spent most of its time.
        if created:
            await conn.copy_records_to_table("recordings", records=created, columns=COLUMNS)
        if self.versions:
            await conn.copy_records_to_table(
                "upload_versions", records=self.versions, columns=_VERSION_COLUMNS
            )
        if len(changed) > _FEW:
            await conn.execute(_CHANGES_TABLE)
            await conn.copy_records_to_table("_recording_changes", records=changed, columns=COLUMNS)
            await conn.execute(_UPDATE_FROM_CHANGES)
        elif changed:
            await conn.executemany(_UPSERT, changed)
        fresh = [k for k, on in self.subscriptions.items() if on and k[0] not in self.loaded]
        added = [k for k, on in self.subscriptions.items() if on and k[0] in self.loaded]
        removed = [key for key, on in self.subscriptions.items() if not on]
        if fresh:
            # Recordings created in this batch have no subscription rows yet: COPY them.
            await conn.copy_records_to_table(
                "subscriptions", records=fresh, columns=("recording_id", "person_id")
            )
        if added:
            await conn.execute(
                "INSERT INTO subscriptions (recording_id, person_id) "
                "SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
                [r for r, _ in added],
                [p for _, p in added],
            )
        if removed:
            await conn.execute(
                "DELETE FROM subscriptions s USING unnest($1::text[], $2::text[]) AS d(r, p) "
                "WHERE s.recording_id = d.r AND s.person_id = d.p",
                [r for r, _ in removed],
                [p for _, p in removed],
            )


def _depth(row: Row) -> int:
    if row["kind"] in _TOP_LEVEL:
        return 0
    if row["kind"] == "comment" and row["parent_kind"] == "todo":
        return 2
    return 1


def _edit(row: Row, changes: Iterable[FieldChange]) -> None:
    for change in changes:
        field = change.field
        if field == "content" and row["kind"] == "comment":
            row["content"] = change.after
            row["title"] = summary(change.after)
            continue
        column = "title" if field == "content" else _FIELD_COLUMN.get(field, field)
        if column not in row:
            continue
        value = change.after
        if column in _DATE_COLUMNS:
            value = date.fromisoformat(value) if value else None
        elif column == "assignee_ids":
            value = list(value or ())
        elif column == "attachments":
            value = _json(value or []).decode()
        row[column] = value

"""The recordings read model: what it keeps, and that it keeps the same rows however the log
is split into batches (rebuild equality)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from service.events.base import Event, FieldChange
from service.events.recordings import (
    ClientVisibilityChanged,
    CommentAdded,
    CommentEdited,
    MessagePosted,
    MilestoneCompleted,
    MilestoneCreated,
    MilestoneEdited,
    RecordingStatusChanged,
    SubscriberAdded,
    SubscriberRemoved,
    TodoAdded,
    TodoCompleted,
    TodoEdited,
    TodolistCreated,
    TodoMoved,
)
from service.events.store import ANY, EventStore
from service.projections.engine import ProjectionEngine
from service.projections.recordings import Recordings

P = "prj_1"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Log:
    """Appends recording events with a clock that ticks a minute per event."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.minutes = 0

    @property
    def at(self) -> datetime:
        self.minutes += 1
        return T0 + timedelta(minutes=self.minutes)

    async def __call__(self, recording_id: str, *events: Event) -> None:
        await self.store.append(f"recording-{recording_id}", events, ANY, project_id=P)

    async def todolist(self, rid: str, visible: bool) -> None:
        await self(
            rid,
            TodolistCreated(
                recording_id=rid,
                project_id=P,
                creator_id="per_a",
                at=self.at,
                name=rid.upper(),
                description=None,
                visible_to_clients=visible,
                subscriber_ids=("per_a",),
            ),
        )

    async def todo(self, rid: str, list_id: str) -> None:
        await self(
            rid,
            TodoAdded(
                recording_id=rid,
                project_id=P,
                creator_id="per_a",
                at=self.at,
                todolist_id=list_id,
                content=f"do {rid}",
                notes=None,
                assignee_ids=(),
                starts_on=None,
                due_on=None,
                subscriber_ids=("per_a",),
            ),
        )

    async def comment(self, rid: str, parent_id: str, parent_kind: Any, content: str) -> None:
        await self(
            rid,
            CommentAdded(
                recording_id=rid,
                project_id=P,
                creator_id="per_b",
                at=self.at,
                parent_id=parent_id,
                parent_kind=parent_kind,
                content=content,
                subscriber_ids=("per_b",),
            ),
        )

    async def move(self, rid: str, from_id: str, to_id: str, position: int) -> None:
        await self(
            rid,
            TodoMoved(
                at=self.at, from_todolist_id=from_id, to_todolist_id=to_id, position=position
            ),
        )

    async def status(self, rid: str, before: Any, after: Any) -> None:
        await self(rid, RecordingStatusChanged(at=self.at, before=before, after=after))


async def _scenario(log: Log) -> None:
    await log.todolist("l1", visible=False)
    await log.todolist("l2", visible=True)
    for rid in ("a", "b", "c", "d"):
        await log.todo(rid, "l1")
    await log.todo("x", "l2")
    await log(
        "m",
        MessagePosted(
            recording_id="m",
            project_id=P,
            creator_id="per_a",
            at=log.at,
            subject="Hello",
            body="<p>Hi</p>",
            category=None,
            visible_to_clients=True,
            subscriber_ids=("per_a", "per_b"),
        ),
    )
    await log(
        "ms",
        MilestoneCreated(
            recording_id="ms",
            project_id=P,
            creator_id="per_a",
            at=log.at,
            title="Beta",
            due_on=date(2026, 2, 1),
            responsible_id="per_b",
            notes=None,
            visible_to_clients=False,
            subscriber_ids=("per_a", "per_b"),
        ),
    )
    await log.comment("cb", "b", "todo", "<p>On <b>b</b> &amp; more</p>")
    await log.comment("cm", "m", "message", "<p>" + "word " * 40 + "</p>")
    await log.comment("cm2", "m", "message", "<p>second</p>")
    await log.comment("cl", "l1", "todolist", "<p>on the list</p>")
    await log.move("d", "l1", "l1", 1)  # d a b c
    await log.move("b", "l1", "l2", 1)  # l1: d a c; l2: b x
    await log.move("x", "l2", "l2", 9)  # out of range: clamped to the end
    await log.status("l1", "active", "trashed")
    await log("m", ClientVisibilityChanged(at=log.at, before=True, after=False))
    await log.status("cm2", "active", "trashed")
    await log(
        "a",
        TodoEdited(
            at=log.at,
            changes=(
                FieldChange(field="assignee_ids", before=[], after=["per_b"]),
                FieldChange(field="due_on", before=None, after="2026-03-01"),
                FieldChange(field="content", before="do a", after="do A"),
            ),
        ),
        SubscriberAdded(at=log.at, person_id="per_b"),
    )
    await log("a", TodoCompleted(at=log.at, completer_id="per_b"))
    await log(
        "cb",
        CommentEdited(
            at=log.at, changes=(FieldChange(field="content", before="", after="<p>edited</p>"),)
        ),
    )
    await log(
        "ms",
        MilestoneEdited(
            at=log.at,
            changes=(FieldChange(field="due_on", before="2026-02-01", after="2026-02-15"),),
        ),
        MilestoneCompleted(at=log.at, completer_id="per_a"),
    )
    await log("m", SubscriberRemoved(at=log.at, person_id="per_b"))
    await log(
        "m",
        SubscriberAdded(at=log.at, person_id="per_c"),
        SubscriberRemoved(at=log.at, person_id="per_c"),
    )


async def _rows(
    store: EventStore, schema: str
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    recordings = await store.pool.fetch(f"SELECT * FROM {schema}.recordings ORDER BY recording_id")
    subscriptions = await store.pool.fetch(
        f"SELECT recording_id, person_id FROM {schema}.subscriptions ORDER BY 1, 2"
    )
    return [dict(r) for r in recordings], [tuple(r) for r in subscriptions]


@pytest.fixture
async def built(store: EventStore) -> ProjectionEngine:
    await _scenario(Log(store))
    engine = ProjectionEngine(store, [Recordings()])
    await engine.prepare()
    while await engine.step("recordings") > 0:
        pass
    return engine


async def test_read_model_keeps_order_visibility_and_counts(
    built: ProjectionEngine, store: EventStore
) -> None:
    """Positions stay dense through moves, visibility and status are inherited down the
    lineage, comment counts follow trashing, and subscriptions follow their events."""
    rows = {r["recording_id"]: r for r in await store.pool.fetch("SELECT * FROM recordings")}
    in_list = sorted(
        (r["parent_id"], r["position"], k) for k, r in rows.items() if r["kind"] == "todo"
    )
    assert in_list == [
        ("l1", 1, "d"),
        ("l1", 2, "a"),
        ("l1", 3, "c"),
        ("l2", 1, "b"),
        ("l2", 2, "x"),
    ]
    # l1 is hidden and trashed: its to-dos and the comment on it inherit both.
    assert (rows["a"]["visible_to_clients"], rows["a"]["effective_status"]) == (False, "trashed")
    assert (rows["a"]["status"], rows["a"]["own_visible_to_clients"]) == ("active", None)
    assert (rows["cl"]["visible_to_clients"], rows["cl"]["effective_status"]) == (False, "trashed")
    # b moved to the visible list, and so did the comment under it.
    assert (rows["b"]["visible_to_clients"], rows["b"]["effective_status"]) == (True, "active")
    assert (rows["cb"]["visible_to_clients"], rows["cb"]["parent_kind"]) == (True, "todo")
    # m was hidden afterwards: its comments follow.
    assert (rows["cm"]["visible_to_clients"], rows["m"]["own_visible_to_clients"]) == (False, False)
    assert rows["m"]["comments_count"] == 1
    assert rows["b"]["comments_count"] == 1
    assert rows["cm"]["title"] == ("word " * 16).strip()
    assert len(rows["cm"]["title"]) <= 80
    assert rows["cb"]["title"] == "edited"
    a = rows["a"]
    assert (a["title"], a["assignee_ids"], a["due_on"], a["completed"]) == (
        "do A",
        ["per_b"],
        date(2026, 3, 1),
        True,
    )
    assert a["completer_id"] == "per_b"
    assert a["completed_at"] == a["updated_at"]
    assert rows["ms"]["due_on"] == date(2026, 2, 15)
    assert rows["ms"]["completed"] is True
    assert rows["a"]["created_at"] < rows["a"]["updated_at"]
    assert rows["a"]["version"] == 4
    subscribers = await store.pool.fetch(
        "SELECT person_id FROM subscriptions WHERE recording_id = 'm' ORDER BY 1"
    )
    assert [r["person_id"] for r in subscribers] == ["per_a"]
    assert (
        await store.pool.fetchval(
            "SELECT count(*) FROM subscriptions WHERE recording_id = 'a' AND person_id = 'per_b'"
        )
        == 1
    )


@pytest.mark.parametrize("batch", [1, 2, 3, 7])
async def test_rebuild_gives_the_same_rows_in_any_batches(
    built: ProjectionEngine, store: EventStore, batch: int
) -> None:
    """Rebuilding with any batch size gives exactly the rows the live follower wrote."""
    live = await _rows(store, "public")
    schema = await built.build_shadow("recordings", batch=batch)
    try:
        assert await _rows(store, schema) == live
    finally:
        await built.drop_shadow(schema)


async def test_bulk_fill_gives_the_same_rows(built: ProjectionEngine, store: EventStore) -> None:
    """The set-based fill gives the live follower's rows, alone or followed by incremental
    batches from any point (entities, moves, inheritance and edits included)."""
    live = await _rows(store, "public")
    head = await store.head()
    cursors = [
        (int(r["tx_id"]), r["position"])
        for r in await store.pool.fetch("SELECT tx_id, position FROM events ORDER BY 1, 2")
    ]
    for bulk_until in (head, cursors[len(cursors) // 2], cursors[5]):
        schema = await built.build_shadow("recordings", until=head, bulk_until=bulk_until, batch=3)
        try:
            assert await _rows(store, schema) == live, bulk_until
        finally:
            await built.drop_shadow(schema)


async def test_a_log_the_bulk_fill_does_not_model_is_rebuilt_event_by_event(
    built: ProjectionEngine, store: EventStore
) -> None:
    """A comment on a comment (refused by the domain, but in the log) makes the bulk fill
    decline; a rebuild then goes event by event and still gives the live rows."""
    await Log(store).comment("cc", "cm", "comment", "<p>on a comment</p>")
    while await built.step("recordings") > 0:
        pass
    live = await _rows(store, "public")
    with pytest.raises(ValueError, match="declined this log"):
        await built.build_shadow("recordings", bulk_until=await store.head())
    await built.rebuild("recordings")
    assert await _rows(store, "public") == live
    schemas = await store.pool.fetch(
        "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'p_recordings_%'"
    )
    assert len(schemas) == 1, "the declined shadow was not dropped"

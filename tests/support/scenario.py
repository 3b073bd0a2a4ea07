"""Scenarios the read-side tests share: people, projects and recordings written through the
real API or the domain, on a live server (``api`` fixture, tests/conftest.py).

* :class:`Scenario`: people and projects over HTTP, recordings through the domain's ``decide``
  functions and the event store, exactly as the write routes do, waiting for the read models
  after each write (time travel, overview, reports).
* :class:`Apollo`: the project the activity and feed tests tell the story of, written over
  HTTP by its own people.
* :func:`person_client`, :func:`post`, :func:`put`: the HTTP steps both are made of.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any, ClassVar

import httpx

from service.domain.access import Viewer
from service.domain.context import Context
from service.domain.messages import PostMessage, decide_post_message
from service.domain.milestones import (
    CompleteMilestone,
    CreateMilestone,
    EditMilestone,
    decide_complete_milestone,
    decide_create_milestone,
    decide_edit_milestone,
)
from service.domain.projects import ProjectState, fold_project
from service.domain.recordings import (
    RecordingState,
    SetClientVisibility,
    SetRecordingStatus,
    decide_set_client_visibility,
    decide_set_recording_status,
    fold_recording,
    visibility_parent_id,
)
from service.domain.snapshot import Replay
from service.domain.todolists import CreateTodolist, decide_create_todolist
from service.domain.todos import (
    AddTodo,
    CompleteTodo,
    MoveTodo,
    decide_add_todo,
    decide_complete_todo,
    decide_move_todo,
)
from service.events.base import Event, Metadata
from service.events.store import NO_STREAM, AppendResult, EventStore
from service.events.streams import project_stream, recording_stream
from service.projections import all_projections
from service.projections.engine import ProjectionEngine

from .api import Api, bearer, new_person
from .servers import FixedClock

# ------------------------------------------------------------------ HTTP steps


async def person_client(
    api: Api, name: str, role: str, **extra: Any
) -> tuple[str, httpx.AsyncClient]:
    """Add a person as the admin and give them a token (:func:`~tests.support.api.new_person`):
    (their id, a client sending it). The caller closes the client."""
    person_id, token = await new_person(api, name, role, **extra)
    client = httpx.AsyncClient(base_url=api.server.base_url, headers=bearer(token), timeout=30)
    return person_id, client


async def post(client: httpx.AsyncClient, path: str, body: Any) -> Any:
    """POST that must succeed (200 or 201); the JSON answer, None for an empty one."""
    r = await client.post(path, json=body)
    assert r.status_code in (200, 201), r.text
    return r.json() if r.content else None


async def put(client: httpx.AsyncClient, path: str, body: Any) -> Any:
    """PUT that must succeed (200 or 201); the JSON answer."""
    r = await client.put(path, json=body)
    assert r.status_code in (200, 201), r.text
    return r.json()


# ------------------------------------------------------------------ Apollo


class Apollo:
    """Project "Apollo" (clients enabled) with a member, Ana, and a client, Cleo. Ana makes a
    list shown to clients ("Launch", with "Ship v1", completed) and one hidden from them
    ("Pricing", with "Set margin"); :meth:`kick_off` adds her message and Cleo's comment.
    Subclasses write the rest of their story after :meth:`build`."""

    STORY: ClassVar[tuple[str, ...]] = (
        "Ana completed “Ship v1”",
        "Ana added “Set margin” to “Pricing”",
        "Ana added “Ship v1” to “Launch”",
        "Ana created the to-do list “Pricing”",
        "Ana created the to-do list “Launch”",
        "Ada Admin added Cleo to “Apollo”",
        "Ada Admin added Ana to “Apollo”",
        "Ada Admin created the project “Apollo”",
    )
    """What :meth:`build` did, newest first, as activity sentences."""
    KICK_OFF: ClassVar[tuple[str, ...]] = (
        "Cleo commented on “Kick-off”",
        "Ana posted the message “Kick-off”",
    )
    """What :meth:`kick_off` did, newest first."""

    def __init__(self) -> None:
        self.clients: list[httpx.AsyncClient] = []

    async def build(self, api: Api) -> Any:
        self.api = api
        self.admin = api.client
        self.ana_id, self.ana = await person_client(api, "Ana", "member")
        self.cleo_id, self.cleo = await person_client(api, "Cleo", "client", company="Acme")
        self.clients += [self.ana, self.cleo]
        project = await post(
            self.admin, "/v1/projects", {"name": "Apollo", "clients_enabled": True}
        )
        self.project_id = pid = project["id"]
        await put(
            self.admin, f"/v1/projects/{pid}/people/{self.ana_id}", {"project_role": "member"}
        )
        await put(
            self.admin, f"/v1/projects/{pid}/people/{self.cleo_id}", {"project_role": "client"}
        )
        self.public = await post(
            self.ana,
            f"/v1/projects/{pid}/todolists",
            {"name": "Launch", "visible_to_clients": True},
        )
        self.secret = await post(
            self.ana,
            f"/v1/projects/{pid}/todolists",
            {"name": "Pricing", "visible_to_clients": False},
        )
        self.ship = await post(
            self.ana, f"/v1/todolists/{self.public['id']}/todos", {"content": "Ship v1"}
        )
        self.margin = await post(
            self.ana, f"/v1/todolists/{self.secret['id']}/todos", {"content": "Set margin"}
        )
        await post(self.ana, f"/v1/todos/{self.ship['id']}/completion", {})
        return self

    async def kick_off(self, body: str) -> None:
        """Ana posts "Kick-off" (shown to clients) with ``body``; Cleo comments "Great!"."""
        self.message = await post(
            self.ana,
            f"/v1/projects/{self.project_id}/messages",
            {"subject": "Kick-off", "body": body, "visible_to_clients": True},
        )
        await post(
            self.cleo, f"/v1/recordings/{self.message['id']}/comments", {"content": "<p>Great!</p>"}
        )

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()


# ------------------------------------------------------------------ through the domain


TODAY = datetime.now(UTC).date()
"""The day these tests were collected. A suite that runs past midnight would see the server's
"today" move under dates computed from this one, so modules that compare dates with it pin
their servers' clock to its noon (:func:`pinned_to_today`)."""


def pinned_to_today() -> dict[str, object]:
    """Live-server settings whose clock says noon (UTC) of :data:`TODAY`, whenever it runs."""
    return {"clock": FixedClock(datetime.combine(TODAY, time(12), UTC))}


@dataclass
class Person:
    id: str
    client: httpx.AsyncClient


class Scenario:
    """Writes a scenario: people and projects over HTTP, recordings through the domain."""

    def __init__(self, api: Api, store: EventStore, engine: ProjectionEngine) -> None:
        self.api = api
        self.store = store
        self.engine = engine
        self.admin = Viewer(person_id=api.admin_id, role="admin")
        self._clients: list[httpx.AsyncClient] = []

    @classmethod
    @asynccontextmanager
    async def open(cls, api: Api) -> AsyncIterator[Scenario]:
        store = await EventStore.open(api.server.database_url, min_size=1, max_size=4)
        scenario = cls(api, store, ProjectionEngine(store, all_projections()))
        try:
            yield scenario
        finally:
            for client in scenario._clients:
                await client.aclose()
            await store.close()

    async def person(self, name: str, role: str, company: str | None = None) -> Person:
        person_id, client = await person_client(self.api, name, role, company=company)
        self._clients.append(client)
        return Person(person_id, client)

    async def project(
        self, name: str, members: Sequence[tuple[Person, str]] = (), clients_enabled: bool = True
    ) -> str:
        created = await self.api.client.post(
            "/v1/projects", json={"name": name, "clients_enabled": clients_enabled}
        )
        assert created.status_code == 201, created.text
        project_id: str = created.json()["id"]
        for person, role in members:
            put = await self.api.client.put(
                f"/v1/projects/{project_id}/people/{person.id}", json={"project_role": role}
            )
            assert put.status_code in (200, 201), put.text
        return project_id

    # ------------------------------------------------------------ recordings

    def _ctx(self) -> Context:
        return Context(actor=self.admin, now=datetime.now(UTC))

    async def _project(self, project_id: str) -> ProjectState:
        events = await self.store.read_stream(project_stream(project_id))
        state = fold_project(e.event for e in events)
        assert state is not None
        return state

    async def _recording(self, recording_id: str) -> tuple[RecordingState, int]:
        events = await self.store.read_stream(recording_stream(recording_id))
        state = fold_recording(e.event for e in events)
        assert state is not None
        return state, len(events)

    async def _lineage(self, recording: RecordingState) -> list[RecordingState]:
        lineage = []
        parent_id = visibility_parent_id(recording)
        while parent_id is not None:
            parent, _ = await self._recording(parent_id)
            lineage.append(parent)
            parent_id = visibility_parent_id(parent)
        return lineage

    async def _append(
        self, recording_id: str, project_id: str, events: list[Event], expected: int
    ) -> AppendResult:
        result = await self.store.append(
            recording_stream(recording_id),
            events,
            expected,
            Metadata(actor=self.admin.person_id),
            project_id=project_id,
        )
        assert await self.engine.wait_for(result.cursor, 10.0)
        return result

    async def _create(
        self, project_id: str, decide: Callable[[ProjectState, str], list[Event]]
    ) -> str:
        recording_id = f"rec_{os.urandom(10).hex()}"
        events = decide(await self._project(project_id), recording_id)
        await self._append(recording_id, project_id, events, NO_STREAM)
        return recording_id

    async def _change(
        self, recording_id: str, decide: Callable[..., list[Event]], *extra: Any
    ) -> None:
        state, version = await self._recording(recording_id)
        project = await self._project(state.project_id)
        events = decide(project, state, *extra)
        if events:
            await self._append(recording_id, state.project_id, events, version)

    async def todolist(self, project_id: str, name: str, *, visible: bool = False) -> str:
        return await self._create(
            project_id,
            lambda p, rid: decide_create_todolist(
                p,
                CreateTodolist(recording_id=rid, name=name, visible_to_clients=visible),
                self._ctx(),
            ),
        )

    async def todo(
        self,
        list_id: str,
        content: str,
        *,
        assignees: Sequence[str] = (),
        due_on: date | None = None,
    ) -> str:
        todolist, _ = await self._recording(list_id)
        cmd = {"content": content, "assignee_ids": tuple(assignees), "due_on": due_on}
        return await self._create(
            todolist.project_id,
            lambda p, rid: decide_add_todo(
                p, todolist, AddTodo(recording_id=rid, **cmd), self._ctx()
            ),
        )

    async def complete(self, todo_id: str) -> None:
        todo, _ = await self._recording(todo_id)
        lineage = await self._lineage(todo)
        await self._change(
            todo_id,
            lambda p, s: decide_complete_todo(p, s, CompleteTodo(), self._ctx(), lineage),
        )

    async def move(self, todo_id: str, position: int, to_list: str | None = None) -> None:
        todo, _ = await self._recording(todo_id)
        lineage = await self._lineage(todo)
        target_id = to_list or todo.todolist_id
        assert target_id is not None
        target, _ = await self._recording(target_id)
        replay = Replay(todo.project_id)
        replay.extend(await self.store.read_all(0, 100_000, project_id=todo.project_id))
        size = len(replay.orders.get(target_id, []))
        cmd = MoveTodo(position=position, todolist_id=to_list)
        await self._change(
            todo_id,
            lambda p, s: decide_move_todo(p, s, target, size, cmd, self._ctx(), lineage),
        )

    async def milestone(
        self, project_id: str, title: str, due_on: date, *, visible: bool = False
    ) -> str:
        return await self._create(
            project_id,
            lambda p, rid: decide_create_milestone(
                p,
                CreateMilestone(
                    recording_id=rid, title=title, due_on=due_on, visible_to_clients=visible
                ),
                self._ctx(),
            ),
        )

    async def reschedule(self, milestone_id: str, due_on: date) -> None:
        await self._change(
            milestone_id,
            lambda p, s: decide_edit_milestone(p, s, EditMilestone(due_on=due_on), self._ctx()),
        )

    async def complete_milestone(self, milestone_id: str) -> None:
        await self._change(
            milestone_id,
            lambda p, s: decide_complete_milestone(p, s, CompleteMilestone(), self._ctx()),
        )

    async def message(self, project_id: str, subject: str, *, visible: bool = False) -> str:
        return await self._create(
            project_id,
            lambda p, rid: decide_post_message(
                p,
                PostMessage(
                    recording_id=rid,
                    subject=subject,
                    body=f"<p>{subject}</p>",
                    visible_to_clients=visible,
                ),
                self._ctx(),
            ),
        )

    async def set_status(self, recording_id: str, status: str) -> None:
        state, _ = await self._recording(recording_id)
        lineage = await self._lineage(state)
        cmd = SetRecordingStatus(status=status)  # type: ignore[arg-type]
        await self._change(
            recording_id,
            lambda p, s: decide_set_recording_status(p, s, cmd, self._ctx(), lineage),
        )

    async def set_visible(self, recording_id: str, visible: bool) -> None:
        cmd = SetClientVisibility(visible_to_clients=visible)
        await self._change(
            recording_id,
            lambda p, s: decide_set_client_visibility(p, s, cmd, self._ctx()),
        )

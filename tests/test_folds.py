"""Folded stream states kept between commands (service/commands/folds.py), on a real PostgreSQL
and, end to end, across two instances of the API on one database."""

from __future__ import annotations

from service.commands.folds import StreamStates
from service.domain.projects import ProjectState, evolve_project, fold_project
from service.events.base import Metadata, RecordedEvent
from service.events.projects import (
    ProjectArchived,
    ProjectCreated,
    ProjectMemberAdded,
    ProjectMemberRemoved,
    ProjectUnarchived,
)
from service.events.store import ANY, EventStore
from service.events.streams import project_stream

from .support.api import Api, bearer, new_person, problem
from .support.servers import another_instance

_META = Metadata(actor="person-admin")


class _CountingStore(EventStore):
    """The real store, noting where each stream read started."""

    reads: list[tuple[str, int]]

    async def read_stream(
        self, stream_id: str, *, from_version: int = 1, limit: int | None = None
    ) -> list[RecordedEvent]:
        self.reads.append((stream_id, from_version))
        return await super().read_stream(stream_id, from_version=from_version, limit=limit)


async def test_a_load_folds_only_the_events_after_what_it_remembers(database_url: str) -> None:
    """The second load of a stream reads from the version after the remembered one, and its
    state equals the fold of the whole stream, also after events written past the cache."""
    store = await _CountingStore.open(database_url, min_size=1, max_size=2)
    assert isinstance(store, _CountingStore)
    store.reads = []
    try:
        stream = project_stream("prj-1")
        await store.append(
            stream,
            [
                ProjectCreated(project_id="prj-1", name="Alpha", description=None,
                               clients_enabled=False),
                ProjectMemberAdded(person_id="ana", project_role="owner"),
            ],
            ANY, _META, project_id="prj-1",
        )  # fmt: skip
        states: StreamStates[ProjectState] = StreamStates(evolve_project)
        version, state = await states.load(store, stream)
        assert version == 2
        assert state is not None
        assert state.members == {"ana": "owner"}

        # Written by "another instance": straight to the store, not through this cache.
        await store.append(
            stream,
            [
                ProjectMemberAdded(person_id="bo", project_role="member"),
                ProjectArchived(),
                ProjectMemberRemoved(person_id="ana"),
            ],
            ANY, _META, project_id="prj-1",
        )  # fmt: skip
        version, state = await states.load(store, stream)
        whole = fold_project(e.event for e in await EventStore.read_stream(store, stream))
        assert version == 5
        assert state == whole
        assert state is not None
        assert state.status == "archived"
        assert state.members == {"bo": "member"}
        # Nothing new: a third load reads from version 6 and finds nothing.
        assert await states.load(store, stream) == (5, whole)
        await store.append(stream, [ProjectUnarchived()], ANY, _META,
                           project_id="prj-1")  # fmt: skip
        version, state = await states.load(store, stream)
        assert version == 6
        assert state is not None
        assert state.status == "active"
        assert store.reads == [(stream, 1), (stream, 3), (stream, 6), (stream, 6)]
        # An empty stream: nothing remembered.
        assert await states.load(store, project_stream("prj-none")) == (0, None)
        assert len(states) == 1
    finally:
        await store.close()


async def test_the_least_recently_loaded_stream_is_forgotten(store: EventStore) -> None:
    for n in range(3):
        await store.append(
            project_stream(f"prj-{n}"),
            [ProjectCreated(project_id=f"prj-{n}", name=f"P{n}", description=None,
                            clients_enabled=False)],
            ANY, _META, project_id=f"prj-{n}",
        )  # fmt: skip
    states: StreamStates[ProjectState] = StreamStates(evolve_project, size=2)
    for n in (0, 1, 0, 2):
        _, state = await states.load(store, project_stream(f"prj-{n}"))
        assert state is not None
        assert state.name == f"P{n}"
    assert len(states) == 2
    assert list(states._states) == [project_stream("prj-0"), project_stream("prj-2")]


async def test_a_project_archived_through_another_instance_refuses_writes_here(
    api: Api,
) -> None:
    """This instance remembers the project (it just wrote to it); another instance archives
    it, removes a member and unarchives it: this one decides on the project as it is now."""
    c = api.client
    bo_id, bo_token = await new_person(api, "Bo")
    project = await c.post("/v1/projects", json={"name": "Shared"})
    assert project.status_code == 201
    pid = project.json()["id"]
    assert (
        await c.put(f"/v1/projects/{pid}/people/{bo_id}", json={"project_role": "member"})
    ).is_success
    posted = await c.post(f"/v1/projects/{pid}/messages", json={"subject": "One", "body": "x"})
    assert posted.status_code == 201
    async with another_instance(api.server.database_url, api.admin_token) as other:
        assert (await other.post(f"/v1/projects/{pid}/archive")).status_code == 200
        problem(
            await c.post(f"/v1/projects/{pid}/messages", json={"subject": "Two", "body": "x"}),
            409,
        )
        assert (await other.post(f"/v1/projects/{pid}/unarchive")).status_code == 200
        again = await c.post(f"/v1/projects/{pid}/messages", json={"subject": "Three", "body": "x"})
        assert again.status_code == 201
        bo_post = await c.post(
            f"/v1/projects/{pid}/messages",
            json={"subject": "Bo's", "body": "x"},
            headers=bearer(bo_token),
        )
        assert bo_post.status_code == 201
        assert (await other.delete(f"/v1/projects/{pid}/people/{bo_id}")).status_code == 204
        problem(
            await c.post(
                f"/v1/projects/{pid}/messages",
                json={"subject": "Bo's again", "body": "x"},
                headers=bearer(bo_token),
            ),
            404,
        )


async def test_project_commands_here_see_membership_changed_through_another_instance(
    api: Api,
) -> None:
    """Project commands decide on the remembered fold too: after another instance took a
    member off, putting them back here adds them (201), not a role change of a member this
    instance last saw."""
    c = api.client
    cy_id, _ = await new_person(api, "Cy")
    pid = (await c.post("/v1/projects", json={"name": "Roles"})).json()["id"]
    added = await c.put(f"/v1/projects/{pid}/people/{cy_id}", json={"project_role": "member"})
    assert added.status_code == 201
    changed = await c.put(f"/v1/projects/{pid}/people/{cy_id}", json={"project_role": "owner"})
    assert changed.status_code == 200
    async with another_instance(api.server.database_url, api.admin_token) as other:
        assert (await other.delete(f"/v1/projects/{pid}/people/{cy_id}")).status_code == 204
    back = await c.put(f"/v1/projects/{pid}/people/{cy_id}", json={"project_role": "member"})
    assert back.status_code == 201
    assert back.json()["project_role"] == "member"

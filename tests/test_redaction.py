"""Redaction: what a viewer may not see is left out or replaced the same way on every channel.

The pure rule (:mod:`service.domain.redaction`) first, then every channel a client reads over
a real server: a to-do moved out of a list hidden from clients, comments under hidden
parents, and an admin who is not on the project acting must leave no trace of the hidden
list, the hidden items or the admin in the bytes the client receives.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import feedparser
import httpx
import msgspec
import pytest

from service.domain.access import ProjectFacts, RecordingFacts, Viewer
from service.domain.redaction import (
    EVERYTHING,
    Sight,
    changes,
    event_data,
    known_people,
    mentions,
    named,
    people_seen,
    sight,
)
from service.events.base import FieldChange
from service.events.projects import ProjectMemberAdded, ProjectMemberRemoved
from service.events.recordings import TodoAdded, TodoEdited, TodoMoved

from .support.api import bearer, new_person, ref
from .support.realtime import GUARD, frame, subscribe, ws
from .support.teams import Team

# ------------------------------------------------------------------ the rule, pure

AT = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
LAUNCH = ProjectFacts(
    project_id="prj_1",
    status="active",
    clients_enabled=True,
    members={"per_owner": "owner", "per_mia": "member", "per_cleo": "client"},
)
OTHER = ProjectFacts(
    project_id="prj_2", status="active", clients_enabled=True, members={"per_bob": "member"}
)
CLEO = Viewer(person_id="per_cleo", role="client")
MIA = Viewer(person_id="per_mia", role="member")


def _list(recording_id: str, visible: bool) -> RecordingFacts:
    return RecordingFacts(
        recording_id=recording_id,
        project_id="prj_1",
        kind="todolist",
        status="active",
        visible_to_clients=visible,
        creator_id="per_owner",
    )


CLIENT_SIGHT = sight(
    CLEO,
    LAUNCH,
    recordings=[_list("rec_shop", True), _list("rec_back", False)],
    people=known_people(CLEO, [LAUNCH]),
)


def test_the_sight_follows_the_access_rules() -> None:
    """A client's sight holds the recordings and people the access rules let them see; a
    member's holds everything."""
    expected = Sight(
        recordings=frozenset({"rec_shop"}),
        people=frozenset({"per_owner", "per_mia", "per_cleo"}),
    )
    assert expected == CLIENT_SIGHT
    staff = sight(MIA, LAUNCH, recordings=[_list("rec_back", False)], people=known_people(MIA, []))
    assert staff == EVERYTHING
    memberships = [("per_mia", [LAUNCH]), ("per_bob", [OTHER]), ("per_adam", [])]
    assert people_seen(CLEO, memberships) == frozenset({"per_mia"})
    assert people_seen(MIA, memberships) is None
    assert known_people(Viewer(person_id="per_x", role="member", active=False), []) == frozenset()


def test_a_hidden_list_is_left_out_of_a_move_and_of_an_addition() -> None:
    """A field or change naming a list the viewer may not see is omitted, nothing else is."""
    moved = TodoMoved(at=AT, from_todolist_id="rec_back", to_todolist_id="rec_shop", position=2)
    assert event_data(CLIENT_SIGHT, moved) == {
        "type": "TodoMoved",
        "at": "2026-05-01T09:00:00Z",
        "to_todolist_id": "rec_shop",
        "position": 2,
    }
    assert event_data(EVERYTHING, moved) == {
        "type": "TodoMoved",
        "at": "2026-05-01T09:00:00Z",
        "from_todolist_id": "rec_back",
        "to_todolist_id": "rec_shop",
        "position": 2,
    }
    move = [
        FieldChange(field="todolist_id", before="rec_back", after="rec_shop"),
        FieldChange(field="position", before=None, after=2),
    ]
    assert changes(CLIENT_SIGHT, move) == move[1:]
    assert changes(EVERYTHING, move) == move
    between_visible = [FieldChange(field="todolist_id", before="rec_shop", after="rec_shop")]
    assert changes(CLIENT_SIGHT, between_visible) == between_visible
    created = [
        FieldChange(field="parent_id", before=None, after="rec_back"),
        FieldChange(field="parent_kind", before=None, after="todolist"),
        FieldChange(field="content", before=None, after="<p>x</p>"),
    ]
    assert changes(CLIENT_SIGHT, created) == created[2:]


def test_people_the_viewer_may_not_know_become_null_and_someone() -> None:
    """A person outside the viewer's projects is named None / "Someone", in fields, in
    lists (which keep their length) and in changes; Cairn is always Cairn's id."""
    added = TodoAdded(
        recording_id="rec_t",
        project_id="prj_1",
        creator_id="per_adam",
        at=AT,
        todolist_id="rec_shop",
        content="Sign",
        notes=None,
        assignee_ids=("per_cleo", "per_adam"),
        starts_on=None,
        due_on=None,
        subscriber_ids=("per_adam", "per_cleo"),
    )
    data = event_data(CLIENT_SIGHT, added)
    assert data is not None
    assert data["creator_id"] is None
    assert data["assignee_ids"] == ["per_cleo", None]
    assert data["subscriber_ids"] == [None, "per_cleo"]
    assert data["todolist_id"] == "rec_shop"
    edited = TodoEdited(
        at=AT,
        changes=(FieldChange(field="assignee_ids", before=["per_adam"], after=["per_mia"]),),
    )
    assert event_data(CLIENT_SIGHT, edited) == {
        "type": "TodoEdited",
        "at": "2026-05-01T09:00:00Z",
        "changes": [{"field": "assignee_ids", "before": [None], "after": ["per_mia"]}],
    }
    assert named(CLIENT_SIGHT, "per_adam", "Adam", "en") == (None, "Someone")
    assert named(CLIENT_SIGHT, "per_mia", "Mia", "en") == ("per_mia", "Mia")
    assert named(CLIENT_SIGHT, "system", None, "en") == ("system", None)
    assert event_data(EVERYTHING, added) == msgspec.to_builtins(added)


def test_an_event_about_a_person_the_viewer_may_not_know_is_left_out() -> None:
    """Membership and subscription events about someone the viewer may not be told about
    are left out whole; about someone they know, they are told."""
    assert event_data(CLIENT_SIGHT, ProjectMemberRemoved(person_id="per_adam")) is None
    joined = ProjectMemberAdded(person_id="per_mia", project_role="member")
    assert event_data(CLIENT_SIGHT, joined) == msgspec.to_builtins(joined)


def test_mentions_name_every_recording_and_person_but_cairn() -> None:
    """What an event names: the recordings of its fields and changes, its people and actor."""
    moved = TodoMoved(at=AT, from_todolist_id="rec_back", to_todolist_id="rec_shop", position=2)
    assert mentions(moved, "system").recordings == {"rec_back", "rec_shop"}
    assert mentions(moved, "system").people == frozenset()
    edited = TodoEdited(
        at=AT,
        changes=(FieldChange(field="assignee_ids", before=["per_adam"], after=["per_mia"]),),
    )
    assert mentions(edited, "per_owner").people == {"per_adam", "per_mia", "per_owner"}


# ------------------------------------------------------------------ over every channel

SOMEONE_NAME = "Adam Outsider"


@dataclass
class Story:
    """What :func:`tell` did, and what a client must and must not find afterwards."""

    adam_id: str = ""
    marker_id: str = ""
    start: int = 0
    secrets: list[str] = field(default_factory=list)
    """Ids and words the client must never receive."""
    seen: list[str] = field(default_factory=list)
    """Ids the client must receive (so that a channel that sends nothing cannot pass)."""
    readable: list[str] = field(default_factory=list)
    """Recordings the client may read, for the channels that read recordings one by one."""
    comment_id: str = ""
    """A comment the client may read (snapshots hold no comments)."""
    told: list[str] = field(default_factory=list)
    """What a client must find in histories: a visible list and a person they know."""


async def _ok(response: httpx.Response) -> Any:
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


async def tell(team: Team) -> Story:
    """(a) A to-do moves from a list hidden from clients into a visible one; (b) comments
    under a hidden message and under a to-do of a hidden list; (c) an admin who is not on the
    project posts, comments, adds and completes a to-do and sets a milestone."""
    c, pid = team.c, team.project_id
    story = Story(start=(await _ok(await c.get("/v1/health")))["head_position"])
    adam_id, adam_token = await new_person(team.api, SOMEONE_NAME, "admin")
    adam = bearer(adam_token)
    story.adam_id = adam_id

    async def todolist(name: str, visible: bool) -> str:
        body = {"name": name, "visible_to_clients": visible}
        return str((await team.post(f"/v1/projects/{pid}/todolists", body))["id"])

    # (a)
    backroom = await todolist("Backroom", False)
    shop = await todolist("Shop window", True)
    moved = (await team.post(f"/v1/todolists/{backroom}/todos", {"content": "Polish"}))["id"]
    await _ok(await c.put(f"/v1/todos/{moved}/position", json={"position": 1, "todolist_id": shop}))
    # (b)
    vault = await todolist("Vault", False)
    buried = (await team.post(f"/v1/todolists/{vault}/todos", {"content": "Buried"}))["id"]
    note = {"content": "<p>whispered note</p>"}
    under_todo = (await team.post(f"/v1/recordings/{buried}/comments", note, team.mia))["id"]
    memo = (await team.message(subject="Memo", visible_to_clients=False))["id"]
    under_memo = (await team.post(f"/v1/recordings/{memo}/comments", note, team.mia))["id"]
    # (c)
    posted = await team.post(
        f"/v1/projects/{pid}/messages",
        {"subject": "Hello from HQ", "body": "<p>Hi</p>", "visible_to_clients": True},
        adam,
    )
    said = await team.post(
        f"/v1/recordings/{posted['id']}/comments", {"content": "<p>Hi!</p>"}, adam
    )
    task = await team.post(
        f"/v1/todolists/{shop}/todos",
        {
            "content": "Sign",
            "assignee_ids": [team.cleo_id, team.mia_id],
            "due_on": (datetime.now(UTC).date() + timedelta(days=3)).isoformat(),
        },
        adam,
    )
    await _ok(await c.post(f"/v1/todos/{task['id']}/completion", headers=adam))
    await _ok(await c.delete(f"/v1/todos/{task['id']}/completion", headers=team.cleo))
    goal = await team.post(
        f"/v1/projects/{pid}/milestones",
        {
            "title": "Go live",
            "due_on": (date.today() + timedelta(days=5)).isoformat(),
            "responsible_id": team.mia_id,
            "visible_to_clients": True,
        },
        adam,
    )
    await _ok(await c.post(f"/v1/milestones/{goal['id']}/completion", headers=adam))
    story.marker_id = (await team.message(subject="Marker", visible_to_clients=True))["id"]
    story.secrets = [backroom, "Backroom", vault, buried, under_todo, memo, under_memo]
    story.secrets += ["whispered", adam_id, SOMEONE_NAME]
    story.readable = [moved, shop, posted["id"], said["id"], task["id"], goal["id"]]
    story.seen = [moved, posted["id"], said["id"], task["id"], goal["id"]]
    story.comment_id = said["id"]
    story.told = [shop, team.mia_id]
    return story


Told = Callable[[], Awaitable[Story]]


async def _history(team: Team, told: Told) -> tuple[Story, bytes]:
    story = await told()
    parts = [await _get(team, f"/v1/recordings/{rid}/events?limit=100") for rid in story.readable]
    return story, b"\n".join(parts)


async def _activity(team: Team, told: Told) -> tuple[Story, bytes]:
    story = await told()
    as2 = {**team.cleo, "Accept": "application/activity+json"}
    parts = []
    for path in ("/v1/activity", f"/v1/projects/{team.project_id}/activity"):
        parts.append(await _get(team, f"{path}?limit=100"))
        parts.append(await _get(team, f"{path}?limit=100", as2))
    parts.append(await _get(team, f"/v1/projects/{team.project_id}/overview"))
    return story, b"\n".join(parts)


async def _feeds(team: Team, told: Told) -> tuple[Story, bytes]:
    story = await told()
    token = (await _ok(await team.c.post("/v1/me/feed_token", headers=team.cleo)))["token"]
    parts = []
    async with httpx.AsyncClient(base_url=team.api.server.base_url, timeout=GUARD) as reader:
        for path in (
            "/feeds/activity.atom",
            "/feeds/activity.rss",
            f"/feeds/projects/{team.project_id}.atom",
        ):
            response = await reader.get(path, params={"token": token})
            assert response.status_code == 200, response.text
            parsed = feedparser.parse(response.content)
            assert not parsed.bozo, parsed.bozo_exception
            assert parsed.entries
            parts.append(response.content)
    return story, b"\n".join(parts)


async def _snapshot(team: Team, told: Told) -> tuple[Story, bytes]:
    story = await told()
    head = (await _ok(await team.c.get("/v1/health")))["head_position"]
    path = f"/v1/projects/{team.project_id}/snapshot?position={head}"
    return story, await _get(team, path)


async def _envelopes(team: Team, told: Told) -> tuple[Story, bytes]:
    story = await told()
    pid = team.project_id
    paths = [f"/v1/recordings/{rid}" for rid in story.readable]
    paths += [f"/v1/recordings/{rid}/comments" for rid in story.readable]
    paths += [f"/v1/recordings/{rid}/subscription" for rid in story.readable]
    paths += [f"/v1/projects/{pid}/{kind}" for kind in ("messages", "todolists", "milestones")]
    paths += ["/v1/my/assignments", "/v1/reports/upcoming?days=30"]
    return story, b"\n".join([await _get(team, p) for p in paths])


async def _frames_until_marker(conn: Any, marker_id: str) -> bytes:
    texts = []
    while True:
        got = await frame(conn)
        texts.append(json.dumps(got))
        if got.get("recording") == marker_id and got.get("kind") == "message_posted":
            return "\n".join(texts).encode()


async def _live(team: Team, told: Told) -> tuple[Story, bytes]:
    async with ws(team.api.server.ws_url, _token(team.cleo)) as conn:
        await subscribe(conn, team.project_id)
        story = await told()
        return story, await _frames_until_marker(conn, story.marker_id)


async def _replay(team: Team, told: Told) -> tuple[Story, bytes]:
    story = await told()
    async with ws(team.api.server.ws_url, _token(team.cleo)) as conn:
        await subscribe(conn, "all", since=story.start)
        return story, await _frames_until_marker(conn, story.marker_id)


def _token(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


async def _get(team: Team, path: str, headers: dict[str, str] | None = None) -> bytes:
    response = await team.c.get(path, headers=headers or team.cleo, timeout=GUARD)
    assert response.status_code == 200, f"{path}: {response.text}"
    return response.content


CHANNELS = {
    "history": _history,
    "activity": _activity,
    "feeds": _feeds,
    "snapshot": _snapshot,
    "envelopes": _envelopes,
    "websocket-live": _live,
    "websocket-replay": _replay,
}


@pytest.mark.parametrize("channel", list(CHANNELS))
async def test_a_client_receives_no_trace_of_hidden_lists_hidden_parents_or_unknown_people(
    team: Team, channel: str
) -> None:
    """Whatever the channel, a client receives neither the id nor the name of a list hidden
    from them (after a to-do moved out of it), nor anything under a hidden parent, nor the id
    or name of an admin who acted without being on the project, while still receiving what
    they may see."""
    story, received = await CHANNELS[channel](team, lambda: tell(team))
    text = received.decode()
    leaked = [secret for secret in story.secrets if secret in text]
    assert leaked == [], f"{channel} leaks {leaked}"
    # Snapshots hold no comments; histories do not repeat their recording's id.
    expected = [r for r in story.seen if channel != "snapshot" or r != story.comment_id]
    if channel == "history":
        expected = story.told
    missing = [rid for rid in expected if rid not in text]
    assert missing == [], f"{channel} lacks {missing}"


async def test_a_history_leaves_out_a_hidden_list_and_names_an_unknown_admin_someone(
    team: Team,
) -> None:
    """In a recording's history a client gets a move out of a hidden list without that list
    and an unknown admin as ``{"id": null, "name": "Someone"}``; a member gets both."""
    story = await tell(team)
    moved, task = story.readable[0], story.readable[4]

    async def history(rid: str, who: dict[str, str]) -> list[dict[str, Any]]:
        return list(json.loads(await _get(team, f"/v1/recordings/{rid}/events", who)))

    added, move = await history(moved, team.cleo)
    assert "todolist_id" not in {c["field"] for c in added["changes"]}
    assert move["kind"] == "todo_moved"
    assert move["changes"] == [{"field": "position", "before": None, "after": 1}]
    added, move = await history(moved, team.mia)
    assert move["changes"][0]["field"] == "todolist_id"
    for who, actor in (
        (team.cleo, {"id": None, "name": "Someone"}),
        (team.mia, ref(team.api, story.adam_id, SOMEONE_NAME)),
    ):
        created, completed, reopened = await history(task, who)
        assert created["actor"] == actor
        assert completed["actor"] == actor
        assert reopened["actor"] == ref(team.api, team.cleo_id, "Cleo")
        by = {c["field"]: c["after"] for c in completed["changes"]}
        assert by["completer_id"] == actor["id"]

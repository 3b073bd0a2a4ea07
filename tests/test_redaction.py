"""Redaction: what a viewer may not see is left out or replaced the same way on every channel.

The pure rule (:mod:`service.domain.redaction`).
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

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
from service.events.recordings import CommentAdded, TodoAdded, TodoEdited, TodoMoved

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
    CLEO, LAUNCH, [_list("rec_shop", True), _list("rec_back", False)], known_people(CLEO, [LAUNCH])
)


def test_the_sight_follows_the_access_rules() -> None:
    """A client's sight holds the recordings and people the access rules let them see; a
    member's holds everything."""
    expected = Sight(
        recordings=frozenset({"rec_shop"}),
        people=frozenset({"per_owner", "per_mia", "per_cleo"}),
    )
    assert expected == CLIENT_SIGHT
    assert sight(MIA, LAUNCH, [_list("rec_back", False)], known_people(MIA, [LAUNCH])) == EVERYTHING
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
    comment = CommentAdded(
        recording_id="rec_c",
        project_id="prj_1",
        creator_id="per_mia",
        at=AT,
        parent_id="rec_back",
        parent_kind="todolist",
        content="<p>x</p>",
        subscriber_ids=("per_mia",),
    )
    data = event_data(CLIENT_SIGHT, comment)
    assert data is not None
    assert "parent_id" not in data
    assert "parent_kind" not in data


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
    assert named(CLIENT_SIGHT, "per_adam", "Adam") == (None, "Someone")
    assert named(CLIENT_SIGHT, "per_mia", "Mia") == ("per_mia", "Mia")
    assert named(CLIENT_SIGHT, "system", None) == ("system", None)
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

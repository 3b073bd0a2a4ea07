"""Messages, comments, to-do lists, to-dos and milestones: pure rules, no database."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import pytest

from service.domain.comments import AddComment, EditComment, decide_add_comment, decide_edit_comment
from service.domain.context import Context
from service.domain.messages import (
    EditMessage,
    PostMessage,
    decide_edit_message,
    decide_post_message,
)
from service.domain.milestones import (
    CompleteMilestone,
    CreateMilestone,
    EditMilestone,
    ReopenMilestone,
    decide_complete_milestone,
    decide_create_milestone,
    decide_edit_milestone,
    decide_reopen_milestone,
)
from service.domain.projects import ProjectState
from service.domain.recordings import (
    RecordingState,
    SetClientVisibility,
    SetRecordingStatus,
    decide_set_client_visibility,
    decide_set_recording_status,
    evolve_recording,
    fold_recording,
    recording_facts,
    visibility_parent_id,
)
from service.domain.subscriptions import (
    Subscribe,
    Unsubscribe,
    decide_subscribe,
    decide_unsubscribe,
)
from service.domain.text import MAX_HTML_BYTES
from service.domain.todolists import (
    CreateTodolist,
    EditTodolist,
    decide_create_todolist,
    decide_edit_todolist,
)
from service.domain.todos import (
    AddTodo,
    CompleteTodo,
    EditTodo,
    MoveTodo,
    ReopenTodo,
    decide_add_todo,
    decide_complete_todo,
    decide_edit_todo,
    decide_move_todo,
    decide_reopen_todo,
)
from service.errors import Conflict, Forbidden, InconsistentStream, InvalidCommand, NotFound
from service.events.base import Event, FieldChange, decode_event, encode_data, type_name
from service.events.recordings import (
    ClientVisibilityChanged,
    MilestoneEdited,
    RecordingStatusChanged,
    SubscriberAdded,
    SubscriberRemoved,
    TodoCompleted,
    TodoEdited,
    TodoMoved,
)

from .support.actors import CLEO, MAX, NOW, OLGA

LATER = NOW + timedelta(hours=1)
MAX_LATER = Context(actor=MAX.actor, now=LATER)
PROJECT = ProjectState(
    project_id="prj",
    name="Launch",
    description=None,
    clients_enabled=True,
    members={"olga": "owner", "max": "member", "cleo": "client"},
    version=4,
)


def _fold(*batches: Sequence[Event]) -> RecordingState:
    """Fold events after a trip through the store's codec (which must not change them)."""
    events = [e for batch in batches for e in batch]
    stored = [decode_event(type_name(type(e)), 1, encode_data(e)) for e in events]
    assert stored == events
    state = fold_recording(stored)
    assert state is not None
    return state


def _message(*, visible: bool = True, **fields: object) -> RecordingState:
    cmd = PostMessage(
        recording_id="msg",
        subject="Kick-off",
        body="<p>Hi</p>",
        visible_to_clients=visible,
        **fields,
    )  # type: ignore[arg-type]
    return _fold(decide_post_message(PROJECT, cmd, MAX))


def _list(list_id: str = "list", *, visible: bool = True) -> RecordingState:
    cmd = CreateTodolist(recording_id=list_id, name="Launch tasks", visible_to_clients=visible)
    return _fold(decide_create_todolist(PROJECT, cmd, MAX))


def _todo(todolist: RecordingState, *assignees: str) -> list[Event]:
    cmd = AddTodo(recording_id="todo", content="Ship v1", assignee_ids=assignees)
    return decide_add_todo(PROJECT, todolist, cmd, MAX)


def test_a_message_subscribes_everyone_who_can_see_it_by_default() -> None:
    shown = _message()
    assert shown.subscriber_ids == ("max", "olga", "cleo")
    hidden = _message(visible=False)
    assert hidden.subscriber_ids == ("max", "olga")
    chosen = _message(visible=False, subscriber_ids=("olga",))
    assert chosen.subscriber_ids == ("max", "olga")
    assert (shown.kind, shown.creator_id, shown.created_at, shown.version) == (
        "message",
        "max",
        NOW,
        1,
    )


def test_message_bodies_are_sanitised_and_checked() -> None:
    body = '<p onclick="x">Hi <a href="javascript:alert(1)">x</a><img src=y><span class="k">t</span>\x01</p>'
    cmd = PostMessage(recording_id="m", subject="S", body=body)
    assert _fold(decide_post_message(PROJECT, cmd, MAX)).body == (
        '<p>Hi <a rel="noopener noreferrer nofollow">x</a>t</p>'
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"subject": "s" * 256}, "subject"),
        ({"subject": ""}, "subject"),
        ({"body": "<p> </p>"}, "body"),
        ({"body": "x" * (MAX_HTML_BYTES + 1)}, "body"),
        ({"category": "a\tb"}, "category"),
        ({"subscriber_ids": ("nils",)}, "subscriber_ids"),
        ({"subscriber_ids": ("cleo",), "visible_to_clients": False}, "subscriber_ids"),
    ],
)
def test_bad_messages_are_refused_naming_the_field(fields: dict[str, object], field: str) -> None:
    values: dict[str, object] = {"recording_id": "m", "subject": "S", "body": "B"}
    with pytest.raises(InvalidCommand) as error:
        decide_post_message(PROJECT, PostMessage(**{**values, **fields}), MAX)  # type: ignore[arg-type]
    assert error.value.field == field


def test_clients_cannot_post() -> None:
    with pytest.raises(Forbidden):
        decide_post_message(PROJECT, PostMessage(recording_id="m", subject="S", body="B"), CLEO)


def test_edits_carry_before_and_after_and_move_updated_at() -> None:
    message = _message()
    events = decide_edit_message(
        PROJECT, message, EditMessage(subject="Kick-off!", category="News"), MAX_LATER
    )
    assert events[0].changes == (  # type: ignore[attr-defined]
        FieldChange(field="subject", before="Kick-off", after="Kick-off!"),
        FieldChange(field="category", before=None, after="News"),
    )
    edited = _fold(
        decide_post_message(
            PROJECT,
            PostMessage(
                recording_id="msg", subject="Kick-off", body="<p>Hi</p>", visible_to_clients=True
            ),
            MAX,
        ),
        events,
    )
    assert (edited.subject, edited.category, edited.updated_at, edited.version) == (
        "Kick-off!",
        "News",
        LATER,
        2,
    )
    assert decide_edit_message(PROJECT, message, EditMessage(subject="Kick-off"), MAX) == []
    with pytest.raises(NotFound, match="message"):
        decide_edit_message(PROJECT, _list(), EditMessage(subject="x"), MAX)


def test_comments_inherit_visibility_from_their_parent() -> None:
    hidden = _message(visible=False)
    with pytest.raises(NotFound):
        decide_add_comment(PROJECT, hidden, AddComment(recording_id="c", content="Hi"), CLEO)
    shown = _message()
    comment = _fold(
        decide_add_comment(PROJECT, shown, AddComment(recording_id="c", content="<b>Hi</b>"), CLEO)
    )
    assert (comment.parent_id, comment.parent_kind, comment.content) == (
        "msg",
        "message",
        "<b>Hi</b>",
    )
    assert comment.visible_to_clients is None
    assert visibility_parent_id(comment) == "msg"
    assert recording_facts(comment, [shown]).visible_to_clients
    assert not recording_facts(comment, [hidden]).visible_to_clients
    with pytest.raises(Forbidden, match="parent"):
        decide_set_client_visibility(
            PROJECT, comment, SetClientVisibility(visible_to_clients=False), OLGA, [shown]
        )
    with pytest.raises(InvalidCommand) as error:
        decide_add_comment(
            PROJECT, comment, AddComment(recording_id="c2", content="x"), MAX, [shown]
        )
    assert error.value.field == "parent_id"


def test_authors_and_owners_edit_comments() -> None:
    shown = _message()
    comment = _fold(
        decide_add_comment(PROJECT, shown, AddComment(recording_id="c", content="Hi"), CLEO)
    )
    edit = EditComment(content="Hello")
    assert decide_edit_comment(PROJECT, comment, edit, CLEO, [shown])
    assert decide_edit_comment(PROJECT, comment, edit, OLGA, [shown])
    with pytest.raises(Forbidden):
        decide_edit_comment(PROJECT, comment, edit, MAX, [shown])


def test_a_lineage_must_be_the_chain_of_parents() -> None:
    todolist = _list()
    todo = _fold(_todo(todolist))
    with pytest.raises(ValueError, match="incomplete"):
        recording_facts(todo)
    with pytest.raises(ValueError, match="chain"):
        recording_facts(todo, [_list("other")])
    comment = _fold(
        decide_add_comment(
            PROJECT, todo, AddComment(recording_id="c", content="x"), MAX, [todolist]
        )
    )
    assert recording_facts(comment, [todo, todolist]).visible_to_clients


def test_todos_take_members_as_assignees_and_subscribe_them() -> None:
    todolist = _list()
    todo = _fold(_todo(todolist, "cleo", "olga", "cleo"))
    assert (todo.todolist_id, todo.assignee_ids, todo.subscriber_ids) == (
        "list",
        ("cleo", "olga"),
        ("max", "cleo", "olga"),
    )
    with pytest.raises(InvalidCommand) as error:
        _todo(todolist, "nils")
    assert error.value.field == "assignee_ids"
    with pytest.raises(InvalidCommand, match="client"):
        _todo(_list(visible=False), "cleo")
    with pytest.raises(InvalidCommand) as dates:
        decide_add_todo(
            PROJECT,
            todolist,
            AddTodo(
                recording_id="t", content="x", starts_on=date(2026, 3, 5), due_on=date(2026, 3, 4)
            ),
            MAX,
        )
    assert dates.value.field == "due_on"


def test_editing_a_todo_reports_dates_as_iso_and_subscribes_new_assignees() -> None:
    todolist = _list()
    added = _todo(todolist)
    todo = _fold(added)
    cmd = EditTodo(assignee_ids=("olga",), due_on=date(2026, 3, 9))
    events = decide_edit_todo(PROJECT, todo, cmd, MAX_LATER, [todolist])
    assert events == [
        TodoEdited(
            at=LATER,
            changes=(
                FieldChange(field="assignee_ids", before=[], after=["olga"]),
                FieldChange(field="due_on", before=None, after="2026-03-09"),
            ),
        ),
        SubscriberAdded(at=LATER, person_id="olga"),
    ]
    edited = _fold(added, events)
    assert (edited.assignee_ids, edited.due_on, edited.subscriber_ids) == (
        ("olga",),
        date(2026, 3, 9),
        ("max", "olga"),
    )
    cleared = decide_edit_todo(
        PROJECT, edited, EditTodo(assignee_ids=None, due_on=None), MAX, [todolist]
    )
    assert _fold(added, events, cleared).assignee_ids == ()
    assert decide_edit_todo(PROJECT, edited, EditTodo(content="Ship v1"), MAX, [todolist]) == []


def test_assigned_clients_complete_and_reopen_todos() -> None:
    todolist = _list()
    added = _todo(todolist, "cleo")
    todo = _fold(added)
    done = decide_complete_todo(PROJECT, todo, CompleteTodo(), CLEO, [todolist])
    assert done == [TodoCompleted(at=NOW, completer_id="cleo")]
    completed = _fold(added, done)
    assert (completed.completed, completed.completer_id, completed.completed_at) == (
        True,
        "cleo",
        NOW,
    )
    with pytest.raises(Conflict, match="already"):
        decide_complete_todo(PROJECT, completed, CompleteTodo(), MAX, [todolist])
    reopened = _fold(
        added, done, decide_reopen_todo(PROJECT, completed, ReopenTodo(), CLEO, [todolist])
    )
    assert (reopened.completed, reopened.completer_id) == (False, None)
    with pytest.raises(Conflict, match="not completed"):
        decide_reopen_todo(PROJECT, reopened, ReopenTodo(), CLEO, [todolist])
    unassigned = _fold(_todo(todolist))
    with pytest.raises(Forbidden, match="assigned"):
        decide_complete_todo(PROJECT, unassigned, CompleteTodo(), CLEO, [todolist])
    with pytest.raises(NotFound):
        decide_complete_todo(
            PROJECT,
            _fold(_todo(_list(visible=False))),
            CompleteTodo(),
            CLEO,
            [_list(visible=False)],
        )


def test_todos_move_to_one_based_positions_within_and_across_lists() -> None:
    todolist, other = _list(), _list("other")
    added = _todo(todolist)
    todo = _fold(added)
    assert decide_move_todo(PROJECT, todo, todolist, 3, MoveTodo(position=3), MAX, [todolist]) == [
        TodoMoved(at=NOW, from_todolist_id="list", to_todolist_id="list", position=3)
    ]
    for position in (0, 4):
        with pytest.raises(InvalidCommand) as error:
            decide_move_todo(
                PROJECT, todo, todolist, 3, MoveTodo(position=position), MAX, [todolist]
            )
        assert error.value.field == "position"
    moved = decide_move_todo(
        PROJECT, todo, other, 3, MoveTodo(position=4, todolist_id="other"), MAX, [todolist]
    )
    after = _fold(added, moved)
    assert after.todolist_id == "other"
    assert recording_facts(after, [other]).visible_to_clients
    with pytest.raises(InvalidCommand, match="match"):
        decide_move_todo(PROJECT, todo, other, 3, MoveTodo(position=1), MAX, [todolist])
    with pytest.raises(Forbidden):
        decide_move_todo(
            PROJECT,
            _fold(_todo(todolist, "cleo")),
            todolist,
            1,
            MoveTodo(position=1),
            CLEO,
            [todolist],
        )


def test_a_todo_assigned_to_a_client_stays_in_lists_clients_see() -> None:
    todolist, hidden = _list(), _list("hidden", visible=False)
    todo = _fold(_todo(todolist, "cleo"))
    with pytest.raises(InvalidCommand, match="client"):
        decide_move_todo(
            PROJECT, todo, hidden, 0, MoveTodo(position=1, todolist_id="hidden"), MAX, [todolist]
        )


def test_what_a_client_is_assigned_to_is_never_hidden_from_them() -> None:
    """One rule for both ways a client could lose an assignment: hiding a list with a to-do
    assigned to a client, or a milestone a client is responsible for, is refused (422) like
    moving such a to-do into a hidden list; people who are not clients do not stand in the
    way, and showing is never refused."""
    todolist, hidden = _list(), _list("hidden", visible=False)
    todo = _fold(_todo(todolist, "cleo", "max"))
    hide = SetClientVisibility(visible_to_clients=False)
    with pytest.raises(InvalidCommand, match="cleo") as moving:
        decide_move_todo(
            PROJECT, todo, hidden, 0, MoveTodo(position=1, todolist_id="hidden"), MAX, [todolist]
        )
    with pytest.raises(InvalidCommand, match="cleo") as hiding:
        decide_set_client_visibility(PROJECT, todolist, hide, MAX, (), {"cleo", "max"})
    assert (moving.value.field, hiding.value.field) == ("todolist_id", "visible_to_clients")
    hidden_now = decide_set_client_visibility(PROJECT, todolist, hide, MAX, (), {"max"})
    assert hidden_now == [ClientVisibilityChanged(at=NOW, before=True, after=False)]
    show = SetClientVisibility(visible_to_clients=True)
    assert decide_set_client_visibility(PROJECT, hidden, show, MAX, (), {"cleo"})
    milestone = _fold(
        decide_create_milestone(
            PROJECT,
            CreateMilestone(
                recording_id="ms",
                title="Beta",
                due_on=date(2026, 4, 1),
                responsible_id="cleo",
                visible_to_clients=True,
            ),
            MAX,
        )
    )
    with pytest.raises(InvalidCommand, match="milestone") as hiding:
        decide_set_client_visibility(PROJECT, milestone, hide, MAX)
    assert hiding.value.field == "visible_to_clients"


def test_milestones_are_rescheduled_completed_and_reopened() -> None:
    created = decide_create_milestone(
        PROJECT,
        CreateMilestone(
            recording_id="ms", title="Beta", due_on=date(2026, 4, 1), responsible_id="olga"
        ),
        MAX,
    )
    milestone = _fold(created)
    assert (milestone.title, milestone.due_on, milestone.subscriber_ids) == (
        "Beta",
        date(2026, 4, 1),
        ("max", "olga"),
    )
    moved = decide_edit_milestone(
        PROJECT, milestone, EditMilestone(due_on=date(2026, 4, 15), responsible_id="max"), MAX_LATER
    )
    assert moved == [
        MilestoneEdited(
            at=LATER,
            changes=(
                FieldChange(field="due_on", before="2026-04-01", after="2026-04-15"),
                FieldChange(field="responsible_id", before="olga", after="max"),
            ),
        )
    ]
    rescheduled = _fold(created, moved)
    assert (rescheduled.due_on, rescheduled.responsible_id) == (date(2026, 4, 15), "max")
    done = decide_complete_milestone(PROJECT, rescheduled, CompleteMilestone(), OLGA)
    completed = _fold(created, moved, done)
    assert completed.completer_id == "olga"
    with pytest.raises(Conflict):
        decide_complete_milestone(PROJECT, completed, CompleteMilestone(), OLGA)
    reopened = decide_reopen_milestone(PROJECT, completed, ReopenMilestone(), OLGA)
    assert not _fold(created, moved, done, reopened).completed
    with pytest.raises(InvalidCommand) as error:
        decide_edit_milestone(PROJECT, milestone, EditMilestone(responsible_id="cleo"), MAX)
    assert error.value.field == "responsible_id"
    with pytest.raises(InvalidCommand) as null:
        decide_edit_milestone(PROJECT, milestone, EditMilestone(due_on=None), MAX)  # type: ignore[arg-type]
    assert null.value.field == "due_on"


def test_trashed_recordings_and_their_children_only_change_status() -> None:
    todolist = _list()
    added = _todo(todolist)
    todo = _fold(added)
    trash = decide_set_recording_status(
        PROJECT, todolist, SetRecordingStatus(status="trashed"), MAX
    )
    assert trash == [RecordingStatusChanged(at=NOW, before="active", after="trashed")]
    trashed_list = _fold(
        decide_create_todolist(
            PROJECT,
            CreateTodolist(recording_id="list", name="Launch tasks", visible_to_clients=True),
            MAX,
        ),
        trash,
    )
    assert trashed_list.status == "trashed"
    with pytest.raises(Conflict, match="to-do list is trashed"):
        decide_edit_todo(PROJECT, todo, EditTodo(content="x"), MAX, [trashed_list])
    with pytest.raises(Conflict, match="trashed"):
        decide_edit_todolist(PROJECT, trashed_list, EditTodolist(name="x"), MAX)
    with pytest.raises(Conflict):
        decide_add_todo(PROJECT, trashed_list, AddTodo(recording_id="t2", content="x"), MAX)
    assert (
        decide_set_recording_status(
            PROJECT, trashed_list, SetRecordingStatus(status="trashed"), MAX
        )
        == []
    )
    restore = decide_set_recording_status(
        PROJECT, trashed_list, SetRecordingStatus(status="active"), OLGA
    )
    assert restore == [RecordingStatusChanged(at=NOW, before="trashed", after="active")]
    with pytest.raises(Forbidden):
        decide_set_recording_status(PROJECT, todolist, SetRecordingStatus(status="archived"), CLEO)


def test_visibility_changes_on_recordings_that_own_it() -> None:
    message = _message(visible=False)
    with pytest.raises(NotFound):
        decide_subscribe(PROJECT, message, Subscribe(), CLEO)
    events = decide_set_client_visibility(
        PROJECT, message, SetClientVisibility(visible_to_clients=True), MAX
    )
    assert events == [ClientVisibilityChanged(at=NOW, before=False, after=True)]
    shown = _fold(
        decide_post_message(
            PROJECT, PostMessage(recording_id="msg", subject="Kick-off", body="<p>Hi</p>"), MAX
        ),
        events,
    )
    assert shown.visible_to_clients is True
    assert (
        decide_set_client_visibility(
            PROJECT, shown, SetClientVisibility(visible_to_clients=True), MAX
        )
        == []
    )
    todo = _fold(_todo(_list()))
    with pytest.raises(Forbidden, match="to-do list"):
        decide_set_client_visibility(
            PROJECT, todo, SetClientVisibility(visible_to_clients=False), MAX, [_list()]
        )


def test_subscriptions_are_idempotent() -> None:
    posted = decide_post_message(
        PROJECT,
        PostMessage(
            recording_id="msg", subject="S", body="B", subscriber_ids=(), visible_to_clients=True
        ),
        MAX,
    )
    message = _fold(posted)
    assert message.subscriber_ids == ("max",)
    added = decide_subscribe(PROJECT, message, Subscribe(), CLEO)
    assert added == [SubscriberAdded(at=NOW, person_id="cleo")]
    subscribed = _fold(posted, added)
    assert decide_subscribe(PROJECT, subscribed, Subscribe(), CLEO) == []
    removed = decide_unsubscribe(PROJECT, subscribed, Unsubscribe(), CLEO)
    assert removed == [SubscriberRemoved(at=NOW, person_id="cleo")]
    assert _fold(posted, added, removed).subscriber_ids == ("max",)
    assert decide_unsubscribe(PROJECT, message, Unsubscribe(), CLEO) == []


def test_recordings_of_an_archived_project_are_read_only() -> None:
    archived = ProjectState(
        **{**{f: getattr(PROJECT, f) for f in PROJECT.__struct_fields__}, "status": "archived"}
    )
    with pytest.raises(Conflict, match="archived"):
        decide_edit_message(archived, _message(), EditMessage(subject="x"), MAX)
    with pytest.raises(Conflict, match="archived"):
        decide_set_recording_status(archived, _message(), SetRecordingStatus(status="trashed"), MAX)
    with pytest.raises(Conflict, match="archived"):
        decide_add_comment(archived, _message(), AddComment(recording_id="c", content="x"), CLEO)


def test_streams_that_do_not_start_with_creation_do_not_fold() -> None:
    assert fold_recording([]) is None
    with pytest.raises(InconsistentStream):
        evolve_recording(None, SubscriberAdded(at=NOW, person_id="x"))
    posted = decide_post_message(PROJECT, PostMessage(recording_id="m", subject="S", body="B"), MAX)
    with pytest.raises(InconsistentStream):
        fold_recording([*posted, *posted])

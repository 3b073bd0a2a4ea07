"""Projects: settings, status and memberships as pure rules, no database."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date

import pytest

from service.domain.context import Context
from service.domain.memberships import (
    RemoveMember,
    SetMember,
    decide_remove_member,
    decide_set_member,
)
from service.domain.messages import PostMessage, decide_post_message
from service.domain.milestones import CreateMilestone, decide_create_milestone
from service.domain.people import PersonState
from service.domain.projects import (
    ArchiveProject,
    CreateProject,
    EditProject,
    ProjectState,
    RestoreProject,
    TrashProject,
    UnarchiveProject,
    decide_archive_project,
    decide_create_project,
    decide_edit_project,
    decide_restore_project,
    decide_trash_project,
    decide_unarchive_project,
    evolve_project,
    fold_project,
    project_facts,
)
from service.domain.todolists import CreateTodolist, decide_create_todolist
from service.errors import Conflict, Forbidden, InconsistentStream, InvalidCommand, NotFound
from service.events.base import Event, FieldChange, decode_event, encode_data, type_name
from service.events.projects import (
    ProjectArchived,
    ProjectCreated,
    ProjectEdited,
    ProjectMemberAdded,
    ProjectMemberRemoved,
    ProjectMemberRoleChanged,
)

from .support.actors import ADMIN, CLEO, MAX, OLGA, acting

NILS = acting("nils", "member")


def _person(person_id: str, role: str = "member", *, active: bool = True) -> PersonState:
    return PersonState(
        person_id=person_id,
        name=person_id.title(),
        email=f"{person_id}@example.com",
        role=role,  # type: ignore[arg-type]
        company="Acme" if role == "client" else None,
        title=None,
        active=active,
        version=1,
    )


def _fold(events: Sequence[Event]) -> ProjectState:
    stored = [decode_event(type_name(type(e)), 1, encode_data(e)) for e in events]
    assert stored == list(events)
    state = fold_project(stored)
    assert state is not None
    return state


def _project_events() -> list[Event]:
    """Olga's project with Max as member and Cleo as client."""
    cmd = CreateProject(project_id="prj", name="Launch", clients_enabled=True)
    events = decide_create_project(cmd, OLGA)
    project = _fold(events)
    for person_id, role in (("max", "member"), ("cleo", "client")):
        person = _person(person_id, "client" if role == "client" else "member")
        cmd_member = SetMember(person_id=person_id, project_role=role)  # type: ignore[arg-type]
        events += decide_set_member(project, person, cmd_member, OLGA)
        project = _fold(events)
    return events


def _project(*more: Event) -> ProjectState:
    return _fold([*_project_events(), *more])


def test_the_creator_becomes_owner() -> None:
    cmd = CreateProject(
        project_id="prj", name=" Launch ", description="<p>Go<script>x</script></p>"
    )
    events = decide_create_project(cmd, MAX)
    assert events == [
        ProjectCreated(
            project_id="prj", name="Launch", description="<p>Go</p>", clients_enabled=False
        ),
        ProjectMemberAdded(person_id="max", project_role="owner"),
    ]
    project = _fold(events)
    assert (project.members, project.status, project.version) == ({"max": "owner"}, "active", 2)


def test_clients_cannot_create_projects() -> None:
    with pytest.raises(Forbidden):
        decide_create_project(CreateProject(project_id="p", name="X"), CLEO)


def test_owners_and_admins_edit_settings_as_a_merge_patch() -> None:
    project = _project()
    events = decide_edit_project(
        project, EditProject(name="Launch v2", clients_enabled=False), OLGA
    )
    assert events == [
        ProjectEdited(
            changes=(
                FieldChange(field="name", before="Launch", after="Launch v2"),
                FieldChange(field="clients_enabled", before=True, after=False),
            )
        )
    ]
    edited = _project(*events)
    assert (edited.name, edited.clients_enabled, edited.description) == ("Launch v2", False, None)
    assert decide_edit_project(project, EditProject(name="Launch"), ADMIN) == []
    with pytest.raises(InvalidCommand) as error:
        decide_edit_project(project, EditProject(name=None), OLGA)  # type: ignore[arg-type]
    assert error.value.field == "name"


def test_a_projects_language_is_english_unless_chosen_and_changes_by_an_edit() -> None:
    """A project created before languages existed (no ``language`` stored) is English; one
    made in French is French, and an edit changes it with a before/after change."""
    stored = decode_event(
        "ProjectCreated",
        1,
        b'{"project_id": "prj", "name": "Old", "description": null, "clients_enabled": false}',
    )
    assert isinstance(stored, ProjectCreated)
    assert stored.language == "english"
    assert _fold([stored]).language == "english"
    made = decide_create_project(CreateProject(project_id="p", name="X", language="french"), MAX)
    assert _fold(made).language == "french"
    project = _project()
    events = decide_edit_project(project, EditProject(language="french"), OLGA)
    assert events == [
        ProjectEdited(changes=(FieldChange(field="language", before="english", after="french"),))
    ]
    assert _project(*events).language == "french"
    with pytest.raises(InvalidCommand):
        decide_edit_project(project, EditProject(language=None), OLGA)  # type: ignore[arg-type]


@pytest.mark.parametrize(("ctx", "error"), [(MAX, Forbidden), (CLEO, Forbidden), (NILS, NotFound)])
def test_others_may_not_manage_the_project(ctx: Context, error: type[Exception]) -> None:
    project = _project()
    with pytest.raises(error):
        decide_edit_project(project, EditProject(name="X"), ctx)
    with pytest.raises(error):
        decide_archive_project(project, ArchiveProject(), ctx)
    with pytest.raises(error):
        decide_remove_member(project, RemoveMember(person_id="max"), ctx)


WRITES: dict[str, Callable[[ProjectState], list[Event]]] = {
    "edit": lambda p: decide_edit_project(p, EditProject(name="X"), OLGA),
    "archive": lambda p: decide_archive_project(p, ArchiveProject(), OLGA),
    "trash": lambda p: decide_trash_project(p, TrashProject(), OLGA),
    "add member": lambda p: decide_set_member(
        p, _person("nils"), SetMember(person_id="nils", project_role="member"), OLGA
    ),
    "remove member": lambda p: decide_remove_member(p, RemoveMember(person_id="max"), OLGA),
    "post message": lambda p: decide_post_message(
        p, PostMessage(recording_id="m", subject="Hi", body="Hello"), OLGA
    ),
    "create list": lambda p: decide_create_todolist(
        p, CreateTodolist(recording_id="l", name="L"), OLGA
    ),
    "create milestone": lambda p: decide_create_milestone(
        p, CreateMilestone(recording_id="ms", title="M", due_on=date(2026, 4, 1)), OLGA
    ),
}


@pytest.mark.parametrize("write", WRITES)
def test_an_archived_project_is_read_only_until_unarchived(write: str) -> None:
    archived = _project(ProjectArchived())
    with pytest.raises(Conflict, match="archived"):
        WRITES[write](archived)
    events = decide_unarchive_project(archived, UnarchiveProject(), OLGA)
    assert _project(ProjectArchived(), *events).status == "active"
    assert WRITES[write](_project(ProjectArchived(), *events))


NOT_RESTORE = {
    **WRITES,
    "unarchive": lambda p: decide_unarchive_project(p, UnarchiveProject(), OLGA),
}


@pytest.mark.parametrize("write", NOT_RESTORE)
def test_a_trashed_project_can_only_be_restored(write: str) -> None:
    active = _project()
    trashed = _project(*decide_trash_project(active, TrashProject(), OLGA))
    assert trashed.status == "trashed"
    with pytest.raises(Conflict):
        NOT_RESTORE[write](trashed)
    restored = _project(
        *decide_trash_project(active, TrashProject(), OLGA),
        *decide_restore_project(trashed, RestoreProject(), ADMIN),
    )
    assert restored.status == "active"
    with pytest.raises(Conflict):
        decide_restore_project(restored, RestoreProject(), OLGA)


def test_hidden_beats_forbidden_beats_conflict() -> None:
    archived = _project(ProjectArchived())
    with pytest.raises(NotFound):
        decide_edit_project(archived, EditProject(name=""), NILS)
    with pytest.raises(Forbidden):
        decide_edit_project(archived, EditProject(name=""), MAX)
    with pytest.raises(Conflict):
        decide_edit_project(archived, EditProject(name=""), OLGA)
    with pytest.raises(InvalidCommand):
        decide_edit_project(_project(), EditProject(name=""), OLGA)


def test_members_join_change_role_and_leave() -> None:
    project = _project()
    assert decide_set_member(
        project, _person("nils"), SetMember(person_id="nils", project_role="member"), OLGA
    ) == [ProjectMemberAdded(person_id="nils", project_role="member")]
    promoted = decide_set_member(
        project, _person("max"), SetMember(person_id="max", project_role="owner"), OLGA
    )
    assert promoted == [ProjectMemberRoleChanged(person_id="max", before="member", after="owner")]
    assert (
        decide_set_member(
            project, _person("max"), SetMember(person_id="max", project_role="member"), OLGA
        )
        == []
    )
    two_owners = _project(*promoted)
    left = decide_remove_member(two_owners, RemoveMember(person_id="olga"), ADMIN)
    assert left == [ProjectMemberRemoved(person_id="olga")]
    assert _project(*promoted, *left).members == {"max": "owner", "cleo": "client"}
    with pytest.raises(NotFound):
        decide_remove_member(project, RemoveMember(person_id="nils"), OLGA)


def test_the_last_owner_stays() -> None:
    project = _project()
    with pytest.raises(Conflict, match="owner"):
        decide_remove_member(project, RemoveMember(person_id="olga"), OLGA)
    with pytest.raises(Conflict, match="owner"):
        decide_set_member(
            project, _person("olga"), SetMember(person_id="olga", project_role="member"), ADMIN
        )


@pytest.mark.parametrize(
    ("role", "project_role"),
    [("client", "member"), ("client", "owner"), ("member", "client"), ("admin", "client")],
)
def test_clients_and_only_clients_take_the_client_project_role(
    role: str, project_role: str
) -> None:
    cmd = SetMember(person_id="nils", project_role=project_role)  # type: ignore[arg-type]
    with pytest.raises(InvalidCommand) as error:
        decide_set_member(_project(), _person("nils", role), cmd, OLGA)
    assert error.value.field == "project_role"


def test_deactivated_people_cannot_join() -> None:
    cmd = SetMember(person_id="nils", project_role="member")
    with pytest.raises(Conflict, match="deactivated"):
        decide_set_member(_project(), _person("nils", active=False), cmd, OLGA)


def test_the_person_must_match_the_command() -> None:
    cmd = SetMember(person_id="nils", project_role="member")
    with pytest.raises(InvalidCommand):
        decide_set_member(_project(), _person("max"), cmd, OLGA)


def test_facts_reflect_the_state() -> None:
    facts = project_facts(_project())
    assert (facts.project_id, facts.status, facts.clients_enabled) == ("prj", "active", True)
    assert facts.members == {"olga": "owner", "max": "member", "cleo": "client"}


def test_streams_that_do_not_start_with_creation_do_not_fold() -> None:
    assert fold_project([]) is None
    with pytest.raises(InconsistentStream):
        evolve_project(None, ProjectArchived())
    with pytest.raises(InconsistentStream):
        fold_project([*_project_events(), *_project_events()[:1]])

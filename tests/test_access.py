"""The access matrix of docs/ACCESS.md, cell by cell, read from the document itself."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from service.domain.access import (
    AccountAction,
    Action,
    ProjectFacts,
    RecordingFacts,
    TokenScope,
    Viewer,
    can_see_person,
    can_see_project,
    can_see_recording,
    check,
    check_account,
)
from service.errors import Forbidden, InsufficientScope, NotFound

DOC = Path(__file__).resolve().parent.parent / "docs" / "ACCESS.md"
PROJECT_COLUMNS = (
    "admin",
    "owner",
    "member",
    "client (visible item)",
    "client (hidden item)",
    "non-member",
)
ACCOUNT_COLUMNS = (
    "admin → other",
    "admin → self",
    "member → self",
    "client → self",
    "member → other",
    "client → other",
)

VIEWERS = {
    "admin": Viewer(person_id="ada", role="admin"),
    "owner": Viewer(person_id="olga", role="member"),
    "member": Viewer(person_id="max", role="member"),
    "client (visible item)": Viewer(person_id="cleo", role="client"),
    "client (hidden item)": Viewer(person_id="cleo", role="client"),
    "non-member": Viewer(person_id="nils", role="member"),
}


def _tables(first_header: str) -> dict[tuple[str, ...], list[list[str]]]:
    """Markdown tables of the document whose first header cell is ``first_header``."""
    tables: dict[tuple[str, ...], list[list[str]]] = {}
    rows: list[list[str]] = []
    for line in [*DOC.read_text().splitlines(), ""]:
        if line.startswith("|"):
            rows.append([cell.strip().strip("`") for cell in line.strip().strip("|").split("|")])
        elif rows:
            if rows[0][0] == first_header:
                tables[tuple(rows[0])] = rows[2:]
            rows = []
    return tables


def _table(header: tuple[str, ...]) -> list[list[str]]:
    return _tables(header[0])[header]


PROJECT_TABLE = _table(("action", "target", *PROJECT_COLUMNS))
ACCOUNT_TABLE = _table(("action", *ACCOUNT_COLUMNS))
PROJECT_CELLS = [
    pytest.param(row[0], row[1], column, cell, id=f"{row[0]}-{row[1]}-{column}")
    for row in PROJECT_TABLE
    for column, cell in zip(PROJECT_COLUMNS, row[2:], strict=True)
]
ACCOUNT_CELLS = [
    pytest.param(row[0], column, cell, id=f"{row[0]}-{column}")
    for row in ACCOUNT_TABLE
    for column, cell in zip(ACCOUNT_COLUMNS, row[1:], strict=True)
]


def _project(*, clients_enabled: bool = True) -> ProjectFacts:
    return ProjectFacts(
        project_id="prj",
        status="active",
        clients_enabled=clients_enabled,
        members={"olga": "owner", "max": "member", "cleo": "client"},
    )


def _recording(target: str, column: str, creator_id: str) -> RecordingFacts:
    viewer = VIEWERS[column]
    kind = target.split()[0]
    return RecordingFacts(
        recording_id="rec",
        project_id="prj",
        kind=kind,  # type: ignore[arg-type]
        status="active",
        visible_to_clients=column != "client (hidden item)",
        creator_id=creator_id,
        assignee_ids=frozenset({viewer.person_id} if "assigned to viewer" in target else ()),
    )


def _outcome(
    viewer: Viewer, action: Action, project: ProjectFacts, rec: RecordingFacts | None
) -> str:
    try:
        check(viewer, action, project, rec)
    except NotFound:
        return "404"
    except Forbidden:
        return "403"
    return "yes"


def _cell_outcomes(
    action: str, target: str, column: str, project: ProjectFacts, *, active: bool = True
) -> dict[str, str]:
    """The outcome for the viewer of ``column`` on an item made by someone else, and on their own."""
    viewer = VIEWERS[column]
    viewer = Viewer(person_id=viewer.person_id, role=viewer.role, active=active)
    outcomes = {}
    for author in ("other", "own"):
        creator = viewer.person_id if author == "own" else "someone-else"
        rec = None if target == "project" else _recording(target, column, creator)
        outcomes[author] = _outcome(viewer, Action(action), project, rec)
    return outcomes


def _expected(cell: str) -> dict[str, str]:
    """What a cell means for an item made by someone else and for the viewer's own."""
    if cell == "own":
        return {"other": "403", "own": "yes"}
    return {"other": cell, "own": cell}


@pytest.mark.parametrize(("action", "target", "column", "cell"), PROJECT_CELLS)
def test_project_matrix_cell(action: str, target: str, column: str, cell: str) -> None:
    assert _cell_outcomes(action, target, column, _project()) == _expected(cell)


@pytest.mark.parametrize(("action", "target", "column", "cell"), PROJECT_CELLS)
def test_clients_see_nothing_when_clients_are_disabled(
    action: str, target: str, column: str, cell: str
) -> None:
    expected = _expected("404" if column.startswith("client") else cell)
    assert _cell_outcomes(action, target, column, _project(clients_enabled=False)) == expected


@pytest.mark.parametrize(("action", "target", "column", "cell"), PROJECT_CELLS)
def test_deactivated_viewers_see_nothing(action: str, target: str, column: str, cell: str) -> None:
    outcomes = _cell_outcomes(action, target, column, _project(), active=False)
    assert outcomes == _expected("404")


@pytest.mark.parametrize(("action", "column", "cell"), ACCOUNT_CELLS)
def test_account_matrix_cell(action: str, column: str, cell: str) -> None:
    actor_role, target = column.split(" → ")
    viewer = Viewer(person_id="me", role=actor_role)  # type: ignore[arg-type]
    account_action = AccountAction(action)
    target_id = None if action.startswith("create_") else ("me" if target == "self" else "you")
    try:
        check_account(viewer, account_action, target_id)
        outcome = "yes"
    except NotFound:
        outcome = "404"
    except Forbidden:
        outcome = "403"
    assert outcome == cell


def test_the_document_covers_every_action() -> None:
    assert {row[0] for row in PROJECT_TABLE} == {a.value for a in Action}
    assert {row[0] for row in ACCOUNT_TABLE} == {a.value for a in AccountAction}


def test_forbidden_says_why_and_not_found_gives_no_hint() -> None:
    project = _project()
    todo = _recording("todo", "member", "someone-else")
    with pytest.raises(Forbidden, match="to-do list"):
        check(VIEWERS["owner"], Action.SET_CLIENT_VISIBILITY, project, todo)
    hidden = _recording("message", "client (hidden item)", "someone-else")
    with pytest.raises(NotFound) as hidden_error:
        check(VIEWERS["client (hidden item)"], Action.VIEW_RECORDING, project, hidden)
    assert "no such message" in hidden_error.value.detail


def test_recordings_of_another_project_are_never_visible() -> None:
    other = RecordingFacts(
        recording_id="r",
        project_id="elsewhere",
        kind="message",
        status="active",
        visible_to_clients=True,
        creator_id="olga",
    )
    assert not can_see_recording(VIEWERS["admin"], _project(), other)


def test_project_actions_take_no_recording_and_others_need_one() -> None:
    rec = _recording("message", "member", "max")
    with pytest.raises(ValueError, match="takes no"):
        check(VIEWERS["member"], Action.EDIT_PROJECT, _project(), rec)
    with pytest.raises(ValueError, match="needs a"):
        check(VIEWERS["member"], Action.COMMENT, _project())


def test_a_client_with_a_staff_project_role_is_still_a_client() -> None:
    project = ProjectFacts(
        project_id="prj", status="active", clients_enabled=False, members={"cleo": "member"}
    )
    assert not can_see_project(VIEWERS["client (visible item)"], project)


def test_clients_see_themselves_and_people_of_projects_they_see() -> None:
    client = VIEWERS["client (visible item)"]
    assert can_see_person(client, "cleo")
    assert not can_see_person(client, "olga")
    assert can_see_person(client, "olga", [_project()])
    assert not can_see_person(client, "olga", [_project(clients_enabled=False)])
    assert not can_see_person(client, "nils", [_project()])
    assert can_see_person(VIEWERS["member"], "nils")


DOMAIN = Path(__file__).resolve().parent.parent / "service" / "domain"
IO_MODULES = {"asyncpg", "starlette", "websockets", "uvicorn"}


def test_the_domain_imports_no_io_modules() -> None:
    for path in sorted(DOMAIN.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            assert not {n.split(".")[0] for n in names} & IO_MODULES, path.name


def test_importing_the_domain_loads_no_io_modules() -> None:
    modules = sorted(f"service.domain.{p.stem}" for p in DOMAIN.glob("*.py"))
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + f"print(sorted(m for m in {sorted(IO_MODULES)!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


# ------------------------------------------------------------------ token scopes (#18)

SCOPE_COLUMNS = ("read", "project:this", "project:other", "read, project:this")
SCOPES = {
    "read": TokenScope(write=False),
    "project:this": TokenScope(projects=frozenset({"prj"})),
    "project:other": TokenScope(projects=frozenset({"elsewhere"})),
    "read, project:this": TokenScope(write=False, projects=frozenset({"prj"})),
}
ACCOUNT_SCOPE_COLUMNS = ("read", "project-limited")
ACCOUNT_SCOPES = {
    "read": TokenScope(write=False),
    "project-limited": TokenScope(projects=frozenset({"prj"})),
}
SCOPE_TABLE = _table(("scope action", "target", *SCOPE_COLUMNS))
ACCOUNT_SCOPE_TABLE = _table(("scope account action", *ACCOUNT_SCOPE_COLUMNS))
SCOPE_CELLS = [
    pytest.param(
        row[0], row[1], column, role_column, cell, id=f"{row[0]}-{row[1]}-{column}-{role_column}"
    )
    for row in SCOPE_TABLE
    for column, cell in zip(SCOPE_COLUMNS, row[2:], strict=True)
    for role_column in PROJECT_COLUMNS
]
ACCOUNT_SCOPE_CELLS = [
    pytest.param(row[0], column, role_column, cell, id=f"{row[0]}-{column}-{role_column}")
    for row in ACCOUNT_SCOPE_TABLE
    for column, cell in zip(ACCOUNT_SCOPE_COLUMNS, row[1:], strict=True)
    for role_column in ACCOUNT_COLUMNS
]


def _scoped(role_outcome: str, cell: str) -> str:
    """What a scope cell makes of the role's outcome (``scope``: 403 insufficient_scope)."""
    if cell == "role" or role_outcome == "404":
        return role_outcome
    return cell


def _scoped_outcome(
    viewer: Viewer, action: Action, project: ProjectFacts, rec: RecordingFacts | None
) -> str:
    try:
        check(viewer, action, project, rec)
    except InsufficientScope:
        return "scope"
    except NotFound:
        return "404"
    except Forbidden:
        return "403"
    return "yes"


@pytest.mark.parametrize(("action", "target", "column", "role_column", "cell"), SCOPE_CELLS)
def test_scope_matrix_cell(
    action: str, target: str, column: str, role_column: str, cell: str
) -> None:
    role_row = next(r for r in PROJECT_TABLE if r[0] == action and r[1] == target)
    role_cell = role_row[2 + PROJECT_COLUMNS.index(role_column)]
    base = VIEWERS[role_column]
    viewer = Viewer(person_id=base.person_id, role=base.role, scope=SCOPES[column])
    for author, role_outcome in _expected(role_cell).items():
        creator = viewer.person_id if author == "own" else "someone-else"
        rec = None if target == "project" else _recording(target, role_column, creator)
        got = _scoped_outcome(viewer, Action(action), _project(), rec)
        assert got == _scoped(role_outcome, cell), author


@pytest.mark.parametrize(("action", "column", "role_column", "cell"), ACCOUNT_SCOPE_CELLS)
def test_account_scope_matrix_cell(action: str, column: str, role_column: str, cell: str) -> None:
    role_row = next(r for r in ACCOUNT_TABLE if r[0] == action)
    role_outcome = role_row[1 + ACCOUNT_COLUMNS.index(role_column)]
    actor_role, target = role_column.split(" → ")
    viewer = Viewer(person_id="me", role=actor_role, scope=ACCOUNT_SCOPES[column])  # type: ignore[arg-type]
    target_id = None if action.startswith("create_") else ("me" if target == "self" else "you")
    if cell == "own":
        cell = "role" if target_id == "me" else "scope"
    try:
        check_account(viewer, AccountAction(action), target_id)
        outcome = "yes"
    except InsufficientScope:
        outcome = "scope"
    except NotFound:
        outcome = "404"
    except Forbidden:
        outcome = "403"
    assert outcome == _scoped(role_outcome, cell)


def test_the_scope_tables_cover_every_action() -> None:
    assert [(r[0], r[1]) for r in SCOPE_TABLE] == [(r[0], r[1]) for r in PROJECT_TABLE]
    assert {row[0] for row in ACCOUNT_SCOPE_TABLE} == {a.value for a in AccountAction}


@pytest.mark.parametrize(
    ("action", "target", "column", "cell"), [p for p in PROJECT_CELLS if p.values[2] == "member"]
)
def test_a_service_account_is_a_member(action: str, target: str, column: str, cell: str) -> None:
    """A service account on the project is judged exactly as a member (docs: Service accounts)."""
    bot = Viewer(person_id="max", role="service")
    outcomes = {}
    for author in ("other", "own"):
        creator = "max" if author == "own" else "someone-else"
        rec = None if target == "project" else _recording(target, column, creator)
        outcomes[author] = _outcome(bot, Action(action), _project(), rec)
    assert outcomes == _expected(cell)


def test_scope_within() -> None:
    full, read = TokenScope(), TokenScope(write=False)
    one, two = TokenScope(projects=frozenset({"a"})), TokenScope(projects=frozenset({"a", "b"}))
    assert read.within(full)
    assert one.within(two)
    assert one.within(full)
    assert not full.within(read)
    assert not two.within(one)
    assert not full.within(one)
    assert TokenScope(write=False, projects=frozenset({"a"})).within(two)
    assert not TokenScope(projects=frozenset({"a"})).within(TokenScope(write=False))

"""The layers of docs/ARCHITECTURE.md hold (``lint-imports``, contracts in pyproject.toml), and
each import that once ran the wrong way breaks a contract when it is put back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .support.tree import copy_of_the_package

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

# (module, the import put back, the contract it must break): the wrong-way imports found
# before the application layer and the read side existed, and the hidden cycles.
WRONG_WAY = [
    ("realtime/hub.py", "from ..http import app", "Layers"),
    ("feeds/query.py", "from ..http import envelope", "Layers"),
    ("bootstrap.py", "from .http import context", "Layers"),
    ("reads/visibility.py", "from ..http import activity", "Layers"),
    ("commands/execute.py", "from ..http.context import Ctx", "Layers"),
    ("cli.py", "from .http import snapshot", "the CLI imports the app only"),
    ("http/app.py", "from ..realtime.connection import Connection", "Realtime's insides"),
    ("http/api.py", "from ..realtime.subscriptions import Subscriptions", "Realtime's insides"),
    ("http/openapi.py", "from ..realtime.asyncapi import document", "Realtime's insides"),
    ("http/envelope.py", "from ..projections import recordings_tables", "Read models' insides"),
    ("domain/people.py", "import asyncpg", "The domain does no I/O"),
    ("domain/todos.py", "import starlette.requests", "The domain does no I/O"),
    ("realtime/connection.py", "from . import hub", "No import cycles"),
    ("projections/recordings_tables.py", "from . import recordings_bulk", "No import cycles"),
]


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(tree / "pyproject.toml")],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the package and its contracts, to put a wrong-way import into."""
    return copy_of_the_package(tmp_path)


def test_the_tree_keeps_every_contract(tree: Path) -> None:
    """lint-imports passes on the package as it is."""
    result = _lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


@pytest.mark.parametrize(("module", "line", "contract"), WRONG_WAY)
def test_a_wrong_way_import_put_back_breaks_a_contract(
    tree: Path, module: str, line: str, contract: str
) -> None:
    """An import that runs against the layers fails lint-imports, naming its contract."""
    path = tree / "service" / module
    path.write_text(path.read_text() + f"\n{line}  # put back by the test\n")
    result = _lint(tree)
    assert result.returncode != 0
    broken = [row for row in result.stdout.splitlines() if " BROKEN" in row]
    assert any(contract in row for row in broken), result.stdout

"""The project's tree, for tests that run tools over it (or over a copy they may change)."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
"""The repository's root."""


def copy_of_the_package(folder: Path) -> Path:
    """``service/`` (without bytecode) and ``pyproject.toml`` copied into ``folder``, which
    is returned: a tree to change without touching the repository."""
    shutil.copytree(
        ROOT / "service", folder / "service", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", folder / "pyproject.toml")
    return folder

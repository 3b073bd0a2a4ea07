"""The ``cairn`` command as installed."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

CAIRN = shutil.which("cairn", path=str(Path(sys.executable).parent)) or shutil.which("cairn")
"""The console script next to this interpreter (a virtualenv's bin/), else the one on PATH;
None when neither exists."""

RUN_TIMEOUT = 60.0
"""Only there to turn a command that hangs into a failure."""


def child_env(database_url: str | None = None) -> dict[str, str]:
    """This process's environment for a ``cairn`` child, with ``DATABASE_URL`` set to
    ``database_url`` (None: unset, the embedded database)."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    return env


async def run_cairn(*args: str, env: dict[str, str]) -> tuple[int, str]:
    """Run ``cairn *args`` to completion; its exit code and its stdout and stderr together."""
    assert CAIRN is not None
    proc = await asyncio.create_subprocess_exec(
        CAIRN,
        *args,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    async with asyncio.timeout(RUN_TIMEOUT):
        output, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, output.decode()

"""The ``cairn`` command as installed."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
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


@dataclass
class Serving:
    """A running ``cairn serve`` child: what it printed (stdout) and what it logged (stderr),
    line by line, kept apart."""

    process: asyncio.subprocess.Process
    port: int
    printed: list[str] = field(default_factory=list)
    logged: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Send ``sig`` and wait for the process to end; its exit code."""
        self.process.send_signal(sig)
        async with asyncio.timeout(RUN_TIMEOUT):
            return await self.process.wait()


@asynccontextmanager
async def cairn_serve(port: int, *args: str, env: dict[str, str]) -> AsyncIterator[Serving]:
    """``cairn serve --port port *args`` for as long as the block runs, once uvicorn listens;
    killed at the end if still running."""
    assert CAIRN is not None
    process = await asyncio.create_subprocess_exec(
        CAIRN,
        *("serve", "--port", str(port), *args),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    serving = Serving(process, port)
    listening = asyncio.Event()

    async def collect(stream: asyncio.StreamReader | None, lines: list[str]) -> None:
        # Read everything, so that the child never blocks on a full pipe.
        assert stream is not None
        async for raw in stream:
            line = raw.decode(errors="replace").rstrip("\n")
            lines.append(line)
            if "Uvicorn running on" in line:
                listening.set()
        listening.set()  # the child ended: stop waiting, and let the check below fail

    readers = [
        asyncio.create_task(collect(process.stdout, serving.printed)),
        asyncio.create_task(collect(process.stderr, serving.logged)),
    ]
    try:
        async with asyncio.timeout(RUN_TIMEOUT):
            await listening.wait()
        assert process.returncode is None, "cairn serve ended early:\n" + "\n".join(
            serving.printed + serving.logged
        )
        yield serving
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await asyncio.gather(*readers)

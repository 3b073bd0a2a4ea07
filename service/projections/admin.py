"""``cairn projections status`` and ``cairn projections rebuild``: looking after read models.

Both work beside a running ``cairn serve`` on the same database: a rebuild fills a new
generation while the service keeps answering from the old one, and swaps it in atomically
(see :mod:`service.projections.engine`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from ..events.store import EventStore
from . import all_projections
from .engine import ProjectionEngine, ProjectionStatus, UnknownProjection


async def _engine(url: str) -> ProjectionEngine:
    projections = all_projections()
    # A rebuild uses a connection per projection, one to read ahead and one to spare.
    store = await EventStore.open(url, min_size=1, max_size=len(projections) + 2)
    return ProjectionEngine(store, projections)


def status_table(statuses: Sequence[ProjectionStatus], code_versions: dict[str, int]) -> Table:
    """The status of each projection as a table (a version the code has moved past shows as
    "stored → code": the next start rebuilds it)."""
    table = Table(title="Projections")
    for header, justify in (
        ("name", "left"),
        ("version", "right"),
        ("generation", "right"),
        ("position", "right"),
        ("applied", "right"),
        ("lag (events)", "right"),
        ("lag (s)", "right"),
    ):
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    for s in statuses:
        code = code_versions.get(s.name, s.version)
        version = str(s.version) if code == s.version else f"{s.version} → {code}"
        if s.generation == 0:
            table.add_row(s.name, str(code), "-", "-", "-", "not installed", "-")
            continue
        table.add_row(
            s.name,
            version,
            str(s.generation),
            str(s.position),
            str(s.events_applied),
            str(s.lag_events),
            f"{s.lag_seconds:.1f}",
        )
    return table


async def status(url: str, console: Console | None = None) -> int:
    """Print every projection's status; exit code 0."""
    console = console or Console()
    engine = await _engine(url)
    try:
        statuses = await engine.status()
    finally:
        await engine.store.close()
    versions = {name: p.version for name, p in engine.projections.items()}
    console.print(status_table(statuses, versions))
    return 0


async def rebuild(url: str, names: Sequence[str], console: Console | None = None) -> int:
    """Rebuild ``names`` (all projections if empty) with a progress bar; exit code 0.

    Raises:
        UnknownProjection: a name is not a registered projection.
    """
    console = console or Console()
    engine = await _engine(url)
    try:
        chosen = list(names) or list(engine.projections)
        for name in chosen:
            if name not in engine.projections:
                known = ", ".join(engine.projections)
                raise UnknownProjection(f"no projection is named {name!r} (known: {known})")
        started = time.perf_counter()
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("events"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task(f"rebuilding {', '.join(chosen)}", total=None)

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            await engine.rebuild_many(chosen, advance)
        elapsed = time.perf_counter() - started
        statuses = {s.name: s for s in await engine.status()}
    finally:
        await engine.store.close()
    for name in chosen:
        s = statuses[name]
        console.print(
            f"{name}: generation {s.generation} serving, at position {s.position} "
            f"({s.events_applied} events)"
        )
    console.print(f"done in {elapsed:.1f} s")
    return 0

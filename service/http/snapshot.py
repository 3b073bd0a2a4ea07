"""``GET /v1/projects/{id}/snapshot?position=N`` or ``?at=<RFC 3339>``: a project as it was
(see :mod:`service.commands.snapshot` for what each point means)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from ..commands.snapshot import build_snapshot
from ..domain.snapshot import Snapshot
from ..reads.access import visible_project
from .api import Api, Ctx, Reply
from .params import Param, rfc3339
from .problems import ApiError, FieldError

api = Api()


@api.get(
    "/v1/projects/{project_id}/snapshot",
    summary="The project's to-do lists, to-dos, milestones and messages at a point of the log",
    response=Snapshot,
    tags=["time travel"],
    query={
        "position": Param(
            "a log position: every event of the project up to and including it, in log order",
            Annotated[int, msgspec.Meta(ge=0)],
        ),
        "at": rfc3339("an RFC 3339 time: every event of the project recorded at or before it"),
    },
)
async def project_snapshot(ctx: Ctx) -> Reply:
    """Exactly one of ``?position=`` and ``?at=`` (400 otherwise); 404 for an unknown position
    or a project the caller may not see. Filtered for the caller like every view."""
    project_id = ctx.path("project_id")
    facts = await visible_project(ctx.store.pool, ctx.me, project_id)
    position, at = _point(ctx)
    snapshot = await build_snapshot(ctx.store, ctx.me, facts, project_id, position=position, at=at)
    return Reply(snapshot)


def _point(ctx: Ctx) -> tuple[int | None, datetime | None]:
    position: int | None = ctx.param("position")
    at: datetime | None = ctx.param("at")
    if (position is None) == (at is None):
        raise ApiError(
            400,
            "give exactly one of ?position= (a log position) and ?at= (an RFC 3339 time)",
            field_errors=[FieldError(field="position", detail="give position or at")],
        )
    return position, at

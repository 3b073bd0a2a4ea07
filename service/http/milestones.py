"""Milestones: set, list (upcoming, late, completed), read, edit or reschedule, complete."""

from __future__ import annotations

from datetime import date
from typing import Final, Literal

import msgspec

from ..commands.recordings import change, create, edit_decision, load_project
from ..domain import text
from ..domain.context import Context
from ..domain.milestones import (
    CompleteMilestone,
    CreateMilestone,
    EditMilestone,
    ReopenMilestone,
    decide_complete_milestone,
    decide_create_milestone,
    decide_reopen_milestone,
)
from ..domain.projects import ProjectState
from ..domain.recordings import Lineage, RecordingState
from ..events.base import Event
from ..reads import recordings
from .api import Api, Ctx, Reply
from .envelope import Milestone, page, project_for_list, show, status_filter
from .params import PAGING, STATUS, Param

api = Api()
_TAGS: Final = ["milestones"]


class NewMilestone(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A milestone to set; ``notes`` is HTML (sanitised)."""

    title: text.Line
    due_on: date
    responsible_id: str | None = None
    notes: text.OptionalHtml | None = None
    visible_to_clients: bool = False


@api.post(
    "/v1/projects/{project_id}/milestones",
    summary="Set a milestone",
    response=Milestone,
    status=201,
    tags=_TAGS,
)
async def post_milestone(ctx: Ctx, body: NewMilestone) -> Reply:
    project = await load_project(ctx.caller, ctx.path("project_id"))
    recording_id = ctx.new_id("rec")
    cmd = CreateMilestone(
        recording_id=recording_id,
        title=body.title,
        due_on=body.due_on,
        responsible_id=body.responsible_id,
        notes=body.notes,
        visible_to_clients=body.visible_to_clients,
    )
    events = decide_create_milestone(project, cmd, ctx.caller.context())
    await create(ctx.caller, project.project_id, recording_id, events)
    return await show(ctx, recording_id, status=201)


@api.get(
    "/v1/projects/{project_id}/milestones",
    summary="A project's milestones, soonest due first",
    response=list[Milestone],
    query={
        "filter": Param(
            "all (default), upcoming, late (due before today, in your time zone, and not "
            "completed) or completed",
            Literal["all", "upcoming", "late", "completed"],
        ),
        "status": STATUS,
        **PAGING,
    },
    tags=_TAGS,
)
async def list_milestones(ctx: Ctx) -> Reply:
    project = await project_for_list(ctx)
    which = ctx.param("filter", "all")
    today = (await ctx.today()).date
    selection = recordings.milestones(project.project_id, status_filter(ctx), which, today)
    return await page(ctx, selection, project=project)


@api.get("/v1/milestones/{id}", summary="A milestone", response=Milestone, tags=_TAGS)
async def get_milestone(ctx: Ctx) -> Reply:
    return await show(ctx, ctx.path("id"), kind="milestone")


@api.patch(
    "/v1/milestones/{id}",
    summary="Merge-patch a milestone; a new due_on reschedules it",
    response=Milestone,
    tags=_TAGS,
)
async def patch_milestone(ctx: Ctx, body: EditMilestone) -> Reply:
    await change(ctx.caller, ctx.path("id"), edit_decision("milestone", body), "milestone")
    return await show(ctx, ctx.path("id"), kind="milestone")


def _complete(p: ProjectState, r: RecordingState, lineage: Lineage, c: Context) -> list[Event]:
    return decide_complete_milestone(p, r, CompleteMilestone(), c)


def _reopen(p: ProjectState, r: RecordingState, lineage: Lineage, c: Context) -> list[Event]:
    return decide_reopen_milestone(p, r, ReopenMilestone(), c)


@api.post(
    "/v1/milestones/{id}/completion",
    summary="Complete a milestone (409 if it is completed already)",
    response=Milestone,
    tags=_TAGS,
)
async def complete_milestone(ctx: Ctx) -> Reply:
    await change(ctx.caller, ctx.path("id"), _complete, "milestone")
    return await show(ctx, ctx.path("id"), kind="milestone")


@api.delete(
    "/v1/milestones/{id}/completion",
    summary="Reopen a completed milestone (409 if it is open)",
    response=Milestone,
    tags=_TAGS,
)
async def reopen_milestone(ctx: Ctx) -> Reply:
    await change(ctx.caller, ctx.path("id"), _reopen, "milestone")
    return await show(ctx, ctx.path("id"), kind="milestone")

"""Comments under any recording: add (clients too, on what they see), list, read, edit."""

from __future__ import annotations

from typing import Final

import msgspec

from ..commands.recordings import change, create, edit_decision, load
from ..domain import text
from ..domain.comments import AddComment, EditComment, decide_add_comment
from ..reads import recordings
from .api import Api, Ctx, Reply
from .envelope import Comment, page, parent_for_list, show, status_filter
from .params import PAGING, STATUS

api = Api()
_TAGS: Final = ["comments"]


class NewComment(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A comment to add; ``content`` is HTML (sanitised)."""

    content: text.Html


@api.post(
    "/v1/recordings/{id}/comments",
    summary="Comment on a recording (not on a comment)",
    response=Comment,
    status=201,
    tags=_TAGS,
)
async def post_comment(ctx: Ctx, body: NewComment) -> Reply:
    parent = await load(ctx.caller, ctx.path("id"))
    recording_id = ctx.new_id("rec")
    cmd = AddComment(recording_id=recording_id, content=body.content)
    events = decide_add_comment(
        parent.project, parent.recording, cmd, ctx.caller.context(), parent.lineage
    )
    await create(ctx.caller, parent.project.project_id, recording_id, events)
    return await show(ctx, recording_id, status=201)


@api.get(
    "/v1/recordings/{id}/comments",
    summary="The comments under a recording, oldest first",
    response=list[Comment],
    query={"status": STATUS, **PAGING},
    tags=_TAGS,
)
async def list_comments(ctx: Ctx) -> Reply:
    parent, project = await parent_for_list(ctx)
    selection = recordings.comments(parent["recording_id"], status_filter(ctx))
    return await page(ctx, selection, project=project)


@api.get("/v1/comments/{id}", summary="A comment", response=Comment, tags=_TAGS)
async def get_comment(ctx: Ctx) -> Reply:
    return await show(ctx, ctx.path("id"), kind="comment")


@api.patch(
    "/v1/comments/{id}",
    summary="Edit a comment (its author, or the project's owners and admins)",
    response=Comment,
    tags=_TAGS,
)
async def patch_comment(ctx: Ctx, body: EditComment) -> Reply:
    await change(ctx.caller, ctx.path("id"), edit_decision("comment", body), "comment")
    return await show(ctx, ctx.path("id"), kind="comment")

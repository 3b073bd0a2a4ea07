"""Comments under any recording: add (clients too, on what they see), list, read, edit."""

from __future__ import annotations

from typing import Final

import msgspec

from ..domain.comments import AddComment, EditComment, decide_add_comment
from .api import Api, Ctx, Reply
from .commands import context
from .envelope import SEQ_ASC, Comment, page, parent_for_list, show, status_filter
from .recordings import change, create, edit_decision, load

api = Api()
_TAGS: Final = ["comments"]


class NewComment(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A comment to add; ``content`` is HTML (sanitised)."""

    content: str


@api.post(
    "/v1/recordings/{id}/comments",
    summary="Comment on a recording (not on a comment)",
    body=NewComment,
    response=Comment,
    status=201,
    tags=_TAGS,
)
async def post_comment(ctx: Ctx) -> Reply:
    body: NewComment = ctx.body
    parent = await load(ctx, ctx.path("id"))
    recording_id = ctx.new_id("rec")
    cmd = AddComment(recording_id=recording_id, content=body.content)
    events = decide_add_comment(parent.project, parent.recording, cmd, context(ctx), parent.lineage)
    return await create(ctx, parent.project.project_id, recording_id, events)


@api.get(
    "/v1/recordings/{id}/comments",
    summary="The comments under a recording, oldest first",
    response=list[Comment],
    query={
        "status": "active (default), archived or trashed",
        "limit": "page size, 1-100 (default 25)",
        "cursor": "from a Link header",
    },
    tags=_TAGS,
)
async def list_comments(ctx: Ctx) -> Reply:
    parent, project = await parent_for_list(ctx)
    where = "r.parent_id = $1 AND r.kind = 'comment' AND r.status = $2"
    args = [parent["recording_id"], status_filter(ctx)]
    return await page(ctx, where, args, SEQ_ASC, project=project)


@api.get("/v1/comments/{id}", summary="A comment", response=Comment, tags=_TAGS)
async def get_comment(ctx: Ctx) -> Reply:
    return await show(ctx, ctx.path("id"), kind="comment")


@api.patch(
    "/v1/comments/{id}",
    summary="Edit a comment (its author, or the project's owners and admins)",
    body=EditComment,
    response=Comment,
    tags=_TAGS,
)
async def patch_comment(ctx: Ctx) -> Reply:
    await change(ctx, ctx.path("id"), edit_decision("comment", ctx.body), "comment")
    return await show(ctx, ctx.path("id"), kind="comment")

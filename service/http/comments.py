"""Comments under any recording: add (clients too, on what they see), list, read, edit."""

from __future__ import annotations

from typing import Final

import msgspec

from ..commands import files
from ..domain import text
from ..domain.comments import AddComment, EditComment
from ..reads import recordings
from .api import Api, Ctx, Reply
from .envelope import Comment, page, parent_for_list, show, status_filter, visible_row
from .params import PAGING, STATUS
from .uploads import AttachmentIds, claim_all

api = Api()
_TAGS: Final = ["comments"]


class NewComment(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A comment to add; ``content`` is HTML (sanitised); ``attachment_ids``: files the
    caller uploaded (``POST /v1/attachments``), in their order."""

    content: text.Html
    attachment_ids: AttachmentIds = msgspec.field(default_factory=list)


class CommentPatch(EditComment, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Edit a comment; ``attachment_ids`` (files the caller uploaded) replaces its files
    (``[]``: none; omitted: unchanged)."""

    attachment_ids: AttachmentIds | msgspec.UnsetType = msgspec.UNSET


@api.post(
    "/v1/recordings/{id}/comments",
    summary="Comment on a recording (not on a comment)",
    response=Comment,
    status=201,
    tags=_TAGS,
)
async def post_comment(ctx: Ctx, body: NewComment) -> Reply:
    parent_id = ctx.path("id")
    if body.attachment_ids:
        # The parent first: a caller who may not see it learns nothing of the attachables.
        await visible_row(ctx, parent_id)
    cmd = AddComment(
        recording_id=ctx.new_id("rec"),
        content=body.content,
        attachments=await claim_all(ctx, body.attachment_ids),
    )
    recording_id = await files.add_comment(ctx.caller, parent_id, cmd)
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
async def patch_comment(ctx: Ctx, body: CommentPatch) -> Reply:
    comment_id = ctx.path("id")
    attachments = None
    if not isinstance(body.attachment_ids, msgspec.UnsetType):
        # The comment first: a caller who may not see it learns nothing of the attachables.
        await visible_row(ctx, comment_id, "comment")
        attachments = await claim_all(ctx, body.attachment_ids)
    edit = EditComment(content=body.content)
    await files.edit_comment(ctx.caller, comment_id, edit, attachments)
    return await show(ctx, comment_id, kind="comment")

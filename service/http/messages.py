"""Messages on a project's message board: post, list (newest first), read, edit."""

from __future__ import annotations

from typing import Final

import msgspec

from ..commands import files
from ..domain import text
from ..domain.messages import EditMessage, PostMessage
from ..reads import recordings
from .api import Api, Ctx, Reply
from .envelope import Message, page, project_for_list, show, status_filter, visible_row
from .params import PAGING, STATUS
from .uploads import AttachmentIds, claim_all

api = Api()
_TAGS: Final = ["messages"]


class NewMessage(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A message to post. ``body`` is HTML (sanitised); ``subscriber_ids`` left out
    subscribes everyone on the project who can see the message; ``attachment_ids``: files
    the caller uploaded (``POST /v1/attachments``), in their order."""

    subject: text.Line
    body: text.Html
    category: text.OptionalLine | None = None
    visible_to_clients: bool = False
    subscriber_ids: list[str] | None = None
    attachment_ids: AttachmentIds = msgspec.field(default_factory=list)


class MessagePatch(EditMessage, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Merge-patch a message; ``attachment_ids`` (files the caller uploaded) replaces its
    files (``[]``: none; omitted: unchanged)."""

    attachment_ids: AttachmentIds | msgspec.UnsetType = msgspec.UNSET


@api.post(
    "/v1/projects/{project_id}/messages",
    summary="Post a message",
    response=Message,
    status=201,
    tags=_TAGS,
)
async def post_message(ctx: Ctx, body: NewMessage) -> Reply:
    # The project first: a caller who may not see it learns nothing of the attachables.
    project = await project_for_list(ctx)
    cmd = PostMessage(
        recording_id=ctx.new_id("rec"),
        subject=body.subject,
        body=body.body,
        category=body.category,
        visible_to_clients=body.visible_to_clients,
        subscriber_ids=None if body.subscriber_ids is None else tuple(body.subscriber_ids),
        attachments=await claim_all(ctx, body.attachment_ids),
    )
    recording_id = await files.post_message(ctx.caller, project.project_id, cmd)
    return await show(ctx, recording_id, status=201)


@api.get(
    "/v1/projects/{project_id}/messages",
    summary="A project's messages, newest first",
    response=list[Message],
    query={"status": STATUS, **PAGING},
    tags=_TAGS,
)
async def list_messages(ctx: Ctx) -> Reply:
    project = await project_for_list(ctx)
    selection = recordings.messages(project.project_id, status_filter(ctx))
    return await page(ctx, selection, project=project)


@api.get("/v1/messages/{id}", summary="A message", response=Message, tags=_TAGS)
async def get_message(ctx: Ctx) -> Reply:
    return await show(ctx, ctx.path("id"), kind="message")


@api.patch(
    "/v1/messages/{id}",
    summary="Merge-patch a message (omitted: unchanged; null clears the category)",
    response=Message,
    tags=_TAGS,
)
async def patch_message(ctx: Ctx, body: MessagePatch) -> Reply:
    message_id = ctx.path("id")
    attachments = None
    if not isinstance(body.attachment_ids, msgspec.UnsetType):
        # The message first: a caller who may not see it learns nothing of the attachables.
        await visible_row(ctx, message_id, "message")
        attachments = await claim_all(ctx, body.attachment_ids)
    edit = EditMessage(subject=body.subject, body=body.body, category=body.category)
    await files.edit_message(ctx.caller, message_id, edit, attachments)
    return await show(ctx, message_id, kind="message")

"""Messages on a project's message board: post, list (newest first), read, edit."""

from __future__ import annotations

from typing import Final

import msgspec

from ..commands.recordings import change, create, edit_decision, load_project
from ..domain import text
from ..domain.messages import EditMessage, PostMessage, decide_post_message
from ..reads import recordings
from .api import Api, Ctx, Reply
from .envelope import Message, page, project_for_list, show, status_filter
from .params import PAGING, STATUS

api = Api()
_TAGS: Final = ["messages"]


class NewMessage(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A message to post. ``body`` is HTML (sanitised); ``subscriber_ids`` left out
    subscribes everyone on the project who can see the message."""

    subject: text.Line
    body: text.Html
    category: text.OptionalLine | None = None
    visible_to_clients: bool = False
    subscriber_ids: list[str] | None = None


@api.post(
    "/v1/projects/{project_id}/messages",
    summary="Post a message",
    response=Message,
    status=201,
    tags=_TAGS,
)
async def post_message(ctx: Ctx, body: NewMessage) -> Reply:
    project = await load_project(ctx.caller, ctx.path("project_id"))
    recording_id = ctx.new_id("rec")
    cmd = PostMessage(
        recording_id=recording_id,
        subject=body.subject,
        body=body.body,
        category=body.category,
        visible_to_clients=body.visible_to_clients,
        subscriber_ids=None if body.subscriber_ids is None else tuple(body.subscriber_ids),
    )
    events = decide_post_message(project, cmd, ctx.caller.context())
    await create(ctx.caller, project.project_id, recording_id, events)
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
async def patch_message(ctx: Ctx, body: EditMessage) -> Reply:
    await change(ctx.caller, ctx.path("id"), edit_decision("message", body), "message")
    return await show(ctx, ctx.path("id"), kind="message")

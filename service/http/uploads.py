"""Uploads: files kept on a project (``/v1/projects/{project_id}/uploads``,
``/v1/uploads/{id}``), each with every version it had (``/v1/uploads/{id}/versions``).

A client names a file by the attachable its ``POST /v1/attachments`` answered; this module
claims it (:func:`attachables.claim`: only its uploader may) and hands the
:class:`~service.blobs.store.FileRef` to :mod:`service.commands.files`. Downloads are
another module's (the ``download_url`` of the shapes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Final

import msgspec

from ..blobs import attachables
from ..blobs.store import FileRef
from ..commands import files
from ..domain import text
from ..domain.redaction import Mentions
from ..domain.uploads import CreateUpload, EditUpload
from ..events.recordings import MAX_ATTACHMENTS
from ..events.streams import ATTACHABLE_ID, id_pattern
from ..reads import recordings
from ..reads.access import sight_of
from .api import Api, Ctx, Reply
from .envelope import (
    Upload,
    Version,
    base_url,
    page,
    person_ref,
    project_for_list,
    show,
    status_filter,
    upload_download_url,
    visible_row,
)
from .params import PAGING, STATUS, Param, Text
from .problems import ApiError, FieldError

api = Api()
_TAGS: Final = ["uploads"]

AttachableId = Annotated[str, msgspec.Meta(pattern=id_pattern(ATTACHABLE_ID))]
AttachmentIds = Annotated[list[AttachableId], msgspec.Meta(max_length=MAX_ATTACHMENTS)]
"""What a message or comment names its files by: attachables, at most
:data:`~service.events.recordings.MAX_ATTACHMENTS`."""


async def claim(ctx: Ctx, attachable_id: str, field: str = "attachable_id") -> FileRef:
    """The file of attachable ``attachable_id``, which the caller uploaded.

    Raises:
        ApiError: 422 naming ``field``: no attachable of that id is the caller's.
    """
    ref = await attachables.claim(ctx.store.pool, attachable_id, ctx.me.person_id)
    if ref is None:
        raise _not_yours(field, attachable_id)
    return ref


async def claim_all(ctx: Ctx, attachable_ids: Sequence[str]) -> tuple[FileRef, ...]:
    """The files of ``attachable_ids`` (field ``attachment_ids``), in their order.

    An attachable claimed before a later one is refused stays claimed: a claim only marks
    it attached, and an attachable may be attached again (the same bytes on two messages).

    Raises:
        ApiError: 422 naming ``attachment_ids``: one of them is not the caller's.
    """
    return tuple([await claim(ctx, a, "attachment_ids") for a in attachable_ids])


def _not_yours(field: str, attachable_id: str) -> ApiError:
    detail = f"{field} names {attachable_id!r}, which is no file you uploaded"
    return ApiError(422, detail, field_errors=[FieldError(field=field, detail=detail)])


class NewUpload(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A file to keep on a project: the attachable its bytes were uploaded as (``POST
    /v1/attachments``, by the caller); ``description`` is HTML (sanitised), ``folder`` a
    name uploads are grouped by; ``subscriber_ids`` left out subscribes everyone on the
    project who can see the upload."""

    attachable_id: AttachableId
    description: text.OptionalHtml | None = None
    folder: text.OptionalLine | None = None
    visible_to_clients: bool = False
    subscriber_ids: list[str] | None = None


class NewVersion(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An upload's new file: the attachable its bytes were uploaded as (by the caller)."""

    attachable_id: AttachableId


_MEDIA_TYPE: Final = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+/([!#$%&'*+.^_`|~0-9A-Za-z-]+|\*)$"
CONTENT_TYPE: Final = Param(
    "only uploads of this type: type/subtype, or type/* for every subtype",
    Annotated[str, msgspec.Meta(pattern=_MEDIA_TYPE, max_length=255)],
    parse=str.lower,
)
FOLDER: Final = Param("only uploads in this folder (exact name)", Text)


@api.post(
    "/v1/projects/{project_id}/uploads",
    summary="Keep an uploaded file on a project (its bytes from POST /v1/attachments)",
    response=Upload,
    status=201,
    tags=_TAGS,
)
async def post_upload(ctx: Ctx, body: NewUpload) -> Reply:
    # The project first: a caller who may not see it learns nothing of the attachable.
    await project_for_list(ctx)
    file = await claim(ctx, body.attachable_id)
    cmd = CreateUpload(
        recording_id=ctx.new_id("rec"),
        file=file,
        description=body.description,
        folder=body.folder,
        visible_to_clients=body.visible_to_clients,
        subscriber_ids=None if body.subscriber_ids is None else tuple(body.subscriber_ids),
    )
    upload_id = await files.create_upload(ctx.caller, ctx.path("project_id"), cmd)
    return await show(ctx, upload_id, status=201)


@api.get(
    "/v1/projects/{project_id}/uploads",
    summary="A project's uploads, newest first",
    response=list[Upload],
    query={"status": STATUS, "folder": FOLDER, "content_type": CONTENT_TYPE, **PAGING},
    tags=_TAGS,
)
async def list_uploads(ctx: Ctx) -> Reply:
    project = await project_for_list(ctx)
    selection = recordings.uploads(
        project.project_id, status_filter(ctx), ctx.param("folder"), ctx.param("content_type")
    )
    return await page(ctx, selection, project=project)


@api.get("/v1/uploads/{id}", summary="An upload", response=Upload, tags=_TAGS)
async def get_upload(ctx: Ctx) -> Reply:
    return await show(ctx, ctx.path("id"), kind="upload")


@api.patch(
    "/v1/uploads/{id}",
    summary="Merge-patch an upload: rename it, change its description or folder (null clears them)",
    response=Upload,
    tags=_TAGS,
)
async def patch_upload(ctx: Ctx, body: EditUpload) -> Reply:
    await files.edit_upload(ctx.caller, ctx.path("id"), body)
    return await show(ctx, ctx.path("id"), kind="upload")


@api.get(
    "/v1/uploads/{id}/versions",
    summary="Every version of an upload, oldest (1) first",
    response=list[Version],
    tags=_TAGS,
)
async def list_versions(ctx: Ctx) -> Reply:
    row = await visible_row(ctx, ctx.path("id"), "upload")
    upload_id: str = row["recording_id"]
    shown = await recordings.versions(ctx.store.pool, upload_id)
    project = recordings.viewer_facts(ctx.me, row)
    people = frozenset(v["created_by"] for v in shown)
    sight = await sight_of(ctx.store.pool, ctx.me, project, Mentions(people=people))
    base = base_url(ctx)
    return Reply(
        [
            Version(
                n=v["n"],
                name=v["name"],
                size=v["size"],
                content_type=v["content_type"],
                sha256=v["sha256"],
                creator=person_ref(sight, v["created_by"], v["creator_name"], base=base),
                created_at=v["created_at"],
                download_url=upload_download_url(base, upload_id, v["n"]),
            )
            for v in shown
        ]
    )


@api.post(
    "/v1/uploads/{id}/versions",
    summary="Replace an upload's file with a new version (every earlier one is kept); "
    "answers the upload",
    response=Upload,
    tags=_TAGS,
)
async def post_version(ctx: Ctx, body: NewVersion) -> Reply:
    # 200 with the upload, not 201 with the version: a version is no resource of its own
    # (only its bytes are), and this POST changes the upload, so If-Match applies to it
    # (replacing a file someone else replaced since you read it is the lost update it
    # prevents; see Endpoint.conditional).
    # The upload first: a caller who may not see it learns nothing of the attachable.
    upload_id = (await visible_row(ctx, ctx.path("id"), "upload"))["recording_id"]
    file = await claim(ctx, body.attachable_id)
    await files.add_version(ctx.caller, upload_id, file)
    return await show(ctx, upload_id, kind="upload")

"""Downloads of uploads and attachments, and the signed links to uploads' versions.

* ``GET /v1/uploads/{id}/download`` (the latest version),
  ``/v1/uploads/{id}/versions/{n}/download`` and
  ``/v1/recordings/{id}/attachments/{sha256}/download`` (a message's or comment's file),
  with the API token (Bearer) or the reader's feed token (``?token=`` or HTTP Basic, as
  feeds take it: feed readers fetch enclosures with it): the bytes, as every download is served (:mod:`.downloads`), to
  whoever may see the recording that holds them; anyone else gets 404, as for the recording
  itself (:func:`~service.reads.files.visible_file`).
* ``GET /v1/uploads/{id}/link`` and ``/v1/uploads/{id}/versions/{n}/link``, under the same
  rules: a link to ``/files/{id}/versions/{n}`` signed for five minutes (:mod:`.links`);
  "the latest" is resolved to its number first, so the link keeps serving the version it
  named.
* ``GET /files/{id}/versions/{n}?expires=&signature=``, without a token: the signature and
  the expiry are checked and nothing else (the link's five minutes are the access it was
  minted under).

``HEAD`` of each answers the same headers without the body.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec
from starlette.responses import Response

from ..blobs.store import FileRef
from ..domain.access import Viewer
from ..domain.signing import file_path
from ..errors import NotFound
from ..reads import files
from .api import Api, Ctx
from .downloads import file_response
from .feed_auth import authenticate, credential_of
from .links import LinkBody, check_link, link_response
from .params import Param

api = Api()
_TAGS: Final = ["files"]

VersionNumber = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]
Sha256 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
_VERSION: Final = {"n": Param("a version's number, from 1", VersionNumber)}
_ATTACHMENT: Final = {"sha256": Param("the file's SHA-256, lowercase hex", Sha256)}
_LINK_QUERY: Final = {
    "redirect": Param(
        "0: answer 200 with the link in the body instead of 303 to it", Literal["0", "1"]
    )
}
_SIGNED_QUERY: Final = {
    "expires": Param("when the link stops working, Unix seconds"),
    "signature": Param("the link's signature, <key id>.<MAC>"),
}
_BYTES: Final = "the file's bytes (ranges, If-None-Match); 404 for whoever may not see the "


_READER: Final = {
    "token": Param("a feed token (feed readers' enclosures); else Bearer or HTTP Basic"),
}


async def _reader(ctx: Ctx) -> Viewer:
    """Who downloads: the holder of the API token (Bearer) or of the feed token (``?token=``
    or HTTP Basic); 401 otherwise, 429 over the rate limit."""
    return await authenticate(ctx.request, ctx.store.pool, credential_of(ctx.request))


def _no_upload() -> NotFound:
    return NotFound("there is no such upload")


async def _answer(ctx: Ctx, file: FileRef | None, missing: NotFound) -> Response:
    if file is None:
        raise missing
    return await file_response(ctx.request, ctx.state["blobs"], file)


@api.get(
    "/v1/uploads/{id}/download",
    summary="Download an upload's latest version: " + _BYTES + "upload",
    tags=_TAGS,
    auth="none",
    query=_READER,
)
async def download_upload(ctx: Ctx) -> Response:
    file = await files.visible_file(ctx.store.pool, await _reader(ctx), ctx.path("id"))
    return await _answer(ctx, file, _no_upload())


@api.get(
    "/v1/uploads/{id}/versions/{n}/download",
    summary="Download one version of an upload: " + _BYTES + "upload",
    tags=_TAGS,
    path_params=_VERSION,
    auth="none",
    query=_READER,
)
async def download_version(ctx: Ctx) -> Response:
    n = int(ctx.path("n"))
    reader = await _reader(ctx)
    file = await files.visible_file(ctx.store.pool, reader, ctx.path("id"), version=n)
    return await _answer(ctx, file, NotFound("there is no such version of the upload"))


@api.get(
    "/v1/recordings/{id}/attachments/{sha256}/download",
    summary="Download a message's or comment's attachment: " + _BYTES + "recording",
    tags=_TAGS,
    path_params=_ATTACHMENT,
    auth="none",
    query=_READER,
)
async def download_attachment(ctx: Ctx) -> Response:
    file = await files.visible_file(
        ctx.store.pool, await _reader(ctx), ctx.path("id"), sha256=ctx.path("sha256")
    )
    return await _answer(ctx, file, NotFound("there is no such attachment"))


@api.get(
    "/v1/uploads/{id}/link",
    summary="A link to the upload's latest version, signed for 5 minutes, usable without a "
    "token (303 to it; ?redirect=0: 200)",
    response=LinkBody,
    status=303,
    also=(200,),
    tags=_TAGS,
    query=_LINK_QUERY,
)
async def link_upload(ctx: Ctx) -> Response:
    upload_id = ctx.path("id")
    n = await files.latest_version(ctx.store.pool, ctx.me, upload_id)
    if n is None:
        raise _no_upload()
    return await _link(ctx, upload_id, n)


@api.get(
    "/v1/uploads/{id}/versions/{n}/link",
    summary="A link to one version of an upload, signed for 5 minutes, usable without a "
    "token (303 to it; ?redirect=0: 200)",
    response=LinkBody,
    status=303,
    also=(200,),
    tags=_TAGS,
    path_params=_VERSION,
    query=_LINK_QUERY,
)
async def link_version(ctx: Ctx) -> Response:
    upload_id, n = ctx.path("id"), int(ctx.path("n"))
    if await files.visible_file(ctx.store.pool, ctx.me, upload_id, version=n) is None:
        raise NotFound("there is no such version of the upload")
    return await _link(ctx, upload_id, n)


async def _link(ctx: Ctx, upload_id: str, n: int) -> Response:
    return await link_response(
        ctx.request,
        ctx.state["signing_keys"],
        ctx.store.pool,
        file_path(upload_id, n),
        now=int(ctx.services.clock().timestamp()),
        redirect=ctx.param("redirect") != "0",
    )


@api.get(
    "/files/{id}/versions/{n}",
    summary="A version of an upload through a signed link (from /link), without a token; "
    "403 once expired or altered",
    tags=_TAGS,
    auth="none",
    path_params=_VERSION,
    query=_SIGNED_QUERY,
)
async def signed_version(ctx: Ctx) -> Response:
    pool = ctx.store.pool
    await check_link(
        ctx.request, ctx.state["signing_keys"], pool, now=int(ctx.services.clock().timestamp())
    )
    # The signature is the authority: whoever the link was minted for could see the
    # version then, and the link lives five minutes at most.
    file = await files.upload_version(pool, ctx.path("id"), int(ctx.path("n")))
    return await _answer(ctx, file, NotFound("there is no such version of the upload"))

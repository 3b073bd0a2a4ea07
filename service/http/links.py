"""Short-lived signed links to files: minting them for an authenticated caller, and checking
the ones that come back without a token.

The contract (docs/API.md, "Signed links"): ``GET /v1/uploads/{id}/link`` (and
``/versions/{n}/link``), with the API token and the same access rules as the download
itself, answers ``303 See Other`` to ``/files/{id}/versions/{n}?expires=&signature=``, with
``{"url", "expires_at"}`` as its body; ``?redirect=0`` answers 200 with the same body, for
pages (a ``fetch`` cannot read a redirect's ``Location``) that put the URL in an ``<img>``.
``GET /files/...`` checks the signature and the expiry and nothing else, so a link lives at
most five minutes (:data:`~service.domain.signing.MAX_TTL`).
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import msgspec
from starlette.requests import Request
from starlette.responses import Response

from ..domain.signing import SignedLink, key_id_of, sign, verify
from ..reads.signing_keys import KeyringCache


class LinkBody(msgspec.Struct, frozen=True, kw_only=True):
    """The body of a link answer: the absolute URL and when it stops working."""

    url: str
    expires_at: datetime


_encoder = msgspec.json.Encoder()


async def link_response(
    request: Request,
    keys: KeyringCache,
    pool: asyncpg.Pool,
    path: str,
    *,
    now: int,
    redirect: bool = True,
) -> Response:
    """A signed link to ``path`` (:func:`~service.domain.signing.file_path`), valid for
    five minutes from ``now`` (Unix seconds), access already granted by the caller:
    ``303 See Other`` to it when ``redirect``, else 200; the body is :class:`LinkBody`
    either way. ``Cache-Control: no-store``: a cached link would outlive the access that
    minted it."""
    link: SignedLink = sign(await keys.get(pool), path, now=now)
    url = str(request.base_url).rstrip("/") + link.url
    body = LinkBody(url=url, expires_at=datetime.fromtimestamp(link.expires, UTC))
    headers = {"Cache-Control": "no-store"}
    if redirect:
        headers["Location"] = url
    return Response(
        _encoder.encode(body),
        status_code=303 if redirect else 200,
        headers=headers,
        media_type="application/json",
    )


async def check_link(request: Request, keys: KeyringCache, pool: asyncpg.Pool, *, now: int) -> None:
    """Check the signed link ``request`` came by (its path, ``expires`` and ``signature``).

    Raises:
        LinkRefused: see :func:`~service.domain.signing.verify`.
    """
    signature = request.query_params.get("signature")
    keyring = await keys.checking(pool, key_id_of(signature) if signature else None)
    verify(
        keyring,
        request.url.path,
        request.query_params.get("expires"),
        signature,
        now=now,
    )

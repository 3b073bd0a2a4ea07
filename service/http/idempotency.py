"""Idempotent POSTs: a retry with the same ``Idempotency-Key`` gets the first response.

Two layers make this hold even across crashes and races. The first 2xx response is saved
(per person and key) and replayed. And every append made under a key carries a store-level
idempotency key, while the new ids are derived from the key: if a process dies after
appending but before saving the response, the retry runs again, creates the same ids, and
the store replays the appends instead of writing them twice. The store compares a retry's
appends by the request (method, path, body), not by the events, which a second decision
may stamp with new times; and a change that finds its append already made under the key
answers from it instead of deciding again (which could refuse: "completed already").
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Final

import msgspec
from starlette.responses import Response

from ..commands.caller import Idempotency
from ..errors import IdempotencyKeyReused
from .context import IDEMPOTENCY_CHANNEL, Ctx
from .problems import ApiError

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADERS: Final = {"Idempotent-Replayed": "true"}
"""Sent with every answer that replays an earlier run of the same request."""
_MAX_KEY = 255


async def replay_or_run(ctx: Ctx, run: Callable[[], Awaitable[Response]]) -> Response:
    """Run a POST once per (person, Idempotency-Key); replay the saved response after."""
    key = ctx.request.headers.get(IDEMPOTENCY_HEADER)
    if key is None or ctx.viewer is None:
        return await run()
    if not key or len(key) > _MAX_KEY or not key.isprintable():
        raise ApiError(400, f"{IDEMPOTENCY_HEADER} must be 1-{_MAX_KEY} printable characters")
    fingerprint = hashlib.sha256(f"POST {ctx.request.url.path}\n".encode() + ctx.raw_body).digest()
    pool = ctx.store.pool
    row = await pool.fetchrow(
        "SELECT fingerprint, status, headers, body FROM http_responses WHERE person_id = $1 AND key = $2",
        ctx.viewer.person_id,
        key,
    )
    if row is not None:
        if bytes(row["fingerprint"]) != fingerprint:
            raise _reused(key)
        headers = msgspec.json.decode(row["headers"], type=dict[str, str])
        headers.update(REPLAYED_HEADERS)
        return Response(bytes(row["body"]), row["status"], headers=headers)
    ctx.idempotency = Idempotency(
        channel=IDEMPOTENCY_CHANNEL, owner=ctx.viewer.person_id, key=key, fingerprint=fingerprint
    )
    try:
        response = await run()
    except IdempotencyKeyReused:
        # No saved response (the first run died before saving it), but its appends are
        # there, made for a different request.
        raise _reused(key) from None
    if 200 <= response.status_code < 300:
        # A handler may save a different body for replays (e.g. without a one-time secret).
        saved = ctx.replay_body
        headers = {
            k: v
            for k, v in response.headers.items()
            if k.lower() in ("content-type", "location", "etag")
        }
        await pool.execute(
            "INSERT INTO http_responses (person_id, key, fingerprint, status, headers, body) "
            "VALUES ($1, $2, $3, $4, $5::jsonb, $6) ON CONFLICT DO NOTHING",
            ctx.viewer.person_id,
            key,
            fingerprint,
            response.status_code,
            msgspec.json.encode(headers).decode(),
            bytes(response.body) if saved is None else saved,
        )
    return response


def _reused(key: str) -> ApiError:
    return ApiError(
        422,
        f"{IDEMPOTENCY_HEADER} {key!r} was used for a different request",
        slug="idempotency-key-reused",
    )

"""``POST /v1/me/feed_token``: a new feed token for the caller, shown once with their two
personal feed URLs; the old one stops working when the response is sent."""

from __future__ import annotations

import secrets
from urllib.parse import urlencode

import msgspec

from ..commands.execute import execute
from ..domain.access import AccountAction, check_account
from ..domain.context import Timestamp
from ..domain.people import PersonState, fold_person
from ..domain.tokens import RotateFeedToken, decide_rotate_feed_token, hash_secret
from ..errors import NotFound
from ..events.base import Event
from ..events.streams import person_stream
from ..reads import directory
from .api import Api, Ctx, Reply
from .auth import require_full_power
from .idempotency import REPLAYED_HEADERS

api = Api()


class FeedToken(msgspec.Struct, frozen=True, kw_only=True):
    """A new feed token: ``token`` is the secret, shown in this response only, and the feed
    URLs carry it (all four are ``null`` when an idempotent retry replays the response).
    Project feeds are at ``/feeds/projects/{id}.atom|.rss|.ics`` with the same ``?token=``."""

    token: str | None
    activity_atom_url: str | None
    activity_rss_url: str | None
    calendar_url: str | None
    rotated_at: Timestamp


@api.post(
    "/v1/me/feed_token",
    summary="Make a new feed token (the old one stops working); the secret is shown only here",
    response=FeedToken,
    tags=["feeds"],
)
async def rotate_feed_token(ctx: Ctx) -> Reply:
    check_account(ctx.me, AccountAction.MANAGE_TOKENS, ctx.me.person_id)
    # A feed token reads every project its holder sees, for as long as it is not replaced.
    require_full_power(ctx.me, "a feed token")
    secret = f"cairnfeed_{secrets.token_urlsafe(32)}"
    cmd = RotateFeedToken(token_hash=hash_secret(secret))
    context = ctx.caller.context()

    def decide(person: PersonState | None) -> list[Event]:
        if person is None:
            raise NotFound("there is no such person")
        return decide_rotate_feed_token(person, cmd, context)

    # execute() waits for the read models: when this answers, the old token no longer works
    # (and this instance's feeds re-read the read models' state, not trusting a moment-old read).
    _, result = await execute(
        ctx.caller, person_stream(ctx.me.person_id), fold_person, decide, project_id=None
    )
    ctx.state["feeds"].checkpoint.forget()
    rotated_at = await directory.feed_token_rotated_at(ctx.store.pool, ctx.me.person_id)
    assert rotated_at is not None  # the read models show the rotation (read-your-writes)
    base = str(ctx.request.base_url).rstrip("/")
    query_string = urlencode({"token": secret})
    issued = FeedToken(
        token=secret,
        activity_atom_url=f"{base}/feeds/activity.atom?{query_string}",
        activity_rss_url=f"{base}/feeds/activity.rss?{query_string}",
        calendar_url=f"{base}/feeds/calendar.ics?{query_string}",
        rotated_at=rotated_at,
    )
    # What an idempotent retry replays: no secret (see service.http.people, issue_token).
    without_secret = msgspec.structs.replace(
        issued, token=None, activity_atom_url=None, activity_rss_url=None, calendar_url=None
    )
    ctx.replay_body = msgspec.json.encode(without_secret)
    if result is not None and result.replayed:
        # A retry whose first run died before saving its response: the secret then made is
        # the one in force, and this run never saw it.
        return Reply(without_secret, headers=dict(REPLAYED_HEADERS))
    return Reply(issued)

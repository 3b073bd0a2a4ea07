"""E-mail preferences and one-click unsubscribe.

``GET``/``PUT /v1/me/notifications``: how the caller is told of notices by e-mail (per kind
on or off, a daily digest instead of single mails, quiet hours in their time zone), kept as
a :class:`~service.events.people.NotificationPreferencesSet` on their stream.

``POST /v1/mail/unsubscribe?token=…``: RFC 8058's one-click unsubscribe (what the
``List-Unsubscribe`` header of every mail names, with ``List-Unsubscribe-Post``): the signed
token (:mod:`service.domain.unsubscribe`) is the only credential; the kind of mail it names
is turned off for its person. ``GET`` of the same address (the link in the mail's footer)
answers a page with a button that POSTs: a GET changes nothing, since mail scanners follow
links.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Final

import msgspec
from starlette.responses import HTMLResponse

from ..commands.caller import Caller
from ..commands.execute import execute, load
from ..domain.access import AccountAction, check_account
from ..domain.people import PersonState, fold_person
from ..domain.preferences import (
    QuietHours,
    SetPreferences,
    decide_set,
    email_switches,
    quiet_hours,
    turned_off,
)
from ..domain.unsubscribe import Unsubscribe, key_id_of, verify
from ..errors import NotFound
from ..events.base import Event, Metadata
from ..events.notices import NoticeKind
from ..events.people import NotificationPreferencesSet
from ..events.streams import person_stream
from ..reads.access import viewer_by_id
from .api import Api, Ctx, Reply
from .conditions import precondition
from .params import Param

api = Api()

_TAGS: Final = ["mail"]


class Notifications(msgspec.Struct, frozen=True, kw_only=True):
    """How a person is told of notices by e-mail."""

    email: dict[NoticeKind, bool]
    """Each kind of notice (message, comment, assignment, the four alerts, invitation) and
    whether it is mailed."""
    digest: bool
    """One mail a day listing the day's notices, at ``digest_hour`` in the person's time
    zone, instead of one mail each."""
    quiet_hours: QuietHours | None
    """Local times between which no mail leaves (held until they end); null: none."""
    digest_hour: int
    """The hour digests are sent at (``CAIRN_DIGEST_HOUR``); not settable here."""


class Unsubscribed(msgspec.Struct, frozen=True, kw_only=True):
    """The kind of mail turned off (``all``: every kind)."""

    person_id: str
    kind: str


_TOKEN: Final = {
    "token": Param("the signed token of the link in the mail", required=True),
}
_FORM: Final = {
    "application/x-www-form-urlencoded": {
        "schema": {
            "type": "object",
            "properties": {"List-Unsubscribe": {"type": "string", "enum": ["One-Click"]}},
        }
    }
}


def _shown(prefs: NotificationPreferencesSet, ctx: Ctx) -> Notifications:
    return Notifications(
        email=email_switches(prefs),
        digest=prefs.digest,
        quiet_hours=quiet_hours(prefs),
        digest_hour=ctx.settings.digest_hour,
    )


@api.get(
    "/v1/me/notifications",
    summary="Your e-mail preferences: each kind of notice mailed or not, daily digest, quiet hours",
    response=Notifications,
    tags=_TAGS,
)
async def get_notifications(ctx: Ctx) -> Reply:
    loaded = await load(ctx.caller, person_stream(ctx.me.person_id))
    person = fold_person(e.event for e in loaded.events)
    if person is None:
        raise NotFound("there is no such person")
    return Reply(_shown(person.notifications, ctx), version=loaded.version)


@api.put(
    "/v1/me/notifications",
    summary="Set your e-mail preferences (kinds left out of `email` keep their setting)",
    response=Notifications,
    tags=_TAGS,
)
async def put_notifications(ctx: Ctx, body: SetPreferences) -> Reply:
    check_account(ctx.me, AccountAction.EDIT_PERSON, ctx.me.person_id)
    new, version = await _set(ctx.caller, ctx.me.person_id, lambda _: body)
    return Reply(_shown(new, ctx), version=version)


@api.get(
    "/v1/mail/unsubscribe",
    summary="The page of a mail's unsubscribe link: a button that turns that kind of mail "
    "off (a GET changes nothing)",
    auth="none",
    tags=_TAGS,
    query=_TOKEN,
)
async def unsubscribe_page(ctx: Ctx) -> HTMLResponse:
    token = ctx.param("token")
    await _verified(ctx, token)
    action = html.escape(f"/v1/mail/unsubscribe?token={token}")
    page = (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Cairn</title></head><body>'
        f'<form method="post" action="{action}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe / Se désabonner</button></form></body></html>'
    )
    return HTMLResponse(
        page, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    )


@api.post(
    "/v1/mail/unsubscribe",
    summary="One-click unsubscribe (RFC 8058): turn off the kind of mail the signed token "
    "names, for its person; no API token",
    response=Unsubscribed,
    auth="none",
    tags=_TAGS,
    query=_TOKEN,
    streamed_body=_FORM,
)
async def unsubscribe(ctx: Ctx) -> Reply:
    wanted = await _verified(ctx, ctx.param("token"))
    viewer = await viewer_by_id(ctx.store.pool, wanted.person_id)
    if viewer is None:
        raise NotFound("this unsubscribe link is not valid")
    caller = Caller(
        services=ctx.services,
        actor=viewer,
        metadata=Metadata(actor=viewer.person_id, request_id=ctx.request_id),
        precondition=precondition(ctx.request),
    )
    if viewer.active:
        await _set(caller, viewer.person_id, lambda current: turned_off(current, wanted.kind))
    return Reply(Unsubscribed(person_id=wanted.person_id, kind=wanted.kind))


async def _verified(ctx: Ctx, token: str) -> Unsubscribe:
    keys = ctx.state["mail"].keys
    keyring = await keys.checking(ctx.store.pool, key_id_of(token))
    wanted = verify(keyring, token)
    if wanted is None:
        raise NotFound("this unsubscribe link is not valid")
    return wanted


async def _set(
    caller: Caller,
    person_id: str,
    wanted: Callable[[NotificationPreferencesSet], SetPreferences],
) -> tuple[NotificationPreferencesSet, int]:
    """Apply the preferences ``wanted`` makes of the current ones; the new preferences and
    the person's stream version after."""
    c = caller.context()
    new: list[NotificationPreferencesSet] = []

    def decide(person: PersonState | None) -> list[Event]:
        if person is None:
            raise NotFound("there is no such person")
        events = decide_set(person_id, person.notifications, wanted(person.notifications), c)
        new[:] = [e for e in events if isinstance(e, NotificationPreferencesSet)] or [
            person.notifications
        ]
        return events

    state, appended = await execute(
        caller, person_stream(person_id), fold_person, decide, project_id=None
    )
    version = appended.stream_version if appended is not None else state.version if state else 0
    return new[0], version

"""Who reads a feed: ``?token=<feed token>``, HTTP Basic with the feed token as the password
(any user name), or ``Authorization: Bearer <API token>``; 401 with a Basic challenge
otherwise."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote_plus, urlencode

import asyncpg
from starlette.requests import Request

from ..domain.access import Viewer
from ..domain.tokens import hash_secret
from ..reads.tokens import feed_token_holder
from .auth import rate_limit, token_holder
from .problems import ApiError

_CHALLENGE: Final = {"WWW-Authenticate": 'Basic realm="Cairn feeds", charset="UTF-8"'}
_TOKEN_PARAM = re.compile(rb"(?:^|&)token=([^&]*)")


@dataclass(frozen=True)
class Credential:
    """What a feed request presents: ``kind`` is ``feed`` (a feed token, from ``?token=`` or
    Basic) or ``api`` (Bearer); ``in_query`` when it came as ``?token=``."""

    kind: str
    secret: str
    in_query: bool

    @property
    def digest(self) -> str:
        return hash_secret(self.secret)

    def link_query(self) -> str:
        """What links in the feed must carry for the reader to follow them."""
        return urlencode({"token": self.secret}) if self.in_query else ""


def credential_of(request: Request) -> Credential:
    """The credential of a feed request; 401 when there is none or it is malformed."""
    found = _TOKEN_PARAM.search(request.scope["query_string"])
    if found is not None:
        # What Starlette's query_params would give, for the one parameter feeds read.
        return Credential("feed", unquote_plus(found.group(1).decode("latin-1")), True)
    header = request.headers.get("authorization")
    if not header:
        raise ApiError(401, "feeds need ?token=<feed token> or HTTP Basic", headers=_CHALLENGE)
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return Credential("api", value.strip(), False)
    if scheme.lower() == "basic":
        return Credential("feed", _basic_password(value), False)
    raise ApiError(401, "use ?token=, HTTP Basic or Bearer", headers=_CHALLENGE)


async def authenticate(request: Request, pool: asyncpg.Pool, credential: Credential) -> Viewer:
    """The reader holding ``credential``: 401 when the token is unknown, replaced or its
    holder deactivated; 429 over the rate limit."""
    if credential.kind == "api":
        viewer = await token_holder(request, credential.secret)
    else:
        viewer = await feed_token_holder(pool, credential.secret)
    if viewer is None:
        raise ApiError(401, "the token is unknown or was replaced", headers=_CHALLENGE)
    rate_limit(request, viewer.person_id)
    return viewer


def _basic_password(credentials: str) -> str:
    try:
        decoded: str = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ApiError(401, "malformed Basic credentials", headers=_CHALLENGE) from None
    return decoded.partition(":")[2]

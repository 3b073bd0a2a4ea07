"""Conditional requests: ETags, ``If-None-Match`` (304) and ``If-Match`` (412).

An ETag names what a client read. For a single resource it is ``"<version>-<variant>"``: the
version of the resource's stream (what every viewer shares) and a digest of the bytes this
viewer got (which differ by viewer: a client sees less). ``If-None-Match`` compares whole
tags, so a rename shown in the bytes answers 200; ``If-Match`` compares versions only, so it
means "nobody changed this resource since I read it" whoever reads it. Lists and views
carry a digest of their bytes alone (they are not written to as one resource).
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

from starlette.requests import Request

from ..commands.caller import Precondition

_VERSIONED: Final = re.compile(r'"(\d+)-[0-9a-f]+"')


def etag_for(body: bytes, version: int | None = None) -> str:
    """The strong ETag of a representation's bytes, naming its resource's ``version`` when
    it has one."""
    digest = hashlib.blake2b(body, digest_size=12).hexdigest()
    return f'"{digest}"' if version is None else f'"{version}-{digest}"'


def if_none_match(request: Request, etag: str) -> bool:
    """Whether the request's If-None-Match matches ``etag`` (weak comparison, ``*`` too)."""
    header = request.headers.get("if-none-match")
    if not header:
        return False
    candidates = [c.strip().removeprefix("W/") for c in header.split(",")]
    return "*" in candidates or etag in candidates


def precondition(request: Request) -> Precondition | None:
    """What the request's If-Match asks of the resource it writes (None without one): the
    versions of the strong tags it lists, or any version for ``*``. Weak tags and tags this
    API did not make never match (RFC 9110 §13.1.1)."""
    header = request.headers.get("if-match")
    if header is None:
        return None
    tags = [t.strip() for t in header.split(",")]
    if "*" in tags:
        return Precondition(any_version=True)
    return Precondition(
        versions=frozenset(int(m[1]) for t in tags if (m := _VERSIONED.fullmatch(t)))
    )

"""The language a person reads Cairn in when nothing else says which: their feeds, and API
answers to a request whose ``Accept-Language`` names no language Cairn writes."""

from __future__ import annotations

import asyncpg

from ..domain.access import Viewer
from ..domain.i18n import Locale


async def locale_of(pool: asyncpg.Pool, viewer: Viewer, default: Locale) -> Locale:
    """The language ``viewer`` reads: their own choice (the person's ``locale``, set with
    ``PATCH /v1/me``) once people have one, else ``default`` (the ``locale`` setting,
    ``CAIRN_LOCALE``). People have no such choice yet, so this is ``default`` for everyone.
    """
    return default

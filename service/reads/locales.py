"""The language a person reads Cairn in when nothing else says which: their feeds, and API
answers to a request whose ``Accept-Language`` names no language Cairn writes."""

from __future__ import annotations

import asyncpg

from ..domain.access import Viewer
from ..domain.i18n import Locale, locale_or
from . import directory


async def locale_of(pool: asyncpg.Pool, viewer: Viewer, default: Locale) -> Locale:
    """The language ``viewer`` reads: their own choice (the person's ``locale``, set with
    ``PATCH /v1/me``), else ``default`` (the ``locale`` setting, ``CAIRN_LOCALE``)."""
    return locale_or(await directory.locale(pool, viewer.person_id), default)

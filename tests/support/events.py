"""Event types that exist only for the tests (registered once, when this is imported)."""

from __future__ import annotations

from service.events.base import Event, register


@register
class NoteWritten(Event, frozen=True, kw_only=True):
    """A note with some text: the plainest event there is."""

    text: str

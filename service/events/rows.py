"""Rows of the ``events`` table decoded into :class:`~service.events.base.RecordedEvent`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

import asyncpg
import msgspec

from ..errors import EventDecodeError
from .base import (
    Event,
    Metadata,
    RecordedEvent,
    any_event_decoder,
    current_decoders,
    decode_event,
    decode_metadata,
)

_EPOCH: Final = datetime.fromtimestamp(0, UTC)


def decode_rows(
    rows: Sequence[asyncpg.Record], before: RecordedEvent | None = None
) -> list[RecordedEvent]:
    """The events of ``rows`` (the columns of :data:`~service.events.sql.COLUMNS`, in order;
    in a page, the shared ones sent once), ``before`` being the event before the first row."""
    # Most of a scan's client cost, so written for speed: each event straight through its
    # type's own decoder (old schema versions and failures go the long way, which upcasts
    # or names the culprit), the metadata of an append (shared by its events) decoded once:
    # a NULL metadata or recorded_at means "the same as the row before" (see
    # sql._SHARED_COLUMNS), which is ``before`` for the first row when a page is decoded in
    # slices.
    decoders = current_decoders()
    any_type, names = any_event_decoder()
    meta = before.metadata if before is not None else Metadata()
    last_meta: str | None = None  # queries without sql._SHARED_COLUMNS repeat it row by row
    recorded_at: datetime = before.recorded_at if before is not None else _EPOCH
    out: list[RecordedEvent] = []
    append = out.append
    for r in rows:
        name = r[5]
        event: Event
        if name is None:
            # A page without the type column (see sql._SHARED_COLUMNS).
            try:
                event = any_type.decode(r[7])
                name = names[type(event)]
            except msgspec.ValidationError:
                name = _stored_type(r[7])
                event = decode_event(name, r[6], r[7])
            else:
                if type(event).schema_version != r[6]:
                    event = decode_event(name, r[6], r[7])
        else:
            entry = decoders.get(name)
            if entry is not None and entry[0] == r[6]:
                try:
                    event = entry[1].decode(r[7])
                except msgspec.ValidationError:
                    event = decode_event(name, r[6], r[7])
            else:
                event = decode_event(name, r[6], r[7])
        raw_meta = r[8]
        if raw_meta is not None and raw_meta != last_meta:
            meta = decode_metadata(raw_meta)
            last_meta = raw_meta
        if r[9] is not None:
            recorded_at = r[9]
        append(
            RecordedEvent(r[0], r[1], r[2], r[3], r[4], name, r[6], event, meta, recorded_at, r[10])
        )
    return out


def _stored_type(data: str) -> str:
    """The type tag inside stored event ``data`` (for data the any-type decoder refused)."""
    try:
        tag = msgspec.json.decode(data).get("type")
    except (msgspec.DecodeError, AttributeError):
        tag = None
    if not isinstance(tag, str):
        raise EventDecodeError(f"stored event data without a type tag: {data[:80]!r}")
    return tag

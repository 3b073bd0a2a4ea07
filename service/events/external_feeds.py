"""Events of external feed subscriptions (the "mashup"): a project follows an RSS or Atom
feed, whose new entries the poller (:mod:`service.workers.feeds_poller`) posts as
``external_item`` recordings (:class:`~service.events.recordings.ExternalItemPosted`).

One stream per subscription, ``extfeed-<id>`` (:func:`~service.events.streams.external_feed_stream`),
carrying its project's id. Where the poller is (ETag, failures, next poll) is operational
state in table ``external_feed_polls``, never in the log.
"""

from __future__ import annotations

from datetime import datetime

from .base import Event, FieldChange, register


@register
class ExternalFeedAdded(Event, frozen=True, kw_only=True):
    """A project subscribed to the feed at ``url`` (checked by the outbound policy), polled
    every ``interval`` seconds; ``title`` is the name given (None: the feed's own)."""

    feed_id: str
    project_id: str
    creator_id: str
    at: datetime
    url: str
    title: str | None
    visible_to_clients: bool
    interval: int


@register
class ExternalFeedEdited(Event, frozen=True, kw_only=True):
    """A subscription's ``url``, ``title``, ``visible_to_clients`` or ``interval`` changed."""

    at: datetime
    changes: tuple[FieldChange, ...]


@register
class ExternalFeedRemoved(Event, frozen=True, kw_only=True):
    """A subscription ended: the feed is no longer polled; its items stay."""

    at: datetime

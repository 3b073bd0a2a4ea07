"""External feeds (the "mashup"): pure rules of a project's subscriptions to RSS/Atom feeds
and of the items the poller brings in (:mod:`service.workers.feeds_poller`).

A subscription is decided here (:func:`decide_add`, :func:`decide_edit`,
:func:`decide_remove`); who may manage one is the access rules' (anyone who may create
recordings in the project, clients excepted: a feed's address is the team's). An entry of
a feed becomes at most one ``external_item`` recording: its recording id is derived from
(subscription, :func:`entry_key`), so posting it twice (two instances, a restart between
the append and the poll's bookkeeping) fails the second append, which expects no stream.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final
from urllib.parse import urljoin, urlsplit

import msgspec
import nh3

from ..errors import InvalidCommand
from ..events.base import FieldChange
from ..events.external_feeds import ExternalFeedAdded, ExternalFeedEdited, ExternalFeedRemoved
from ..events.streams import ID_DIGITS, RECORDING_ID
from . import text
from .i18n import N_, Locale, translator

DEFAULT_INTERVAL: Final = 900
"""Seconds between two polls of a feed unless its subscription says otherwise (15 min)."""
MIN_INTERVAL: Final = 300
"""The shortest interval a subscription may ask for (5 min)."""
MAX_INTERVAL: Final = 86_400
"""The longest (a day)."""
MAX_BACKOFF: Final = timedelta(hours=6)
"""The longest wait after failures in a row."""
MAX_PER_PROJECT: Final = 20
"""Subscriptions a project may have at once."""
MAX_ITEMS_PER_POLL: Final = 50
"""New entries one poll posts at most (the newest; a feed of thousands is not a flood)."""
TITLE_LENGTH: Final = 200
_Url = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
_Title = Annotated[str, msgspec.Meta(max_length=TITLE_LENGTH)]
_Interval = Annotated[int, msgspec.Meta(ge=MIN_INTERVAL, le=MAX_INTERVAL)]


class NewExternalFeed(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Subscribe a project to the RSS/Atom feed at ``url`` (``https``; ``http`` only where
    the site allows it), named ``title`` (default: the feed's own title), its items shown to
    clients when ``visible_to_clients``, polled every ``interval`` seconds (300-86400)."""

    url: _Url
    title: _Title | None = None
    visible_to_clients: bool = False
    interval: _Interval = DEFAULT_INTERVAL


class EditExternalFeed(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Change what is given (``title`` null: the feed's own title again)."""

    url: str | msgspec.UnsetType = msgspec.UNSET
    title: str | msgspec.UnsetType | None = msgspec.UNSET
    visible_to_clients: bool | msgspec.UnsetType = msgspec.UNSET
    interval: int | msgspec.UnsetType = msgspec.UNSET


class FeedState(msgspec.Struct, frozen=True, kw_only=True):
    """A subscription as its stream says."""

    feed_id: str
    project_id: str
    url: str
    title: str | None
    visible_to_clients: bool
    interval: int
    removed: bool = False


def _interval(value: int) -> int:
    if not MIN_INTERVAL <= value <= MAX_INTERVAL:
        raise InvalidCommand(
            "interval", f"interval must be between {MIN_INTERVAL} and {MAX_INTERVAL} seconds"
        )
    return value


def decide_add(
    feed_id: str, project_id: str, creator_id: str, url: str, cmd: NewExternalFeed, now: datetime
) -> ExternalFeedAdded:
    """The event subscribing; ``url`` already checked by the outbound policy.

    Raises:
        InvalidCommand: a field out of bounds.
    """
    return ExternalFeedAdded(
        feed_id=feed_id,
        project_id=project_id,
        creator_id=creator_id,
        at=now,
        url=url,
        title=text.optional_line("title", cmd.title, max_length=TITLE_LENGTH),
        visible_to_clients=cmd.visible_to_clients,
        interval=_interval(cmd.interval),
    )


def decide_edit(
    state: FeedState, cmd: EditExternalFeed, url: str | None, now: datetime
) -> list[ExternalFeedEdited]:
    """``[ExternalFeedEdited]`` with what changes (``url``: the command's, checked), ``[]``
    when nothing does."""
    after: dict[str, Any] = {}
    if url is not None:
        after["url"] = url
    if cmd.title is not msgspec.UNSET:
        after["title"] = text.optional_line("title", cmd.title, max_length=TITLE_LENGTH)
    if cmd.visible_to_clients is not msgspec.UNSET:
        after["visible_to_clients"] = cmd.visible_to_clients
    if cmd.interval is not msgspec.UNSET:
        after["interval"] = _interval(cmd.interval)
    changes = tuple(
        FieldChange(field=f, before=getattr(state, f), after=v)
        for f, v in after.items()
        if getattr(state, f) != v
    )
    return [ExternalFeedEdited(at=now, changes=changes)] if changes else []


def decide_remove(state: FeedState, now: datetime) -> list[ExternalFeedRemoved]:
    """``[ExternalFeedRemoved]``; ``[]`` when it is removed already."""
    return [] if state.removed else [ExternalFeedRemoved(at=now)]


def fold_feed(events: list[Any]) -> FeedState | None:
    """The state of a subscription's stream (None: empty)."""
    state: FeedState | None = None
    for event in events:
        match event:
            case ExternalFeedAdded():
                state = FeedState(
                    feed_id=event.feed_id,
                    project_id=event.project_id,
                    url=event.url,
                    title=event.title,
                    visible_to_clients=event.visible_to_clients,
                    interval=event.interval,
                )
            case ExternalFeedEdited() if state is not None:
                state = msgspec.structs.replace(state, **{c.field: c.after for c in event.changes})
            case ExternalFeedRemoved() if state is not None:
                state = msgspec.structs.replace(state, removed=True)
    return state


# ------------------------------------------------------------------ entries


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """An entry of a parsed feed, as an item is posted from it."""

    key: str
    title: str
    link: str | None
    summary: str | None
    published_at: datetime | None


def entry_key(entry: Mapping[str, Any]) -> str:
    """What identifies an entry across polls: its id (Atom ``id``, RSS ``guid``), else its
    link and title together."""
    given = entry.get("id")
    if isinstance(given, str) and given.strip():
        return "id:" + given.strip()
    return "lt:" + str(entry.get("link") or "") + "\n" + str(entry.get("title") or "")


def item_id(feed_id: str, key: str) -> str:
    """The recording id of the item of entry ``key`` of subscription ``feed_id``: the same
    on every instance and after every restart."""
    digest = hashlib.sha256(f"{feed_id}\0{key}".encode()).hexdigest()
    return f"{RECORDING_ID}_{digest[:ID_DIGITS]}"


def entries(parsed: Mapping[str, Any], feed_url: str) -> list[Entry]:
    """The entries of a feed parsed by ``feedparser``, oldest first (feeds list the newest
    first): title (plain text, cut), link (see :func:`safe_link`), summary (sanitised HTML,
    cut), published time."""
    found = []
    for raw in parsed.get("entries", []):
        title = _plain(str(raw.get("title") or ""), TITLE_LENGTH)
        summary_html = raw.get("summary") or None
        found.append(
            Entry(
                key=entry_key(raw),
                title=title or "(untitled)",
                link=safe_link(raw.get("link"), feed_url),
                summary=_summary(summary_html),
                published_at=_when(raw.get("published_parsed") or raw.get("updated_parsed")),
            )
        )
    found.reverse()
    return found


LINK_SCHEMES: Final = frozenset({"http", "https"})
"""The only schemes an item's link may have (``javascript:`` or ``data:`` would run in the
pages and apps that show it)."""


def safe_link(link: Any, feed_url: str) -> str | None:
    """An entry's ``link`` resolved against the feed's URL (feedparser resolves relative
    links only when it fetched the feed itself), if it is an ``http``/``https`` URL with a
    host of at most 2048 characters; else None."""
    if not isinstance(link, str) or not link.strip():
        return None
    try:
        # urljoin drops tabs and line breaks as browsers do ("java\tscript:" is javascript).
        resolved = urljoin(feed_url, link.strip())
        parts = urlsplit(resolved)
    except ValueError:
        return None
    if parts.scheme.lower() not in LINK_SCHEMES or not parts.hostname or len(resolved) > 2048:
        return None
    return resolved


_SPACES = re.compile(r"\s+")


def _plain(value: str, length: int) -> str:
    """``value`` (a feed's text, maybe HTML) as one line of plain text of at most
    ``length`` characters."""
    plain = html.unescape(nh3.clean(value, tags=set()))
    return _SPACES.sub(" ", plain).strip()[:length].rstrip()


def _summary(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    clipped = value.encode()[: text.MAX_HTML_BYTES].decode(errors="ignore")
    return text.optional_html("summary", clipped)


def _when(parsed: Any) -> datetime | None:
    if parsed is None:
        return None
    try:
        year, month, day, hour, minute, second = (int(v) for v in parsed[:6])
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except (TypeError, ValueError):
        return None


def feed_title(parsed: Mapping[str, Any]) -> str | None:
    """The feed's own title, as plain text (None: it has none)."""
    feed = parsed.get("feed") or {}
    title = _plain(str(feed.get("title") or ""), TITLE_LENGTH)
    return title or None


def next_poll(now: datetime, interval: int, failures: int) -> datetime:
    """When to poll again: after ``interval`` seconds, doubled per failure in a row (at
    most :data:`MAX_BACKOFF`, never less than the interval)."""
    base = timedelta(seconds=interval)
    wait: timedelta = base * (2 ** min(failures, 10))
    return now + max(base, min(wait, MAX_BACKOFF))


# ------------------------------------------------------------------ poll errors

_ERRORS: Final[Mapping[str, str]] = {
    # TRANSLATORS: why polling an external feed failed, shown on its subscription.
    "status": N_("the feed's server answered HTTP {detail}"),
    "timeout": N_("the feed did not arrive within {detail} s"),
    "too_large": N_("the feed is larger than {detail} bytes"),
    "malformed": N_("this is not an RSS or Atom feed ({detail})"),
    "unreachable": N_("the feed could not be reached ({detail})"),
}
"""What each failure (``code: detail`` as the poller records it) says."""


def describe_error(error: str | None, locale: Locale) -> str | None:
    """A poll's recorded error (``code: detail``) as a sentence in ``locale``."""
    if error is None:
        return None
    code, _, detail = error.partition(": ")
    template = _ERRORS.get(code)
    if template is None:
        return error
    return translator(locale).gettext(template).format(detail=detail)

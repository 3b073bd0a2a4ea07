"""Read models: each a named, versioned projection of the log (see engine.py)."""

from __future__ import annotations

from .activity import Activity
from .directory import Directory
from .inbox import Inbox
from .projection import Projection
from .recordings import Recordings
from .search import Search
from .webhooks import Webhooks


def all_projections() -> list[Projection]:
    """Every read model of the app, in the order they are prepared."""
    return [Directory(), Recordings(), Activity(), Search(), Inbox(), Webhooks()]

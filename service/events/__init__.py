"""The event log: event types (``base`` and one module per area), the store and its readers.

Importing this package registers every event type, so a decoder never meets an unknown name
just because a module was not imported yet. It imports no I/O modules (``store``, ``wakeup``
are imported where they are used).
"""

from . import alerts, invitations, notices, people, projects, recordings, signin, webhooks

__all__ = [
    "alerts",
    "invitations",
    "notices",
    "people",
    "projects",
    "recordings",
    "signin",
    "webhooks",
]

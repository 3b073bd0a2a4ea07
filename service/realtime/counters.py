"""Counters of one instance's hub (read by ``GET /v1/realtime/stats``; the open connections and
the slow consumers dropped are also Prometheus metrics, counted beside these)."""

from __future__ import annotations

import msgspec


class Counters(msgspec.Struct, kw_only=True):
    """What the hub has done since start-up. Gauges: ``connections``, ``subscriptions``;
    the rest only grow."""

    connections: int = 0
    """Open WebSocket connections (authenticated)."""
    subscriptions: int = 0
    """Subscriptions held by those connections, catching up or live."""
    connections_total: int = 0
    """Connections accepted since start-up."""
    events_sent: int = 0
    """Event frames handed to sockets (one per socket per event)."""
    frames_encoded: int = 0
    """Event frames encoded by live fan-out (once per event and audience, however many
    sockets receive it)."""
    events_replayed: int = 0
    """Event frames sent while subscriptions caught up from ``since``."""
    slow_dropped: int = 0
    """Connections closed with 4008 because their send buffer overflowed."""

    def snapshot(self) -> Counters:
        """A copy that no longer changes."""
        return msgspec.structs.replace(self)

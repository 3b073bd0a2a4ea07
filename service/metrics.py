"""Cairn's Prometheus metrics, defined once for every layer to count with.

At the bottom of the layers (beside config and errors), so that the store can count its
appends and measure its connections without reaching up. The HTTP layer counts requests
and serves everything at ``GET /metrics`` (:mod:`service.http.metrics`), adding what is
measured when scraped (projection lag). ``docs/OPERATIONS.md`` lists the metrics and what
to alert on.

**Several processes** (``cairn serve --workers N``): ``cairn serve`` sets
``PROMETHEUS_MULTIPROC_DIR`` to a fresh folder before the workers start, so that
prometheus_client keeps each process's values in files there; :func:`exposition`, in
whichever process answers the scrape, adds them up: counters and histograms over every
process that ever ran, gauges (``multiprocess_mode="livesum"``) over the live ones. What is
measured at scrape time (:class:`Scraped`: from the database, the same for every process)
is computed by the answering process alone and never written to those files, so it is not
counted once per process. Without the variable (one process) values live in memory.

**Adding a metric**: a module-level ``Counter``, ``Histogram`` or ``Gauge`` here, named
``cairn_<what>_<unit>`` (``_total`` for counters, base units: seconds, bytes), with bounded
labels only (never an id or a raw path); a gauge with ``multiprocess_mode="livesum"`` when
each process holds its own share (its connections), or a :class:`Scraped` one when its
value comes from the database (the same whichever process looks), so it is not summed.

**Background workers** (mail, webhooks, a poller): one :class:`Worker` each, by name::

    mail = Worker("mail")
    mail.attempted()              # before each try at an item (first or retry)
    mail.failed()                 # when that try failed
    mail.queued(len(pending))     # a queue held in this process's memory

A worker whose queue is a table (an outbox) reports its length at scrape time instead,
like projection lag: ``WORKER_QUEUE_ROWS.family({("mail",): count})`` returned by the
``/metrics`` handler (see :mod:`service.http.metrics`), so that N processes looking at the
same table do not report N times its length.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

__all__ = [
    "CONTENT_TYPE",
    "MULTIPROCESS_ENV",
    "PoolMeter",
    "Scraped",
    "Worker",
    "exposition",
]

MULTIPROCESS_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
"""The variable naming the folder of every process's values (set by ``cairn serve``)."""

# Read when prometheus_client is imported, as prometheus_client itself does: a process is
# in one mode for its whole life.
_FOLDER: Final = os.environ.get(MULTIPROCESS_ENV) or None

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
"""The media type of :func:`exposition`'s text."""

# ``<name>_created`` series double the output and say nothing a scraper needs (and the
# multiprocess mode never has them): off for the whole process.
disable_created_metrics()  # type: ignore[no-untyped-call]

_LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_WAIT_BUCKETS: Final = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
)  # fmt: skip

# ------------------------------------------------------------------ HTTP (service.http)

HTTP_REQUESTS: Final = Counter(
    "cairn_http_requests_total",
    "HTTP requests answered, by route template (unmatched: no route), method and status",
    ("route", "method", "status"),
)
HTTP_DURATION: Final = Histogram(
    "cairn_http_request_duration_seconds",
    "Time from a request's arrival to the last byte of its answer handed to the server, by "
    "route template and method",
    ("route", "method"),
    buckets=_LATENCY_BUCKETS,
)

# ------------------------------------------------------------------ the log (service.events)

APPENDS: Final = Counter(
    "cairn_appends_total",
    "Appends that wrote events to the log (in a caller's transaction: counted when written, "
    "whether or not it commits; idempotent replays excluded)",
)
EVENTS_APPENDED: Final = Counter(
    "cairn_events_appended_total", "Events written to the log by those appends"
)
APPEND_CONFLICTS: Final = Counter(
    "cairn_append_conflicts_total",
    "Appends refused because the stream was not at the expected version (WrongExpectedVersion; "
    "commands decide again and retry most of them)",
)

# ------------------------------------------------------------------ connections (service.events)


def _per_pool(name: str, documentation: str) -> Gauge:
    """A gauge of connections by ``pool``: each pool's share, summed over processes."""
    return Gauge(name, documentation, ("pool",), multiprocess_mode="livesum")


DB_POOL_CONNECTIONS: Final = _per_pool(
    "cairn_db_pool_connections",
    "Open PostgreSQL connections of the store, by pool (main: asyncpg's, for transactions and "
    "reads; lane: single-statement appends and page reads)",
)
DB_POOL_IN_USE: Final = _per_pool(
    "cairn_db_pool_connections_in_use", "Of those, the connections handed out now"
)
DB_POOL_MAX: Final = _per_pool(
    "cairn_db_pool_max_connections", "The most connections the pool may open"
)
DB_POOL_WAIT: Final = Histogram(
    "cairn_db_pool_wait_seconds",
    "Time waited for a connection of the pool (opening one included)",
    ("pool",),
    buckets=_WAIT_BUCKETS,
)

# ------------------------------------------------------------------ real time (service.realtime)

WEBSOCKET_CONNECTIONS: Final = Gauge(
    "cairn_websocket_connections",
    "Open WebSocket connections (authenticated) of /v1/stream",
    multiprocess_mode="livesum",
)
WEBSOCKET_SLOW_DROPPED: Final = Counter(
    "cairn_websocket_slow_consumers_dropped_total",
    "WebSocket connections closed (4008) because their send buffer overflowed",
)

# ------------------------------------------------------------------ background workers

WORKER_ATTEMPTS: Final = Counter(
    "cairn_worker_attempts_total",
    "Tries at an item by a background worker (first tries and retries)",
    ("worker",),
)
WORKER_FAILURES: Final = Counter(
    "cairn_worker_failures_total", "Tries at an item that failed", ("worker",)
)
WORKER_QUEUE: Final = Gauge(
    "cairn_worker_queue_length",
    "Items waiting in a background worker's in-memory queue (summed over processes)",
    ("worker",),
    multiprocess_mode="livesum",
)


class Worker:
    """One background worker's metrics: its tries, failures and in-memory queue (the
    ``worker`` label is ``name``). See the module's docstring for a queue in a table."""

    def __init__(self, name: str) -> None:
        self._attempts = WORKER_ATTEMPTS.labels(name)
        self._failures = WORKER_FAILURES.labels(name)
        self._queue = WORKER_QUEUE.labels(name)

    def attempted(self) -> None:
        """Count a try at an item (the first or a retry)."""
        self._attempts.inc()

    def failed(self) -> None:
        """Count a try that failed."""
        self._failures.inc()

    def queued(self, length: int) -> None:
        """Say how many items wait in this process's queue now."""
        self._queue.set(length)


class PoolMeter:
    """One connection pool's share of the ``cairn_db_pool_*`` metrics, kept by the pool.

    The gauges move by this pool's changes (never set), so several pools in a process, and
    processes in a folder, add up; :meth:`close` takes back what the pool still adds (its
    maximum, its open and busy connections) and ignores whatever it reports afterwards.

    Args:
        pool: the ``pool`` label.
        max_size: the most connections the pool may open.
    """

    def __init__(self, pool: str, max_size: int) -> None:
        self._size = DB_POOL_CONNECTIONS.labels(pool)
        self._in_use = DB_POOL_IN_USE.labels(pool)
        self._max = DB_POOL_MAX.labels(pool)
        self._wait = DB_POOL_WAIT.labels(pool)
        self._max_size = max_size
        self._max.inc(max_size)
        self.size = 0
        """Open connections, as last reported."""
        self.in_use = 0
        """Connections handed out now."""
        self.closed = False

    def acquired(self, waited: float) -> None:
        """A connection was handed out after ``waited`` seconds."""
        self._wait.observe(waited)
        if not self.closed:
            self.in_use += 1
            self._in_use.inc()

    def released(self) -> None:
        """A connection handed out came back (or was dropped by its holder)."""
        if not self.closed:
            self.in_use -= 1
            self._in_use.dec()

    def resized(self, size: int) -> None:
        """The pool holds ``size`` open connections now."""
        if not self.closed and size != self.size:
            self._size.inc(size - self.size)
            self.size = size

    def close(self) -> None:
        """Take back what this pool adds to the gauges (idempotent)."""
        if self.closed:
            return
        self.resized(0)
        self._in_use.dec(self.in_use)
        self._max.dec(self._max_size)
        self.in_use = 0
        self.closed = True


class Scraped:
    """A gauge measured when ``/metrics`` is scraped, by the one process answering: for
    values read from the database (projection lag, a queue in a table), which every process
    would read the same and so must not be summed over processes.

    Args:
        name, documentation: as a ``Gauge``'s.
        labels: its label names.
    """

    def __init__(self, name: str, documentation: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = tuple(labels)

    def family(self, values: Mapping[tuple[str, ...], float]) -> Metric:
        """The samples to add to one scrape: ``values`` by their label values."""
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labels)
        for labels, value in values.items():
            family.add_metric(labels, value)
        return family


PROJECTION_LAG_EVENTS: Final = Scraped(
    "cairn_projection_lag_events",
    "Events in the log that a read model has not applied yet",
    ("projection",),
)
PROJECTION_LAG_SECONDS: Final = Scraped(
    "cairn_projection_lag_seconds",
    "Age of the oldest event a read model has not applied yet (0: none)",
    ("projection",),
)
WORKER_QUEUE_ROWS: Final = Scraped(
    "cairn_worker_queue_rows",
    "Items waiting in a background worker's queue table (measured at scrape time)",
    ("worker",),
)
MAIL_CONFIGURED: Final = Scraped(
    "cairn_mail_configured",
    "1 when this instance sends e-mail (CAIRN_SMTP_URL and CAIRN_MAIL_DOMAIN set), else 0",
)
MAIL_FAILED: Final = Scraped(
    "cairn_mail_failed_rows", "Mails of the outbox that failed for good (a 5xx, or too many tries)"
)


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


def exposition(scraped: Iterable[Metric] = ()) -> bytes:
    """Every metric in the Prometheus text format: this process's (all processes', in the
    multiprocess mode) and the ``scraped`` families (made by :meth:`Scraped.family`)."""
    if _FOLDER is None:
        # One process: its registry, with prometheus_client's process_* and python_* too.
        held = generate_latest(REGISTRY)
    else:
        _forget_dead(_FOLDER)
        registry = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(registry, _FOLDER)  # type: ignore[no-untyped-call]
        held = generate_latest(registry)
    return held + generate_latest(_Families(scraped))


def _forget_dead(folder: str) -> None:
    """Drop the ``livesum`` gauge files of processes that have ended (a worker that died or
    was replaced): prometheus_client sums every file it finds, and nobody else tells it."""
    for path in glob.glob(os.path.join(folder, "gauge_live*_*.db")):
        pid = int(path.rsplit("_", 1)[1].removesuffix(".db"))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            mark_process_dead(pid, folder)  # type: ignore[no-untyped-call]
        except PermissionError:
            pass  # alive, as another user

"""Cairn's logs: one line per record, as text or as JSON, each carrying the id of the request
(or WebSocket) it was written for; and keeping secrets out of them.

* :data:`request_id` holds the id of the request being served: the access log
  (:mod:`service.http.accesslog`) sets it for the request's task, so every logger that
  writes in that task (the store's, the projections', uvicorn's) writes it too.
* :func:`configure_logging` is how ``cairn serve`` logs (``--log-format``, ``--log-level``):
  one handler on stderr for every logger, uvicorn's included.
* Secrets never reach a log line: :func:`redact` blanks ``token=`` / ``access_token=`` query
  parameters, ``Bearer`` credentials and anything shaped like a Cairn token in every
  message and traceback the handler writes; uvicorn's own loggers redact too
  (:func:`install_log_redaction`), whoever configured their handlers.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any, Final

import msgspec

from ..config import LogFormat, LogLevel

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
"""The id of the request (or WebSocket) whose task is running; None outside requests."""

_SECRET = re.compile(
    r"((?:^|[?&;])(?:access_token|token|signature)=)[^&;#\s\"]*"
    r"|(\b(?:bearer|basic)\s+)[^\s\"',;]+"
    r"|()\bcairn(?:feed)?_[\w-]{16,}",
    re.IGNORECASE,
)
"""Secrets: the values of ``token=``, ``access_token=`` and ``signature=`` (signed links)
query parameters, the credentials
of an ``Authorization`` header, and Cairn's API and feed tokens wherever they appear (their
shape: ``cairn_`` or ``cairnfeed_`` and 43 URL-safe characters)."""

_REDACTED: Final = "[redacted]"


def redact(text: str) -> str:
    """``text`` with the secrets of :data:`_SECRET` blanked."""
    lowered = text.lower()
    if any(clue in lowered for clue in _CLUES):
        return _SECRET.sub(_blank, text)
    return text


_CLUES: Final = ("token=", "signature=", "cairn", "bearer", "basic")
"""Words without which a text holds none of :data:`_SECRET` (checked first: cheaper)."""


def _blank(match: re.Match[str]) -> str:
    kept = match.group(1) if match.group(1) is not None else (match.group(2) or "")
    return f"{kept}{_REDACTED}"


class RedactTokens(logging.Filter):
    """Blanks secrets (:func:`redact`) in log records (uvicorn logs request paths with their
    query strings, and at debug level a WebSocket handshake's headers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redact_arg(v) for k, v in record.args.items()}
        return True


def _redact_arg(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


_LOGGERS: Final[Sequence[str]] = ("uvicorn.access", "uvicorn.error")


def install_log_redaction() -> None:
    """Add :class:`RedactTokens` to uvicorn's loggers; calling it again adds nothing.

    Called by :func:`~service.http.app.create_app`, so that any server of the app redacts
    (not at import: importing a module should not change the process's logging). Logger
    filters survive uvicorn's ``dictConfig`` (it replaces handlers, not filters).
    """
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())


# ------------------------------------------------------------------ formats

_STANDARD: Final = frozenset(
    [
        *logging.LogRecord("", 0, "", 0, "", (), None).__dict__,
        "message",
        "asctime",
        "taskName",
        "color_message",  # uvicorn's message again, with terminal colours
    ]
)
"""Attributes every record has; any other one was given by ``extra=``: a field."""


def _time(record: logging.LogRecord) -> str:
    """The record's time in UTC, ISO 8601 to the millisecond."""
    seconds = int(record.created)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{int((record.created - seconds) * 1000):03d}Z"


class TextFormatter(logging.Formatter):
    """``2025-01-31T09:30:00.123Z INFO cairn.access: message request_id=…`` (the request id
    only within a request), then the traceback if any. The message says what matters: fields
    given by ``extra=`` are for :class:`JsonFormatter`."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_time(record)} {record.levelname} {record.name}: {redact(record.getMessage())}"
        rid = request_id.get()
        if rid is not None:
            line = f"{line} request_id={rid}"
        if record.exc_info:
            line = f"{line}\n{redact(self.formatException(record.exc_info))}"
        if record.stack_info:
            line = f"{line}\n{redact(self.formatStack(record.stack_info))}"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: ``time``, ``level``, ``logger``, ``message``,
    ``request_id`` (within a request), the record's fields (``extra=``), and ``exception``
    (a traceback, as one string) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        rid = request_id.get()
        if rid is not None:
            entry["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                entry[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info))
        return msgspec.json.encode(entry, enc_hook=repr).decode()


_FORMATTERS: Final[dict[str, type[logging.Formatter]]] = {
    "text": TextFormatter,
    "json": JsonFormatter,
}


class _NotUvicornsAccessLines(logging.Filter):
    """Drops uvicorn's line for each WebSocket handshake (``"WebSocket /path?query"
    [accepted]``, logged whatever ``access_log`` says): Cairn's access line replaces it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.name == "uvicorn.error"
            and isinstance(record.msg, str)
            and record.msg.startswith('%s - "WebSocket %s"')
        )


OURS: Final = ("service", "cairn", "uvicorn")
"""The loggers ``--log-level`` sets: Cairn's modules, its access log, uvicorn's. Other
libraries (the embedded PostgreSQL's wrapper, asyncpg...) write warnings and above."""


def configure_logging(log_format: LogFormat, log_level: LogLevel) -> None:
    """Write log records to stderr, one line each in ``log_format``: those of :data:`OURS`
    from ``log_level`` up, the others' from ``warning`` up (or ``log_level``'s if higher).
    Replaces the root logger's handlers.

    uvicorn is then run with ``log_config=None`` (it keeps this) and ``access_log=False``
    (:mod:`service.http.accesslog` writes the access log).
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_FORMATTERS[log_format]())
    handler.addFilter(_NotUvicornsAccessLines())
    level = logging.getLevelNamesMapping()[log_level.upper()]
    logging.basicConfig(handlers=[handler], level=max(level, logging.WARNING), force=True)
    for name in OURS:
        logging.getLogger(name).setLevel(level)

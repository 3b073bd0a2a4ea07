"""Keeping secrets out of logs: uvicorn logs request paths with their query strings (the
access log every request, the error log WebSocket handshakes), and feed and WebSocket URLs
may carry ``?token=`` / ``?access_token=``."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any, Final

_SECRET_PARAM = re.compile(r"((?:^|[?&;])(?:access_)?token=)[^&;#\s\"]*", re.IGNORECASE)
_REDACTED: Final = "[redacted]"


def redact(text: str) -> str:
    """``text`` with the values of ``token=`` and ``access_token=`` query parameters blanked."""
    return _SECRET_PARAM.sub(rf"\g<1>{_REDACTED}", text) if "token=" in text.lower() else text


class RedactTokens(logging.Filter):
    """Blanks secret query parameters in log records (uvicorn logs request paths with their
    query strings: the access log every request, the error log WebSocket handshakes)."""

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

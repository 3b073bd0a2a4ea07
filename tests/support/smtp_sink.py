"""A real SMTP server (aiosmtpd) on a free port of 127.0.0.1, in the test's event loop, that
keeps every mail it accepts, parsed with the standard ``email`` package, and can be told
to answer the next ``DATA`` commands with other replies (a 4xx, a 5xx)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from .servers import free_port


@dataclass
class Sink:
    """What the server received (``mails``: in order; ``envelopes``: (MAIL FROM, RCPT TOs)),
    and the replies to give the next DATA commands instead of accepting (``refuse``)."""

    port: int
    mails: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    refuse: list[str] = field(default_factory=list)
    refused: int = 0

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            self.refused += 1
            return self.refuse.pop(0)
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.mails.append(message)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


@asynccontextmanager
async def smtp_sink(
    port: int | None = None, login: tuple[str, str] | None = None
) -> AsyncIterator[Sink]:
    """A sink listening on ``port`` (a free one unless given) while the block runs; with
    ``login`` (user, password), one that takes mail only after AUTH with them (over plain
    TCP: a test, not a server to copy)."""
    sink = Sink(port=port or free_port())
    loop = asyncio.get_running_loop()

    def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        wanted = login is not None and isinstance(data, LoginPassword)
        ok = wanted and (data.login.decode(), data.password.decode()) == login
        return AuthResult(success=ok, handled=False)

    def protocol() -> SMTP:
        if login is None:
            return SMTP(sink, hostname="sink.test", loop=loop)
        with warnings.catch_warnings():
            # "Requiring AUTH while not requiring TLS": on purpose, on 127.0.0.1.
            warnings.simplefilter("ignore", UserWarning)
            return SMTP(
                sink,
                hostname="sink.test",
                loop=loop,
                authenticator=check,
                auth_required=True,
                auth_require_tls=False,
            )

    server = await loop.create_server(protocol, "127.0.0.1", sink.port)
    try:
        yield sink
    finally:
        server.close()
        await server.wait_closed()

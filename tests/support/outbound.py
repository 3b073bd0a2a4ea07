"""Outbound requests in tests: a resolver the test controls, the settings that let Cairn
reach receivers on 127.0.0.1, and a receiver that counts what reaches it.

Servers that send to local receivers start with ``start_server(url, resolver=...,
**LOCAL)``; names that should look like the outside world resolve where the test says
(``StaticResolver({"hooks.example": ["127.0.0.1"]})``), and every other name fails to resolve
as an unknown one does.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .servers import serving_other

LOCAL: Final[dict[str, Any]] = {"allow_http_urls": True, "url_allowlist": "127.0.0.1"}
"""Settings (``start_server(..., **LOCAL)``) for a server that talks to local receivers."""


class StaticResolver:
    """A :data:`service.outbound.Resolver` answering from a table (host → addresses); an
    unknown host does not resolve (``socket.gaierror``). ``calls`` lists the hosts asked,
    in order; ``answers`` may be changed while the test runs."""

    def __init__(self, answers: Mapping[str, Sequence[str]] | None = None) -> None:
        self.answers: dict[str, list[str]] = {
            host.lower(): list(addresses) for host, addresses in (answers or {}).items()
        }
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls.append(host)
        addresses = self.answers.get(host.lower())
        if addresses is None:
            raise socket.gaierror(socket.EAI_NONAME, f"{host}: no such name (StaticResolver)")
        return list(addresses)


@dataclass
class Receiver:
    """A local HTTP server (see :func:`receiving`): its base URL, the requests that reached
    it (method, path) and what it answers, by path (default: 200 ``ok``)."""

    url: str
    hits: list[tuple[str, str]] = field(default_factory=list)
    routes: dict[str, Response] = field(default_factory=dict)

    def hits_on(self, path: str) -> int:
        """How many requests reached ``path``."""
        return sum(1 for _method, hit in self.hits if hit == path)


@asynccontextmanager
async def receiving(**options: Any) -> AsyncIterator[Receiver]:
    """A :class:`Receiver` on a free port of 127.0.0.1 for as long as the block runs
    (``options``: uvicorn's, see :func:`serving_other`)."""
    hits: list[tuple[str, str]] = []
    routes: dict[str, Response] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        request = Request(scope, receive)
        await request.body()
        hits.append((request.method, request.url.path))
        answer = routes.get(request.url.path) or Response("ok", media_type="text/plain")
        await answer(scope, receive, send)

    async with serving_other(app, **options) as url:
        yield Receiver(url, hits, routes)


@dataclass(frozen=True)
class Authority:
    """A certificate authority of the test's own (see :func:`authority`): ``client_context``
    trusts it only; ``cert_file`` and ``key_file`` are a server certificate it signed for
    ``names``."""

    names: tuple[str, ...]
    cert_file: str
    key_file: str
    client_context: ssl.SSLContext


def authority(directory: Path, *names: str) -> Authority:
    """A new authority, and a certificate for ``names`` (host names) written in ``directory``."""
    now = datetime.now(UTC)

    def certificate(
        subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None
    ) -> x509.CertificateBuilder:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        certificate("Cairn test authority", ca_key, None)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        certificate(names[0], key, ca.subject)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in names]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    cert_file = directory / "server.pem"
    key_file = directory / "server.key"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(
        cadata=ca.public_bytes(serialization.Encoding.PEM).decode("ascii")
    )
    return Authority(names, str(cert_file), str(key_file), context)


@asynccontextmanager
async def receiving_tls(tls: Authority) -> AsyncIterator[Receiver]:
    """A :class:`Receiver` over TLS with ``tls``'s certificate (its URL: ``https``)."""
    async with receiving(ssl_certfile=tls.cert_file, ssl_keyfile=tls.key_file) as receiver:
        yield receiver

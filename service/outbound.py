"""Every request Cairn sends out (webhooks, external feeds) goes through this guard.

A URL someone gives Cairn must not make it reach what only Cairn can reach (server-side
request forgery): its own database, a cloud's metadata service (169.254.169.254), a router's
admin page. Two checks, both by :class:`OutboundPolicy`:

- :meth:`OutboundPolicy.check_url`, when a URL is given (no DNS): ``https`` (``http`` only
  when ``CAIRN_ALLOW_HTTP_URLS``), a host, no user name or password, at most 2048 characters,
  and an IP literal must be a public address (or in ``CAIRN_URL_ALLOWLIST``).
- :meth:`OutboundPolicy.client`, on every TCP connection (the first request and each
  redirect): the host is resolved once, EVERY address must be public (or the host or the
  address allowed), and the connection goes to one of those very addresses — there is no
  second lookup, so a DNS answer that changes between the check and the connection
  (rebinding) cannot get through. TLS still checks the certificate against the host name.

Refusals at connection time raise :class:`Refused`, an :class:`httpx.ConnectError`: callers
that handle ``httpx.HTTPError`` treat it as any unreachable host. Their messages, and those of
failed connections, are generic (they end up where users read them: a feed's error, a
webhook's attempts): what a name resolved to, and why it was refused, goes to the server's
log only, not to whoever chose the URL (it would map the inside network for them).

Bodies are read with :func:`read_limited`, never with httpx's decoding: httpx decompresses
each network chunk at once and every ``Content-Encoding`` layer, so a few hundred bytes of
nested gzip become gigabytes in memory before any size check. The client asks only for what
:func:`read_limited` decodes with a bound (``Accept-Encoding: gzip, deflate``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
import zlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import httpcore
import httpx

from .config import Settings
from .errors import UnsafeUrl

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``(host, port)`` → the IP addresses (strings) it resolves to. Raises ``OSError`` (e.g.
``socket.gaierror``) when the name does not resolve."""

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_log = logging.getLogger(__name__)

MAX_URL_LENGTH: Final = 2048
ACCEPT_ENCODING: Final = "gzip, deflate"
"""What the client accepts: the encodings :func:`read_limited` decodes with a bound."""

_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
"""The well-known NAT64 prefix: its addresses reach the IPv4 address in their last 32 bits."""


async def system_resolver(host: str, port: int) -> Sequence[str]:
    """The addresses the event loop's ``getaddrinfo`` gives for ``host`` (TCP), in its order."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    addresses: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = str(sockaddr[0]).split("%", 1)[0]  # an IPv6 zone (fe80::1%eth0) is dropped
        if address not in addresses:
            addresses.append(address)
    return addresses


class Refused(httpx.ConnectError):
    """Raised by :meth:`OutboundPolicy.client` when the policy refuses a connection (a
    private address, a name that does not resolve, a redirect to ``http``...); nothing was
    sent. The message says why."""


class TooLarge(Exception):
    """Raised by :func:`read_limited`: the body (decoded, or as sent) is larger than
    ``limit`` bytes; reading stopped there."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"larger than {limit} bytes")
        self.limit = limit


class Undecodable(httpx.DecodingError):
    """Raised by :func:`read_limited`: a ``Content-Encoding`` it does not decode (anything
    but one layer of ``gzip`` or ``deflate``), or a corrupt compressed body."""


def _decoder(response: httpx.Response) -> Any:
    """A zlib decompressor for the response's one encoding layer, or None (identity)."""
    layers = [
        layer.strip().lower()
        for layer in response.headers.get("Content-Encoding", "").split(",")
        if layer.strip() and layer.strip().lower() != "identity"
    ]
    if not layers:
        return None
    if len(layers) > 1 or layers[0] not in ("gzip", "x-gzip", "deflate"):
        raise Undecodable(f"unsupported content encoding: {', '.join(layers)[:100]}")
    # 32 + MAX_WBITS: a gzip or a zlib header, whichever comes.
    return zlib.decompressobj(32 + zlib.MAX_WBITS)


async def read_limited(response: httpx.Response, limit: int, *, truncate: bool = False) -> bytes:
    """The body of a streamed ``response`` (``client.stream``), decoded, holding at most
    ``limit`` bytes of it in memory, and one network chunk: the raw bytes are read and
    decompressed here with a bound (never with httpx's decoders, unbounded).

    Args:
        limit: the most bytes taken, decoded and as sent.
        truncate: past ``limit``, return the first ``limit`` bytes instead of raising.

    Raises:
        TooLarge: more than ``limit`` bytes (unless ``truncate``).
        Undecodable: an encoding other than one layer of gzip or deflate; a corrupt body.
        httpx.HTTPError: as httpx's reads.
    """
    decoder = _decoder(response)
    got = bytearray()
    raw = 0
    async for chunk in response.aiter_raw():
        raw += len(chunk)
        if decoder is None:
            got += chunk
        else:
            data = chunk
            while data and not decoder.eof:
                try:
                    got += decoder.decompress(data, limit + 1 - len(got))
                except zlib.error:
                    raise Undecodable("corrupt compressed body") from None
                if len(got) > limit:
                    break
                data = decoder.unconsumed_tail
        if len(got) > limit or raw > limit:
            if truncate:
                return bytes(got[:limit])
            raise TooLarge(limit)
        if decoder is not None and decoder.eof:
            break
    return bytes(got)


def unsafe_reason(address: IpAddress) -> str | None:
    """Why ``address`` may not be reached from Cairn (``"loopback address"``...), or None
    for a public address. IPv4 inside IPv6 (mapped, 6to4, Teredo, NAT64) is judged as IPv4."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return unsafe_reason(embedded)
    if address.is_unspecified:
        return "unspecified address"
    if address.is_loopback:
        return "loopback address"
    if address.is_link_local:
        return "link-local address"
    if address.is_multicast:
        return "multicast address"
    if address.is_reserved:  # before is_private, which includes 240.0.0.0/4
        return "reserved address"
    if address.is_private:
        return "private address"
    if not address.is_global:
        return "non-public address"
    return None


def _literal(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _valid_name(host: str) -> bool:
    """Whether ``host`` (a name, as httpx gives it: ASCII, IDNA-encoded) is one DNS can
    carry: labels of 1 to 63 characters, at most 253 in all (a trailing dot aside)."""
    name = host[:-1] if host.endswith(".") else host
    if not name or len(name) > 253:
        return False
    if not all(0 < len(label) <= 63 for label in name.split(".")):
        return False
    try:
        name.encode("idna")
    except UnicodeError:
        return False
    return True


def _parse_allowlist(entries: Iterable[str]) -> tuple[frozenset[str], tuple[IpNetwork, ...]]:
    """Host names (lower case, no trailing dot) and networks of the allow-list.

    Raises:
        ValueError: an entry that looks like an address or network but is not one.
    """
    hosts: set[str] = set()
    networks: list[IpNetwork] = []
    for raw in entries:
        entry = raw.strip().lower()
        if not entry:
            continue
        bare = entry.strip("[]")
        # As the setting's check (service/config.py): what looks like an address is one.
        if "/" in bare or ":" in bare or not bare.strip("0123456789."):
            networks.append(ipaddress.ip_network(bare, strict=False))
        else:
            hosts.add(entry.rstrip("."))
    return frozenset(hosts), tuple(networks)


@dataclass(frozen=True)
class OutboundPolicy:
    """What outbound requests may reach (see the module's docstring).

    Args:
        allow_http: whether ``http`` URLs are allowed (``CAIRN_ALLOW_HTTP_URLS``).
        allowlist: host names and networks (CIDR, or a single IP) that may be reached even
            though private (``CAIRN_URL_ALLOWLIST``).
        resolver: how host names become addresses (tests give one they control).
        ssl_context: what checks servers' certificates (None: httpx's default, certifi's
            authorities); tests give one trusting their own authority.

    Raises:
        ValueError: an allow-list entry that is neither a host name nor a network.
    """

    allow_http: bool = False
    allowlist: tuple[str, ...] = ()
    resolver: Resolver = system_resolver
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False)
    _hosts: frozenset[str] = field(init=False, repr=False, compare=False)
    _networks: tuple[IpNetwork, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        hosts, networks = _parse_allowlist(self.allowlist)
        object.__setattr__(self, "_hosts", hosts)
        object.__setattr__(self, "_networks", networks)

    @classmethod
    def from_settings(cls, settings: Settings, resolver: Resolver | None = None) -> OutboundPolicy:
        """The policy ``settings`` describe; ``resolver`` replaces the system's (tests)."""
        return cls(
            allow_http=settings.allow_http_urls,
            allowlist=tuple(settings.url_allowlist),
            resolver=resolver or system_resolver,
        )

    def _schemes(self) -> tuple[str, ...]:
        return ("https", "http") if self.allow_http else ("https",)

    def host_allowed(self, host: str) -> bool:
        """Whether ``host`` (a name) is in the allow-list."""
        return host.lower().rstrip(".") in self._hosts

    def address_refusal(self, host: str, address: IpAddress) -> str | None:
        """Why ``address`` (that ``host`` resolved to) may not be reached, or None."""
        if self.host_allowed(host) or any(address in net for net in self._networks):
            return None
        return unsafe_reason(address)

    def check_url(self, url: str) -> str:
        """``url`` normalised, if it is one Cairn may be asked to reach (no DNS lookup:
        names are checked again, resolved, on every connection).

        Raises:
            UnsafeUrl: not ``https`` (or ``http`` when allowed), no host, a host name that
                is not one (a label longer than 63 characters, a name longer than 253), a
                user name or password, longer than 2048 characters, or an IP address that
                is not public and not allowed; ``reason`` says which.
        """
        if len(url) > MAX_URL_LENGTH:
            raise UnsafeUrl(f"longer than {MAX_URL_LENGTH} characters")
        try:
            parsed = httpx.URL(url.strip())
        except httpx.InvalidURL as exc:
            raise UnsafeUrl(f"not a valid URL ({exc})") from None
        if parsed.scheme not in self._schemes():
            if parsed.scheme == "http":
                raise UnsafeUrl("http URLs are not allowed (https only)")
            raise UnsafeUrl("only https URLs are allowed")
        if not parsed.host:
            raise UnsafeUrl("the URL has no host")
        if parsed.userinfo:
            raise UnsafeUrl("the URL may not carry a user name or password")
        address = _literal(parsed.host)
        if address is not None:
            reason = self.address_refusal(parsed.host, address)
            if reason is not None:
                raise UnsafeUrl(reason)
        elif not _valid_name(parsed.host):
            raise UnsafeUrl("not a valid host name")
        normalised = str(parsed)
        if len(normalised) > MAX_URL_LENGTH:
            raise UnsafeUrl(f"longer than {MAX_URL_LENGTH} characters")
        return normalised

    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses to connect to for ``host``: all of them checked.

        Raises:
            Refused: the name does not resolve, or ANY of its addresses is refused (one
                private answer among public ones is enough: a resolver could pick it).
        """
        literal = _literal(host)
        if literal is not None:
            addresses: Sequence[str] = [str(literal)]
        else:
            try:
                addresses = await self.resolver(host, port)
            except (OSError, UnicodeError, ValueError) as exc:
                # UnicodeError: a name getaddrinfo cannot encode (a label over 63 characters).
                _log.info("outbound: %r does not resolve (%s)", host, exc)
                raise Refused(f"{host} does not resolve") from None
            if not addresses:
                raise Refused(f"{host} does not resolve")
        checked: list[str] = []
        for text in addresses:
            address = _literal(text)
            if address is None:
                _log.warning("outbound: %r resolved to %r, not an IP address", host, text)
                raise Refused(f"{host} does not resolve")
            reason = self.address_refusal(host, address)
            if reason is not None:
                # Where the name points, and why that is refused, only in the log.
                _log.warning("outbound: %r refused: it resolves to %s (%s)", host, address, reason)
                raise Refused(f"{host} refused: not a public address")
            checked.append(str(address))
        return checked

    def client(
        self, *, timeout: float = 10.0, follow_redirects: bool = False, max_redirects: int = 5
    ) -> httpx.AsyncClient:
        """An HTTP client whose every connection this policy checks (see the module's
        docstring); no proxy or other setting is taken from the environment. The caller
        closes it (``async with``); a worker keeps one for its life, so that connections
        (and their checks) are reused.

        Raises (from its requests): :class:`Refused` for a URL or a connection the policy
        refuses, before anything is sent; httpx's own errors otherwise."""
        return httpx.AsyncClient(
            transport=_GuardedTransport(self),
            headers={"Accept-Encoding": ACCEPT_ENCODING},
            timeout=timeout,
            follow_redirects=follow_redirects,
            max_redirects=max_redirects,
            trust_env=False,
        )


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses the policy checked."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._policy.resolve(host, port)
        # Connect to the checked addresses themselves: asking the resolver again could get
        # another answer (DNS rebinding). httpcore starts TLS afterwards with the URL's host
        # name as SNI and for the certificate check, so the address does not weaken TLS.
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                # Its message names the address tried: in the log, not in the error.
                _log.info("outbound: connecting to %s (%s) failed: %s", host, address, exc)
                failure = exc
        if isinstance(failure, httpcore.ConnectTimeout):
            raise httpcore.ConnectTimeout(f"connecting to {host} timed out")
        raise httpcore.ConnectError(f"could not connect to {host}")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise Refused("Unix sockets are not reached from outbound requests")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over :class:`_GuardedBackend`, checking each request's URL first
    (redirects included: httpx sends each through the transport)."""

    def __init__(self, policy: OutboundPolicy) -> None:
        super().__init__(trust_env=False)
        self._policy = policy
        # httpx takes no network backend; its pool does. Same pool as httpx's default one
        # (its TLS context, limits) but for the backend.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=policy.ssl_context or httpx.create_ssl_context(trust_env=False),
            max_connections=httpx.Limits().max_connections,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_GuardedBackend(policy),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            self._policy.check_url(str(request.url))
        except UnsafeUrl as exc:
            raise Refused(f"{request.url.host}: {exc.reason}", request=request) from None
        try:
            return await super().handle_async_request(request)
        except Refused as exc:
            # Raised below httpx's request context: give it the request as httpx's own do.
            exc.request = request
            raise

"""The outbound guard (service/outbound.py): URLs checked when given, every connection
checked after DNS resolution, against real local servers that count what reaches them."""

from __future__ import annotations

import gzip
import ipaddress
import logging
import socket
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from service.config import from_env
from service.errors import ConfigurationError, UnsafeUrl
from service.http.problems import exception_handlers
from service.outbound import (
    OutboundPolicy,
    Refused,
    TooLarge,
    Undecodable,
    read_limited,
    unsafe_reason,
)
from tests.support.outbound import (
    LOCAL,
    Receiver,
    StaticResolver,
    authority,
    receiving,
    receiving_tls,
)
from tests.support.servers import serving, serving_other

# -- URLs as given (no DNS) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://hooks.example/", "http URLs are not allowed"),
        ("ftp://hooks.example/", "only https"),
        ("file:///etc/passwd", "only https"),
        ("https:///path", "no host"),
        ("https://user:secret@hooks.example/", "user name or password"),
        ("https://hooks.example/" + "a" * 2048, "longer than 2048"),
        ("https://127.0.0.1/", "loopback"),
        ("https://127.1.2.3:8443/", "loopback"),
        ("https://0.0.0.0/", "unspecified"),
        ("https://[::]/", "unspecified"),
        ("https://[::1]/", "loopback"),
        ("https://[::ffff:127.0.0.1]/", "loopback"),
        ("https://[::ffff:10.0.0.1]/", "private"),
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://[fe80::1]/", "link-local"),
        ("https://10.0.0.5/", "private"),
        ("https://172.16.0.1/", "private"),
        ("https://192.168.1.1/", "private"),
        ("https://[fc00::1]/", "private"),
        ("https://224.0.0.1/", "multicast"),
        ("https://[ff02::1]/", "multicast"),
        ("https://100.64.0.1/", "non-public"),
        ("https://240.0.0.1/", "reserved"),
        ("https://[2002:7f00:1::]/", "loopback"),  # 6to4 of 127.0.0.1
        ("https://[64:ff9b::a00:5]/", "private"),  # NAT64 of 10.0.0.5
        ("https://" + "a" * 64 + ".com/", "not a valid host name"),  # a label over 63
        ("https://" + "a." * 127 + "com/", "not a valid host name"),  # over 253 in all
    ],
)
def test_check_url_refuses(url: str, reason: str) -> None:
    """A URL that is not https, carries credentials, or names a non-public address is refused
    when given, with a reason."""
    with pytest.raises(UnsafeUrl) as caught:
        OutboundPolicy().check_url(url)
    assert reason in caught.value.reason
    assert caught.value.field == "url"


def test_check_url_accepts_and_normalises() -> None:
    """A public https URL (or an allowed one) comes back normalised; names are not resolved."""
    policy = OutboundPolicy()
    assert policy.check_url("HTTPS://Hooks.Example/in?x=1") == "https://hooks.example/in?x=1"
    assert policy.check_url("https://93.184.216.34:8443/") == "https://93.184.216.34:8443/"
    # A name is checked only on connection (it may resolve anywhere later).
    assert policy.check_url("https://internal.example/") == "https://internal.example/"
    local = OutboundPolicy(allow_http=True, allowlist=("127.0.0.1", "10.0.0.0/8"))
    assert local.check_url("http://127.0.0.1:8080/x") == "http://127.0.0.1:8080/x"
    assert local.check_url("https://10.1.2.3/") == "https://10.1.2.3/"
    with pytest.raises(UnsafeUrl, match="loopback"):
        local.check_url("http://127.0.0.2/")


def test_every_non_public_range_is_refused() -> None:
    """unsafe_reason refuses the special ranges of both families and accepts public ones."""
    for text in ("8.8.8.8", "93.184.216.34", "2606:4700:4700::1111"):
        assert unsafe_reason(ipaddress.ip_address(text)) is None
    for text in ("127.0.0.1", "0.0.0.0", "::", "::1", "::ffff:169.254.169.254", "198.18.0.1"):
        assert unsafe_reason(ipaddress.ip_address(text)) is not None


def test_settings_configure_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """CAIRN_URL_ALLOWLIST (comma-separated) and CAIRN_ALLOW_HTTP_URLS make the policy; a
    malformed network is refused at start-up."""
    settings = from_env(
        "postgresql:///x",
        url_allowlist="hooks.internal, 10.0.0.0/8,127.0.0.1",
        allow_http_urls=True,
    )
    policy = OutboundPolicy.from_settings(settings)
    assert policy.allow_http
    assert policy.allowlist == ("hooks.internal", "10.0.0.0/8", "127.0.0.1")
    assert policy.check_url("http://10.9.9.9/") == "http://10.9.9.9/"
    monkeypatch.setenv("CAIRN_URL_ALLOWLIST", "hooks.internal,10.0.0.0/33")
    with pytest.raises(ConfigurationError, match=r"CAIRN_URL_ALLOWLIST=.*neither a host"):
        from_env("postgresql:///x")
    monkeypatch.delenv("CAIRN_URL_ALLOWLIST")
    strict = OutboundPolicy.from_settings(from_env("postgresql:///x"))
    assert not strict.allow_http
    assert strict.allowlist == ()


# -- connections (after DNS) --------------------------------------------------------------


async def _get(policy: OutboundPolicy, url: str, **options: Any) -> httpx.Response:
    async with policy.client(**options) as client:
        return await client.get(url)


@pytest.fixture
async def receiver() -> Any:
    async with receiving() as receiver:
        yield receiver


def _port(receiver: Receiver) -> int:
    port = httpx.URL(receiver.url).port
    assert port is not None
    return port


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "0.0.0.0", "[::1]", "[::ffff:127.0.0.1]", "169.254.169.254", "[::]"],
)
async def test_addresses_are_refused_before_any_request(receiver: Receiver, host: str) -> None:
    """Loopback, 0.0.0.0, [::1], ::ffff:127.0.0.1, the metadata address: refused with no
    request leaving (the receiver on 127.0.0.1 counts none)."""
    policy = OutboundPolicy(allow_http=True)
    with pytest.raises(Refused) as caught:
        await _get(policy, f"http://{host}:{_port(receiver)}/hook")
    assert isinstance(caught.value, httpx.TransportError)
    assert caught.value.request.url.path == "/hook"
    assert receiver.hits == []


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (["10.0.0.5"], "private"),
        (["127.0.0.1"], "loopback"),
        (["::ffff:127.0.0.1"], "loopback"),
        (["93.184.216.34", "127.0.0.1"], "loopback"),  # one bad answer among good ones
    ],
)
async def test_names_resolving_to_private_addresses_are_refused(
    receiver: Receiver, answer: list[str], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A host name is checked after resolution: any non-public answer refuses it, and no
    request leaves (why: in the log only)."""
    resolver = StaticResolver({"feeds.example": answer})
    policy = OutboundPolicy(allow_http=True, resolver=resolver)
    with pytest.raises(Refused, match="not a public address"):
        await _get(policy, f"http://feeds.example:{_port(receiver)}/feed")
    assert f"({reason} address)" in caplog.text
    assert resolver.calls == ["feeds.example"]
    assert receiver.hits == []


async def test_unknown_name_is_refused(receiver: Receiver) -> None:
    """A name that does not resolve is a refused connection (an httpx.ConnectError)."""
    policy = OutboundPolicy(allow_http=True, resolver=StaticResolver())
    with pytest.raises(httpx.ConnectError, match="does not resolve"):
        await _get(policy, f"http://nowhere.example:{_port(receiver)}/")
    assert receiver.hits == []


async def test_http_is_refused_unless_allowed(receiver: Receiver) -> None:
    """An http URL is refused unless allow_http (and the address allowed) — then it arrives."""
    url = f"{receiver.url}/plain"
    with pytest.raises(Refused, match="http URLs are not allowed"):
        await _get(OutboundPolicy(allowlist=("127.0.0.1",)), url)
    assert receiver.hits == []
    response = await _get(OutboundPolicy(allow_http=True, allowlist=("127.0.0.1",)), url)
    assert response.status_code == 200
    assert receiver.hits == [("GET", "/plain")]


@pytest.mark.parametrize(
    "allowlist",
    [
        ("hooks.example",),
        ("HOOKS.example.",),
        ("127.0.0.0/8",),
        ("127.0.0.1",),
        ("::1", "127.0.0.1/32"),
    ],
)
async def test_allowlist_by_host_or_network(receiver: Receiver, allowlist: tuple[str, ...]) -> None:
    """The allow-list names a host or a network (CIDR or single IP); the request then
    reaches the receiver, with the URL's host name in ``Host``."""
    resolver = StaticResolver({"hooks.example": ["127.0.0.1"]})
    policy = OutboundPolicy(allow_http=True, allowlist=allowlist, resolver=resolver)
    response = await _get(policy, f"http://hooks.example:{_port(receiver)}/in")
    assert response.status_code == 200
    assert response.request.headers["host"] == f"hooks.example:{_port(receiver)}"
    assert receiver.hits == [("GET", "/in")]


async def test_allowlisted_host_does_not_allow_another_name(receiver: Receiver) -> None:
    """Allowing one host name allows that name only, not others resolving alike."""
    resolver = StaticResolver({"hooks.example": ["127.0.0.1"], "other.example": ["127.0.0.1"]})
    policy = OutboundPolicy(allow_http=True, allowlist=("hooks.example",), resolver=resolver)
    with pytest.raises(Refused, match="not a public address"):
        await _get(policy, f"http://other.example:{_port(receiver)}/in")
    assert receiver.hits == []


async def test_rebinding_cannot_get_through(receiver: Receiver) -> None:
    """The connection goes to the address that was checked: a resolver whose answer changes
    after the check (here to an unroutable one) is asked once per connection, and the next
    connection is checked against the new answer and refused."""
    resolver = StaticResolver({"rebind.example": ["127.0.0.1"]})
    policy = OutboundPolicy(allow_http=True, allowlist=("127.0.0.1",), resolver=resolver)
    url = f"http://rebind.example:{_port(receiver)}/x"

    async def rebinding(host: str, port: int) -> list[str]:
        answer = list(await resolver(host, port))
        # The attacker's DNS now answers otherwise: were it asked again before connecting,
        # the connection would go there.
        resolver.answers[host] = ["10.255.255.1"]
        return answer

    guarded = OutboundPolicy(allow_http=True, allowlist=("127.0.0.1",), resolver=rebinding)
    response = await _get(guarded, url)
    assert response.status_code == 200
    assert resolver.calls == ["rebind.example"]
    assert receiver.hits == [("GET", "/x")]
    with pytest.raises(Refused, match="not a public address"):
        await _get(policy, url)  # a new connection: resolved again, and refused
    assert resolver.calls == ["rebind.example", "rebind.example"]
    assert receiver.hits == [("GET", "/x")]


async def test_redirect_to_loopback_is_refused(receiver: Receiver) -> None:
    """Each redirect is a new connection, checked again: a redirect from an allowed host to
    loopback (by address or by a name resolving to it) is refused before it is requested."""
    port = _port(receiver)
    receiver.routes["/to-literal"] = RedirectResponse(f"http://127.0.0.1:{port}/secret")
    receiver.routes["/to-name"] = RedirectResponse(f"http://localhost.example:{port}/secret")
    resolver = StaticResolver({"hooks.example": ["127.0.0.1"], "localhost.example": ["127.0.0.1"]})
    policy = OutboundPolicy(allow_http=True, allowlist=("hooks.example",), resolver=resolver)
    for path in ("/to-literal", "/to-name"):
        with pytest.raises(Refused, match=r"loopback|not a public address"):
            await _get(policy, f"http://hooks.example:{port}{path}", follow_redirects=True)
    assert receiver.hits == [("GET", "/to-literal"), ("GET", "/to-name")]
    assert receiver.hits_on("/secret") == 0


async def test_redirects_within_the_policy_are_followed(receiver: Receiver) -> None:
    """A redirect to an allowed place is followed when asked (and not when not)."""
    port = _port(receiver)
    receiver.routes["/old"] = RedirectResponse(f"http://hooks.example:{port}/new")
    resolver = StaticResolver({"hooks.example": ["127.0.0.1"]})
    policy = OutboundPolicy(allow_http=True, allowlist=("hooks.example",), resolver=resolver)
    followed = await _get(policy, f"http://hooks.example:{port}/old", follow_redirects=True)
    assert followed.status_code == 200
    assert followed.url.path == "/new"
    unfollowed = await _get(policy, f"http://hooks.example:{port}/old")
    assert unfollowed.status_code == 307
    assert receiver.hits == [("GET", "/old"), ("GET", "/new"), ("GET", "/old")]


async def test_https_to_http_redirect_is_refused(tmp_path: Path, receiver: Receiver) -> None:
    """Over https (TLS checked against the host name, not the address connected to), a
    redirect to an http URL is refused when http is not allowed: the plain receiver sees
    nothing."""
    tls = authority(tmp_path, "secure.example")
    async with receiving_tls(tls) as secure:
        port = _port(secure)
        secure.routes["/down"] = RedirectResponse(f"http://plain.example:{_port(receiver)}/leak")
        resolver = StaticResolver({"secure.example": ["127.0.0.1"], "plain.example": ["127.0.0.1"]})
        policy = OutboundPolicy(
            allowlist=("127.0.0.1",), resolver=resolver, ssl_context=tls.client_context
        )
        ok = await _get(policy, f"https://secure.example:{port}/up")
        assert ok.status_code == 200
        with pytest.raises(Refused, match="http URLs are not allowed"):
            await _get(policy, f"https://secure.example:{port}/down", follow_redirects=True)
        assert secure.hits == [("GET", "/up"), ("GET", "/down")]
        assert receiver.hits == []


async def test_tls_checks_the_host_name(tmp_path: Path) -> None:
    """Connecting to a checked address does not weaken TLS: a certificate for another name
    fails verification, and nothing reaches the application."""
    tls = authority(tmp_path, "secure.example")
    async with receiving_tls(tls) as secure:
        resolver = StaticResolver({"impostor.example": ["127.0.0.1"]})
        policy = OutboundPolicy(
            allowlist=("127.0.0.1",), resolver=resolver, ssl_context=tls.client_context
        )
        with pytest.raises(httpx.ConnectError, match=r"CERTIFICATE_VERIFY_FAILED|hostname"):
            await _get(policy, f"https://impostor.example:{_port(secure)}/")
        assert secure.hits == []


# -- the HTTP layer and the wiring --------------------------------------------------------


async def test_unsafe_url_is_a_422_problem() -> None:
    """UnsafeUrl answers 422 problem+json naming the field ``url`` and the reason."""

    async def create(request: Any) -> Any:
        OutboundPolicy().check_url((await request.json())["url"])
        raise AssertionError("the URL was accepted")

    app = Starlette(
        routes=[Route("/hooks", create, methods=["POST"])], exception_handlers=exception_handlers()
    )
    async with serving_other(app) as url, httpx.AsyncClient() as client:
        response = await client.post(f"{url}/hooks", json={"url": "https://169.254.169.254/"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "urn:cairn:problem:unsafe-url"
    assert problem["errors"] == [{"field": "url", "detail": "link-local address"}]


async def test_the_server_gives_services_its_policy(database_url: str) -> None:
    """start_server(resolver=, **LOCAL) reaches Services.outbound: workers get the settings'
    policy with the test's resolver."""
    resolver = StaticResolver({"hooks.example": ["127.0.0.1"]})
    async with serving(database_url, resolver=resolver, **LOCAL) as server, receiving() as hook:
        app: Any = server.uvicorn.config.app
        policy: OutboundPolicy = app.state.outbound
        assert policy.allow_http
        assert policy.allowlist == ("127.0.0.1",)
        assert policy.resolver is resolver
        response = await _get(policy, f"http://hooks.example:{_port(hook)}/in")
        assert response.status_code == 200
        assert hook.hits == [("GET", "/in")]


# -- names the resolver cannot take; messages --------------------------------------------


async def test_a_name_getaddrinfo_cannot_encode_is_refused_not_raised() -> None:
    """A 64-character label makes getaddrinfo raise UnicodeError (not an OSError): the
    policy refuses the connection as any name that does not resolve."""
    with pytest.raises(Refused, match="does not resolve"):
        await OutboundPolicy().resolve("a" * 64 + ".com", 443)


async def test_refusals_and_failed_connections_do_not_name_addresses(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What a name resolved to, and where a failed connection went, stay in the log: the
    errors (shown to users) do not say."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    resolver = StaticResolver({"inside.example": ["10.20.30.40"], "gone.example": ["127.0.0.1"]})
    policy = OutboundPolicy(allow_http=True, allowlist=("127.0.0.1",), resolver=resolver)
    with caplog.at_level(logging.INFO, logger="service.outbound"):
        with pytest.raises(Refused) as refused:
            await _get(policy, "http://inside.example/")
        with pytest.raises(httpx.ConnectError) as failed:
            await _get(policy, f"http://gone.example:{port}/")
    assert str(refused.value) == "inside.example refused: not a public address"
    assert str(failed.value) == "could not connect to gone.example"
    assert "10.20.30.40 (private address)" in caplog.text
    assert "127.0.0.1" not in str(failed.value)


# -- bounded bodies -------------------------------------------------------------------------


def _bomb(size: int, layers: int) -> bytes:
    """``size`` zero bytes gzipped ``layers`` times (a few hundred KiB for 256 MiB)."""
    body = gzip.compress(b"\0" * size, compresslevel=9)
    for _ in range(layers - 1):
        body = gzip.compress(body, compresslevel=9)
    return body


async def _read(receiver: Receiver, path: str, limit: int, **options: Any) -> bytes:
    policy = OutboundPolicy(allow_http=True, allowlist=("127.0.0.1",))
    async with policy.client() as client, client.stream("GET", receiver.url + path) as reply:
        return await read_limited(reply, limit, **options)


async def test_read_limited_decodes_one_layer_within_the_limit(receiver: Receiver) -> None:
    """gzip and deflate bodies come back decoded; the client asks only for those."""
    text = b"hello " * 1000
    receiver.routes["/gzip"] = Response(gzip.compress(text), headers={"Content-Encoding": "gzip"})
    receiver.routes["/deflate"] = Response(
        zlib.compress(text), headers={"Content-Encoding": "deflate"}
    )
    receiver.routes["/plain"] = Response(text)
    for path in ("/gzip", "/deflate", "/plain"):
        assert await _read(receiver, path, 10_000) == text
    assert await _read(receiver, "/gzip", 100, truncate=True) == text[:100]
    with pytest.raises(TooLarge):
        await _read(receiver, "/plain", 5999)
    async with OutboundPolicy(allow_http=True, allowlist=("127.0.0.1",)).client() as client:
        assert client.headers["Accept-Encoding"] == "gzip, deflate"


async def test_compression_bombs_never_grow_past_the_limit(receiver: Receiver) -> None:
    """256 MiB of zeros gzipped once is refused at the limit, never decoded further (memory
    stays near the limit); gzipped twice (``Content-Encoding: gzip, gzip``), or in an
    encoding without a bounded decoder, it is refused before any decoding."""
    bomb = _bomb(256 * 1024 * 1024, 1)
    receiver.routes["/bomb"] = Response(bomb, headers={"Content-Encoding": "gzip"})
    receiver.routes["/double"] = Response(
        gzip.compress(bomb), headers={"Content-Encoding": "gzip, gzip"}
    )
    receiver.routes["/br"] = Response(b"\x0b\x02\x80hi\x03", headers={"Content-Encoding": "br"})
    limit = 1024 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(TooLarge):
            await _read(receiver, "/bomb", limit)
        assert await _read(receiver, "/bomb", limit, truncate=True) == b"\0" * limit
        with pytest.raises(Undecodable, match="gzip, gzip"):
            await _read(receiver, "/double", limit)
        with pytest.raises(Undecodable, match="br"):
            await _read(receiver, "/br", limit)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * limit, peak  # httpx's own decoding held 256 MiB at once

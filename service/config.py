"""Settings of a Cairn instance, from arguments and the environment.

:class:`Settings` is the one source: each field's environment variable is derived from its
name (``CAIRN_`` + the name in capitals, :func:`env_name`), and its description is its
``Meta``. The settings of :data:`FROM_COMMAND_LINE` come from ``cairn serve``'s arguments
instead (``DATABASE_URL`` is read by :mod:`service.database.location`). ``cairn serve --help``
and the settings tables of README.md and docs/OPERATIONS.md are made from these fields
(:func:`described`; ``python -m service.config --write-docs`` rewrites the tables, and a test
fails while they are stale).
"""

from __future__ import annotations

import ipaddress
import os
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Final, Literal, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo

import msgspec
import msgspec.inspect

from .errors import ConfigurationError


def _setting(description: str, **bounds: Any) -> msgspec.Meta:
    """A setting's description (for ``--help`` and the README) and bounds."""
    return msgspec.Meta(description=description, **bounds)


Origin = Annotated[
    str, msgspec.Meta(pattern=r"^[a-z][a-z0-9+.-]*://(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:[0-9]{1,5})?$")
]
"""A web origin as browsers send it in ``Origin``: ``scheme://host[:port]``, in lower case,
with no path (not even ``/``), so that it can be compared with the header as a string."""


LogLevel = Literal["critical", "error", "warning", "info", "debug"]
"""Log levels ``cairn serve`` takes. Not uvicorn's ``trace``: it logs every ASGI message,
request headers (``Authorization``) included."""

LogFormat = Literal["text", "json"]


class Settings(msgspec.Struct, kw_only=True):
    """Everything an instance needs to know."""

    database_url: Annotated[
        str, _setting("the PostgreSQL to use; unset: the embedded one in `--data-dir`")
    ]
    data_dir: Annotated[
        Path, _setting("the embedded PostgreSQL's data folder (used when DATABASE_URL is unset)")
    ] = Path("cairn-data")
    host: Annotated[str, _setting("the address to listen on (0.0.0.0: all of IPv4)")] = "127.0.0.1"
    port: Annotated[int, _setting("the TCP port to listen on", ge=0, le=65535)] = 8000
    log_level: Annotated[
        LogLevel,
        _setting(
            "the least severe log records written by Cairn and uvicorn (other libraries': "
            "warnings and above)"
        ),
    ] = "info"
    log_format: Annotated[
        LogFormat,
        _setting(
            "how log records are written to stderr: `text`, a line for people; `json`, one "
            "JSON object per line (time, level, logger, message, request_id, fields)"
        ),
    ] = "text"
    app_url: Annotated[
        str, _setting("front-end address template for `app_url` ({type}, {id}, {project_id})")
    ] = "http://localhost:3000/{type}s/{id}"
    link_url: Annotated[
        str,
        _setting(
            "front-end page template of links mailed or handed out ({purpose}: `sign_in`, "
            "`reset` or `invitation`; {token}: the single-use token the page posts back)"
        ),
    ] = "http://localhost:3000/{purpose}?token={token}"
    max_body: Annotated[int, _setting("request bodies larger than this (bytes) get 413", ge=1)] = (
        1_048_576
    )
    max_upload: Annotated[
        int,
        _setting(
            "uploaded files (`POST /v1/attachments`) larger than this (bytes) get 413, as soon "
            "as that many bytes have arrived (at once when Content-Length says so)",
            ge=1,
        ),
    ] = 104_857_600
    poll_interval: Annotated[
        float, _setting("live readers re-read the log this often (s) without a wake-up", gt=0)
    ] = 1.0
    alert_interval: Annotated[
        float,
        _setting(
            "the alert scheduler looks for milestones and to-dos owed an alert this often (s)",
            gt=0,
        ),
    ] = 60.0
    feed_poll_interval: Annotated[
        float,
        _setting(
            "the external feed poller looks for feeds due a poll this often (s); each feed has "
            "its own interval (default 15 min)",
            gt=0,
        ),
    ] = 30.0
    feed_timeout: Annotated[
        float,
        _setting("the longest (s) one fetch of an external feed may take, whole", gt=0),
    ] = 10.0
    feed_max_bytes: Annotated[
        int,
        _setting("external feeds larger than this (bytes) are refused as they arrive", ge=1),
    ] = 5_242_880
    ryw_timeout: Annotated[
        float, _setting("how long (s) a write waits for the read models to show it", ge=0)
    ] = 5.0
    ping_interval: Annotated[float, _setting("WebSocket heartbeat period (s)", gt=0)] = 20.0
    ping_timeout: Annotated[
        float, _setting("a WebSocket peer silent this long (s) after a ping is dropped", gt=0)
    ] = 20.0
    ws_buffer_messages: Annotated[int, _setting("per-connection send buffer, in frames", ge=1)] = (
        1000
    )
    ws_buffer_bytes: Annotated[int, _setting("per-connection send buffer, in bytes", ge=1)] = (
        1_048_576
    )
    feed_authority: Annotated[
        str, _setting("the `tag:` URI authority of feed ids", min_length=1)
    ] = "cairn.localhost"
    rate_limit: Annotated[
        float, _setting("API requests per second per person (per instance); 0: off", ge=0)
    ] = 200.0
    rate_burst: Annotated[float, _setting("the burst allowed above the rate limit", ge=0)] = 400.0
    token_cache_ttl: Annotated[
        float,
        _setting(
            "how long (s) an API token's holder may be answered from memory for reads: bounds "
            "how late another instance's revocation takes effect on reads here (writes always "
            "check the log)",
            ge=0,
        ),
    ] = 0.5
    session_idle: Annotated[
        float,
        _setting("a browser session ends after this long (s) without a request", gt=0),
    ] = 1_209_600.0
    sign_in_burst: Annotated[
        float,
        _setting(
            "sign-in attempts (and sign-in or reset mails asked) per e-mail address in a burst, "
            "per instance; a client address gets five times as many; 0: no limit",
            ge=0,
        ),
    ] = 10.0
    sign_in_rate: Annotated[
        float,
        _setting("sign-in attempts per minute an address gets back after its burst", gt=0),
    ] = 5.0
    sign_in_lockout: Annotated[
        int,
        _setting(
            "failed password sign-ins in a row that lock an address for 15 minutes (every "
            "instance); 0: no lockout",
            ge=0,
        ),
    ] = 10
    db_timeout: Annotated[
        float,
        _setting(
            "longest wait (s) for PostgreSQL: a connection, a pooled connection, a statement; "
            "past it the request is answered 503",
            gt=0,
        ),
    ] = 5.0
    header_timeout: Annotated[
        float,
        _setting(
            "a connection must send a request's line and headers within this (s) of its first "
            "byte (or of opening); else it is closed",
            gt=0,
        ),
    ] = 10.0
    body_timeout: Annotated[
        float,
        _setting(
            "a request's body must arrive whole within this (s) of its headers; else the "
            "connection is closed",
            gt=0,
        ),
    ] = 30.0
    body_min_rate: Annotated[
        int,
        _setting(
            "a body still arriving at its deadline may go on, a deadline at a time, while each "
            "period brought at least this many bytes per second (large uploads on slow links); "
            "0: the body deadline is a plain total",
            ge=0,
        ),
    ] = 16384
    shutdown_timeout: Annotated[
        float,
        _setting(
            "on SIGTERM, how long (s) the requests in flight and the open connections get to "
            "finish (new connections are refused meanwhile); past it they are cut",
            ge=0,
        ),
    ] = 30.0
    max_connections_per_client: Annotated[
        int,
        _setting(
            "open HTTP connections one client address may hold; more are closed at once "
            "(0: no cap; behind a proxy every client has the proxy's address)",
            ge=0,
        ),
    ] = 256
    cors_origins: Annotated[
        tuple[Origin, ...],
        _setting(
            "origins (`scheme://host[:port]`, comma-separated) whose pages may call the API "
            "(CORS) and open its WebSocket; none: no CORS headers at all"
        ),
    ] = ()
    oauth_sign_in_url: Annotated[
        str | None,
        _setting(
            "where `GET /oauth/authorize` sends a person who is not signed in (with `?next=` "
            "the authorization URL); none: a page saying to sign in first"
        ),
    ] = None
    ready_lag_seconds: Annotated[
        float,
        _setting(
            "`GET /readyz` answers 503 while a read model is further behind the log than this (s)",
            gt=0,
        ),
    ] = 30.0
    locale: Annotated[
        Literal["en", "fr"],
        _setting("the default language: of new projects' search and of people who chose none"),
    ] = "en"
    time_zone: Annotated[
        str,
        _setting(
            "the default time zone (an IANA name, e.g. `Europe/Paris`) of people who chose none: "
            'where their "today" and "this week" are',
            min_length=1,
        ),
    ] = "UTC"
    public_url: Annotated[
        str,
        _setting(
            "the address people reach this API at (`https://cairn.example.com`), for links in "
            "e-mail (files, one-click unsubscribe); empty: `http://HOST:PORT`"
        ),
    ] = ""
    mail_domain: Annotated[
        str,
        _setting(
            "the domain of Cairn's mail addresses (`Message-ID`s, `reply+…@`, `project+…@` "
            "that mail comes back to: docs/OPERATIONS.md, Mail in); empty: mail is off, "
            "projects show no address"
        ),
    ] = ""
    smtp_url: Annotated[
        str,
        _setting(
            "where e-mail is sent: `smtp://[user:password@]host[:port]` (port 25; STARTTLS "
            "when the server offers it, `?starttls=true` to require it, `?starttls=false` "
            "never), `smtps://…` (TLS from the start, port 465); empty: no mail is sent"
        ),
    ] = ""
    mail_from: Annotated[
        str,
        _setting("the `From` of e-mail sent; empty: `Cairn <cairn@MAIL_DOMAIN>`"),
    ] = ""
    digest_hour: Annotated[
        int,
        _setting(
            "the hour (0-23, in each person's time zone) at which daily digests are sent",
            ge=0,
            le=23,
        ),
    ] = 8
    mail_retry_seconds: Annotated[
        float,
        _setting(
            "wait (s) before retrying a mail after a temporary SMTP failure; doubled on each "
            "further try, at most an hour",
            gt=0,
        ),
    ] = 30.0
    mail_max_attempts: Annotated[
        int,
        _setting("tries at a mail before it is marked failed (a permanent 5xx: at once)", ge=1),
    ] = 10
    url_allowlist: Annotated[
        tuple[str, ...],
        _setting(
            "hosts and networks (comma-separated names, CIDR networks or single IPs) that "
            "webhooks and external feeds may reach although private, loopback or otherwise "
            "non-public (docs/OPERATIONS.md, Security: outbound requests); none: public addresses only"
        ),
    ] = ()
    allow_http_urls: Annotated[
        bool,
        _setting(
            "whether webhook and external-feed URLs may be `http` (unencrypted); off: `https` only"
        ),
    ] = False
    webhook_concurrency: Annotated[
        int,
        _setting(
            "webhook deliveries in flight per endpoint, across instances (no ordering promise: "
            "one slow or failing event does not hold back the others)",
            ge=1,
        ),
    ] = 4
    webhook_timeout: Annotated[
        float,
        _setting("seconds a webhook delivery's request may take, connecting included", gt=0),
    ] = 10.0


FROM_COMMAND_LINE: Final = frozenset(
    {"database_url", "data_dir", "host", "port", "log_level", "log_format"}
)
"""Settings given as arguments (``database_url``: ``DATABASE_URL``), not read from ``CAIRN_*``
variables."""


def env_name(field: str) -> str:
    """The environment variable of setting ``field``."""
    return f"CAIRN_{field.upper()}"


def source(field: str) -> str:
    """Where setting ``field`` is given: ``DATABASE_URL``, an argument (``--log-format``) or
    its ``CAIRN_*`` variable."""
    if field == "database_url":
        return "DATABASE_URL"
    if field in FROM_COMMAND_LINE:
        return "--" + field.replace("_", "-")
    return env_name(field)


def _items(value: object) -> object:
    """A comma-separated list (as the environment gives one) as a tuple of its non-empty
    items, spaces around them dropped; any other value as it is."""
    if not isinstance(value, str):
        return value
    return tuple(item for item in (part.strip() for part in value.split(",")) if item)


def _accept(value: object) -> None:
    pass


def _time_zone(name: str) -> None:
    """Raises:
    ValueError: ``name`` is not a time zone ``zoneinfo`` can load.
    """
    try:
        ZoneInfo(name)
    # ZoneInfoNotFoundError is a KeyError; a malformed key is a ValueError; a folder of the
    # database (``Europe``) an OSError.
    except (KeyError, ValueError, OSError):
        raise ValueError("not a time zone (an IANA name, e.g. Europe/Paris)") from None


class SmtpTarget(NamedTuple):
    """Where and how :data:`Settings.smtp_url` says to send mail."""

    host: str
    port: int
    username: str | None
    password: str | None
    implicit_tls: bool
    """``smtps://``: TLS from the first byte."""
    starttls: bool | None
    """True: required; False: never; None: when the server offers it."""


def smtp_target(url: str) -> SmtpTarget:
    """The parts of an ``smtp_url`` (see its description).

    Raises:
        ValueError: not such a URL.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError("not an smtp:// or smtps:// URL (smtp://user:password@host:port)")
    query = parse_qs(parts.query)
    starttls: bool | None = None
    if "starttls" in query:
        flag = query["starttls"][-1].lower()
        if flag not in ("true", "false"):
            raise ValueError("starttls must be true or false")
        starttls = flag == "true"
    implicit = parts.scheme == "smtps"
    if implicit and starttls:
        raise ValueError("smtps:// is TLS already: no starttls")
    try:
        port = parts.port or (465 if implicit else 25)
    except ValueError:
        raise ValueError("the port is not a number from 0 to 65535") from None
    return SmtpTarget(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        implicit_tls=implicit,
        starttls=False if implicit else starttls,
    )


def _smtp_url(url: str) -> None:
    if url:
        smtp_target(url)


def _url_allowlist(entries: tuple[str, ...]) -> None:
    """Raises:
    ValueError: an entry that looks like an address or a network (a ``/``, a ``:``, only
        digits and dots) but is not one.
    """
    for entry in entries:
        bare = entry.strip("[]")
        if "/" in bare or ":" in bare or not bare.strip("0123456789."):
            try:
                ipaddress.ip_network(bare, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is neither a host name nor a network") from None


_CHECKS: Final[dict[str, Callable[[Any], None]]] = {
    "time_zone": _time_zone,
    "smtp_url": _smtp_url,
    "url_allowlist": _url_allowlist,
}
"""Checks of settings beyond their types, by field: each raises ``ValueError`` saying why."""


def _listed(setting: Any) -> bool:
    """Whether a setting's type is a list (a tuple of any length)."""
    info = msgspec.inspect.type_info(setting)
    if isinstance(info, msgspec.inspect.Metadata):
        info = info.type
    return isinstance(info, msgspec.inspect.VarTupleType)


def from_env(database_url: str, **overrides: object) -> Settings:
    """Settings with defaults, then the environment, then explicit ``overrides`` (None:
    not given). A list setting's value may be a comma-separated string; the settings of
    :data:`FROM_COMMAND_LINE` are overrides only (``cairn serve``'s arguments, as strings).

    Raises:
        ConfigurationError: a variable or override does not fit its setting, naming it in
            one line: ``CAIRN_DB_TIMEOUT='abc': Expected `float`, got `str```, or
            ``--port='x': ...`` for an argument.
    """
    fields = msgspec.structs.fields(Settings)
    unknown = set(overrides) - {f.name for f in fields}
    if unknown:
        raise ConfigurationError(f"no such setting: {', '.join(sorted(unknown))}")
    given: dict[str, Any] = {}
    for field in fields:
        name = source(field.name) if field.name in FROM_COMMAND_LINE else field.name
        value = database_url if field.name == "database_url" else overrides.get(field.name)
        if value is None and field.name not in FROM_COMMAND_LINE:
            name = env_name(field.name)
            value = os.environ.get(name)
        if value is None:
            continue
        try:
            given[field.name] = msgspec.convert(
                _items(value) if _listed(field.type) else value,
                field.type,
                strict=False,
                dec_hook=_path,
            )
            _CHECKS.get(field.name, _accept)(given[field.name])
        except (msgspec.ValidationError, ValueError) as exc:
            raise ConfigurationError(f"{name}={value!r}: {exc}") from None
    return Settings(**given)


def _path(kind: type, value: Any) -> Any:
    """A folder setting, given as a path or a string (msgspec knows no ``Path``)."""
    if kind is Path and isinstance(value, str | Path):
        return Path(value)
    raise NotImplementedError


class Described(NamedTuple):
    """One setting as ``--help`` and the documentation list it."""

    name: str
    source: str
    """``DATABASE_URL``, an argument (``--port``) or a ``CAIRN_*`` variable (:func:`source`)."""
    default: str
    """The default as one would write it (``unset``: no default)."""
    description: str
    """The field's, then its values when they are a few (``one of `text`, `json```)."""
    choices: tuple[str, ...]
    """The values allowed when they are a few (a ``Literal``), else empty."""


def described() -> list[Described]:
    """Every setting of :class:`Settings`, in its order, from its fields."""
    hints = typing.get_type_hints(Settings, include_extras=True)
    settings = []
    for field in msgspec.structs.fields(Settings):
        hint = hints[field.name]
        kind = typing.get_args(hint)[0]
        choices = typing.get_args(kind) if typing.get_origin(kind) is Literal else ()
        description = _description(hint)
        if choices:
            description += "; one of " + ", ".join(f"`{c}`" for c in choices)
        settings.append(
            Described(field.name, source(field.name), _shown(field), description, choices)
        )
    return settings


def _description(hint: Any) -> str:
    for meta in getattr(hint, "__metadata__", ()):
        if isinstance(meta, msgspec.Meta) and meta.description:
            return meta.description
    raise TypeError(f"a setting without a description: {hint!r}")


def _shown(field: msgspec.structs.FieldInfo) -> str:
    value = field.default
    if value is msgspec.NODEFAULT:
        return "unset"
    if isinstance(value, tuple):
        return ", ".join(value) or "none"
    return str(value) or "empty"


DOCS_WITH_SETTINGS: Final = ("README.md", "docs/OPERATIONS.md")
"""The documents holding the settings table (paths from the repository's root)."""

TABLE_BEGINS: Final = (
    "<!-- settings: made by `python -m service.config --write-docs` from service/config.py; "
    "a test fails while it is stale -->"
)
TABLE_ENDS: Final = "<!-- end of settings -->"


def settings_table() -> str:
    """The Markdown table of every setting (the documents' copy, markers excluded)."""
    lines = ["| setting | default | what it is |", "|---|---|---|"]
    for setting in described():
        cells = (f"`{setting.source}`", f"`{setting.default}`", setting.description)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


def with_settings_table(document: str) -> str:
    """``document`` with the text between its settings markers replaced by the current table.

    Raises:
        ValueError: the document lacks the markers.
    """
    before, begins, rest = document.partition(TABLE_BEGINS)
    _, ends, after = rest.partition(TABLE_ENDS)
    if not begins or not ends:
        raise ValueError("the settings markers are missing")
    return f"{before}{TABLE_BEGINS}\n{settings_table()}\n{TABLE_ENDS}{after}"


def _main() -> None:
    if sys.argv[1:] != ["--write-docs"]:
        raise SystemExit("usage: python -m service.config --write-docs")
    root = Path(__file__).resolve().parents[1]
    for name in DOCS_WITH_SETTINGS:
        target = root / name
        target.write_text(with_settings_table(target.read_text(encoding="utf-8")), "utf-8")
        print(f"wrote {target}")


if __name__ == "__main__":
    _main()

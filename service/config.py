"""Settings of a Cairn instance, from arguments and the environment.

:class:`Settings` is the one source: each field's environment variable is derived from its
name (``CAIRN_`` + the name in capitals, :func:`env_name`), and its description is its
``Meta``. ``database_url``, ``data_dir``, ``host`` and ``port`` come from the command line
(``DATABASE_URL`` is read by :mod:`service.database.location`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Final, Literal

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


class Settings(msgspec.Struct, kw_only=True):
    """Everything an instance needs to know."""

    database_url: str
    data_dir: Path = Path("cairn-data")
    host: str = "127.0.0.1"
    port: int = 8000
    app_url: Annotated[
        str, _setting("front-end address template for `app_url` ({type}, {id}, {project_id})")
    ] = "http://localhost:3000/{type}s/{id}"
    max_body: Annotated[int, _setting("request bodies larger than this (bytes) get 413", ge=1)] = (
        1_048_576
    )
    poll_interval: Annotated[
        float, _setting("live readers re-read the log this often (s) without a wake-up", gt=0)
    ] = 1.0
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


FROM_COMMAND_LINE: Final = frozenset({"database_url", "data_dir", "host", "port"})
"""Settings given as arguments, not read from ``CAIRN_*`` variables."""


def env_name(field: str) -> str:
    """The environment variable of setting ``field``."""
    return f"CAIRN_{field.upper()}"


def _items(value: object) -> object:
    """A comma-separated list (as the environment gives one) as a tuple of its non-empty
    items, spaces around them dropped; any other value as it is."""
    if not isinstance(value, str):
        return value
    return tuple(item for item in (part.strip() for part in value.split(",")) if item)


def _listed(setting: Any) -> bool:
    """Whether a setting's type is a list (a tuple of any length)."""
    info = msgspec.inspect.type_info(setting)
    if isinstance(info, msgspec.inspect.Metadata):
        info = info.type
    return isinstance(info, msgspec.inspect.VarTupleType)


def from_env(database_url: str, **overrides: object) -> Settings:
    """Settings with defaults, then the environment, then explicit ``overrides`` (None:
    not given). A list setting's value may be a comma-separated string.

    Raises:
        ConfigurationError: a variable or override does not fit its setting (naming it).
    """
    given: dict[str, Any] = {"database_url": database_url}
    for field in msgspec.structs.fields(Settings):
        var = env_name(field.name)
        value = overrides.get(field.name)
        if value is None and field.name not in FROM_COMMAND_LINE and var in os.environ:
            value = os.environ[var]
        else:
            var = field.name
        if value is None:
            continue
        if field.name in FROM_COMMAND_LINE:
            given[field.name] = value
            continue
        try:
            given[field.name] = msgspec.convert(
                _items(value) if _listed(field.type) else value, field.type, strict=False
            )
        except msgspec.ValidationError as exc:
            raise ConfigurationError(f"{var}={value!r}: {exc}") from None
    unknown = set(overrides) - {f.name for f in msgspec.structs.fields(Settings)}
    if unknown:
        raise ConfigurationError(f"no such setting: {', '.join(sorted(unknown))}")
    return Settings(**given)

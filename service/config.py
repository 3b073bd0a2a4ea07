"""Settings of a Cairn instance, from arguments and the environment.

:class:`Settings` is the one source: each field's environment variable is derived from its
name (``CAIRN_`` + the name in capitals, :func:`env_name`), and its description is its
``Meta``. ``database_url``, ``data_dir``, ``host`` and ``port`` come from the command line
(``DATABASE_URL`` is read by :mod:`service.database.location`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Final

import msgspec

from .errors import ConfigurationError


class Settings(msgspec.Struct, kw_only=True):
    """Everything an instance needs to know."""

    database_url: str
    data_dir: Path = Path("cairn-data")
    host: str = "127.0.0.1"
    port: int = 8000
    app_url: Annotated[
        str,
        msgspec.Meta(
            description="front-end address template for `app_url` ({type}, {id}, {project_id})"
        ),
    ] = "http://localhost:3000/{type}s/{id}"
    max_body: Annotated[
        int, msgspec.Meta(ge=1, description="request bodies larger than this (bytes) get 413")
    ] = 1_048_576
    poll_interval: Annotated[
        float,
        msgspec.Meta(gt=0, description="live readers re-read the log this often (s) unwoken"),
    ] = 1.0
    ryw_timeout: Annotated[
        float,
        msgspec.Meta(ge=0, description="how long (s) a write waits for the read models to show it"),
    ] = 5.0
    ping_interval: Annotated[
        float, msgspec.Meta(gt=0, description="WebSocket heartbeat period (s)")
    ] = 20.0
    ping_timeout: Annotated[
        float,
        msgspec.Meta(
            gt=0, description="a WebSocket peer silent this long (s) after a ping is dropped"
        ),
    ] = 20.0
    ws_buffer_messages: Annotated[
        int, msgspec.Meta(ge=1, description="per-connection send buffer, in frames")
    ] = 1000
    ws_buffer_bytes: Annotated[
        int, msgspec.Meta(ge=1, description="per-connection send buffer, in bytes")
    ] = 1_048_576
    feed_authority: Annotated[
        str, msgspec.Meta(min_length=1, description="the `tag:` URI authority of feed ids")
    ] = "cairn.localhost"
    rate_limit: Annotated[
        float,
        msgspec.Meta(ge=0, description="API requests per second per person (per instance); 0: off"),
    ] = 200.0
    rate_burst: Annotated[
        float, msgspec.Meta(ge=0, description="the burst allowed above the rate limit")
    ] = 400.0
    token_cache_ttl: Annotated[
        float,
        msgspec.Meta(
            ge=0,
            description="how long (s) an API token's holder may be answered from memory: bounds "
            "how late another instance's revocation takes effect here",
        ),
    ] = 1.0


FROM_COMMAND_LINE: Final = frozenset({"database_url", "data_dir", "host", "port"})
"""Settings given as arguments, not read from ``CAIRN_*`` variables."""


def env_name(field: str) -> str:
    """The environment variable of setting ``field``."""
    return f"CAIRN_{field.upper()}"


def from_env(database_url: str, **overrides: object) -> Settings:
    """Settings with defaults, then the environment, then explicit ``overrides`` (None:
    not given).

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
            given[field.name] = msgspec.convert(value, field.type, strict=False)
        except msgspec.ValidationError as exc:
            raise ConfigurationError(f"{var}={value!r}: {exc}") from None
    unknown = set(overrides) - {f.name for f in msgspec.structs.fields(Settings)}
    if unknown:
        raise ConfigurationError(f"no such setting: {', '.join(sorted(unknown))}")
    return Settings(**given)

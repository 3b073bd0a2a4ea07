"""Settings of a Cairn instance, from arguments and the environment."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec


class Settings(msgspec.Struct, kw_only=True):
    """Everything an instance needs to know. Environment names are in the field comments."""

    database_url: str
    data_dir: Path = Path("cairn-data")
    host: str = "127.0.0.1"
    port: int = 8000
    # CAIRN_APP_URL: front-end address template for `app_url` ({type}, {id}, {project_id}).
    app_url_template: str = "http://localhost:3000/{type}s/{id}"
    # CAIRN_MAX_BODY: request bodies larger than this get 413.
    max_body_bytes: int = 1_048_576
    # CAIRN_POLL_INTERVAL: live readers re-read the log this often without a wake-up.
    poll_interval: float = 1.0
    # CAIRN_RYW_TIMEOUT: how long a write waits for the read models to show it.
    read_your_writes_timeout: float = 5.0
    # CAIRN_PING_INTERVAL: WebSocket heartbeat period.
    ping_interval: float = 20.0
    # CAIRN_PING_TIMEOUT: a WebSocket peer that leaves a ping unanswered this long is dropped.
    ping_timeout: float = 20.0
    # CAIRN_WS_BUFFER_MESSAGES / CAIRN_WS_BUFFER_BYTES: per-connection send buffer.
    ws_buffer_messages: int = 1000
    ws_buffer_bytes: int = 1_048_576
    # CAIRN_FEED_AUTHORITY: the `tag:` URI authority of feed ids.
    feed_authority: str = "cairn.localhost"
    # CAIRN_RATE_LIMIT / CAIRN_RATE_BURST: API requests per second per person (per instance),
    # and the burst allowed above that rate; a rate of 0 turns the limit off.
    rate_limit: float = 200.0
    rate_burst: float = 400.0
    # CAIRN_TOKEN_CACHE_TTL: how long (s) an API token's holder may be answered from memory;
    # bounds how late another instance's revocation can take effect here (see TokenCache).
    token_cache_ttl: float = 1.0


def from_env(database_url: str, **overrides: object) -> Settings:
    """Settings with defaults, then the environment, then explicit ``overrides``."""
    env: dict[str, object] = {}
    names = {
        "CAIRN_APP_URL": ("app_url_template", str),
        "CAIRN_MAX_BODY": ("max_body_bytes", int),
        "CAIRN_POLL_INTERVAL": ("poll_interval", float),
        "CAIRN_RYW_TIMEOUT": ("read_your_writes_timeout", float),
        "CAIRN_PING_INTERVAL": ("ping_interval", float),
        "CAIRN_PING_TIMEOUT": ("ping_timeout", float),
        "CAIRN_WS_BUFFER_MESSAGES": ("ws_buffer_messages", int),
        "CAIRN_WS_BUFFER_BYTES": ("ws_buffer_bytes", int),
        "CAIRN_FEED_AUTHORITY": ("feed_authority", str),
        "CAIRN_RATE_LIMIT": ("rate_limit", float),
        "CAIRN_RATE_BURST": ("rate_burst", float),
        "CAIRN_TOKEN_CACHE_TTL": ("token_cache_ttl", float),
    }
    for var, (field, kind) in names.items():
        if var in os.environ:
            env[field] = kind(os.environ[var])
    env.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(database_url=database_url, **env)  # type: ignore[arg-type]

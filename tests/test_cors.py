"""Browsers on other origins: the ``CAIRN_CORS_ORIGINS`` setting, CORS on every HTTP route,
the WebSocket's ``Origin`` rule, and a real Chromium page using both."""

from __future__ import annotations

import pytest

from service.config import from_env
from service.errors import ConfigurationError

# ------------------------------------------------------------------ the setting


@pytest.mark.parametrize(
    ("given", "origins"),
    [
        ("", ()),
        (" , ", ()),
        ("http://localhost:5173", ("http://localhost:5173",)),
        (
            " https://app.example.com ,http://127.0.0.1:8080,, http://[::1]:3000 ",
            ("https://app.example.com", "http://127.0.0.1:8080", "http://[::1]:3000"),
        ),
    ],
)
def test_cors_origins_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, given: str, origins: tuple[str, ...]
) -> None:
    """``CAIRN_CORS_ORIGINS`` is a comma-separated list: spaces and empty items are dropped."""
    monkeypatch.setenv("CAIRN_CORS_ORIGINS", given)
    assert from_env("postgresql://unused").cors_origins == origins


def test_cors_origins_default_to_none(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset, no origin is allowed; an override may be a tuple or a comma-separated string."""
    monkeypatch.delenv("CAIRN_CORS_ORIGINS", raising=False)
    assert from_env("postgresql://unused").cors_origins == ()
    assert from_env("postgresql://unused", cors_origins=("http://a.test",)).cors_origins == (
        "http://a.test",
    )
    assert from_env(
        "postgresql://unused", cors_origins="http://a.test, http://b.test:81"
    ).cors_origins == (
        "http://a.test",
        "http://b.test:81",
    )


@pytest.mark.parametrize(
    "bad",
    [
        "*",
        "app.example.com",
        "https://app.example.com/",
        "https://app.example.com/path",
        "https://App.example.com",
        "http://localhost:5173?x=1",
        "http://user@localhost",
        "http://localhost:port",
        "null",
    ],
)
def test_an_origin_of_the_wrong_form_is_refused(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    """An item that is not ``scheme://host[:port]`` (lower case, no path) is a
    ConfigurationError naming the variable."""
    monkeypatch.setenv("CAIRN_CORS_ORIGINS", f"http://ok.test, {bad}")
    with pytest.raises(ConfigurationError, match=r"^CAIRN_CORS_ORIGINS=.*\$\[1\]"):
        from_env("postgresql://unused")

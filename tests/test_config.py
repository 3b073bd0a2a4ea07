"""Settings: one source (service/config.py) for their values, their checks and every list of
them (``cairn serve --help``, the README's and docs/OPERATIONS.md's tables)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from service.config import (
    DOCS_WITH_SETTINGS,
    FROM_COMMAND_LINE,
    TABLE_BEGINS,
    TABLE_ENDS,
    Settings,
    described,
    from_env,
    with_settings_table,
)
from service.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", DOCS_WITH_SETTINGS)
def test_the_settings_tables_are_current(name: str) -> None:
    """The settings table of README.md and docs/OPERATIONS.md is the one the fields of
    Settings make (regenerate it when this fails)."""
    document = (ROOT / name).read_text(encoding="utf-8")
    assert document.count(TABLE_BEGINS) == 1
    assert document.count(TABLE_ENDS) == 1
    assert document == with_settings_table(document), (
        f"{name}'s settings table is stale: run `python -m service.config --write-docs`"
    )


def test_every_setting_is_listed_with_its_source_default_and_description() -> None:
    """Each field of Settings is described once: its variable or argument, its default as
    written, and a description."""
    settings = described()
    assert [s.name for s in settings] == [f.name for f in msgspec.structs.fields(Settings)]
    sources = {s.name: s.source for s in settings}
    assert sources["database_url"] == "DATABASE_URL"
    assert sources["log_format"] == "--log-format"
    assert sources["shutdown_timeout"] == "CAIRN_SHUTDOWN_TIMEOUT"
    assert all(
        s.source.startswith("--")
        for s in settings
        if s.name in FROM_COMMAND_LINE - {"database_url"}
    )
    assert all(s.description and s.default for s in settings)
    defaults = {s.name: s.default for s in settings}
    assert (defaults["shutdown_timeout"], defaults["cors_origins"], defaults["port"]) == (
        "30.0",
        "none",
        "8000",
    )


@pytest.mark.parametrize(
    ("overrides", "env", "message"),
    [
        ({}, {"CAIRN_DB_TIMEOUT": "abc"}, "CAIRN_DB_TIMEOUT='abc': Expected `float`, got `str`"),
        (
            {},
            {"CAIRN_SHUTDOWN_TIMEOUT": "-1"},
            "CAIRN_SHUTDOWN_TIMEOUT='-1': Expected `float` >= 0.0",
        ),
        ({"port": "http"}, {}, "--port='http': Expected `int`, got `str`"),
        ({"port": "70000"}, {}, "--port='70000': Expected `int` <= 65535"),
        ({"log_format": "xml"}, {}, "--log-format='xml': Invalid enum value 'xml'"),
        ({"log_level": "trace"}, {}, "--log-level='trace': Invalid enum value 'trace'"),
    ],
    ids=["not-a-number", "below-its-bound", "port-not-a-number", "port-too-big", "format", "level"],
)
def test_a_value_that_does_not_fit_is_named_in_one_line(
    monkeypatch: pytest.MonkeyPatch, overrides: dict[str, str], env: dict[str, str], message: str
) -> None:
    """A variable or argument that does not fit its setting is a ConfigurationError whose
    one line names it as the operator wrote it."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as raised:
        from_env("postgresql://unused", **overrides)
    assert str(raised.value) == message


def test_arguments_arrive_as_strings_and_leave_typed(tmp_path: Path) -> None:
    """``cairn serve``'s arguments (strings) become the settings' types."""
    settings = from_env(
        "postgresql://unused",
        port="8123",
        log_level="debug",
        log_format="json",
        data_dir=str(tmp_path),
    )
    assert (settings.port, settings.log_level, settings.log_format) == (8123, "debug", "json")
    assert settings.data_dir == tmp_path

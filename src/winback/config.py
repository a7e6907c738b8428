"""Settings and workspace discovery.

A workspace is a folder holding ``winback.toml``, the two stores and the playbooks/,
segments/, templates/ and reports/ folders. Settings come, strongest first, from
``WINBACK_*`` environment variables (nested with ``__``, e.g. ``WINBACK_INGEST__MAX_ERRORS``),
then ``winback.toml``, then the defaults below.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from winback.kit.clock import Clock, FixedClock, SystemClock, parse_instant
from winback.kit.errors import ConfigError

CONFIG_FILE = "winback.toml"
WORKSPACE_DIRS = ("playbooks", "segments", "templates", "reports", "outbox")


class IngestSettings(BaseModel):
    max_errors: int = Field(200, ge=1, description="stop listing problems after this many")
    reject_formulas: bool = Field(True, description="reject text cells that a spreadsheet would run as a formula")
    future_tolerance_minutes: int = Field(10, ge=0, description="clock skew allowed for past-only timestamps")
    default_currency: str = "USD"


class Settings(BaseSettings):
    """Workspace settings. ``workspace`` is set by the loader, not read from the file."""

    model_config = SettingsConfigDict(env_prefix="WINBACK_", env_nested_delimiter="__", extra="forbid")

    name: str = "winback"
    state_url: str = "sqlite:///state.db"
    history_url: str = "duckdb:///history.duckdb"
    now: str | None = Field(None, description="pin the clock (ISO 8601) for reproducible runs")
    ingest: IngestSettings = IngestSettings()
    workspace: Path = Path(".")

    @field_validator("now")
    @classmethod
    def _valid_now(cls, value: str | None) -> str | None:
        if value:
            try:
                parse_instant(value)
            except ValueError as exc:
                raise ValueError(f"now must be an ISO 8601 date or date-time, got {value!r}") from exc
        return value or None

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = os.environ.get("_WINBACK_TOML_FILE")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    # --- resolved locations -------------------------------------------------------------
    @property
    def resolved_state_url(self) -> str:
        return _resolve_file_url(self.state_url, self.workspace)

    @property
    def resolved_history_url(self) -> str:
        return _resolve_file_url(self.history_url, self.workspace)

    @property
    def history_path(self) -> Path:
        url = self.resolved_history_url
        if not url.startswith("duckdb:///"):
            raise ConfigError(f"history_url {self.history_url!r}: only duckdb:///FILE is supported for writing")
        return Path(url.removeprefix("duckdb:///"))

    def clock(self) -> Clock:
        return FixedClock(parse_instant(self.now)) if self.now else SystemClock()


def _resolve_file_url(url: str, base: Path) -> str:
    """Make a relative ``sqlite:///x.db`` or ``duckdb:///x.duckdb`` path relative to the workspace."""
    for prefix in ("sqlite:///", "duckdb:///"):
        if url.startswith(prefix):
            path = url.removeprefix(prefix)
            if path and path != ":memory:" and not Path(path).is_absolute():
                return prefix + str((base / path).resolve())
    return url


def load_settings(workspace: Path | str = ".", require: bool = True, **overrides: Any) -> Settings:
    """Read the workspace's settings; ``require`` demands that ``winback.toml`` exists."""
    root = Path(workspace).expanduser().resolve()
    toml_path = root / CONFIG_FILE
    if require and not toml_path.is_file():
        raise ConfigError(f"no workspace at {root} ({CONFIG_FILE} not found); run `winback init {root}` first")
    previous = os.environ.get("_WINBACK_TOML_FILE")
    try:
        if toml_path.is_file():
            os.environ["_WINBACK_TOML_FILE"] = str(toml_path)
        else:
            os.environ.pop("_WINBACK_TOML_FILE", None)
        try:
            settings = Settings(**overrides)
        except Exception as exc:  # pydantic ValidationError or TOML syntax
            raise ConfigError(f"invalid settings in {toml_path}: {_one_line(exc)}") from exc
    finally:
        if previous is None:
            os.environ.pop("_WINBACK_TOML_FILE", None)
        else:
            os.environ["_WINBACK_TOML_FILE"] = previous
    settings.workspace = root
    return settings


def _one_line(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors()]
            return "; ".join(parts)
        except Exception:  # pragma: no cover
            pass
    return " ".join(str(exc).split())


DEFAULT_TOML = """\
# winback workspace settings. Any key can be overridden by an environment variable:
# WINBACK_STATE_URL, WINBACK_HISTORY_URL, WINBACK_INGEST__MAX_ERRORS, ...
name = "{name}"

# State store (customers, consent, campaigns, outbox ...): a SQLite file by default,
# or a PostgreSQL URL in production, e.g. "postgresql+psycopg://user@host:5432/winback".
state_url = "{state_url}"

# History store (the facts, for analytics): a DuckDB file.
history_url = "duckdb:///history.duckdb"

# Pin the clock for reproducible runs (ISO 8601), or leave unset for the real time.
# now = "2025-12-31T23:59:59Z"

[ingest]
max_errors = 200           # problems listed before the report stops
reject_formulas = true     # refuse text cells starting with =, +, -, @ (spreadsheet formula injection)
future_tolerance_minutes = 10
default_currency = "USD"
"""


def today(settings: Settings) -> dt.date:
    return settings.clock().now().date()

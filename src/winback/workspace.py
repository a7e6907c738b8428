"""Create and inspect workspaces (used by the CLI and the web app, the outer shells)."""

from __future__ import annotations

import secrets
from pathlib import Path

from sqlalchemy import inspect, text

from winback.config import CONFIG_FILE, DEFAULT_TOML, WORKSPACE_DIRS, Settings, load_settings
from winback.history.store import open_history, row_counts
from winback.kit.db import make_engine
from winback.kit.errors import ConfigError, WinbackError
from winback.models.migrate import upgrade
from winback.models.state import Base


def init_workspace(directory: Path | str, state_url: str | None = None, name: str | None = None,
                   now: str | None = None) -> Settings:
    """Create (or complete) a workspace: settings file, folders, both stores migrated. Idempotent."""
    root = Path(directory).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise WinbackError(f"{root} exists and is not a directory")
    root.mkdir(parents=True, exist_ok=True)
    toml_path = root / CONFIG_FILE
    if not toml_path.exists():
        body = DEFAULT_TOML.format(name=_toml_escape(name or root.name), state_url=_toml_escape(
            state_url or "sqlite:///state.db"), secret_key=secrets.token_urlsafe(32))
        if now:
            body = body.replace('# now = "2025-12-31T23:59:59Z"', f'now = "{_toml_escape(now)}"')
        toml_path.write_text(body, encoding="utf-8")
    elif state_url:
        raise WinbackError(f"{toml_path} already exists; edit state_url there instead of passing --state-url")
    for folder in WORKSPACE_DIRS:
        (root / folder).mkdir(exist_ok=True)
    settings = load_settings(root)
    migrate(settings)
    with open_history(settings.history_path):
        pass
    return settings


def migrate(settings: Settings) -> None:
    engine = make_engine(settings.resolved_state_url)
    try:
        upgrade(engine)
    except Exception as exc:
        raise WinbackError(f"cannot prepare the state store {engine.url.render_as_string()}: "
                           f"{' '.join(str(exc).split())[:300]}") from exc
    finally:
        engine.dispose()


def _toml_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def status(settings: Settings) -> dict:
    """Row counts of every table in both stores."""
    engine = make_engine(settings.resolved_state_url)
    try:
        insp = inspect(engine)
        existing = set(insp.get_table_names())
        missing = [t for t in Base.metadata.sorted_tables if t.name not in existing]
        if missing:
            raise ConfigError(f"state store is not initialised ({missing[0].name} missing); run `winback init`")
        state = {}
        with engine.connect() as conn:
            for table in Base.metadata.sorted_tables:
                state[table.name] = conn.execute(text(f'SELECT count(*) FROM "{table.name}"')).scalar_one()
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()
    finally:
        engine.dispose()
    with open_history(settings.history_path, read_only=True) as con:
        history = row_counts(con)
    return {
        "workspace": str(settings.workspace),
        "state_store": {"url": _safe_url(settings.resolved_state_url), "revision": revision, "tables": state},
        "history_store": {"url": settings.resolved_history_url, "tables": history},
    }


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)

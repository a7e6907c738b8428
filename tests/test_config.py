import pytest

from winback.config import load_settings
from winback.kit.clock import FixedClock
from winback.kit.errors import ConfigError
from winback.workspace import init_workspace


def test_init_creates_layout_and_is_idempotent(tmp_path):
    settings = init_workspace(tmp_path / "ws")
    root = tmp_path / "ws"
    for name in ("winback.toml", "state.db", "history.duckdb", "playbooks", "segments", "templates", "reports"):
        assert (root / name).exists(), name
    text = (root / "winback.toml").read_text()
    again = init_workspace(root)  # completes, does not overwrite
    assert (root / "winback.toml").read_text() == text
    assert again.resolved_state_url == settings.resolved_state_url == f"sqlite:///{root / 'state.db'}"


def test_environment_overrides_the_file(tmp_path, monkeypatch):
    init_workspace(tmp_path / "ws")
    monkeypatch.setenv("WINBACK_INGEST__MAX_ERRORS", "7")
    monkeypatch.setenv("WINBACK_NOW", "2025-06-01T00:00:00Z")
    settings = load_settings(tmp_path / "ws")
    assert settings.ingest.max_errors == 7
    clock = settings.clock()
    assert isinstance(clock, FixedClock) and clock.now().isoformat() == "2025-06-01T00:00:00+00:00"


def test_missing_and_invalid_settings_give_one_line_errors(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="winback init"):
        load_settings(tmp_path / "nowhere")
    init_workspace(tmp_path / "ws")
    monkeypatch.setenv("WINBACK_INGEST__MAX_ERRORS", "-3")
    with pytest.raises(ConfigError, match="max_errors") as info:
        load_settings(tmp_path / "ws")
    assert "\n" not in str(info.value)
    monkeypatch.delenv("WINBACK_INGEST__MAX_ERRORS")
    (tmp_path / "ws" / "winback.toml").write_text("name = \n", encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid settings"):
        load_settings(tmp_path / "ws")

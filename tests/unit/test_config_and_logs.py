"""Configuration errors name the variable; logs never carry secrets."""

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, Settings, load_settings
from bot.logs import SecretFilter


def test_missing_backend_setting_names_it() -> None:
    s = Settings(_env_file=None, BACKEND="wren", WREN_BASE_URL="http://x")
    with pytest.raises(ConfigError, match="^WREN_API_KEY is required when BACKEND=wren$"):
        s.require_backend()
    with pytest.raises(ConfigError, match="BACKEND is required"):
        Settings(_env_file=None).require_backend()


def test_half_configured_slack_is_an_error() -> None:
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET"):
        Settings(_env_file=None, SLACK_BOT_TOKEN="xoxb-1").check_platforms()


def test_invalid_value_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "not-a-port")
    with pytest.raises(ConfigError) as err:
        load_settings(_env_file=None)
    assert str(err.value).startswith("PORT is invalid") and "\n" not in str(err.value)


def test_serve_stops_with_one_line_naming_the_missing_setting(tmp_path) -> None:
    root = str(Path(__file__).resolve().parents[2])
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": root,
           "BACKEND": "clickzetta"}
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from bot.cli import main; sys.exit(main(['serve']))"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "insightbot: configuration error: CLICKZETTA_BASE_URL is required when BACKEND=clickzetta"]


def test_secret_filter_masks_configured_and_token_shaped_values() -> None:
    f = SecretFilter(["super-secret-key"])
    record = logging.LogRecord("x", logging.INFO, __file__, 1,
                               "calling with %s and xoxb-1234567890-abc and Authorization: Bearer osk-abc",
                               ("super-secret-key",), None)
    f.filter(record)
    message = record.getMessage()
    assert "super-secret-key" not in message and "xoxb-1234567890" not in message
    assert "osk-abc" not in message

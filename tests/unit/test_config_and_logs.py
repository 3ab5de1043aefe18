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


def test_the_distributed_slack_app_needs_its_client_and_signing_secret() -> None:
    oauth = dict(SLACK_CLIENT_ID="1.2", SLACK_CLIENT_SECRET="client-secret",
                 SLACK_SIGNING_SECRET="signing")
    s = Settings(_env_file=None, **oauth)
    s.check_platforms()  # no SLACK_BOT_TOKEN needed: each workspace's token comes from its install
    assert s.slack_enabled and s.slack_oauth
    for missing, line in [("SLACK_CLIENT_SECRET", "^SLACK_CLIENT_SECRET is required for the Slack "
                                                  "OAuth install"),
                          ("SLACK_SIGNING_SECRET", "^SLACK_SIGNING_SECRET is required for the "
                                                   "Slack OAuth install"),
                          ("SLACK_CLIENT_ID", "^SLACK_CLIENT_ID is required")]:
        with pytest.raises(ConfigError, match=line):
            Settings(_env_file=None, **{**oauth, missing: None}).check_platforms()
    # a static bot token is the single-workspace app, whatever else is set
    single = Settings(_env_file=None, **oauth, SLACK_BOT_TOKEN="xoxb-1")
    single.check_platforms()
    assert single.slack_enabled and not single.slack_oauth
    assert "client-secret" in s.secrets()


def test_rotating_slack_tokens_are_masked_too() -> None:
    f = SecretFilter([])
    line = f.redact("bot xoxe.xoxb-1-MS0yLTEyMzQ1Njc4OQ refresh xoxe-1-My0xLTk4NzY1NDMyMQ")
    assert "MS0y" not in line and "My0x" not in line


def test_serve_with_a_missing_database_stops_with_one_line(tmp_path) -> None:
    root = str(Path(__file__).resolve().parents[2])
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": root,
           "BACKEND": "wren", "WREN_BASE_URL": "http://127.0.0.1:9", "WREN_API_KEY": "psk-x",
           "DATABASE_URL": "postgresql+asyncpg://postgres:s3cret-pw@127.0.0.1:5432/no_such_db_x"}
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from bot.cli import main; sys.exit(main(['serve']))"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("insightbot: database error: cannot open DATABASE_URL "
                           "postgresql+asyncpg://postgres:***@127.0.0.1:5432/no_such_db_x: ")
    assert "s3cret-pw" not in line and "Traceback" not in proc.stderr


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


def test_database_passwords_are_masked_secrets() -> None:
    settings = Settings(_env_file=None,
                        DATABASE_URL="postgresql+asyncpg://bot:db-pass%21word@db:5432/insightbot",
                        CLICKZETTA_WAREHOUSE_URL="clickzetta://reader:wh-secret-9@lakehouse/ws")
    assert {"db-pass!word", "db-pass%21word", "wh-secret-9"} <= set(settings.secrets())
    f = SecretFilter(settings.secrets())
    record = logging.LogRecord("x", logging.ERROR, __file__, 1,
                               "could not connect as bot with password db-pass!word; "
                               "warehouse wh-secret-9", (), None)
    f.filter(record)
    assert "db-pass!word" not in record.getMessage() and "wh-secret-9" not in record.getMessage()
    assert Settings(_env_file=None).secrets() == []  # SQLite: no password to hide


# -- backend settings (issue #10) -------------------------------------------------------------

WREN = dict(BACKEND="wren", WREN_BASE_URL="https://wren.example.com")
ORG_KEY = "osk-" + "a" * 64
PROJECT_KEY = "psk-" + "b" * 64
CLICKZETTA = dict(BACKEND="clickzetta",
                  CLICKZETTA_BASE_URL="https://api.clickzetta.com/clickzetta-campaign-data",
                  CLICKZETTA_APP_SECRET_KEY="secret&&key", CLICKZETTA_TENANT_ID="10",
                  CLICKZETTA_USER_ID="1", CLICKZETTA_DOMAIN_ID="106")


def test_wren_org_key_needs_a_project_id() -> None:
    settings = Settings(_env_file=None, **WREN, WREN_API_KEY=ORG_KEY)
    with pytest.raises(ConfigError) as err:
        settings.require_backend()
    message = str(err.value)
    assert message.startswith("WREN_PROJECT_ID is required when BACKEND=wren")
    assert "WREN_ALLOW_DEFAULT_PROJECT=true" in message and "\n" not in message
    assert ORG_KEY not in message
    # a session token (any other Bearer value) is scoped by X-Project-Id the same way
    with pytest.raises(ConfigError, match="^WREN_PROJECT_ID is required"):
        Settings(_env_file=None, **WREN, WREN_API_KEY="a-session-token").require_backend()


@pytest.mark.parametrize("extra", [
    dict(WREN_API_KEY=ORG_KEY, WREN_PROJECT_ID="3"),
    dict(WREN_API_KEY=ORG_KEY, WREN_ALLOW_DEFAULT_PROJECT="true"),  # single-project server
    dict(WREN_API_KEY=PROJECT_KEY),  # a psk- key is pinned to its project by the server
])
def test_wren_project_is_named_or_explicitly_defaulted(extra) -> None:
    assert Settings(_env_file=None, **WREN, **extra).require_backend() == "wren"


def test_clickzetta_domain_id_is_required() -> None:
    values = {k: v for k, v in CLICKZETTA.items() if k != "CLICKZETTA_DOMAIN_ID"}
    with pytest.raises(ConfigError, match="^CLICKZETTA_DOMAIN_ID is required when BACKEND=clickzetta$"):
        Settings(_env_file=None, **values).require_backend()
    assert Settings(_env_file=None, **CLICKZETTA).require_backend() == "clickzetta"


def test_clickzetta_bad_domain_id_is_a_config_error() -> None:
    from bot.backends import build_backend

    with pytest.raises(ConfigError, match="^CLICKZETTA_DOMAIN_ID must be a positive integer"):
        build_backend(Settings(_env_file=None, **{**CLICKZETTA, "CLICKZETTA_DOMAIN_ID": "sales"}))


async def test_backend_settings_reach_the_adapters() -> None:
    from bot.backends import build_backend

    cz = build_backend(Settings(_env_file=None, **CLICKZETTA))
    try:
        assert cz.settings.domain_id == 106
        assert cz.settings.request_timeout == 60.0  # the vendor's per-request guidance
        assert cz.settings.model_name is None  # unset: modelSettings is not sent
    finally:
        await cz.aclose()
    cz = build_backend(Settings(_env_file=None, **CLICKZETTA, CLICKZETTA_MODEL_NAME="qwen/qwen3.6-plus",
                                CLICKZETTA_REQUEST_TIMEOUT="90"))
    try:
        assert cz.settings.model_name == "qwen/qwen3.6-plus" and cz.settings.request_timeout == 90.0
    finally:
        await cz.aclose()

    wren = build_backend(Settings(_env_file=None, **WREN, WREN_API_KEY=PROJECT_KEY))
    try:
        assert wren.settings.table_rows == 1000 and wren.settings.project_id is None
        assert wren.settings.streaming is True  # steps as they happen, unless turned off
    finally:
        await wren.aclose()
    wren = build_backend(Settings(_env_file=None, **WREN, WREN_API_KEY=ORG_KEY, WREN_PROJECT_ID="3",
                                  WREN_STREAM="false", WREN_TABLE_ROWS="50",
                                  BACKEND_MAX_RESPONSE_BYTES="4096"))
    try:
        assert wren.settings.streaming is False and wren.settings.table_rows == 50
        assert wren.settings.project_id == "3"
        assert wren.settings.max_response_bytes == 4096  # the size cap reaches the adapter
    finally:
        await wren.aclose()


@pytest.mark.parametrize("env, line", [
    ({**CLICKZETTA, "CLICKZETTA_DOMAIN_ID": ""},
     "CLICKZETTA_DOMAIN_ID is required when BACKEND=clickzetta"),
    ({**WREN, "WREN_API_KEY": ORG_KEY},
     "WREN_PROJECT_ID is required when BACKEND=wren"),
])
def test_serve_names_the_missing_identity_setting(tmp_path, env, line) -> None:
    root = str(Path(__file__).resolve().parents[2])
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from bot.cli import main; sys.exit(main(['serve']))"],
        cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": root, **env},
        capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    [only] = proc.stderr.strip().splitlines()
    assert only.startswith(f"insightbot: configuration error: {line}")

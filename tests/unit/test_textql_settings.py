"""TextQLSettings validation and the secrets it must never show."""

from __future__ import annotations

import logging

import httpx
import pytest

from adapters.base import AskRequest
from adapters.textql import TextQLBackend, TextQLSettings
from tests.fakes.textql import FakeTextQL


# TextQL's own default limits (backends.md §2.5, docs.textql.com/core/admin/limits): one SQL
# query may run 180 s and one cell 360 s, and Ana's stream can stay silent all that time.
TEXTQL_MAX_SQL_S, TEXTQL_MAX_CELL_S = 180.0, 360.0
IDLE_DEFAULT = 420.0


def test_defaults() -> None:
    s = TextQLSettings(member_id="m", api_key="k")
    assert (s.base_url, s.mode, s.stream_idle_timeout, s.image_max_bytes, s.image_timeout) == (
        "https://app.textql.com", "legacy", IDLE_DEFAULT, 5 * 1024 * 1024, 20.0)
    assert s.use_ontology is False and s.dataset is None and s.clifford_param is None


def test_idle_timeout_default_outlasts_textql_own_limits() -> None:
    """A silent stream is only dead once Ana's longest step could no longer be running."""
    assert TextQLSettings(member_id="m", api_key="k").stream_idle_timeout > TEXTQL_MAX_CELL_S > TEXTQL_MAX_SQL_S


async def test_service_default_is_the_adapter_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.backends import build_backend
    from bot.config import Settings

    monkeypatch.delenv("TEXTQL_STREAM_IDLE_TIMEOUT", raising=False)
    settings = Settings(_env_file=None, BACKEND="textql", TEXTQL_MEMBER_ID="m", TEXTQL_API_KEY="k")
    assert settings.TEXTQL_STREAM_IDLE_TIMEOUT == IDLE_DEFAULT
    backend = build_backend(settings)
    try:
        assert backend.settings.stream_idle_timeout == IDLE_DEFAULT
    finally:
        await backend.aclose()


def test_readme_tuning_row_shows_the_default() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    [row] = [line for line in readme.splitlines() if line.startswith("| `TEXTQL_STREAM_IDLE_TIMEOUT`")]
    assert row.rstrip().endswith(f"| `{IDLE_DEFAULT:g}` |")


@pytest.mark.parametrize("kwargs", [
    dict(member_id="m", api_key=""),
    dict(member_id="", api_key="k"),  # legacy needs the member id for Basic auth
    dict(member_id="m", api_key="k", use_ontology=True),  # without ontology_connector_id
    dict(member_id="m", api_key="k", mode="v3"),
    dict(member_id="m", api_key="k", base_url="app.textql.com"),
    dict(member_id="m", api_key="k", clifford="maybe"),
    dict(member_id="m", api_key="k", stream_idle_timeout=0),
])
def test_invalid_settings(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        TextQLSettings(**kwargs)


def test_no_table_row_cap_setting() -> None:
    """Tables are never cut in the adapter (platforms show a part and attach the rest)."""
    with pytest.raises(TypeError):
        TextQLSettings(member_id="m", api_key="k", table_preview_rows=20)  # type: ignore[call-arg]


@pytest.mark.parametrize("value,param", [(True, "true"), (False, "false"), ("TRUE", "true"), ("0", "false"), ("", None)])
def test_clifford_param(value: object, param: str | None) -> None:
    assert TextQLSettings(member_id="m", api_key="k", clifford=value).clifford_param == param


def test_auth_per_mode_and_repr_hides_key() -> None:
    legacy = TextQLSettings(member_id="m", api_key="s3cret")
    request = next(legacy.http_auth().sync_auth_flow(httpx.Request("GET", "https://x/")))
    assert request.headers["Authorization"] == httpx.BasicAuth("m", "s3cret")._auth_header
    v2 = TextQLSettings(api_key="s3cret", mode="v2")
    request = next(v2.http_auth().sync_auth_flow(httpx.Request("GET", "https://x/")))
    assert request.headers["Authorization"] == "Bearer s3cret"
    assert "s3cret" not in repr(legacy) and "s3cret" not in repr(v2.http_auth())


async def test_logs_never_contain_credentials(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with FakeTextQL() as fake:
        fake.malformed_block = True
        backend = TextQLBackend(TextQLSettings(member_id=fake.member_id, api_key=fake.api_key,
                                               base_url=fake.base_url))
        try:
            _ = [u async for u in backend.ask(AskRequest("q"))]
        finally:
            await backend.aclose()
        secret_header = fake.basic_header.split()[1]
    assert fake.api_key not in caplog.text and secret_header not in caplog.text

"""TextQLSettings validation and the secrets it must never show."""

from __future__ import annotations

import logging

import httpx
import pytest

from adapters.base import AskRequest
from adapters.textql import TextQLBackend, TextQLSettings
from tests.fakes.textql import FakeTextQL


def test_defaults() -> None:
    s = TextQLSettings(member_id="m", api_key="k")
    assert (s.base_url, s.mode, s.stream_idle_timeout, s.image_max_bytes, s.image_timeout) == (
        "https://app.textql.com", "legacy", 120.0, 5 * 1024 * 1024, 20.0)
    assert s.use_ontology is False and s.dataset is None and s.clifford_param is None


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

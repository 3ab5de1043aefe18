"""The ClickZetta HTTP layer: envelope rules, credentials in query and body, token lifecycle."""

from __future__ import annotations

import base64
import json
import logging
import time
import urllib.parse

import httpx
import pytest

from adapters.clickzetta.auth import TokenProvider, jwt_expiry, token_expiry
from adapters.clickzetta.client import (
    ApiFailure, AuthError, BadResponse, ClickZettaClient, HttpFailure, NetworkFailure, parse_envelope,
)
from adapters.clickzetta.settings import ClickZettaSettings
from tests.fakes.clickzetta import FakeClickZetta


def _response(status: int = 200, body: object = None, text: str | None = None) -> httpx.Response:
    request = httpx.Request("POST", "http://x/clickzetta-campaign-data/open/safe_question_poll")
    if text is not None:
        return httpx.Response(status, text=text, request=request)
    return httpx.Response(status, json=body, request=request)


# -- envelope ---------------------------------------------------------------------------------
def test_envelope_success_returns_data() -> None:
    assert parse_envelope(_response(body={"success": True, "data": {"questionId": 1}})) == {"questionId": 1}
    assert parse_envelope(_response(body={"success": True})) is None


@pytest.mark.parametrize("body", [
    {"success": False, "code": "MODEL_UNAVAILABLE", "message": "model unavailable"},
    {"data": {"success": False, "code": "MODEL_UNAVAILABLE", "message": "model unavailable"}},
    {"success": True, "data": {"success": False, "code": "MODEL_UNAVAILABLE", "message": "model unavailable"}},
])
def test_envelope_success_false_top_level_or_nested(body) -> None:
    with pytest.raises(ApiFailure) as info:
        parse_envelope(_response(body=body))
    assert info.value.code == "MODEL_UNAVAILABLE"
    assert "model unavailable" in info.value.message


@pytest.mark.parametrize("body", [
    {"success": False, "code": "204"},
    {"success": False, "code": 204, "message": "no data"},
    {"success": True, "code": 200, "message": "操作成功", "data": None},
    {"code": "200", "message": "success", "data": None},
    {"data": {"success": False, "code": "204"}},
])
def test_envelope_no_data_is_not_an_error(body) -> None:
    assert parse_envelope(_response(body=body)) is None


def test_envelope_http_errors_and_non_json() -> None:
    with pytest.raises(HttpFailure) as info:
        parse_envelope(_response(500, body={"status": 500, "error": "Internal Server Error"}))
    assert info.value.code == "500" and info.value.status == 500
    with pytest.raises(BadResponse):
        parse_envelope(_response(text="<html>502 Bad Gateway</html>"))
    with pytest.raises(BadResponse):
        parse_envelope(_response(body=[1, 2, 3]))


# -- token helpers ----------------------------------------------------------------------------
def _jwt(claims: dict) -> str:
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{enc({'alg': 'HS256'})}.{enc(claims)}.sig"


def test_token_expiry_sources() -> None:
    now = 1_700_000_000.0
    assert token_expiry({"expireMillisecond": 1_700_000_600_000}, "x", now) == 1_700_000_600.0
    assert token_expiry({"expireMillisecond": 7_200_000}, "x", now) == now + 7200  # a duration
    assert token_expiry({}, _jwt({"exp": 1_700_000_900}), now) == 1_700_000_900
    assert token_expiry({}, "opaque", now) == now + 15 * 60
    assert jwt_expiry("a.!!!.c") is None and jwt_expiry(_jwt({"exp": "soon"})) is None


# -- against the fake -------------------------------------------------------------------------
@pytest.fixture
async def fake():
    async with FakeClickZetta() as server:
        yield server


@pytest.fixture
async def http():
    async with httpx.AsyncClient() as client:
        yield client


def _client(fake: FakeClickZetta, http: httpx.AsyncClient, **overrides) -> tuple[ClickZettaClient, TokenProvider]:
    settings = ClickZettaSettings(**{**fake.identity(), "request_timeout": 5.0, **overrides})
    tokens = TokenProvider(http, settings.base_url, settings.app_secret_key)
    return ClickZettaClient(settings, http, tokens), tokens


async def test_credentials_go_in_query_and_body_of_every_call(fake, http) -> None:
    client, _ = _client(fake, http)
    session = await client.new_session("title")
    assert session == "4729"  # numeric string from the fake, normalised
    submitted = await client.submit(session, "Sales by region")
    await client.poll(submitted.question_id)
    await client.stop(session, submitted.question_id)
    token_request = fake.requests_to("token")[0]
    # the secret contains "&&": it must arrive whole, i.e. URL-encoded on the wire
    assert token_request.query["appSecretKey"] == fake.app_secret_key
    for endpoint in ("session", "query", "poll", "stop"):
        [request] = fake.requests_to(endpoint)
        for name in ("tenantId", "userId", "loginToken"):
            assert str(request.query[name]) == str(request.body[name]), (endpoint, name)
        assert request.body["tenantId"] == 10 and request.body["userId"] == 1
    assert fake.requests_to("query")[0].body["sessionId"] == 4729  # ids go out as integers
    assert fake.requests_to("query")[0].body["domainId"] == 106
    assert fake.requests_to("poll")[0].body["domainId"] == 106
    assert "domainId" not in fake.requests_to("stop")[0].body


async def test_secret_is_url_encoded_on_the_wire(fake, http) -> None:
    seen: list[str] = []

    async def hook(request: httpx.Request) -> None:
        seen.append(str(request.url))

    http.event_hooks["request"] = [hook]
    _, tokens = _client(fake, http)
    await tokens.get()
    assert urllib.parse.quote(fake.app_secret_key, safe="") in seen[0]
    assert "&&" not in seen[0]


async def test_token_is_cached_and_renewed_before_it_expires(fake, http) -> None:
    now = [time.time()]
    tokens = TokenProvider(http, fake.base_url, fake.app_secret_key, refresh_margin=60, clock=lambda: now[0])
    first = await tokens.get()
    assert await tokens.get() == first and tokens.mint_count == 1
    now[0] += fake.token_ttl_seconds - 120  # still more than the margin left
    assert await tokens.get() == first and tokens.mint_count == 1
    now[0] += 65  # inside the 60 s margin
    second = await tokens.get()
    assert second != first and tokens.mint_count == 2


async def test_jwt_exp_is_used_without_expire_millisecond(http) -> None:
    async with FakeClickZetta(include_expire_millisecond=False, token_ttl_seconds=600) as fake:
        now = [time.time()]
        tokens = TokenProvider(http, fake.base_url, fake.app_secret_key, refresh_margin=60, clock=lambda: now[0])
        await tokens.get()
        now[0] += 500
        await tokens.get()
        assert tokens.mint_count == 1
        now[0] += 50  # 550 s: inside the margin of the 600 s JWT exp
        await tokens.get()
        assert tokens.mint_count == 2


async def test_refused_call_renews_the_token_and_retries_once(fake, http) -> None:
    client, tokens = _client(fake, http)
    session = await client.new_session()
    fake.expire_tokens()
    submitted = await client.submit(session, "q")  # refused once, renewed, retried
    assert submitted.question_id
    assert tokens.mint_count == 2
    assert len(fake.requests_to("query")) == 2
    first, second = fake.requests_to("query")
    assert first.body["loginToken"] != second.body["loginToken"]


async def test_retry_happens_only_once(fake, http) -> None:
    client, tokens = _client(fake, http)
    session = await client.new_session()
    fake.fail("query", "success_false", times=2, message="model unavailable", code="MODEL_UNAVAILABLE")
    with pytest.raises(ApiFailure) as info:
        await client.submit(session, "q")
    assert info.value.code == "MODEL_UNAVAILABLE"
    assert len(fake.requests_to("query")) == 2 and tokens.mint_count == 2


async def test_bad_secret_is_an_auth_error(fake, http) -> None:
    tokens = TokenProvider(http, fake.base_url, "wrong&&secret")
    with pytest.raises(AuthError) as info:
        await tokens.get()
    assert "CLICKZETTA_APP_SECRET_KEY" in info.value.message
    assert "wrong" not in info.value.message


async def test_session_id_as_int(http) -> None:
    async with FakeClickZetta(session_id_as="int") as fake:
        client, _ = _client(fake, http)
        assert await client.new_session() == "4729"


async def test_network_failure_is_typed(http) -> None:
    settings = ClickZettaSettings(base_url="http://127.0.0.1:9/clickzetta-campaign-data",
                                  app_secret_key="k", tenant_id=1, user_id=1, domain_id=1,
                                  request_timeout=2)
    tokens = TokenProvider(http, settings.base_url, settings.app_secret_key)
    with pytest.raises(NetworkFailure):
        await ClickZettaClient(settings, http, tokens).new_session()


async def test_secret_and_token_never_reach_the_logs(fake, http, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    client, tokens = _client(fake, http)
    session = await client.new_session()
    fake.expire_tokens()
    await client.submit(session, "q")
    secret = fake.app_secret_key
    assert tokens.mint_count == 2
    assert "loginToken=***" in caplog.text  # httpx's request line, redacted
    for token in fake.tokens:
        assert token not in caplog.text
        assert token not in repr(tokens)
    for form in (secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)):
        assert form not in caplog.text
    assert secret not in repr(client) and secret not in repr(ClickZettaSettings(**fake.identity()))


def test_settings_validation() -> None:
    good = {"base_url": "https://api.clickzetta.com/clickzetta-campaign-data/", "app_secret_key": "k",
            "tenant_id": "10", "user_id": 1, "domain_id": "106"}
    settings = ClickZettaSettings(**good)
    assert settings.base_url.endswith("/clickzetta-campaign-data") and settings.tenant_id == 10
    assert settings.domain_id == 106
    assert settings.request_timeout == 60.0  # the vendor's per-request guidance (§1.4)
    assert settings.model_name is None
    with pytest.raises(ValueError, match="CLICKZETTA_BASE_URL"):
        ClickZettaSettings(**{**good, "base_url": "https://api.clickzetta.com"})
    with pytest.raises(ValueError, match="CLICKZETTA_TENANT_ID"):
        ClickZettaSettings(**{**good, "tenant_id": "ten"})
    for missing in (None, "", " "):  # Text2InsightQuery requires domainId
        with pytest.raises(ValueError, match="^CLICKZETTA_DOMAIN_ID is required"):
            ClickZettaSettings(**{**good, "domain_id": missing})
    with pytest.raises(ValueError, match="CLICKZETTA_DOMAIN_ID must be a positive integer"):
        ClickZettaSettings(**{**good, "domain_id": "0"})
    env = {"CLICKZETTA_BASE_URL": good["base_url"], "CLICKZETTA_APP_SECRET_KEY": "k",
           "CLICKZETTA_TENANT_ID": "10", "CLICKZETTA_USER_ID": "1", "CLICKZETTA_DOMAIN_ID": "106",
           "CLICKZETTA_POLL_INTERVAL": "0.5", "CLICKZETTA_WAREHOUSE_URL": "sqlite:///x.db"}
    from_env = ClickZettaSettings.from_env(env)
    assert from_env.poll_interval == 0.5 and from_env.domain_id == 106 and from_env.warehouse_url
    assert from_env.request_timeout == 60.0 and from_env.model_name is None
    tuned = ClickZettaSettings.from_env({**env, "CLICKZETTA_REQUEST_TIMEOUT": "75",
                                         "CLICKZETTA_MODEL_NAME": "qwen/qwen3.6-plus"})
    assert tuned.request_timeout == 75.0 and tuned.model_name == "qwen/qwen3.6-plus"
    for required in ("CLICKZETTA_USER_ID", "CLICKZETTA_DOMAIN_ID"):
        with pytest.raises(ValueError, match=required):
            ClickZettaSettings.from_env({k: v for k, v in env.items() if k != required})


async def test_model_name_is_sent_only_when_set(fake, http) -> None:
    client, _ = _client(fake, http)
    session = await client.new_session()
    await client.submit(session, "q")
    assert "modelSettings" not in fake.requests_to("query")[-1].body
    client, _ = _client(fake, http, model_name="qwen/qwen3.6-plus")
    await client.submit(session, "q2")
    assert fake.requests_to("query")[-1].body["modelSettings"] == {"model_name": "qwen/qwen3.6-plus"}


async def test_request_timeout_applies_to_each_call(http) -> None:
    """A call slower than the per-request timeout fails as a timeout, naming the limit."""
    async with FakeClickZetta() as fake:
        gate = fake.stall("session")
        client, _ = _client(fake, http, request_timeout=0.2)
        with pytest.raises(NetworkFailure, match="within 0.2 s"):
            await client.new_session()
        gate.set()

"""Teams in production mode: credentials set, no anonymous access, tokens checked both ways.

The service runs with ``TEAMS_APP_ID``/``TEAMS_APP_PASSWORD``/``TEAMS_TENANT_ID`` and
``TEAMS_ALLOW_ANONYMOUS`` off — its production configuration, unchanged. Microsoft's identity
services are loopback fakes (``tests/fakes/entra.py``) reached at their real ``https://``
addresses through a local ``CONNECT`` proxy, so the Agents SDK validates inbound activities
with its own ``JwtTokenValidator`` (keys from ``login.botframework.com``) and gets its outbound
token with MSAL (client credentials at ``login.microsoftonline.com``), over TLS; and the fake
Bot Connector accepts only calls that carry that token.

* an activity signed like the Bot Connector's is answered, and every reply carries the bot's
  Bot Framework token (acquired once, reused);
* a bad signature, another audience, an expired token, another issuer, an unsigned token, a
  malformed or missing header: 401, and nothing reaches the backend or the connector;
* a wrong app password: Entra refuses the token and the bot sends nothing unauthenticated.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any, AsyncIterator

import jwt
import pytest

from tests.fakes.entra import FakeEntra, SigningKey
from tests.fakes.teams_connector import FakeConnector
from tests.fakes.wren import ASK, FakeWren
from tests.integration.backends import WrenHarness
from tests.integration.conftest import TIME_SCALE
from tests.integration.teams.conftest import BOT, PERSONAL, TENANT, StartTeams, TeamsBot, card_text

OTHER_CHAT = "a:1pL6-personal-chat-with-bob"
APP_ID = BOT["id"].removeprefix("28:")  # the recipient id Teams uses is 28:<app id>
PASSWORD = "test-app-password-not-a-secret"


@pytest.fixture
async def entra(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeEntra]:
    async with FakeEntra() as fake:
        fake.register(APP_ID, PASSWORD, TENANT)
        for name, value in fake.environment().items():
            monkeypatch.setenv(name, value)
        # urllib builds its proxy handler from the environment once, on first use: start afresh
        urllib.request.install_opener(None)
        yield fake
        assert not fake.refused_hosts, fake.refused_hosts  # nothing else was contacted
    urllib.request.install_opener(None)


@pytest.fixture
async def fake_connector(entra: FakeEntra) -> AsyncIterator[FakeConnector]:
    """The conftest's connector, asking every call for the bot's token (overrides it)."""
    async with FakeConnector(prefix="/teams/amer/", time_scale=TIME_SCALE,
                             token_check=lambda token: entra.check_bot_token(token, APP_ID)) as fake:
        yield fake
    assert not fake.violations, fake.violations


@pytest.fixture
async def prod_bot(start_teams: StartTeams, fake_wren: FakeWren) -> TeamsBot:
    return await start_teams(WrenHarness(fake_wren), TEAMS_ALLOW_ANONYMOUS=False,
                             TEAMS_APP_ID=APP_ID, TEAMS_APP_PASSWORD=PASSWORD,
                             TEAMS_TENANT_ID=TENANT)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def ask(bot: TeamsBot, entra: FakeEntra, text: str, **token: Any) -> dict[str, Any]:
    activity = bot.activity(text, PERSONAL, "personal")
    await bot.send(activity, headers=bearer(entra.channel_token(
        APP_ID, bot.connector.service_url, **token)))
    return activity


# -- accepted -------------------------------------------------------------------------------
async def test_a_signed_activity_is_answered_with_the_bots_token_on_every_call(
        prod_bot: TeamsBot, entra: FakeEntra, fake_wren: FakeWren) -> None:
    activity = await ask(prod_bot, entra, "Which states pay the most?")
    [answer] = await prod_bot.wait_finished(PERSONAL)
    assert answer.outcome.value == "done"
    [reply] = prod_bot.replies(PERSONAL)
    assert prod_bot.backend is not None and prod_bot.backend.answer_marker in card_text(reply.card)
    assert [r.json["question"] for r in fake_wren.requests_to(ASK)] == ["Which states pay the most?"]

    # inbound: the SDK checked the signature with the Bot Framework's published keys
    assert entra.key_fetches == ["/v1/.well-known/keys"]
    # outbound: one client-credentials grant for the Bot Framework scope, then that token on
    # every call (MSAL caches it), each one accepted by the connector
    [grant] = entra.token_requests
    assert (grant.client_id, grant.tenant, grant.granted) == (APP_ID, TENANT, True)
    assert grant.scope.split()[0] == "https://api.botframework.com/.default"
    [token] = entra.issued
    calls = prod_bot.connector.calls
    assert len(calls) >= 2 and all(c.authorization == f"Bearer {token}" for c in calls)
    assert all(c.status in (200, 201) for c in calls) and not prod_bot.connector.unauthorized
    assert calls[0].path.endswith(f"/v3/conversations/{PERSONAL}/activities/{activity['id']}")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["appid"], claims["tid"], claims["aud"]) == (APP_ID, TENANT,
                                                               "https://api.botframework.com")


async def test_a_second_question_reuses_the_token(prod_bot: TeamsBot, entra: FakeEntra) -> None:
    await ask(prod_bot, entra, "First question")
    await prod_bot.wait_finished(PERSONAL)
    await ask(prod_bot, entra, "Second question")
    await prod_bot.wait_finished(PERSONAL, count=2)
    assert len(entra.token_requests) == 1
    assert {c.authorization for c in prod_bot.connector.calls} == {f"Bearer {entra.issued[0]}"}


# -- refused ----------------------------------------------------------------------------------
OTHER_KEY = SigningKey("forger")


def forged_tokens(entra: FakeEntra, service_url: str) -> dict[str, dict[str, str]]:
    """Authorization headers the service must refuse, by what is wrong with them."""
    now = entra.channel_token(APP_ID, service_url)
    header, body, _ = now.split(".")
    unsigned = jwt.encode(jwt.decode(now, options={"verify_signature": False}), key=None,
                          algorithm="none")
    return {
        "signed by another key under the Bot Framework's kid":
            bearer(entra.channel_token(APP_ID, service_url, key=OTHER_KEY)),
        "signed by an unknown kid": bearer(entra.channel_token(APP_ID, service_url,
                                                               key=OTHER_KEY, kid="forger")),
        "signature of another token": bearer(f"{header}.{body}." + entra.channel_token(
            APP_ID, service_url, audience="someone-else").split(".")[2]),
        "for another bot": bearer(entra.channel_token(APP_ID, service_url,
                                                      audience="00000000-0000-0000-0000-0000000bad00")),
        "expired": bearer(entra.channel_token(APP_ID, service_url, lifetime=60, age=3600)),
        "from another issuer": bearer(entra.channel_token(
            APP_ID, service_url, issuer=f"https://login.microsoftonline.com/{TENANT}/v2.0")),
        "unsigned (alg none)": bearer(unsigned),
        "not a JWT": bearer("not-a-token"),
        "not a Bearer token": {"Authorization": f"Basic {now}"},
        "missing": {},
    }


async def test_activities_without_a_valid_token_are_refused_and_go_nowhere(
        prod_bot: TeamsBot, entra: FakeEntra, fake_wren: FakeWren) -> None:
    for why, headers in forged_tokens(entra, prod_bot.connector.service_url).items():
        activity = prod_bot.activity(f"question {why}", PERSONAL, "personal")
        resp = await prod_bot.send(activity, expect=401, headers=headers)
        assert "error" in await resp.json(), why
    assert fake_wren.requests_to(ASK) == []  # nothing reached the backend
    assert prod_bot.connector.calls == []  # and nothing was said in Teams
    assert entra.token_requests == []  # nor was a token ever needed
    assert await prod_bot.service.repo.list_runs("teams", TENANT, channel=PERSONAL) == []

    # the same service still answers a genuine activity
    await ask(prod_bot, entra, "genuine")
    [answer] = await prod_bot.wait_finished(PERSONAL)
    assert answer.outcome.value == "done"
    assert [r.json["question"] for r in fake_wren.requests_to(ASK)] == ["genuine"]


async def test_an_invoke_with_a_bad_token_is_refused(prod_bot: TeamsBot, entra: FakeEntra) -> None:
    """Card actions (invokes) are checked like messages: a forged Stop/vote is not run."""
    activity = prod_bot.activity("", PERSONAL, "personal", value={"action": "stop", "run_id": "x"})
    activity.update(type="invoke", name="adaptiveCard/action")
    await prod_bot.send(activity, expect=401, headers=bearer(entra.channel_token(
        APP_ID, prod_bot.connector.service_url, key=OTHER_KEY)))
    assert prod_bot.connector.calls == []


# -- the outbound side --------------------------------------------------------------------------
async def test_a_wrong_app_password_sends_nothing_unauthenticated(
        start_teams: StartTeams, fake_wren: FakeWren, entra: FakeEntra,
        caplog: pytest.LogCaptureFixture) -> None:
    bot = await start_teams(WrenHarness(fake_wren), TEAMS_ALLOW_ANONYMOUS=False,
                            TEAMS_APP_ID=APP_ID, TEAMS_APP_PASSWORD="a-stale-password",
                            TEAMS_TENANT_ID=TENANT)
    activity = bot.activity("Which states pay the most?", PERSONAL, "personal")
    token = entra.channel_token(APP_ID, bot.connector.service_url)
    resp = await bot.client.post("/api/messages", json=activity, headers=bearer(token))
    # The SDK needs a token inside the turn already (its user-token client), so the turn fails
    # before our handler: one log line, and 503 so Teams delivers the activity again later
    assert resp.status == 503 and resp.headers["Retry-After"] == "30"
    ours = [r for r in caplog.records if r.name == "bot.teams.integration"]
    assert [r.getMessage() for r in ours] == [
        "teams: Entra refused the bot's own token (invalid_client): check TEAMS_APP_ID, "
        "TEAMS_APP_PASSWORD and TEAMS_TENANT_ID"]
    assert not any(r.name == "aiohttp.server" for r in caplog.records)  # no traceback per activity
    assert "a-stale-password" not in caplog.text
    assert entra.token_requests and not any(r.granted for r in entra.token_requests)
    assert {r.error for r in entra.token_requests} == {"invalid_client"}
    assert bot.connector.calls == []  # no reply went out without a token
    assert fake_wren.requests_to(ASK) == []


async def test_the_fake_connector_refuses_calls_without_the_bots_token(
        fake_connector: FakeConnector, entra: FakeEntra) -> None:
    """The connector's own check (what the tests above rely on)."""
    import aiohttp

    url = f"{fake_connector.service_url}v3/conversations/{PERSONAL}/activities"
    body = {"type": "message", "text": "hi"}
    stranger = FakeEntra()  # another Entra: its tokens are not this one's
    stranger_token = stranger.entra_key.sign({"aud": "https://api.botframework.com",
                                              "appid": APP_ID, "tid": TENANT, "exp": 9999999999})
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": "Basic x"}, bearer("garbage"), bearer(stranger_token)):
            async with http.post(url, json=body, headers=headers) as resp:
                assert resp.status == 401
    assert len(fake_connector.unauthorized) == 4 and fake_connector.messages == {}


async def test_the_bots_token_goes_only_to_the_service_url_the_activity_token_names(
        prod_bot: TeamsBot, entra: FakeEntra, fake_wren: FakeWren) -> None:
    """A genuine activity token (say, replayed from a log) on an activity naming another
    ``serviceUrl``: the SDK only warns when the hosts differ (and not at all for another port
    of the same host), so the bot would have sent its Bot Framework token to that server."""
    async with FakeConnector(prefix="/elsewhere/", time_scale=TIME_SCALE) as elsewhere:
        activity = prod_bot.activity("Which states pay the most?", PERSONAL, "personal")
        activity["serviceUrl"] = elsewhere.service_url
        token = entra.channel_token(APP_ID, prod_bot.connector.service_url)  # names the real one
        await prod_bot.send(activity, headers=bearer(token), expect=401)  # refused at the door
        assert elsewhere.calls == []  # no token went there
    assert prod_bot.connector.calls == []  # and nothing was sent anywhere in its name
    assert fake_wren.requests_to(ASK) == []

    # the genuine serviceUrl, with a trailing-slash or case difference, is the same origin
    activity = prod_bot.activity("and by city?", OTHER_CHAT, "personal")
    activity["serviceUrl"] = prod_bot.connector.service_url.replace("http://", "HTTP://")
    await prod_bot.send(activity, headers=bearer(entra.channel_token(
        APP_ID, prod_bot.connector.service_url.rstrip("/"))))
    await prod_bot.wait_finished(OTHER_CHAT)
    assert prod_bot.replies(OTHER_CHAT) and not prod_bot.connector.unauthorized


# -- a multi-tenant app registration ---------------------------------------------------------------
CUSTOMER = "0c1d2e3f-0000-4000-8000-00000000c0de"  # another organisation, allowed to ask
STRANGER = "0c1d2e3f-0000-4000-8000-0000000057a6"  # another one, not allowed


def from_tenant(activity: dict[str, Any], tenant: str) -> dict[str, Any]:
    activity["conversation"]["tenantId"] = tenant
    activity["channelData"]["tenant"]["id"] = tenant
    return activity


async def test_a_multi_tenant_bot_answers_the_allowed_tenants_with_a_bot_framework_token(
        start_teams: StartTeams, fake_wren: FakeWren, entra: FakeEntra) -> None:
    """teams/README.md's multi-tenant set-up: no ``TEAMS_TENANT_ID`` (the bot serves other
    organisations), ``TEAMS_ALLOWED_TENANTS`` naming the ones it answers. Its own token comes from
    the Bot Framework's tenant (``login.microsoftonline.com/botframework.com``), as a multi-tenant
    bot's does."""
    entra.register(APP_ID, PASSWORD, "botframework.com")  # the app is multi-tenant
    bot = await start_teams(WrenHarness(fake_wren), TEAMS_ALLOW_ANONYMOUS=False,
                            TEAMS_APP_ID=APP_ID, TEAMS_APP_PASSWORD=PASSWORD,
                            TEAMS_TENANT_ID=None, TEAMS_ALLOWED_TENANTS=CUSTOMER)
    token = bearer(entra.channel_token(APP_ID, bot.connector.service_url))
    stranger = from_tenant(bot.activity("Theirs?", OTHER_CHAT, "personal"), STRANGER)
    await bot.send(stranger, headers=token)
    customer = from_tenant(bot.activity("Ours?", PERSONAL, "personal"), CUSTOMER)
    await bot.send(customer, headers=token)
    [answer] = await bot.wait_finished(PERSONAL)
    assert answer.outcome.value == "done"
    assert [r.json["question"] for r in fake_wren.requests_to(ASK)] == ["Ours?"]
    [grant] = entra.token_requests
    assert (grant.tenant, grant.granted) == ("botframework.com", True)
    assert bot.connector.calls and not bot.connector.unauthorized
    # the other organisation was told no (with the same token), and nothing was asked for it
    [refusal] = await bot.wait_replies(OTHER_CHAT)
    assert "not set up to answer people of your organisation" in json.dumps(refusal.activity)

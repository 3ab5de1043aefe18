"""The distributed app: installed into several workspaces through Slack's OAuth flow.

The service runs with ``SLACK_CLIENT_ID``/``SLACK_CLIENT_SECRET`` and no ``SLACK_BOT_TOKEN``. Each
workspace is installed the way a person installs it: ``GET /slack/install`` (a redirect to
Slack's consent page with a one-time state, and the state as a cookie), then Slack sending the
browser back to ``GET /slack/oauth_redirect?code=…&state=…`` with that cookie, where the bot
exchanges the code at the fake's ``oauth.v2.access``. The fake Slack then accepts only the bot
tokens it issued, each tied to its workspace, and records which token every call came with —
so "answered with the right token" is checked on every call, the reply sinks' included.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, AsyncIterator
from urllib.parse import parse_qs, urlsplit

import pytest

from adapters.answer import Finished, Outcome, PartUpsert, SessionAssigned, TextPart
from adapters.base import AskRequest
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.oauth.installation_store import Installation
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.installations import (
    BOT_SCOPES, InstallKey, SerializedAuthorize, SlackInstallations,
)
from storage.repository import Repository
from tests.fakes.slack import CLIENT_ID, CLIENT_SECRET, FakeSlack, Install
from tests.integration.conftest import USER, SlackBot, blocks_text
from tests.integration.own_backend import OwnBackend
from tests.integration.test_storage_postgres import pg_url  # noqa: F401  (fixture)

STATE_COOKIE = "slack-app-oauth-state"
ACME = Install("T0ACME0001", team_name="Acme", bot_user_id="U0ACMEBOT", bot_id="B0ACME")
GLOBEX = Install("T0GLOBEX01", team_name="Globex", bot_user_id="U0GLOBBOT", bot_id="B0GLOB")
CHANNELS = {ACME.team_id: "C0ACMECHAN1", GLOBEX.team_id: "C0GLOBCHAN1"}


class Answering(OwnBackend):
    """Answers each question with its own text; a question in ``gated`` waits for the gate."""

    name = "answering"

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gated: set[str] = set()
        self.waiting = asyncio.Event()

    def ask(self, request: AskRequest) -> AsyncIterator[Any]:
        self.asked.append(request)
        return self._run(request)

    async def _run(self, request: AskRequest) -> AsyncIterator[Any]:
        yield SessionAssigned(f"session-{len(self.asked)}")
        if request.question in self.gated:
            self.waiting.set()
            await self.gate.wait()
        yield PartUpsert(TextPart("text", f"Answer to: {request.question}"))
        yield Finished(Outcome.DONE)


@pytest.fixture
def backend() -> Answering:
    return Answering()


async def start_oauth(start_bot: Any, backend: Answering, **settings: Any) -> SlackBot:
    return await start_bot(backend=backend, SLACK_BOT_TOKEN=None, SLACK_CLIENT_ID=CLIENT_ID,
                           SLACK_CLIENT_SECRET=CLIENT_SECRET, **settings)


@pytest.fixture
async def oauth_bot(start_bot: Any, fake_slack: FakeSlack, backend: Answering) -> SlackBot:
    return await start_oauth(start_bot, backend)


# -- driving it like Slack and a browser would -----------------------------------------------
async def begin_install(bot: SlackBot) -> str:
    """``GET /slack/install``: the state Slack's consent page will hand back."""
    resp = await bot.client.get("/slack/install", allow_redirects=False)
    assert resp.status == 302, await resp.text()
    location = urlsplit(resp.headers["Location"])
    assert (location.scheme, location.netloc, location.path) == (
        "https", "slack.com", "/oauth/v2/authorize")
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert query["client_id"] == CLIENT_ID
    assert query["scope"].split(",") == list(BOT_SCOPES)  # manifest.yml's bot scopes
    state = query["state"]
    assert resp.cookies[STATE_COOKIE].value == state  # the browser that started it, and no other
    return state


async def finish_install(bot: SlackBot, code: str, state: str, *,
                         cookie: str | None = None) -> Any:
    """Slack sends the installer's browser back with the code and the state."""
    bot.client.session.cookie_jar.clear()
    cookie = state if cookie is None else cookie
    headers = {"Cookie": f"{STATE_COOKIE}={cookie}"} if cookie else {}
    return await bot.client.get("/slack/oauth_redirect", params={"code": code, "state": state},
                                headers=headers, allow_redirects=False)


async def install(bot: SlackBot, code: str, where: Install) -> str:
    """Install the app into ``where``; return the bot token Slack issued for it."""
    bot.slack.offer_install(code, where)
    resp = await finish_install(bot, code, await begin_install(bot))
    assert resp.status == 200, await resp.text()
    [token] = bot.slack.tokens_of(team_id=None if where.org_install else where.team_id,
                                  enterprise_id=where.enterprise_id)
    return token


def envelope(event: dict[str, Any], team: str, *, enterprise: str | None = None,
             org: bool = False, bot_user: str = "U0BOT") -> dict[str, Any]:
    """An Events API delivery as Slack sends it to a distributed app: ``authorizations`` names
    the installation (an organisation's has no team)."""
    return {"token": "legacy", "team_id": team, "enterprise_id": enterprise, "api_app_id": "A1",
            "type": "event_callback", "event_id": f"Ev{team}{event.get('ts', time.time())}",
            "event_time": int(time.time()), "event": event, "is_ext_shared_channel": False,
            "authorizations": [{"enterprise_id": enterprise, "team_id": None if org else team,
                                "user_id": bot_user, "is_bot": True,
                                "is_enterprise_install": org}]}


async def mention(bot: SlackBot, team: str, channel: str, text: str, **kw: Any) -> dict[str, Any]:
    ts = bot.next_ts()
    event = {"type": "app_mention", "user": USER, "text": f"<@U0BOT> {text}", "ts": ts,
             "channel": channel, "event_ts": ts, "team": team}
    resp = await bot.post_signed(json.dumps(envelope(event, team, **kw)), "application/json")
    assert resp.status == 200, await resp.text()
    return event


async def send(bot: SlackBot, event: dict[str, Any], team: str, **kw: Any) -> None:
    resp = await bot.post_signed(json.dumps(envelope(event, team, **kw)), "application/json")
    assert resp.status == 200, await resp.text()


def tokens_used_in(slack: FakeSlack, channel: str) -> set[str]:
    """Every token a call about ``channel`` came with (posts, edits, statuses, uploads…)."""
    return {c.token for c in slack.calls
            if channel in (c.args.get("channel"), c.args.get("channel_id"))}


def installations(bot: SlackBot) -> SlackInstallations:
    assert bot.service.slack is not None and bot.service.slack.installations is not None
    return bot.service.slack.installations


async def eventually(check: Any, timeout: float = 5.0) -> None:
    """Wait for an async condition the bot reaches in the background (no Slack call to wake on)."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


# -- the install -----------------------------------------------------------------------------
async def test_the_install_needs_the_state_slack_was_given_in_the_browser_that_started(
        oauth_bot: SlackBot) -> None:
    oauth_bot.slack.offer_install("code-acme", ACME)
    state = await begin_install(oauth_bot)
    # another browser (no cookie), or a made-up state: refused, and the code is not exchanged
    assert (await finish_install(oauth_bot, "code-acme", state, cookie="")).status == 400
    forged = await finish_install(oauth_bot, "code-acme", "made-up", cookie="made-up")
    assert forged.status == 401
    assert oauth_bot.slack.calls_to("oauth.v2.access") == []
    # the real one: the code is exchanged with the app's own credentials, once
    assert (await finish_install(oauth_bot, "code-acme", state)).status == 200
    [exchange] = oauth_bot.slack.calls_to("oauth.v2.access")
    assert exchange.status == 200 and exchange.args["code"] == "code-acme"
    bot = await installations(oauth_bot).store.async_find_bot(enterprise_id=None,
                                                              team_id=ACME.team_id)
    assert bot is not None and bot.bot_token == oauth_bot.slack.tokens_of(team_id=ACME.team_id)[0]
    # the state was used up: the same redirect again installs nothing
    assert (await finish_install(oauth_bot, "code-acme", state)).status == 401


async def test_a_static_bot_token_stays_the_single_workspace_app(
        start_bot: Any, backend: Answering, monkeypatch: pytest.MonkeyPatch) -> None:
    """``SLACK_BOT_TOKEN`` wins even with the client id and secret in the environment (where
    Bolt itself would turn into an OAuth app): no install routes, every call with that token."""
    monkeypatch.setenv("SLACK_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("SLACK_CLIENT_SECRET", CLIENT_SECRET)
    bot = await start_bot(backend=backend)
    assert bot.service.slack is not None and bot.service.slack.installations is None
    assert (await bot.client.get("/slack/install", allow_redirects=False)).status == 404
    assert (await bot.client.get("/slack/oauth_redirect?code=x&state=y")).status == 404
    event = await bot.mention("Still one workspace?")
    [answer] = await bot.wait_finished(event["ts"])
    await bot.settled()
    assert answer.outcome is Outcome.DONE
    assert {c.token for c in bot.slack.calls} == {"xoxb-test-token"}


# -- answering many workspaces ---------------------------------------------------------------
async def test_each_workspace_is_answered_with_its_own_token(oauth_bot: SlackBot,
                                                              backend: Answering) -> None:
    slack = oauth_bot.slack
    acme_token = await install(oauth_bot, "code-acme", ACME)
    globex_token = await install(oauth_bot, "code-globex", GLOBEX)
    assert acme_token != globex_token

    acme_q = await mention(oauth_bot, ACME.team_id, CHANNELS[ACME.team_id], "Acme revenue?")
    globex_q = await mention(oauth_bot, GLOBEX.team_id, CHANNELS[GLOBEX.team_id], "Globex churn?")
    [acme_answer] = await oauth_bot.wait_finished(acme_q["ts"])
    [globex_answer] = await oauth_bot.wait_finished(globex_q["ts"])
    await oauth_bot.settled()
    assert acme_answer.outcome is Outcome.DONE and globex_answer.outcome is Outcome.DONE
    assert sorted(r.question for r in backend.asked) == ["Acme revenue?", "Globex churn?"]

    # every call about a workspace's channel — placeholder, edits, status line — with its token
    assert tokens_used_in(slack, CHANNELS[ACME.team_id]) == {acme_token}
    assert tokens_used_in(slack, CHANNELS[GLOBEX.team_id]) == {globex_token}
    [acme_reply] = oauth_bot.bot_replies(acme_q["ts"], CHANNELS[ACME.team_id])
    assert "Answer to: Acme revenue?" in blocks_text(acme_reply.blocks)
    assert acme_reply.user == ACME.bot_user_id  # posted as Acme's bot user
    assert all(c.status == 200 for c in slack.calls), [
        (c.method, c.response) for c in slack.calls if c.status != 200]
    # Bolt checked each token once with auth.test, which answered for its own workspace
    assert {c.token: c.response["team_id"] for c in slack.calls_to("auth.test")} == {
        acme_token: ACME.team_id, globex_token: GLOBEX.team_id}

    # each workspace has its own delivery budgets
    scheduler = oauth_bot.service.slack.client.scheduler  # type: ignore[union-attr]
    budgets = {key[1] for key in scheduler._limiters if key[0] == "chat.update"}
    assert budgets == {ACME.team_id, GLOBEX.team_id}

    # and its own history: the same person (an Enterprise Grid user is one id in every
    # workspace) sees in each App Home only that workspace's questions
    await send(oauth_bot, {"type": "app_home_opened", "user": USER, "tab": "home",
                           "event_ts": oauth_bot.next_ts()}, GLOBEX.team_id)
    await slack.wait_for(lambda: USER in slack.home_views)
    home = blocks_text(slack.home_views[USER]["blocks"])
    assert "Globex churn?" in home and "Acme revenue?" not in home
    [publish] = slack.calls_to("views.publish")
    assert publish.token == globex_token


async def test_an_uninstalled_workspace_is_not_answered(start_bot: Any, fake_slack: FakeSlack,
                                                        backend: Answering) -> None:
    oauth_bot = await start_oauth(start_bot, backend, SLACK_INTAKE_WORKERS=1)
    acme_token = await install(oauth_bot, "code-acme", ACME)
    globex_token = await install(oauth_bot, "code-globex", GLOBEX)
    first = await mention(oauth_bot, GLOBEX.team_id, CHANNELS[GLOBEX.team_id], "Before")
    await oauth_bot.wait_finished(first["ts"])
    await oauth_bot.settled()

    # Globex uninstalls the app: Slack revokes its token and sends app_uninstalled
    fake_slack.revoke(team_id=GLOBEX.team_id)
    await send(oauth_bot, {"type": "app_uninstalled", "event_ts": oauth_bot.next_ts()},
               GLOBEX.team_id)
    store = installations(oauth_bot).store

    async def gone() -> bool:
        return await store.async_find_bot(enterprise_id=None, team_id=GLOBEX.team_id) is None
    await eventually(gone)
    assert await store.async_find_installation(enterprise_id=None, team_id=GLOBEX.team_id) is None

    # a later question from Globex reaches no backend and makes no call with its old token;
    # Acme, still installed, is answered — after it (one intake worker keeps them in order)
    calls_before = len(fake_slack.calls)
    late = await mention(oauth_bot, GLOBEX.team_id, CHANNELS[GLOBEX.team_id], "After")
    acme_q = await mention(oauth_bot, ACME.team_id, CHANNELS[ACME.team_id], "Still here?")
    await oauth_bot.wait_finished(acme_q["ts"])
    await oauth_bot.settled()
    assert [r.question for r in backend.asked] == ["Before", "Still here?"]
    assert oauth_bot.finished.of_thread(late["ts"]) == []
    later = fake_slack.calls[calls_before:]
    assert globex_token not in {c.token for c in later}
    assert not [c for c in later if CHANNELS[GLOBEX.team_id] in (c.args.get("channel"),
                                                                  c.args.get("channel_id"))]
    assert tokens_used_in(fake_slack, CHANNELS[ACME.team_id]) == {acme_token}


# -- token rotation ---------------------------------------------------------------------------
async def test_an_expired_rotating_token_is_refreshed_once_before_answering(
        oauth_bot: SlackBot, fake_slack: FakeSlack) -> None:
    rotating = Install("T0ROTATE01", team_name="Rotate", expires_in=3600)  # due: < 120 minutes
    old = await install(oauth_bot, "code-rotate", rotating)
    fake_slack.expire(old)
    installed = len(fake_slack.calls)
    channel = "C0ROTCHAN01"
    question = await mention(oauth_bot, rotating.team_id, channel, "Fresh token?")
    [answer] = await oauth_bot.wait_finished(question["ts"])
    await oauth_bot.settled()
    assert answer.outcome is Outcome.DONE
    # one refresh — Bolt's authorize and the replies share it — with the refresh token Slack
    # gave at install, and every call after it with the new token
    [grant] = fake_slack.refresh_grants()
    assert grant.status == 200 and grant.args["refresh_token"].startswith("xoxe-1-")
    [old_token, new_token] = fake_slack.tokens_of(team_id=rotating.team_id)
    assert old_token == old and grant.response["access_token"] == new_token
    assert tokens_used_in(fake_slack, channel) == {new_token}
    assert old not in {c.token for c in fake_slack.calls[installed:]}  # not even for auth.test
    stored = await installations(oauth_bot).store.async_find_bot(enterprise_id=None,
                                                                 team_id=rotating.team_id)
    assert stored is not None and stored.bot_token == new_token
    assert stored.bot_refresh_token == grant.response["refresh_token"]


async def test_one_refresh_at_a_time_per_installation(tmp_path: Any,
                                                      fake_slack: FakeSlack) -> None:
    """Slack revokes a refresh token when it is used: a reply's look-up and Bolt's authorize
    finding the same token due at the same moment must not both refresh it (the second would
    fail, and its event go unanswered). The second waits for the first, then uses its token."""
    repo = await Repository.open(f"sqlite+aiosqlite:///{tmp_path}/refresh.db")
    client = AsyncWebClient(base_url=fake_slack.base_url)
    try:
        store_owner = SlackInstallations(client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                                         engine=repo.engine, repo=repo, client=client)
        fake_slack.offer_install("code", Install("T0ROTATE04", expires_in=3600))
        granted = await client.oauth_v2_access(client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                                               code="code")
        await store_owner.store.async_save(Installation(
            app_id="A1", team_id="T0ROTATE04", user_id="U0INSTALLER", bot_id="B0BOT",
            bot_user_id="U0BOT", bot_token=granted["access_token"],
            bot_refresh_token=granted["refresh_token"], bot_token_expires_in=granted["expires_in"]))
        finds = 0
        find_bot = store_owner.store.async_find_bot

        async def counted(**kw: Any) -> Any:
            nonlocal finds
            finds += 1
            return await find_bot(**kw)
        store_owner.store.async_find_bot = counted  # type: ignore[method-assign]

        hold = fake_slack.hold_calls("oauth.v2.access",
                                     when=lambda args: args.get("grant_type") == "refresh_token")
        reply = asyncio.create_task(store_owner.bot_token("T0ROTATE04"))
        await fake_slack.wait_for(lambda: len(fake_slack.held) == 1)  # its refresh is under way
        authorize = SerializedAuthorize(store_owner, logger=logging.getLogger("test"),
                                        client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                                        client=client)
        context = AsyncBoltContext(client=AsyncWebClient(base_url=fake_slack.base_url),
                                   is_enterprise_install=False)
        bolt = asyncio.create_task(authorize(context=context, enterprise_id=None,
                                             team_id="T0ROTATE04", user_id="U1"))
        lock = store_owner.lock(InstallKey(None, "T0ROTATE04"))

        async def bolt_is_waiting_or_looking() -> bool:
            return finds >= 2 or bool(getattr(lock, "_waiters", None))
        await eventually(bolt_is_waiting_or_looking)
        hold.gate.set()
        token, result = await reply, await bolt
        assert result is not None and result.bot_token == token  # the event is answered
        [grant] = fake_slack.refresh_grants()
        assert grant.status == 200 and grant.response["access_token"] == token
    finally:
        await repo.close()


async def test_a_reply_outliving_its_token_refreshes_it(oauth_bot: SlackBot, fake_slack: FakeSlack,
                                                        backend: Answering) -> None:
    """The token Bolt authorised the event with expires while the analysis runs: the answer is
    still delivered, by the reply refreshing the workspace's token itself."""
    rotating = Install("T0ROTATE02", team_name="Rotate", expires_in=12 * 3600)  # not due
    first = await install(oauth_bot, "code-rotate", rotating)
    backend.gated.add("Slow one")
    channel = "C0ROTCHAN02"
    question = await mention(oauth_bot, rotating.team_id, channel, "Slow one")
    await backend.waiting.wait()
    await fake_slack.wait_for(lambda: any(m.bot_id for m in fake_slack.messages(channel)))
    assert fake_slack.refresh_grants() == []
    fake_slack.expire(first)  # Slack's clock says it is over
    backend.gate.set()
    [answer] = await oauth_bot.wait_finished(question["ts"])
    await oauth_bot.settled()
    assert answer.outcome is Outcome.DONE
    [grant] = fake_slack.refresh_grants()
    fresh = grant.response["access_token"]
    [reply] = oauth_bot.bot_replies(question["ts"], channel)
    assert "Answer to: Slow one" in blocks_text(reply.blocks)
    expired = [c for c in fake_slack.calls if c.response.get("error") == "token_expired"]
    assert expired and {c.token for c in expired} == {first}
    after = fake_slack.calls[fake_slack.calls.index(expired[0]) + 1:]
    assert {c.token for c in after if c.method != "oauth.v2.access"} == {fresh}


# -- Enterprise Grid -------------------------------------------------------------------------
async def test_an_organisation_wide_install_answers_in_each_of_its_workspaces(
        start_bot: Any, fake_slack: FakeSlack, backend: Answering) -> None:
    oauth_bot = await start_oauth(start_bot, backend, SLACK_STREAMING=True)
    org = Install(None, enterprise_id="E0GRID0001", enterprise_name="Grid", org_install=True,
                  bot_user_id="U0GRIDBOT")
    org_token = await install(oauth_bot, "code-grid", org)
    stored = await installations(oauth_bot).store.async_find_bot(
        enterprise_id="E0GRID0001", team_id=None, is_enterprise_install=True)
    assert stored is not None and stored.is_enterprise_install and stored.team_id is None

    # events from two workspaces of the organisation, authorised by its one installation
    west = await mention(oauth_bot, "T0GRIDWEST", "C0WESTCHAN", "West sales?",
                         enterprise="E0GRID0001", org=True)
    east = await mention(oauth_bot, "T0GRIDEAST", "C0EASTCHAN", "East sales?",
                         enterprise="E0GRID0001", org=True)
    await oauth_bot.wait_finished(west["ts"])
    await oauth_bot.wait_finished(east["ts"])
    await oauth_bot.settled()
    assert sorted(r.question for r in backend.asked) == ["East sales?", "West sales?"]
    assert tokens_used_in(fake_slack, "C0WESTCHAN") == {org_token}
    assert tokens_used_in(fake_slack, "C0EASTCHAN") == {org_token}
    # the streamed replies name the asker in the organisation, as Bolt's say_stream does
    streams = fake_slack.calls_to("chat.startStream")
    assert {c.args["channel"] for c in streams} == {"C0WESTCHAN", "C0EASTCHAN"}
    assert {c.args["recipient_team_id"] for c in streams} == {"E0GRID0001"}
    # each thread belongs to its own workspace (history, budgets), not to the organisation
    assert [r.question for r in await oauth_bot.service.repo.list_runs("slack", "T0GRIDWEST")] \
        == ["West sales?"]

    # where each workspace's installation is, is remembered for replies after a restart
    async def remembered() -> bool:
        known = await oauth_bot.service.repo.slack_workspaces()
        return {"T0GRIDWEST", "T0GRIDEAST"} <= set(known)
    await eventually(remembered)
    known = await oauth_bot.service.repo.slack_workspaces()
    assert known["T0GRIDWEST"] == ("E0GRID0001", True)
    repo = oauth_bot.service.repo
    assert repo is not None
    restarted = SlackInstallations(client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                                   engine=repo.engine, repo=repo,
                                   client=AsyncWebClient(base_url=fake_slack.base_url))
    await restarted.start()
    assert restarted.key_for("T0GRIDEAST") == InstallKey("E0GRID0001", None)
    assert await restarted.bot_token("T0GRIDEAST") == org_token
    assert restarted.recipient_team("T0GRIDEAST") == "E0GRID0001"


# -- PostgreSQL ------------------------------------------------------------------------------
async def test_installations_live_in_postgresql_too(
        start_bot: Any, fake_slack: FakeSlack, backend: Answering,
        pg_url: str) -> None:  # noqa: F811
    """The same stores on PostgreSQL (asyncpg): install, answer, refresh, uninstall."""
    bot = await start_oauth(start_bot, backend, DATABASE_URL=pg_url)
    acme_token = await install(bot, "code-acme", ACME)
    rotating = Install("T0ROTATE03", team_name="Rotate", expires_in=3600)
    old = await install(bot, "code-rotate", rotating)
    fake_slack.expire(old)
    acme_q = await mention(bot, ACME.team_id, CHANNELS[ACME.team_id], "On PostgreSQL?")
    rot_q = await mention(bot, rotating.team_id, "C0ROTCHAN03", "Refreshed there?")
    await bot.wait_finished(acme_q["ts"])
    await bot.wait_finished(rot_q["ts"])
    await bot.settled()
    assert tokens_used_in(fake_slack, CHANNELS[ACME.team_id]) == {acme_token}
    [grant] = fake_slack.refresh_grants()
    assert tokens_used_in(fake_slack, "C0ROTCHAN03") == {grant.response["access_token"]}

    fake_slack.revoke(team_id=ACME.team_id)
    await send(bot, {"type": "app_uninstalled", "event_ts": bot.next_ts()}, ACME.team_id)
    store = installations(bot).store

    async def gone() -> bool:
        return await store.async_find_bot(enterprise_id=None, team_id=ACME.team_id) is None
    await eventually(gone)

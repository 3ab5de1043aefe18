"""Integration harness: the real service on loopback, driven by signed Slack requests.

``slack_bot`` starts fakes of the Slack Web API and of the backend, builds the real
``Service`` (Bolt app, relay, storage on a temporary SQLite file, chart renderer) pointed at them,
and serves its aiohttp application on 127.0.0.1. Tests post events exactly as Slack would —
JSON bodies signed with the signing secret — and assert on what the fake Slack received.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable
from urllib.parse import quote, urlencode

import pytest
from aiohttp.test_utils import TestClient, TestServer
from slack_sdk.signature import SignatureVerifier

from bot.config import Settings
from bot.service import Service
from tests.fakes.slack import FakeSlack
from tests.fakes.clickzetta import FakeClickZetta
from tests.integration.backends import BACKENDS, FAKE_FIXTURES, BackendHarness
from tests.fakes.textql import FakeTextQL
from tests.fakes.wren import FakeWren

SIGNING_SECRET = "test-signing-secret"
CHANNEL = "C0123456789"
DM = "D0123456789"
USER = "U0ASKER01"
OTHER = "U0OTHER01"
TEAM = "T1"

# Tests run Slack's clock ten times faster: the fake's rate windows and the bot's budgets are
# scaled alike (50 chat.update per 6 s instead of per 60 s, a post per channel every 0.1 s
# instead of every second), so every limit and every ratio between them still holds.
TIME_SCALE = 0.1


def fast_settings(tmp_path: Any, slack_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/bot.db",
        SLACK_BOT_TOKEN="xoxb-test-token", SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack_url, SLACK_UPDATE_INTERVAL=0.05, SLACK_MAX_RETRIES=3,
        SLACK_BUDGET_WINDOW=60 * TIME_SCALE, SLACK_POST_INTERVAL=1.1 * TIME_SCALE,
        SLACK_STATUS_INTERVAL=1.0 * TIME_SCALE, SLACK_STATUS_AFTER=3.0 * TIME_SCALE,
        RUN_TIMEOUT=20.0, STOP_GRACE=2.0, STOP_POLL_INTERVAL=0.05, CHART_SCALE=1.0,
        CHART_WAIT=30.0,  # answers carry their chart however slow this machine draws it
        CHART_WORKERS=0,  # charts in-process: a worker process costs ~1 s to start per service
        # The placeholder path (chat.postMessage + chat.update) unless a test streams: the
        # streaming tests (test_slack_streaming.py) turn it on, as production has it.
        SLACK_STREAMING=False,
    )
    values.update(overrides)
    return Settings(_env_file=None, **values)


@dataclass
class SlackBot:
    """Handles for one running service under test."""

    client: TestClient
    slack: FakeSlack
    service: Service
    finished: "FinishedRuns"
    _ts: int = 1_800_000_000

    def next_ts(self) -> str:
        self._ts += 1
        return f"{self._ts}.000200"

    async def post_signed(self, body: str, content_type: str, *, secret: str = SIGNING_SECRET,
                          headers: dict[str, str] | None = None) -> Any:
        ts = str(int(time.time()))
        sig = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
        hdrs = {"Content-Type": content_type, "X-Slack-Request-Timestamp": ts,
                "X-Slack-Signature": sig, **(headers or {})}
        return await self.client.post("/slack/events", data=body.encode(), headers=hdrs)

    async def send_event(self, event: dict[str, Any], *, event_id: str | None = None,
                         retry_num: int | None = None, secret: str = SIGNING_SECRET) -> Any:
        envelope = event_callback(event, event_id)
        headers = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"} \
            if retry_num else None
        return await self.post_signed(json.dumps(envelope), "application/json", secret=secret,
                                      headers=headers)

    async def mention(self, text: str, *, channel: str = CHANNEL, user: str = USER,
                      thread_ts: str | None = None, ts: str | None = None, **kw: Any) -> dict[str, Any]:
        ts = ts or self.next_ts()
        event = mention_event(text, ts, channel=channel, user=user)
        if thread_ts:
            event["thread_ts"] = thread_ts
        resp = await self.send_event(event, **kw)
        assert resp.status == 200, await resp.text()
        return event

    async def message(self, text: str, *, channel: str = CHANNEL, user: str = USER,
                      thread_ts: str | None = None, channel_type: str = "channel",
                      ts: str | None = None, **extra: Any) -> dict[str, Any]:
        ts = ts or self.next_ts()
        event = {"type": "message", "user": user, "text": text, "ts": ts, "channel": channel,
                 "event_ts": ts, "channel_type": channel_type, "team": TEAM, **extra}
        if thread_ts:
            event["thread_ts"] = thread_ts
        resp = await self.send_event(event)
        assert resp.status == 200, await resp.text()
        return event

    async def command(self, command: str, *, text: str = "", channel: str = CHANNEL,
                      user: str = USER) -> Any:
        body = urlencode({"token": "legacy", "team_id": TEAM, "team_domain": "fake",
                          "channel_id": channel, "channel_name": "general", "user_id": user,
                          "user_name": "asker", "command": command, "text": text,
                          "api_app_id": "A1", "is_enterprise_install": "false",
                          "response_url": f"{self.slack.base_url.rsplit('/api/', 1)[0]}/respond/{user}",
                          "trigger_id": "1.2.3"})
        return await self.post_signed(body, "application/x-www-form-urlencoded")

    async def action(self, action_id: str, value: str, *, user: str = USER, channel: str = CHANNEL,
                     message_ts: str = "", thread_ts: str | None = None, user_team: str = TEAM,
                     **action_extra: Any) -> Any:
        payload = {"type": "block_actions", "team": {"id": TEAM, "domain": "fake"},
                   "user": {"id": user, "username": "someone", "team_id": user_team},
                   "api_app_id": "A1", "token": "legacy", "trigger_id": "1.2.3",
                   "container": {"type": "message", "message_ts": message_ts, "channel_id": channel,
                                 "is_ephemeral": False, **({"thread_ts": thread_ts} if thread_ts else {})},
                   "channel": {"id": channel, "name": "general"},
                   "message": {"ts": message_ts, "type": "message", "text": "",
                               **({"thread_ts": thread_ts} if thread_ts else {})},
                   "response_url": f"{self.slack.base_url.rsplit('/api/', 1)[0]}/respond/{user}",
                   "actions": [{"action_id": action_id, "block_id": "b", "value": value,
                                "type": "button", "action_ts": str(time.time()), **action_extra}]}
        return await self.post_signed("payload=" + quote(json.dumps(payload)),
                                      "application/x-www-form-urlencoded")

    # -- reading what Slack got ------------------------------------------------------------
    def replies(self, thread_ts: str, channel: str = CHANNEL) -> list[Any]:
        return [m for m in self.slack.messages(channel, thread_ts) if m.ts != thread_ts]

    def bot_replies(self, thread_ts: str, channel: str = CHANNEL) -> list[Any]:
        return [m for m in self.replies(thread_ts, channel) if m.bot_id]

    async def wait_finished(self, thread_ts: str, count: int = 1, timeout: float = 10.0) -> list[Any]:
        """Wait until ``count`` runs of the thread have delivered their final reply."""
        await self.finished.wait_for(lambda: len(self.finished.of_thread(thread_ts)) >= count, timeout)
        return self.finished.of_thread(thread_ts)

    async def dropped_duplicates(self, count: int, timeout: float = 5.0) -> None:
        """Wait until the bot has recognised ``count`` deliveries as duplicates and dropped them
        (so "it was answered once" is checked after the duplicates were handled, not before)."""
        counter = self.service.metrics.duplicates.labels("slack")
        deadline = asyncio.get_running_loop().time() + timeout
        while counter._value.get() < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{counter._value.get()} of {count} duplicates dropped")
            await asyncio.sleep(0.01)

    async def settled(self) -> None:
        """Wait for the replies' background work (retiring placeholders, clearing statuses)."""
        assert self.service.slack is not None
        await self.service.slack.sinks.tasks.wait()


def event_callback(event: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    """The Events API envelope Slack wraps ``event`` in (HTTP body or Socket Mode payload)."""
    return {"token": "legacy", "team_id": TEAM, "api_app_id": "A1", "type": "event_callback",
            "event_id": event_id or f"Ev{event.get('ts', time.time())}{event['type']}",
            "event_time": int(time.time()), "event": event}


def mention_event(text: str, ts: str, *, channel: str = CHANNEL, user: str = USER) -> dict[str, Any]:
    return {"type": "app_mention", "user": user, "text": f"<@UBOT> {text}", "ts": ts,
            "channel": channel, "event_ts": ts, "team": TEAM}


class FinishedRuns:
    """Collects the relay's on_finish callbacks; tests wait on it instead of sleeping."""

    def __init__(self) -> None:
        self.items: list[tuple[str, Any, Any]] = []
        self._cond = asyncio.Condition()

    def __call__(self, run_id: str, ref: Any, answer: Any) -> None:
        self.items.append((run_id, ref, answer))

        async def notify() -> None:
            async with self._cond:
                self._cond.notify_all()

        asyncio.get_running_loop().create_task(notify())

    def of_thread(self, thread_ts: str) -> list[Any]:
        return [answer for _, ref, answer in self.items if ref.thread == thread_ts]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        async with self._cond:
            try:
                await asyncio.wait_for(self._cond.wait_for(predicate), timeout)
            except TimeoutError:
                raise AssertionError(f"runs did not finish in {timeout}s: {self.items!r}") from None


def blocks_text(blocks: list[dict[str, Any]] | None) -> str:
    """All human-visible text in a list of blocks, for assertions."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("text", "value"):
                v = node.get(key)
                if isinstance(v, str):
                    out.append(v)
            for v in node.values():
                if isinstance(v, (dict, list)):
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(blocks or [])
    return "\n".join(out)


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(window_seconds=60 * TIME_SCALE,
                         post_message_per_second=1 / TIME_SCALE) as fake:
        yield fake


@pytest.fixture
async def fake_wren() -> AsyncIterator[FakeWren]:
    async with FakeWren() as fake:
        yield fake


@pytest.fixture
async def fake_clickzetta() -> AsyncIterator[FakeClickZetta]:
    async with FakeClickZetta() as fake:
        yield fake


@pytest.fixture
async def fake_textql() -> AsyncIterator[FakeTextQL]:
    async with FakeTextQL() as fake:
        yield fake


BotFactory = Callable[..., Any]


@pytest.fixture
async def start_bot(tmp_path: Any, fake_slack: FakeSlack) -> AsyncIterator[BotFactory]:
    """``await start_bot(BACKEND=..., ...)`` → a running SlackBot; all are closed at the end.
    ``slack=`` points it at another fake Slack than the default one (stricter limits);
    ``backend=`` gives it a backend object of our own protocol instead of a configured one."""
    started: list[TestClient] = []

    async def start(*, slack: FakeSlack | None = None, backend: Any = None,
                    **overrides: Any) -> SlackBot:
        slack = slack or fake_slack
        if backend is not None:  # the configured backend is never used: any valid one will do
            overrides = {"BACKEND": "wren", "WREN_BASE_URL": "http://unused",
                         "WREN_API_KEY": "psk-unused", **overrides}
        settings = fast_settings(tmp_path, slack.base_url, **overrides)
        service = Service(settings, backend=backend)
        client = TestClient(TestServer(service.web_app()))
        await client.start_server()
        started.append(client)
        finished = FinishedRuns()
        assert service.relay is not None
        service.relay.on_finish.append(finished)
        return SlackBot(client=client, slack=slack, service=service, finished=finished)

    yield start
    for client in reversed(started):
        await client.close()


@pytest.fixture
async def wren_bot(start_bot: BotFactory, fake_wren: FakeWren) -> SlackBot:
    return await start_bot(BACKEND="wren", WREN_BASE_URL=fake_wren.base_url,
                           WREN_API_KEY=fake_wren.api_key, WREN_PROJECT_ID="7")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> BackendHarness:
    """Each backend in turn, through its harness (tests/integration/backends.py)."""
    fixture, harness = FAKE_FIXTURES[request.param]
    return harness(request.getfixturevalue(fixture))


@pytest.fixture
def restore_logging():
    """For tests that run our logging set-up: give pytest its root handlers and levels back."""
    import logging

    root = logging.getLogger()
    saved = (root.level, list(root.handlers),
             {name: logging.getLogger(name).level for name in ("httpx", "alembic")})
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[1]:
        root.addHandler(handler)
    root.setLevel(saved[0])
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)

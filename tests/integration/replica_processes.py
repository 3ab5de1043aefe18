"""Real ``insightbot serve`` processes for the replica and crash tests, driven like Slack would.

Each replica is its own interpreter (``bench.bot_process.spawn_bot``) pointed at the fakes that
live in the test's process, so ``kill -9`` really kills: no shutdown hook, no lease released,
nothing flushed. Events reach a replica as Slack sends them — signed JSON over HTTP — and a
redelivery carries the same ``event_id`` with ``X-Slack-Retry-Num`` (Slack retries after about
0 s, 1 min and 5 min when a delivery was not acknowledged).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from slack_sdk.signature import SignatureVerifier

from bench.bot_process import BotProcess
from tests.integration.forked_bots import fork_bot
from tests.fakes.slack import FakeSlack, Message
from tests.integration.backends import BackendHarness
from tests.integration.conftest import (
    CHANNEL, SIGNING_SECRET, TEAM, TIME_SCALE, USER, blocks_text, event_callback, mention_event,
)

LEASE = 2.0  # seconds a dead replica's runs stay untouched (renewed every third; long enough
# that a busy 2-core machine does not make a live replica miss its renewals)
INTERRUPTED = "interrupted by a restart"
STOP_BUTTON = "stop_run"


def replica_env(slack: FakeSlack, backend: BackendHarness, database_url: str,
                **overrides: Any) -> dict[str, str]:
    """The settings of a test replica, as environment variables (what ``fast_settings`` gives an
    in-process service, with a short lease so a dead replica's runs move within a second)."""
    values: dict[str, Any] = dict(
        DATABASE_URL=database_url, SLACK_BOT_TOKEN="xoxb-test-token",
        SLACK_SIGNING_SECRET=SIGNING_SECRET, SLACK_API_URL=slack.base_url,
        SLACK_UPDATE_INTERVAL=0.05, SLACK_MAX_RETRIES=3, SLACK_BUDGET_WINDOW=60 * TIME_SCALE,
        SLACK_POST_INTERVAL=1.1 * TIME_SCALE, SLACK_STATUS_INTERVAL=1.0 * TIME_SCALE,
        SLACK_STATUS_AFTER=3.0 * TIME_SCALE, RUN_TIMEOUT=30.0, STOP_GRACE=2.0,
        STOP_POLL_INTERVAL=0.1, CHART_SCALE=1.0, CHART_WAIT=30.0, CHART_WORKERS=0,
        SLACK_STREAMING="false", RUN_LEASE=LEASE, LOG_LEVEL="INFO", **backend.settings())
    values.update(overrides)
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in values.items()}


class Replica:
    """One running ``insightbot serve`` and a way to send it what Slack sends."""

    def __init__(self, process: BotProcess, name: str) -> None:
        self.process = process
        self.name = name

    async def post_signed(self, body: str, content_type: str,
                          headers: dict[str, str] | None = None) -> int:
        ts = str(int(time.time()))
        sig = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=ts, body=body)
        hdrs = {"Content-Type": content_type, "X-Slack-Request-Timestamp": ts,
                "X-Slack-Signature": sig, **(headers or {})}
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{self.process.url}/slack/events", data=body.encode(),
                                    headers=hdrs) as resp:
                await resp.read()
                return resp.status

    async def deliver(self, event: dict[str, Any], *, retry_num: int = 0) -> int:
        """Send ``event`` in its Events API envelope (the same ``event_id`` every time)."""
        headers = ({"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"}
                   if retry_num else None)
        return await self.post_signed(json.dumps(event_callback(event, f"Ev{event['ts']}")),
                                      "application/json", headers)

    async def click(self, action_id: str, value: str, *, message_ts: str, thread_ts: str,
                    user: str = USER) -> int:
        payload = {"type": "block_actions", "team": {"id": TEAM, "domain": "fake"},
                   "user": {"id": user, "username": "someone", "team_id": TEAM},
                   "api_app_id": "A1", "token": "legacy", "trigger_id": "1.2.3",
                   "container": {"type": "message", "message_ts": message_ts, "channel_id": CHANNEL,
                                 "is_ephemeral": False, "thread_ts": thread_ts},
                   "channel": {"id": CHANNEL, "name": "general"},
                   "message": {"ts": message_ts, "type": "message", "text": "", "thread_ts": thread_ts},
                   "actions": [{"action_id": action_id, "block_id": "b", "value": value,
                                "type": "button", "action_ts": str(time.time())}]}
        return await self.post_signed("payload=" + quote(json.dumps(payload)),
                                      "application/x-www-form-urlencoded")


class Replicas:
    """Start, stop and kill replicas sharing one database; whatever is left is stopped."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir, self.env = workdir, env
        self.running: list[Replica] = []
        self._started = 0

    async def start(self, **overrides: str) -> Replica:
        self._started += 1
        name = f"replica-{self._started}"
        process = await fork_bot({**self.env, **overrides}, self.workdir, name=name)
        replica = Replica(process, name)
        self.running.append(replica)
        return replica

    def kill(self, replica: Replica) -> None:
        replica.process.kill()
        self.running.remove(replica)

    async def stop(self, replica: Replica) -> None:
        self.running.remove(replica)
        await replica.process.terminate()

    async def close(self) -> None:
        for replica in list(self.running):
            await self.stop(replica)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}"
                         for p in sorted(self.workdir.glob("replica-*.log")))


# -- what a person sees in the thread --------------------------------------------------------
def question(text: str, ts: str) -> dict[str, Any]:
    return mention_event(text, ts)


def bot_replies(slack: FakeSlack, thread: str) -> list[Message]:
    return [m for m in slack.messages(CHANNEL, thread) if m.ts != thread and m.bot_id]


def shown(message: Message) -> str:
    return f"{message.text or ''}\n{blocks_text(message.blocks)}"


def outcome(slack: FakeSlack, thread: str, marker: str) -> dict[str, int]:
    """Counts of what the thread shows: answers, "interrupted" notices, replies still working
    (a live Stop button)."""
    replies = bot_replies(slack, thread)
    return {"answers": sum(marker in shown(m) for m in replies),
            "interrupted": sum(INTERRUPTED in shown(m) for m in replies),
            "working": sum(STOP_BUTTON in json.dumps(m.blocks or []) for m in replies)}


def settled(slack: FakeSlack, thread: str, marker: str) -> bool:
    """The thread ended: one answer or one notice is shown and nothing is still working."""
    seen = outcome(slack, thread, marker)
    return seen["working"] == 0 and seen["answers"] + seen["interrupted"] >= 1


def mid_run(slack: FakeSlack, backend: BackendHarness, thread: str) -> bool:
    """The run is under way on the backend and has shown progress — so what a successor needs to
    resume it (ClickZetta's question id) is stored. Wren holds its answer stream before any
    event (the request is open): for it, an open request is "mid-stream"."""
    replies = bot_replies(slack, thread)
    if not replies or not backend.questions():
        return False
    return backend.name == "wren" or any(slack.edits(r.channel, r.ts) for r in replies)

"""Intake acknowledges Slack before any storage or Web API work (issue #9).

Slack retries an event not acknowledged within three seconds, so the ack must not wait for the
database, for a Web API call (Bolt's first request calls ``auth.test``), or for other events.
These tests hold both back and check that the ack still comes, and that the held work then
completes the question.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.fakes.wren import FakeWren
from tests.integration.conftest import CHANNEL, USER, SlackBot, event_callback, mention_event


def hold_storage(bot: SlackBot) -> asyncio.Event:
    """Make every event-ledger write wait for the returned gate."""
    repo = bot.service.repo
    gate = asyncio.Event()
    originals = {name: getattr(repo, name) for name in ("claim_event", "record_question")
                 if hasattr(repo, name)}

    def gated(original: Any) -> Any:
        async def call(*args: Any, **kwargs: Any) -> Any:
            await gate.wait()
            return await original(*args, **kwargs)
        return call

    for name, original in originals.items():
        setattr(repo, name, gated(original))
    return gate


async def test_http_events_are_acked_before_storage_and_web_api_work(wren_bot: SlackBot) -> None:
    slack_gate = wren_bot.slack.hold("auth.test")  # Bolt's authorization asks Slack first
    storage_gate = hold_storage(wren_bot)
    events = []
    for i in range(5):  # each returns only once its HTTP response (the ack) has arrived
        events.append(await asyncio.wait_for(wren_bot.mention(f"question {i}",
                                                              channel=f"C00000000{i}"), 2))
    assert not wren_bot.bot_replies(events[0]["ts"], channel="C000000000")  # nothing done yet
    slack_gate.set()
    storage_gate.set()
    for i, event in enumerate(events):
        [answer] = await wren_bot.wait_finished(event["ts"])
        assert answer.outcome.value == "done"


async def test_invalid_signature_is_still_refused(wren_bot: SlackBot) -> None:
    resp = await wren_bot.send_event({"type": "app_mention", "user": USER, "text": "<@UBOT> hi",
                                      "ts": "1.2", "channel": CHANNEL}, secret="wrong-secret")
    assert resp.status == 401
    await asyncio.sleep(0)
    assert not wren_bot.slack.calls_to("chat.postMessage")


async def test_socket_mode_envelopes_are_acked_before_the_work(start_bot, fake_wren: FakeWren) -> None:
    bot = await start_bot(BACKEND="wren", WREN_BASE_URL=fake_wren.base_url,
                          WREN_API_KEY=fake_wren.api_key, SLACK_APP_TOKEN="xapp-1-test")
    await bot.slack.wait_for(lambda: bool(bot.slack.sockets))
    slack_gate = bot.slack.hold("auth.test")
    storage_gate = hold_storage(bot)
    ts = bot.next_ts()
    payload = event_callback(mention_event("socket question", ts), "EvSOCKETACK")
    await bot.slack.push_envelope("events_api", payload, envelope_id="env-ack")
    await bot.slack.wait_for(lambda: "env-ack" in bot.slack.socket_acks, timeout=2)
    assert not bot.bot_replies(ts)
    slack_gate.set()
    storage_gate.set()
    [answer] = await bot.wait_finished(ts)
    assert answer.outcome.value == "done"

"""Socket Mode (SLACK_APP_TOKEN set): events, slash commands and button clicks arrive over the
websocket as envelopes; each is acknowledged on the socket once and acted on once."""

from __future__ import annotations

import time
from typing import Any

from tests.fakes.slack import FakeSlack
from tests.fakes.wren import FakeWren
from tests.integration.conftest import (
    CHANNEL, OTHER, TEAM, USER, SlackBot, blocks_text, event_callback, mention_event,
)
from tests.integration.test_slack_controls import stop_value
from tests.integration.test_slack_suggestions_and_admin import SuggestingBackend


async def socket_bot(start_bot: Any, fake_wren: FakeWren | None = None,
                     **overrides: Any) -> SlackBot:
    if fake_wren is not None:
        overrides = {"BACKEND": "wren", "WREN_BASE_URL": fake_wren.base_url,
                     "WREN_API_KEY": fake_wren.api_key, **overrides}
    bot = await start_bot(SLACK_APP_TOKEN="xapp-1-test", **overrides)
    await bot.slack.wait_for(lambda: bool(bot.slack.sockets))
    return bot


def respond_url(slack: FakeSlack, user: str) -> str:
    return f"{slack.base_url.rsplit('/api/', 1)[0]}/respond/{user}"


def command_payload(slack: FakeSlack, command: str, *, text: str = "", user: str = USER,
                    channel: str = CHANNEL) -> dict[str, Any]:
    """A ``slash_commands`` envelope's payload: the form fields of the HTTP request, as JSON."""
    return {"token": "legacy", "team_id": TEAM, "team_domain": "fake", "channel_id": channel,
            "channel_name": "general", "user_id": user, "user_name": "asker", "command": command,
            "text": text, "api_app_id": "A1", "is_enterprise_install": "false",
            "response_url": respond_url(slack, user), "trigger_id": "1.2.3"}


def click_payload(slack: FakeSlack, action_id: str, value: str, *, message_ts: str,
                  thread_ts: str, user: str = USER, channel: str = CHANNEL) -> dict[str, Any]:
    """An ``interactive`` envelope's payload: a ``block_actions`` click on a bot message."""
    return {"type": "block_actions", "team": {"id": TEAM, "domain": "fake"},
            "user": {"id": user, "username": "someone", "team_id": TEAM},
            "api_app_id": "A1", "token": "legacy", "trigger_id": "1.2.3",
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel,
                          "is_ephemeral": False, "thread_ts": thread_ts},
            "channel": {"id": channel, "name": "general"},
            "message": {"ts": message_ts, "type": "message", "text": "", "thread_ts": thread_ts},
            "response_url": respond_url(slack, user),
            "actions": [{"action_id": action_id, "block_id": "b", "value": value,
                         "type": "button", "action_ts": str(time.time())}]}


async def mention_over_socket(bot: SlackBot, text: str, envelope_id: str) -> str:
    ts = bot.next_ts()
    await bot.slack.push_envelope("events_api", event_callback(mention_event(text, ts), f"Ev{ts}"),
                                  envelope_id=envelope_id)
    return ts


async def acked_once(slack: FakeSlack, envelope_id: str) -> None:
    await slack.wait_for(lambda: envelope_id in slack.socket_acks)
    assert slack.socket_acks.count(envelope_id) == 1


async def fence(bot: SlackBot, envelope_id: str) -> None:
    """Another user's /insight-history over the socket, answered: what the envelopes before it
    would have sent twice has been sent by then."""
    before = len(bot.slack.responses_to(OTHER))
    await bot.slack.push_envelope("slash_commands",
                                  command_payload(bot.slack, "/insight-history", user=OTHER),
                                  envelope_id=envelope_id)
    await bot.slack.wait_for(lambda: len(bot.slack.responses_to(OTHER)) > before)


async def test_socket_mode_event_is_acked_and_answered_once(start_bot, fake_wren: FakeWren) -> None:
    bot = await socket_bot(start_bot, fake_wren)
    ts = bot.next_ts()
    payload = event_callback(mention_event("socket question", ts), "EvSOCKET1")
    await bot.slack.push_envelope("events_api", payload, envelope_id="env-1")
    await bot.slack.wait_for(lambda: "env-1" in bot.slack.socket_acks)
    # Slack redelivers over the socket when it thinks the ack was late
    await bot.slack.push_envelope("events_api", payload, envelope_id="env-2", retry_attempt=1)
    [answer] = await bot.wait_finished(ts)
    await bot.dropped_duplicates(1)
    assert answer.outcome.value == "done"
    assert len(fake_wren.requests_to("/api/v1/ask")) == 1
    assert bot.slack.calls_to("apps.connections.open")
    assert bot.slack.socket_acks.count("env-1") == bot.slack.socket_acks.count("env-2") == 1


async def test_slash_history_over_the_socket_is_acked_and_answered_once(
        start_bot, fake_wren: FakeWren) -> None:
    bot = await socket_bot(start_bot, fake_wren)
    ts = await mention_over_socket(bot, "revenue by state", "env-q")
    await bot.wait_finished(ts)
    await bot.slack.push_envelope("slash_commands", command_payload(bot.slack, "/insight-history"),
                                  envelope_id="env-history")
    await acked_once(bot.slack, "env-history")
    await bot.slack.wait_for(lambda: bool(bot.slack.responses_to(USER)))
    await fence(bot, "env-fence")
    [body] = bot.slack.responses_to(USER)
    assert body["response_type"] == "ephemeral"
    assert "revenue by state" in blocks_text(body["blocks"])


async def test_slash_stop_over_the_socket_stops_the_callers_run(start_bot,
                                                                 fake_wren: FakeWren) -> None:
    bot = await socket_bot(start_bot, fake_wren)
    fake_wren.hold_ask()
    ts = await mention_over_socket(bot, "slow question", "env-slow")
    await fake_wren.wait_for_request("/api/v1/ask")
    await bot.slack.push_envelope("slash_commands", command_payload(bot.slack, "/insight-stop"),
                                  envelope_id="env-stop")
    await acked_once(bot.slack, "env-stop")
    [answer] = await bot.wait_finished(ts)
    assert answer.outcome.value == "stopped"
    await bot.slack.wait_for(lambda: bool(bot.slack.responses_to(USER)))
    await fence(bot, "env-fence")
    [body] = bot.slack.responses_to(USER)
    assert body["response_type"] == "ephemeral" and "Stopping" in body["text"]
    assert len(fake_wren.requests_to("/api/v1/ask")) == 1


async def test_stop_button_over_the_socket_stops_the_run_once(start_bot,
                                                               fake_wren: FakeWren) -> None:
    bot = await socket_bot(start_bot, fake_wren)
    fake_wren.hold_ask()
    ts = await mention_over_socket(bot, "slow question", "env-slow")
    await fake_wren.wait_for_request("/api/v1/ask")
    await bot.slack.wait_for(lambda: bool(bot.bot_replies(ts)))
    run_id, reply_ts = stop_value(bot, ts)
    await bot.slack.push_envelope("interactive", click_payload(bot.slack, "stop_run", run_id,
                                                               message_ts=reply_ts, thread_ts=ts),
                                  envelope_id="env-click")
    await acked_once(bot.slack, "env-click")
    [answer] = await bot.wait_finished(ts)
    assert answer.outcome.value == "stopped"
    await fake_wren.wait_for_cancel()
    await bot.settled()
    text = blocks_text(bot.slack.message(CHANNEL, reply_ts).blocks)
    assert text.count(f"Stopped by <@{USER}>") == 1
    run = await bot.service.repo.get_run(run_id)
    assert run.status == "stopped" and run.stopped_by == USER


async def test_a_suggestion_clicked_over_the_socket_asks_once(start_bot) -> None:
    backend = SuggestingBackend()
    bot = await socket_bot(start_bot, backend=backend)
    ts = await mention_over_socket(bot, "revenue last quarter", "env-q")
    await bot.wait_finished(ts)
    reply = next(m for m in bot.bot_replies(ts) if m.blocks and any(
        b["type"] == "actions" for b in m.blocks))
    button = next(el for b in reply.blocks if b["type"] == "actions" for el in b["elements"])
    click = click_payload(bot.slack, button["action_id"], button["value"], message_ts=reply.ts,
                          thread_ts=ts, user=OTHER)
    # a double click: two envelopes for one button of one message
    await bot.slack.push_envelope("interactive", click, envelope_id="env-click-1")
    await bot.slack.push_envelope("interactive", click, envelope_id="env-click-2")
    await acked_once(bot.slack, "env-click-1")
    await acked_once(bot.slack, "env-click-2")
    answers = await bot.wait_finished(ts, count=2)
    await bot.dropped_duplicates(1)
    assert [a.outcome.value for a in answers] == ["done", "done"]
    assert [r.question for r in backend.asked] == ["revenue last quarter", button["value"]]
    asked_by = [m.text for m in bot.bot_replies(ts) if "asked:" in m.text]
    assert asked_by == [f"<@{OTHER}> asked: {button['value']}"]


async def test_an_interaction_nothing_handles_is_still_acknowledged(start_bot,
                                                                     fake_wren: FakeWren) -> None:
    """A submission of a view the bot never opened (found by the fuzzer with 500 examples): over
    HTTP Bolt answers 404; over the socket it used to send nothing, so Slack would wait, show the
    person an error and send it again."""
    bot = await socket_bot(start_bot, fake_wren)
    submission = {"type": "view_submission", "team": {"id": "T1"}, "user": {"id": USER},
                  "api_app_id": "A1", "token": "legacy", "trigger_id": "1.2.3",
                  "view": {"id": "V1", "callback_id": "", "type": "modal", "state": None,
                           "private_metadata": None}}
    await bot.slack.push_envelope("interactive", submission, envelope_id="env-unknown-view")
    await acked_once(bot.slack, "env-unknown-view")

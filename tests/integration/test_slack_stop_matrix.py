"""Stop by every Slack route, for every backend: the backend is cancelled its own way, the
reply ends "stopped" with what had arrived, and nothing is edited after that."""

from __future__ import annotations

import pytest

from tests.integration.backends import BackendHarness
from tests.integration.quiet import quiet
from tests.integration.conftest import CHANNEL, USER, SlackBot, blocks_text
from tests.integration.test_slack_controls import stop_value

ROUTES = ["button", "typed", "agent_session", "slash_command"]


async def _stop(bot: SlackBot, route: str, thread_ts: str) -> None:
    if route == "button":
        run_id, reply_ts = stop_value(bot, thread_ts)
        await bot.action("stop_run", run_id, message_ts=reply_ts, thread_ts=thread_ts)
    elif route == "typed":
        await bot.message("stop", thread_ts=thread_ts)
    elif route == "agent_session":
        await bot.send_event({"type": "agent_session_stopped", "channel": CHANNEL,
                              "thread_ts": thread_ts, "user": USER, "event_ts": "3.3",
                              "streaming_message_ts": []}, event_id=f"EvStop{thread_ts}")
    else:
        await bot.command("/insight-stop")


@pytest.mark.parametrize("route", ROUTES)
async def test_stop_route_cancels_backend_and_freezes_the_reply(start_bot, backend: BackendHarness,
                                                                route: str) -> None:
    bot = await start_bot(**backend.settings())
    release = backend.hold()
    event = await bot.mention("a long analysis")
    await backend.wait_asked()
    await bot.slack.wait_for(lambda: bool(bot.bot_replies(event["ts"])))
    await _stop(bot, route, event["ts"])
    [answer] = await bot.wait_finished(event["ts"])
    assert answer.outcome.value == "stopped" and answer.stopped_by == USER
    await backend.wait_cancelled()
    reply = bot.bot_replies(event["ts"])[0]
    edits = len(bot.slack.edits(CHANNEL, reply.ts))
    final = blocks_text(bot.slack.message(CHANNEL, reply.ts).blocks)
    assert f"Stopped by <@{USER}> after" in final
    assert "stop_run" not in str(bot.slack.message(CHANNEL, reply.ts).blocks)
    run = (await bot.service.repo.list_runs("slack", "T1", channel=CHANNEL))[0]
    assert run.status == "stopped" and run.stopped_by == USER
    release.set()  # the backend would carry on: nothing of it may reach the reply
    await quiet(bot.service)  # the work that could still send
    assert len(bot.slack.edits(CHANNEL, reply.ts)) == edits

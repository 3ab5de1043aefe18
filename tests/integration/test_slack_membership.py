"""Slack Connect: people from other organisations in a shared channel are refused, privately,
and nothing of theirs reaches the backend — unless SLACK_EXTERNAL_TEAMS lets their team in."""

from __future__ import annotations

from typing import Any

from tests.fakes.wren import FakeWren
from tests.integration.backends import WrenHarness
from tests.integration.conftest import CHANNEL, SlackBot, mention_event
from tests.integration.quiet import quiet

OUTSIDER = "U0PARTNER1"
PARTNER_TEAM = "T0PARTNER"


async def _external_mention(bot: SlackBot, text: str) -> dict[str, Any]:
    event = mention_event(text, bot.next_ts(), user=OUTSIDER)
    event["user_team"] = PARTNER_TEAM  # as Slack names the asker's own team in shared channels
    event["source_team"] = PARTNER_TEAM
    resp = await bot.send_event(event)
    assert resp.status == 200
    return event


async def test_an_external_user_is_refused_privately_and_the_backend_never_asked(
        start_bot: Any, fake_wren: FakeWren) -> None:
    bot = await start_bot(**WrenHarness(fake_wren).settings())
    await _external_mention(bot, "What is your revenue by state?")
    await bot.slack.wait_for(lambda: bool(bot.slack.ephemerals))
    [refusal] = bot.slack.ephemerals
    assert refusal.user == OUTSIDER and "members of this workspace only" in refusal.text
    await quiet(bot.service)
    assert fake_wren.requests_to("ask") == [] and bot.slack.messages(CHANNEL) == []
    assert await bot.service.repo.list_runs("slack", "T1") == []
    # a colleague in the same channel is answered as before
    mine = await bot.mention("What is our revenue by state?")
    [answer] = await bot.wait_finished(mine["ts"])
    assert answer.outcome.value == "done"


async def test_an_allowed_partner_team_may_ask(start_bot: Any, fake_wren: FakeWren) -> None:
    bot = await start_bot(SLACK_EXTERNAL_TEAMS=f"E0SOMEORG, {PARTNER_TEAM}",
                          **WrenHarness(fake_wren).settings())
    event = await _external_mention(bot, "Revenue by state?")
    [answer] = await bot.wait_finished(event["ts"])
    assert answer.outcome.value == "done" and not bot.slack.ephemerals


async def test_an_external_user_cannot_ask_through_a_suggested_follow_up(
        start_bot: Any, fake_wren: FakeWren) -> None:
    bot = await start_bot(**WrenHarness(fake_wren).settings())
    event = await bot.mention("Which states pay the most?")
    await bot.wait_finished(event["ts"])
    asks = len(fake_wren.requests_to("ask"))
    await bot.action("ask_suggestion:0", "Top 10 states by revenue", user=OUTSIDER,
                     message_ts=event["ts"], thread_ts=event["ts"], user_team=PARTNER_TEAM)
    await bot.slack.wait_for(lambda: bool(bot.slack.ephemerals))
    assert "members of this workspace only" in bot.slack.ephemerals[-1].text
    await quiet(bot.service)
    assert len(fake_wren.requests_to("ask")) == asks

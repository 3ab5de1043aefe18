"""Delivery under Slack's rate and size limits: nothing lost, final state always lands."""

from __future__ import annotations

import asyncio

import pytest

from tests.fakes.slack import FakeSlack
from tests.fakes.wren import FakeWren
from tests.integration.conftest import SlackBot, blocks_text


async def test_rate_limited_final_edit_is_retried_not_lost(wren_bot: SlackBot) -> None:
    # every chat.update is refused once with a 429 (Retry-After: 1)
    wren_bot.slack.fail_next("chat.update", error="ratelimited", status=429, retry_after=1, times=2)
    event = await wren_bot.mention("revenue please")
    [answer] = await wren_bot.wait_finished(event["ts"], timeout=15)
    await wren_bot.settled()
    assert answer.outcome.value == "done"
    reply = wren_bot.bot_replies(event["ts"])[0]
    assert "SELECT" in blocks_text(reply.blocks)
    assert any(c.status == 429 for c in wren_bot.slack.calls_to("chat.update"))


@pytest.fixture
async def strict_slack() -> FakeSlack:
    # a workspace budget of 12 chat.update per 3 s window
    async with FakeSlack(window_seconds=3.0, limits={"chat.update": 12},
                         post_message_burst=50) as fake:
        yield fake


async def test_concurrent_runs_share_the_workspace_budget_without_429(
        start_bot, strict_slack: FakeSlack, fake_wren: FakeWren) -> None:
    bot = await start_bot(slack=strict_slack, BACKEND="wren", WREN_BASE_URL=fake_wren.base_url,
                          WREN_API_KEY=fake_wren.api_key, SLACK_UPDATE_BUDGET=10,
                          SLACK_BUDGET_WINDOW=3.0, SLACK_UPDATE_INTERVAL=0.0)
    events = [await bot.mention(f"question {i}") for i in range(6)]
    await bot.finished.wait_for(lambda: len(bot.finished.items) == 6, timeout=30)
    await bot.settled()
    assert all(a.outcome.value == "done" for _, _, a in bot.finished.items)
    assert not [c for c in strict_slack.calls_to("chat.update") if c.status == 429]
    for ev in events:
        assert "SELECT" in blocks_text(bot.bot_replies(ev["ts"])[0].blocks)


async def test_final_rejected_by_slack_falls_back_to_plain_text(wren_bot: SlackBot) -> None:
    wren_bot.slack.fail_next("chat.update", error="invalid_blocks", times=50)
    event = await wren_bot.mention("blocks will fail")
    await wren_bot.wait_finished(event["ts"])
    await wren_bot.settled()
    replies = wren_bot.bot_replies(event["ts"])
    assert any("SELECT" in m.text for m in replies)
    assert not any("Working on it" in blocks_text(m.blocks) + m.text for m in replies)


async def test_placeholder_failure_still_delivers_the_answer(wren_bot: SlackBot) -> None:
    wren_bot.slack.fail_next("chat.postMessage", error="internal_error")
    event = await wren_bot.mention("placeholder fails")
    [answer] = await wren_bot.wait_finished(event["ts"])
    assert answer.outcome.value == "done"
    assert any("SELECT" in blocks_text(m.blocks) for m in wren_bot.bot_replies(event["ts"]))


async def test_long_sql_stays_collapsed_and_view_sql_opens_all_of_it(wren_bot: SlackBot,
                                                                      fake_wren: FakeWren) -> None:
    columns = ",\n  ".join(f"SUM(col_{i}) AS total_{i}" for i in range(80))
    sql = f"SELECT\n  {columns}\nFROM wide_table\nGROUP BY region"
    fake_wren.script_ask(sql=sql, summary="Wide result.")
    event = await wren_bot.mention("wide")
    await wren_bot.wait_finished(event["ts"])
    reply = wren_bot.bot_replies(event["ts"])[0]
    text = blocks_text(reply.blocks)
    assert "Wide result." in text and "total_3" in text and "total_79" not in text
    [view] = [e for b in reply.blocks if b["type"] == "actions" for e in b["elements"]
              if e["action_id"] == "view_sql"]
    await wren_bot.action("view_sql", view["value"], message_ts=reply.ts, thread_ts=event["ts"])
    await wren_bot.slack.wait_for(lambda: bool(wren_bot.slack.opened_views))
    [modal] = wren_bot.slack.opened_views
    shown = blocks_text(modal["blocks"])
    assert modal["trigger_id"] == "1.2.3" and "total_0" in shown and "total_79" in shown
    assert "FROM wide_table" in shown


async def test_no_placeholder_left_working_when_the_backend_crashes(wren_bot: SlackBot,
                                                                   fake_wren: FakeWren) -> None:
    fake_wren.script_raw(200, "this is not json", content_type="application/json")
    event = await wren_bot.mention("crash")
    [answer] = await wren_bot.wait_finished(event["ts"])
    assert answer.outcome.value == "failed"
    reply = wren_bot.bot_replies(event["ts"])[0]
    assert "Working on it" not in blocks_text(reply.blocks)
    assert "Reference:" in blocks_text(reply.blocks)
    await asyncio.sleep(0)

"""TextQL Ana through Slack: streamed blocks, table preview, images, stop and history."""

from __future__ import annotations

from typing import AsyncIterator

import pytest

from tests.fakes.textql import FakeTextQL
from tests.integration.conftest import CHANNEL, USER, SlackBot, blocks_text
from tests.integration.test_slack_controls import stop_value


@pytest.fixture
async def fake_textql() -> AsyncIterator[FakeTextQL]:
    async with FakeTextQL() as fake:
        yield fake


async def _bot(start_bot, fake: FakeTextQL, mode: str = "legacy") -> SlackBot:
    return await start_bot(BACKEND="textql", TEXTQL_BASE_URL=fake.base_url,
                           TEXTQL_MEMBER_ID=fake.member_id, TEXTQL_API_KEY=fake.api_key,
                           TEXTQL_MODE=mode, TEXTQL_STREAM_IDLE_TIMEOUT=2.0)


async def test_streamed_answer_with_table_preview_code_and_image(start_bot, fake_textql) -> None:
    bot = await _bot(start_bot, fake_textql)
    event = await bot.mention("Which city has the largest store?")
    [answer] = await bot.wait_finished(event["ts"])
    assert answer.outcome.value == "done"
    reply = bot.bot_replies(event["ts"])[0]
    text = blocks_text(reply.blocks)
    assert "New York" in text
    # the OntologyBlock preview table, as a native table with its numbers formatted
    [table] = [b for b in reply.blocks if b["type"] == "data_table"]
    assert {"type": "raw_number", "value": 9997773, "text": "9,997,773"} in table["rows"][1]
    assert "1 row" in text
    assert "SELECT" in text.upper()
    assert bot.slack.edits(CHANNEL, reply.ts)  # progressive edits
    images = [f for f in bot.slack.files.values() if f.data and f.data[:4] == b"\x89PNG"]
    assert images and images[0].thread_ts == event["ts"]
    ana = fake_textql.requests_to("/api/ana")[0]
    assert ana.headers.get("Authorization", "").startswith("Basic ")


async def test_stop_mid_stream_keeps_what_arrived(start_bot, fake_textql) -> None:
    fake_textql.hold_after = 5  # text block arrives, then the stream stays open
    bot = await _bot(start_bot, fake_textql)
    event = await bot.mention("long analysis")
    await bot.slack.wait_for(lambda: any("largest store" in blocks_text(m.blocks)
                                         for m in bot.bot_replies(event["ts"])), timeout=10)
    run_id, reply_ts = stop_value(bot, event["ts"])
    await bot.action("stop_run", run_id, message_ts=reply_ts, thread_ts=event["ts"])
    [answer] = await bot.wait_finished(event["ts"])
    assert answer.outcome.value == "stopped"
    final = blocks_text(bot.slack.message(CHANNEL, reply_ts).blocks)
    assert "largest store" in final and f"Stopped by <@{USER}>" in final
    await fake_textql.stream_closed.wait()


async def test_v2_follow_up_keeps_chat_and_stop_cancels(start_bot, fake_textql) -> None:
    bot = await _bot(start_bot, fake_textql, mode="v2")
    first = await bot.mention("revenue by region")
    await bot.wait_finished(first["ts"])
    await bot.message("and by month?", thread_ts=first["ts"])
    await bot.wait_finished(first["ts"], count=2)
    streams = fake_textql.requests_to("/v2/chats/stream")
    assert len(streams) == 2 and streams[1].json.get("chat_id")
    fake_textql.hold_after = 2
    await bot.message("one more, slowly", thread_ts=first["ts"])
    await fake_textql.wait_for_request("/v2/chats/stream", count=3)
    await bot.slack.wait_for(lambda: len(bot.bot_replies(first["ts"])) >= 3)
    await bot.message("stop", thread_ts=first["ts"])
    answers = await bot.wait_finished(first["ts"], count=3)
    assert answers[-1].outcome.value == "stopped"
    assert fake_textql.cancelled_chats == [streams[1].json["chat_id"]]


async def test_faults_end_visibly(start_bot, fake_textql) -> None:
    bot = await _bot(start_bot, fake_textql)
    fake_textql.end_without_done = True
    e1 = await bot.mention("cut stream")
    [a1] = await bot.wait_finished(e1["ts"])
    fake_textql.end_without_done = False
    fake_textql.fail_status = 401
    e2 = await bot.mention("bad key")
    [a2] = await bot.wait_finished(e2["ts"])
    for event, answer in ((e1, a1), (e2, a2)):
        assert answer.outcome.value == "failed"
        assert "Reference:" in blocks_text(bot.bot_replies(event["ts"])[0].blocks)


async def test_history_shows_textql_chats_of_the_conversation(start_bot, fake_textql) -> None:
    from tests.fakes.textql import HISTORY_CHAT_ID, legacy_script

    fake_textql.legacy_script = legacy_script(chat_id=HISTORY_CHAT_ID)  # a chat TextQL lists
    bot = await _bot(start_bot, fake_textql)
    event = await bot.mention("Which city has the largest store?")
    await bot.wait_finished(event["ts"])
    await bot.command("/insight-history")
    await bot.slack.wait_for(lambda: bool(bot.slack.responses_to(USER)))
    text = blocks_text(bot.slack.responses_to(USER)[-1]["blocks"])
    assert "Which city has the largest store?" in text
    assert "TextQL chats behind these answers" in text and HISTORY_CHAT_ID in text

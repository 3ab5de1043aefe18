"""The Slack ↔ Wren slice, driven like Slack drives it: signed HTTP requests in, Web API calls out."""

from __future__ import annotations

from tests.fakes.wren import FakeWren
from tests.integration.conftest import CHANNEL, DM, SlackBot, blocks_text


async def test_mention_gets_placeholder_edits_and_final_answer_with_sql_and_chart(
        wren_bot: SlackBot, fake_wren: FakeWren) -> None:
    event = await wren_bot.mention("Which states pay the most?")
    answers = await wren_bot.wait_finished(event["ts"])
    assert answers[0].outcome.value == "done"

    replies = wren_bot.bot_replies(event["ts"])
    placeholder = replies[0]
    posts = wren_bot.slack.calls_to("chat.postMessage")
    assert posts[0].args["thread_ts"] == event["ts"]
    assert "Working on it" in blocks_text(posts[0].args["blocks"]) or "Working" in posts[0].args["text"]
    edits = wren_bot.slack.edits(CHANNEL, placeholder.ts)
    assert edits, "the placeholder was never edited"
    final_text = blocks_text(placeholder.blocks)
    assert "SELECT" in final_text  # the SQL
    assert "stop_run" not in str(placeholder.blocks)  # the Stop button is gone at the end
    assert "\\n" not in final_text  # literal escapes from Wren were unescaped
    # the chart PNG was uploaded into the same thread
    files = list(wren_bot.slack.files.values())
    assert len(files) == 1
    assert files[0].data[:8] == b"\x89PNG\r\n\x1a\n"
    assert files[0].thread_ts == event["ts"] and files[0].channel == CHANNEL
    ask = fake_wren.requests_to("/api/v1/ask")[0]
    assert ask.headers.get("X-Project-Id") == "7"


async def test_follow_up_in_thread_reuses_thread_id_without_mention(wren_bot: SlackBot,
                                                                     fake_wren: FakeWren) -> None:
    first = await wren_bot.mention("Revenue by state")
    await wren_bot.wait_finished(first["ts"])
    await wren_bot.message("and only for 2024?", thread_ts=first["ts"])
    await wren_bot.wait_finished(first["ts"], count=2)
    asks = fake_wren.requests_to("/api/v1/ask")
    assert len(asks) == 2
    assert "threadId" not in asks[0].json or not asks[0].json.get("threadId")
    assert asks[1].json["threadId"]
    charts = fake_wren.requests_to("/api/v1/generate_vega_chart")
    assert asks[1].json["threadId"] == charts[0].json["threadId"]


async def test_dm_is_answered_in_the_dm(wren_bot: SlackBot) -> None:
    event = await wren_bot.message("How many customers?", channel=DM, channel_type="im")
    answers = await wren_bot.wait_finished(event["ts"])
    assert answers[0].outcome.value == "done"
    assert wren_bot.bot_replies(event["ts"], channel=DM)


async def test_redelivered_event_and_mention_message_pair_answer_once(wren_bot: SlackBot,
                                                                     fake_wren: FakeWren) -> None:
    event = await wren_bot.mention("Top categories")
    # Slack retries the same event, and also sends the message.channels twin of the mention
    await wren_bot.send_event(event, event_id="EvRETRY", retry_num=1)
    await wren_bot.message(event["text"], ts=event["ts"])
    await wren_bot.wait_finished(event["ts"])
    await wren_bot.dropped_duplicates(1)  # the retry; the message twin is not even considered
    assert len(fake_wren.requests_to("/api/v1/ask")) == 1
    runs = await wren_bot.service.repo.list_runs("slack", "T1", channel=CHANNEL)
    assert len(runs) == 1
    answers = [m for m in wren_bot.bot_replies(event["ts"]) if "São Paulo" in blocks_text(m.blocks)]
    assert len(answers) == 1


async def test_invalid_signature_is_rejected_without_backend_call(wren_bot: SlackBot,
                                                                  fake_wren: FakeWren) -> None:
    event = {"type": "app_mention", "user": "U1", "text": "<@UBOT> hi", "ts": "1.2",
             "channel": CHANNEL}
    resp = await wren_bot.send_event(event, secret="not-the-secret")
    assert resp.status == 401
    assert fake_wren.requests_to("/api/v1/ask") == []
    assert wren_bot.slack.calls_to("chat.postMessage") == []


async def test_empty_mention_gets_help_not_a_backend_call(wren_bot: SlackBot, fake_wren: FakeWren) -> None:
    event = await wren_bot.mention("")
    await wren_bot.slack.wait_for(lambda: bool(wren_bot.slack.calls_to("chat.postMessage")))
    assert "question" in wren_bot.slack.calls_to("chat.postMessage")[0].args["text"].lower()
    assert fake_wren.requests_to("/api/v1/ask") == []
    assert event


async def test_backend_error_shows_message_and_reference(wren_bot: SlackBot, fake_wren: FakeWren) -> None:
    fake_wren.script_ask_error(status=400, code="NO_RELEVANT_DATA")
    event = await wren_bot.mention("What is the weather?")
    [answer] = await wren_bot.wait_finished(event["ts"])
    assert answer.outcome.value == "failed"
    reply = wren_bot.bot_replies(event["ts"])[0]
    text = blocks_text(reply.blocks)
    run = (await wren_bot.service.repo.list_runs("slack", "T1", channel=CHANNEL))[0]
    assert "can't find" in text.lower() or "cannot find" in text.lower()
    assert f"Reference: `{run.id}`" in text
    assert run.status == "failed"


async def test_backend_500_and_timeout_end_visibly(start_bot, fake_wren: FakeWren) -> None:
    bot = await start_bot(BACKEND="wren", WREN_BASE_URL=fake_wren.base_url,
                          WREN_API_KEY=fake_wren.api_key, WREN_TIMEOUT=0.3)
    fake_wren.script_raw(500, "<html>Bad gateway</html>")
    first = await bot.mention("q1")
    [a1] = await bot.wait_finished(first["ts"])
    fake_wren.script_delay(2.0)
    second = await bot.mention("q2")
    [a2] = await bot.wait_finished(second["ts"])
    for event, answer in ((first, a1), (second, a2)):
        assert answer.outcome.value == "failed"
        text = blocks_text(bot.bot_replies(event["ts"])[0].blocks)
        assert "Reference:" in text
        assert "Working on it" not in text


async def test_non_sql_answer_is_shown_without_chart(wren_bot: SlackBot, fake_wren: FakeWren) -> None:
    fake_wren.script_ask_non_sql("I can help you analyse orders.\\nTry asking about revenue.")
    event = await wren_bot.mention("hello there")
    [answer] = await wren_bot.wait_finished(event["ts"])
    assert answer.outcome.value == "done"
    text = blocks_text(wren_bot.bot_replies(event["ts"])[0].blocks)
    assert "I can help you analyse orders.\nTry asking" in text
    assert fake_wren.requests_to("/api/v1/generate_vega_chart") == []
    assert not wren_bot.slack.files


async def test_long_answer_is_delivered_whole_across_messages(wren_bot: SlackBot,
                                                              fake_wren: FakeWren) -> None:
    paragraphs = [f"Paragraph {i}: " + ("insight " * 60) for i in range(60)]  # ~30k characters
    fake_wren.script_ask(summary="\\n\\n".join(paragraphs))
    event = await wren_bot.mention("Tell me everything")
    [answer] = await wren_bot.wait_finished(event["ts"])
    assert answer.outcome.value == "done"
    replies = [m for m in wren_bot.bot_replies(event["ts"]) if not m.files]
    assert len(replies) > 1
    delivered = "\n".join(blocks_text(m.blocks) for m in replies)
    for i in range(60):
        assert f"Paragraph {i}:" in delivered
    errors = [c for c in wren_bot.slack.calls if c.response.get("ok") is False]
    assert not [c for c in errors if c.response.get("error") != "ratelimited"], errors


async def test_healthz_and_metrics(wren_bot: SlackBot) -> None:
    resp = await wren_bot.client.get("/healthz")
    assert resp.status == 200 and (await resp.json()) == {"status": "ok"}
    resp = await wren_bot.client.get("/metrics")
    assert resp.status == 200 and "insightbot_runs_active" in await resp.text()


async def test_own_messages_other_bots_edits_and_unknown_threads_are_ignored(
        wren_bot: SlackBot, fake_wren: FakeWren) -> None:
    first = await wren_bot.mention("start a thread")
    await wren_bot.wait_finished(first["ts"])
    # another bot in the thread, an edit, our own message, and a thread the bot is not in
    await wren_bot.message("bot chatter", thread_ts=first["ts"], bot_id="B999", subtype="bot_message")
    await wren_bot.message("edited", thread_ts=first["ts"], subtype="message_changed")
    await wren_bot.message("my own reply", thread_ts=first["ts"], user="UBOT")
    await wren_bot.message("unrelated thread", thread_ts="1700000000.999999")
    await wren_bot.message("plain channel chatter")
    # a real follow-up afterwards proves the listener was alive all along
    await wren_bot.message("real follow-up", thread_ts=first["ts"])
    await wren_bot.wait_finished(first["ts"], count=2)
    questions = [r.json["question"] for r in fake_wren.requests_to("/api/v1/ask")]
    assert questions == ["start a thread", "real follow-up"]

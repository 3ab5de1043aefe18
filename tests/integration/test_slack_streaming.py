"""Native Slack streaming (SLACK_STREAMING, on by default): the agent's work as a task
timeline that ticks off, the answer text as it grows, then the finished answer in the same
message — on every backend, with stop, Slack's stream expiry, a spent Tier 2 budget and long
answers. The fake Slack enforces the streaming contract (tests/fakes/slack.py: tiers, chunk
validation, stream-state errors, expiry)."""

from __future__ import annotations

from typing import Any

from adapters.answer import PartKind
from bot.delivery.timeline import timeline
from tests.fakes.slack import FakeSlack
from tests.integration.backends import BackendHarness
from tests.integration.quiet import quiet
from tests.integration.conftest import CHANNEL, TEAM, TIME_SCALE, USER, SlackBot, blocks_text

STREAMING = {"SLACK_STREAMING": True}


async def _streamed_question(bot: SlackBot, backend: BackendHarness, text: str) -> tuple[dict[str, Any], str]:
    """Ask while the backend holds its answer, so the reply is live when the answer comes."""
    release = backend.hold()
    event = await bot.mention(text)
    await backend.wait_asked()
    await bot.slack.wait_for(lambda: bool(bot.slack.calls_to("chat.startStream")))
    [start] = bot.slack.calls_to("chat.startStream")
    assert start.status == 200 and start.response.get("ok"), start.response
    release.set()
    return event, str(start.response["ts"])


async def _held_stream(bot: SlackBot, backend: BackendHarness) -> tuple[Any, dict[str, Any], str]:
    """A question whose stream is live while the backend holds the analysis (its release,
    the event, the stream's ts)."""
    release = backend.hold()
    event = await bot.mention("a long analysis")
    await backend.wait_asked()
    await bot.slack.wait_for(lambda: bool(bot.slack.calls_to("chat.startStream")))
    return release, event, str(bot.slack.calls_to("chat.startStream")[0].response["ts"])


def _task_history(bot: SlackBot, ts: str) -> dict[str, list[str]]:
    """Each task's statuses in the order the stream sent them."""
    history: dict[str, list[str]] = {}
    calls = [c for c in bot.slack.calls if c.method in
             ("chat.startStream", "chat.appendStream", "chat.stopStream") and c.status == 200
             and c.response.get("ok") and (c.args.get("ts") == ts or c.response.get("ts") == ts)]
    for call in sorted(calls, key=lambda c: c.at):
        for chunk in call.args.get("chunks") or []:
            if chunk.get("type") == "task_update":
                history.setdefault(chunk["id"], []).append(chunk["status"])
    return history


async def test_steps_stream_as_tasks_then_the_message_becomes_the_answer(
        start_bot: Any, backend: BackendHarness) -> None:
    bot = await start_bot(**STREAMING, **backend.settings())
    event, ts = await _streamed_question(bot, backend, "Which states pay the most?")
    [answer] = await bot.wait_finished(event["ts"])
    assert answer.outcome.value == "done"

    [start] = bot.slack.calls_to("chat.startStream")
    assert start.args["thread_ts"] == event["ts"] and start.args["task_display_mode"] == "plan"
    # in a channel Slack requires the asker as the recipient
    assert start.args["recipient_user_id"] == USER and start.args["recipient_team_id"] == TEAM
    # the stream is the reply: no placeholder was posted besides it
    assert bot.bot_replies(event["ts"])[0].ts == ts
    assert not [c for c in bot.slack.calls_to("chat.postMessage")
                if c.args.get("thread_ts") == event["ts"] and c.at < start.at]

    message = bot.slack.message(CHANNEL, ts)
    expected = [t.id for t in timeline(answer)]
    assert expected and list(message.tasks) == expected  # the tasks, in the order work began
    assert all(t["status"] == "complete" for t in message.tasks.values()), message.tasks
    for task, statuses in _task_history(bot, ts).items():
        assert statuses[-1] == "complete", (task, statuses)
        assert statuses.count("complete") == 1, (task, statuses)  # no task completes twice
    # the answer text streamed: what Slack showed is the answer's text, whole
    streamed = "".join(c.get("text", "") for c in message.chunks if c.get("type") == "markdown_text")
    assert streamed and streamed == answer.text
    # the stop finished the answer in place: what belongs below the text came with it, and the
    # message was not replaced (no chat.update: the streamed text and timeline stay)
    [stop] = bot.slack.calls_to("chat.stopStream")
    assert stop.status == 200 and stop.response.get("ok") and stop.args["ts"] == ts
    assert stop.args.get("blocks") and message.blocks == stop.args["blocks"]
    assert not [c for c in bot.slack.calls_to("chat.update") if c.args.get("ts") == ts]
    assert message.text == answer.text and not message.streaming
    below = blocks_text(message.blocks)
    assert answer.text.split("\n")[0] not in below  # the text is not shown twice
    if answer.of_kind(PartKind.SQL):
        assert "SQL" in below
    # follow-ups and feedback close the answer, after its files when it has any
    assert "feedback_buttons" in str([m.blocks for m in bot.bot_replies(event["ts"])])


async def test_streaming_off_posts_a_placeholder_with_the_timeline_as_blocks(
        start_bot: Any, backend: BackendHarness) -> None:
    bot = await start_bot(SLACK_STREAMING=False, **backend.settings())
    event = await bot.mention("Which states pay the most?")
    [answer] = await bot.wait_finished(event["ts"])
    assert answer.outcome.value == "done"
    assert not bot.slack.calls_to("chat.startStream")
    assert bot.slack.calls_to("chat.postMessage")


async def test_typed_stop_mid_stream_stops_the_backend_and_the_stream(
        start_bot: Any, backend: BackendHarness) -> None:
    bot = await start_bot(**STREAMING, **backend.settings())
    release, event, ts = await _held_stream(bot, backend)
    await bot.message("stop", thread_ts=event["ts"])
    [answer] = await bot.wait_finished(event["ts"])
    assert answer.outcome.value == "stopped" and answer.stopped_by == USER
    await backend.wait_cancelled()
    message = bot.slack.message(CHANNEL, ts)
    assert not message.streaming and bot.slack.calls_to("chat.stopStream")
    assert f"Stopped by <@{USER}>" in blocks_text(message.blocks)
    edits = len(bot.slack.edits(CHANNEL, ts))
    appends = len(bot.slack.calls_to("chat.appendStream"))
    release.set()  # the backend would carry on: nothing of it may reach the reply
    await bot.settled()
    await quiet(bot.service)  # the work that could still send
    assert len(bot.slack.edits(CHANNEL, ts)) == edits
    assert len(bot.slack.calls_to("chat.appendStream")) == appends


async def test_agent_session_stop_ends_the_stream_and_the_run(start_bot: Any, fake_wren: Any) -> None:
    from tests.integration.backends import WrenHarness
    backend = WrenHarness(fake_wren)
    bot = await start_bot(**STREAMING, **backend.settings())
    release, event, ts = await _held_stream(bot, backend)
    bot.slack.end_stream(CHANNEL, ts)  # Slack stops the streams the event lists
    await bot.send_event({"type": "agent_session_stopped", "channel": CHANNEL,
                          "thread_ts": event["ts"], "user": USER, "event_ts": "3.3",
                          "streaming_message_ts": [ts]}, event_id="EvStreamStop")
    [answer] = await bot.wait_finished(event["ts"])
    assert answer.outcome.value == "stopped"
    await backend.wait_cancelled()
    release.set()
    # the ended stream is edited into the stopped reply, in place
    assert f"Stopped by <@{USER}>" in blocks_text(bot.slack.message(CHANNEL, ts).blocks)
    assert bot.bot_replies(event["ts"])[0].ts == ts


async def test_a_stream_slack_expired_continues_by_editing_the_same_message(
        start_bot: Any, backend: BackendHarness) -> None:
    now = [0.0]
    async with FakeSlack(window_seconds=60 * TIME_SCALE, post_message_per_second=1 / TIME_SCALE,
                         stream_ttl=300.0, clock=lambda: now[0]) as slack:
        bot = await start_bot(slack=slack, **STREAMING, **backend.settings())
        release = backend.hold()
        event = await bot.mention("Which states pay the most?")
        await backend.wait_asked()
        await slack.wait_for(lambda: bool(slack.calls_to("chat.startStream")))
        ts = str(slack.calls_to("chat.startStream")[0].response["ts"])
        now[0] += 301.0  # Slack's cut-off passes while the analysis runs
        release.set()
        [answer] = await bot.wait_finished(event["ts"])
        assert answer.outcome.value == "done"
        refused = [c for c in slack.calls if c.method in ("chat.appendStream", "chat.stopStream")
                   and c.response.get("error") == "message_not_in_streaming_state"]
        assert refused  # the bot met the expiry…
        message = slack.message(CHANNEL, ts)
        assert [c for c in slack.calls_to("chat.update") if c.args.get("ts") == ts and c.response.get("ok")]
        # …and the answer is in the same message, not a new one
        assert bot.bot_replies(event["ts"])[0].ts == ts
        assert answer.text.split()[0] in blocks_text(message.blocks)
        await bot.settled()


async def test_progress_after_slacks_expiry_goes_on_by_chat_update(start_bot: Any, fake_wren: Any) -> None:
    from tests.integration.backends import WrenHarness
    backend = WrenHarness(fake_wren)
    now = [0.0]
    async with FakeSlack(window_seconds=60 * TIME_SCALE, post_message_per_second=1 / TIME_SCALE,
                         stream_ttl=300.0, clock=lambda: now[0]) as slack:
        bot = await start_bot(slack=slack, **STREAMING, **backend.settings())
        release, chart = backend.hold(), fake_wren.hold_ask("chart")
        event = await bot.mention("Which states pay the most?")
        await slack.wait_for(lambda: bool(slack.calls_to("chat.startStream")))
        ts = str(slack.calls_to("chat.startStream")[0].response["ts"])
        now[0] += 301.0
        release.set()  # the summary arrives while the chart is still being made
        await slack.wait_for(lambda: any(
            c.args.get("ts") == ts and c.response.get("ok") and "São Paulo" in str(c.args.get("blocks"))
            for c in slack.calls_to("chat.update")))
        assert not (await bot.service.repo.list_runs("slack", TEAM, channel=CHANNEL))[0].status == "done"
        chart.set()
        [answer] = await bot.wait_finished(event["ts"])
        assert answer.outcome.value == "done" and bot.bot_replies(event["ts"])[0].ts == ts
        await bot.settled()


async def test_a_spent_tier2_budget_takes_the_placeholder_path(start_bot: Any, fake_wren: Any) -> None:
    from tests.integration.backends import WrenHarness
    backend = WrenHarness(fake_wren)
    # Tier 2 allows 18 calls a minute here; keeping 17 back leaves room for one stream only
    bot = await start_bot(**STREAMING, SLACK_STREAM_RESERVE=17, **backend.settings())
    first_hold, second_hold = backend.hold(), backend.hold()
    first = await bot.mention("first question")
    await backend.wait_asked()
    second = await bot.mention("second question")
    await backend.wait_asked(2)
    await bot.slack.wait_for(lambda: len(bot.bot_replies(second["ts"])) >= 1
                             and len(bot.bot_replies(first["ts"])) >= 1)
    [start] = bot.slack.calls_to("chat.startStream")
    assert start.args["thread_ts"] == first["ts"]
    placeholder = bot.bot_replies(second["ts"])[0]
    assert not placeholder.streaming and placeholder.blocks  # posted, with its timeline as blocks
    first_hold.set()
    second_hold.set()
    await bot.wait_finished(first["ts"])
    await bot.wait_finished(second["ts"])
    assert len(bot.slack.calls_to("chat.startStream")) == 1


async def test_a_long_streamed_answer_continues_in_further_messages(
        start_bot: Any, backend: BackendHarness) -> None:
    bot = await start_bot(**STREAMING, **backend.settings())
    paragraphs = [f"## Part {i}\n\nPart {i} says: " + "revenue grew steadily " * 60 for i in range(24)]
    backend.answer_next("\n\n".join(paragraphs))
    event, ts = await _streamed_question(bot, backend, "Explain everything")
    [answer] = await bot.wait_finished(event["ts"], timeout=20.0)
    assert answer.outcome.value == "done"
    # every stream call stayed within 12,000 characters of markdown (the fake refuses more)
    for call in bot.slack.calls:
        if call.method.startswith("chat.") and "Stream" in call.method:
            assert call.response.get("ok"), (call.method, call.response)
    replies = bot.bot_replies(event["ts"])
    assert replies[0].ts == ts and len(replies) >= 2
    shown = " ".join(blocks_text(m.blocks) for m in replies)
    for i in range(24):
        assert f"Part {i} says" in shown



async def test_the_session_is_named_after_the_opening_question_and_the_stop_settles_it(
        start_bot: Any, backend: BackendHarness) -> None:
    bot = await start_bot(**STREAMING, **backend.settings())
    sessions = bot.slack.agent_sessions
    release, event, ts = await _held_stream(bot, backend)
    await bot.slack.wait_for(lambda: bool(sessions[(CHANNEL, event["ts"])]))
    assert sessions[(CHANNEL, event["ts"])] == [
        {"status": "processing", "title": "a long analysis", "initiator_user_id": USER}]
    release.set()
    await bot.wait_finished(event["ts"])
    await bot.settled()
    # the stream's stop moved the session back to active: no setStatus call for it
    [stop] = bot.slack.calls_to("chat.stopStream")
    assert stop.args.get("session_status") == "active"
    assert [s["status"] for s in sessions[(CHANNEL, event["ts"])]] == ["processing", "active"]
    assert len(bot.slack.calls_to("agents.sessions.setStatus")) == 1

    # a follow-up in the thread does not rename the session
    release = backend.hold()
    await bot.message("and by month?", thread_ts=event["ts"])
    await backend.wait_asked(2)

    def openings() -> list[dict[str, Any]]:
        return [c.args for c in bot.slack.calls_to("agents.sessions.setStatus")
                if c.args.get("status") == "processing"]

    await bot.slack.wait_for(lambda: len(openings()) == 2)
    assert "title" not in openings()[1]
    release.set()
    await bot.wait_finished(event["ts"], count=2)


async def test_opening_the_messages_tab_suggests_examples_then_the_askers_answered_questions(
        start_bot: Any, fake_wren: Any) -> None:
    from tests.integration.backends import WrenHarness
    backend = WrenHarness(fake_wren)
    bot = await start_bot(SLACK_SUGGESTED_PROMPTS=["Revenue by region last quarter?"],
                          **backend.settings())
    mine = await bot.mention("Which states pay the most?")
    await bot.wait_finished(mine["ts"])
    theirs = await bot.mention("A colleague's private question", user="U0OTHER01")
    await bot.wait_finished(theirs["ts"])
    await bot.send_event({"type": "app_home_opened", "user": USER, "channel": "D0123456789",
                          "tab": "messages", "event_ts": "1.1"}, event_id="EvMessagesTab")
    await bot.slack.wait_for(lambda: bool(bot.slack.suggested_prompts))
    [call] = bot.slack.suggested_prompts
    assert call["channel_id"] == "D0123456789" and "thread_ts" not in call  # agent view: no thread
    assert [p["message"] for p in call["prompts"]] == [
        "Revenue by region last quarter?", "Which states pay the most?"]  # never others' questions
    assert all(len(p["title"]) <= 40 for p in call["prompts"])
    assert USER not in bot.slack.home_views  # the Messages tab is not the Home tab


async def test_clickzetta_items_tick_off_one_after_another(start_bot: Any, fake_clickzetta: Any) -> None:
    from tests.integration.backends import ClickZettaHarness
    backend = ClickZettaHarness(fake_clickzetta)
    bot = await start_bot(**STREAMING, **backend.settings())
    fake_clickzetta.hold(at_step=3)  # notify, knowledge, metric shown; SQL and summary to come
    event = await bot.mention("Transaction amount by district?")
    await bot.slack.wait_for(lambda: bool(bot.slack.calls_to("chat.startStream")))
    ts = str(bot.slack.calls_to("chat.startStream")[0].response["ts"])

    def metric_running() -> bool:
        message = bot.slack.message(CHANNEL, ts)
        tasks = list(message.tasks.values()) if message else []
        return len(tasks) == 2 and [t["status"] for t in tasks] == ["complete", "in_progress"]

    await bot.slack.wait_for(metric_running)  # knowledge done, the metric is the newest work
    fake_clickzetta.release()
    [answer] = await bot.wait_finished(event["ts"])
    assert answer.outcome.value == "done"
    history = _task_history(bot, ts)
    metric = list(history)[1]
    assert history[metric] == ["in_progress", "complete"]  # it ticked off once later work began
    assert all(t["status"] == "complete" for t in bot.slack.message(CHANNEL, ts).tasks.values())
    assert len(history) >= 4  # knowledge, metric, SQL, chart, answer


async def test_a_stream_that_cannot_carry_the_answer_is_stopped_and_replaced(
        start_bot: Any, backend: BackendHarness) -> None:
    bot = await start_bot(**STREAMING, **backend.settings())
    bot.slack.fail_next("chat.stopStream", error="invalid_blocks")  # the rich stop is refused
    event, ts = await _streamed_question(bot, backend, "Which states pay the most?")
    [answer] = await bot.wait_finished(event["ts"])
    assert answer.outcome.value == "done"
    stops = bot.slack.calls_to("chat.stopStream")
    assert [bool(c.response.get("ok")) for c in stops] == [False, True]
    assert "blocks" not in stops[1].args  # then stopped plainly…
    message = bot.slack.message(CHANNEL, ts)
    edits = [c for c in bot.slack.calls_to("chat.update") if c.args.get("ts") == ts and c.response.get("ok")]
    assert edits and edits[-1].at > stops[1].at  # …and replaced by the rendered answer, in place
    assert bot.bot_replies(event["ts"])[0].ts == ts
    assert answer.text.split()[0] in blocks_text(message.blocks)


async def test_markdown_tables_in_the_text_get_the_rendered_answer(start_bot: Any, fake_wren: Any) -> None:
    from tests.integration.backends import WrenHarness
    backend = WrenHarness(fake_wren)
    bot = await start_bot(**STREAMING, **backend.settings())
    backend.answer_next("Top states:\n\n| state | revenue |\n|---|---|\n| SP | 120 |\n| RJ | 80 |")
    event, ts = await _streamed_question(bot, backend, "Top states?")
    await bot.wait_finished(event["ts"])
    message = bot.slack.message(CHANNEL, ts)
    # streamed as text, then replaced so the table is a real table
    assert [c for c in bot.slack.calls_to("chat.update") if c.args.get("ts") == ts]
    assert any(b.get("type") in ("data_table", "table") for b in message.blocks)


async def test_a_workspace_refusing_plan_blocks_gets_the_timeline_as_a_line(
        start_bot: Any, fake_wren: Any) -> None:
    from tests.integration.backends import WrenHarness
    backend = WrenHarness(fake_wren)
    async with FakeSlack(window_seconds=60 * TIME_SCALE, post_message_per_second=1 / TIME_SCALE,
                         unsupported_blocks=frozenset({"plan"})) as slack:
        # no progress edits: the final answer alone meets the refusal
        bot = await start_bot(slack=slack, SLACK_STREAMING=False, SLACK_UPDATE_INTERVAL=1000,
                              **backend.settings())
        first = await bot.mention("Which states pay the most?")
        [answer] = await bot.wait_finished(first["ts"])
        assert answer.outcome.value == "done"
        reply = bot.bot_replies(first["ts"])[0]
        shown = blocks_text(reply.blocks)
        assert "Analysis complete" in shown and "Writing SQL" in shown  # the timeline, as a line
        assert any(b.get("type") == "data_table" for b in reply.blocks)  # the rest stays rich
        refused = len([c for c in slack.calls if c.response.get("error") == "invalid_blocks"])
        assert refused >= 1
        second = await bot.mention("And last year?")
        await bot.wait_finished(second["ts"])
        # remembered: the workspace is not sent a plan block again
        assert len([c for c in slack.calls if c.response.get("error") == "invalid_blocks"]) == refused
        assert not any(b.get("type") == "plan" for m in slack.messages(CHANNEL) for b in m.blocks or [])


async def test_progress_in_a_workspace_refusing_plan_blocks_shows_the_line(
        start_bot: Any, fake_wren: Any) -> None:
    from tests.integration.backends import WrenHarness
    backend = WrenHarness(fake_wren)
    async with FakeSlack(window_seconds=60 * TIME_SCALE, post_message_per_second=1 / TIME_SCALE,
                         unsupported_blocks=frozenset({"plan"})) as slack:
        bot = await start_bot(slack=slack, SLACK_STREAMING=False, **backend.settings())
        chart = fake_wren.hold_ask("chart")  # the run stays in progress after its summary
        event = await bot.mention("Which states pay the most?")
        await slack.wait_for(lambda: any(
            c.method in ("chat.update", "chat.postMessage") and c.response.get("ok")
            and "Writing SQL" in str(c.args.get("blocks")) for c in slack.calls))
        chart.set()
        [answer] = await bot.wait_finished(event["ts"])
        assert answer.outcome.value == "done"

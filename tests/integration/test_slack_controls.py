"""Stop, history, feedback and App Home, through Slack as a user would use them."""

from __future__ import annotations

from typing import Any

from tests.fakes.wren import FakeWren
from tests.integration.quiet import quiet
from tests.integration.conftest import CHANNEL, OTHER, USER, SlackBot, blocks_text


def stop_value(bot: SlackBot, thread_ts: str) -> tuple[str, str]:
    """(run id, reply ts) from the Stop button on the running reply."""
    for msg in bot.bot_replies(thread_ts):
        for block in msg.blocks or []:
            for el in block.get("elements", []):
                if el.get("action_id") == "stop_run":
                    return el["value"], msg.ts
    raise AssertionError("no Stop button on the reply")


async def running(bot: SlackBot, fake: FakeWren, text: str = "slow question") -> dict[str, Any]:
    fake.hold_ask()
    event = await bot.mention(text)
    await fake.wait_for_request("/api/v1/ask")
    await bot.slack.wait_for(lambda: bool(bot.bot_replies(event["ts"])))
    return event


async def test_stop_button_cancels_backend_and_ends_stopped(wren_bot: SlackBot, fake_wren: FakeWren) -> None:
    event = await running(wren_bot, fake_wren)
    run_id, reply_ts = stop_value(wren_bot, event["ts"])
    resp = await wren_bot.action("stop_run", run_id, message_ts=reply_ts, thread_ts=event["ts"])
    assert resp.status == 200
    [answer] = await wren_bot.wait_finished(event["ts"])
    assert answer.outcome.value == "stopped"
    await fake_wren.wait_for_cancel()  # the backend request was abandoned
    text = blocks_text(wren_bot.slack.message(CHANNEL, reply_ts).blocks)
    assert f"Stopped by <@{USER}>" in text
    assert "stop_run" not in str(wren_bot.slack.message(CHANNEL, reply_ts).blocks)
    edits_after = len(wren_bot.slack.edits(CHANNEL, reply_ts))
    run = await wren_bot.service.repo.get_run(run_id)
    assert run.status == "stopped" and run.stopped_by == USER
    # no further edits after the stop was delivered
    await quiet(wren_bot.service)  # the work that could still send
    assert len(wren_bot.slack.edits(CHANNEL, reply_ts)) == edits_after


async def test_only_the_asker_can_stop(wren_bot: SlackBot, fake_wren: FakeWren) -> None:
    event = await running(wren_bot, fake_wren)
    run_id, reply_ts = stop_value(wren_bot, event["ts"])
    await wren_bot.action("stop_run", run_id, user=OTHER, message_ts=reply_ts, thread_ts=event["ts"])
    await wren_bot.slack.wait_for(lambda: bool(wren_bot.slack.ephemerals))
    assert "Only the person who asked" in wren_bot.slack.ephemerals[-1].text
    assert wren_bot.slack.ephemerals[-1].user == OTHER
    assert wren_bot.service.relay.live.get(run_id) is not None  # still running
    await wren_bot.action("stop_run", run_id, message_ts=reply_ts, thread_ts=event["ts"])
    [answer] = await wren_bot.wait_finished(event["ts"])
    assert answer.outcome.value == "stopped"


async def test_typed_stop_in_thread_without_mention(wren_bot: SlackBot, fake_wren: FakeWren) -> None:
    event = await running(wren_bot, fake_wren)
    await wren_bot.message("stop", thread_ts=event["ts"])
    [answer] = await wren_bot.wait_finished(event["ts"])
    assert answer.outcome.value == "stopped"
    assert len(fake_wren.requests_to("/api/v1/ask")) == 1  # "stop" was not sent as a question


async def test_stop_after_finish_is_a_polite_no_op(wren_bot: SlackBot) -> None:
    event = await wren_bot.mention("quick one")
    await wren_bot.wait_finished(event["ts"])
    run = (await wren_bot.service.repo.list_runs("slack", "T1", channel=CHANNEL))[0]
    await wren_bot.action("stop_run", run.id, message_ts=run.reply_ts, thread_ts=event["ts"])
    await wren_bot.slack.wait_for(lambda: bool(wren_bot.slack.ephemerals))
    assert "already finished" in wren_bot.slack.ephemerals[-1].text
    assert (await wren_bot.service.repo.get_run(run.id)).status == "done"


async def test_slash_stop_stops_the_callers_run_in_the_channel(wren_bot: SlackBot,
                                                              fake_wren: FakeWren) -> None:
    event = await running(wren_bot, fake_wren)
    resp = await wren_bot.command("/insight-stop")
    assert resp.status == 200
    [answer] = await wren_bot.wait_finished(event["ts"])
    assert answer.outcome.value == "stopped"
    await wren_bot.slack.wait_for(lambda: bool(wren_bot.slack.responses_to(USER)))
    assert wren_bot.slack.responses_to(USER)[0]["response_type"] == "ephemeral"


async def test_follow_up_waits_for_the_running_question_and_says_so(wren_bot: SlackBot,
                                                                   fake_wren: FakeWren) -> None:
    release = fake_wren.hold_ask()
    first = await wren_bot.mention("first")
    await fake_wren.wait_for_request("/api/v1/ask")
    await wren_bot.message("second", thread_ts=first["ts"])
    await wren_bot.slack.wait_for(lambda: len(wren_bot.bot_replies(first["ts"])) >= 2)
    waiting = wren_bot.bot_replies(first["ts"])[1]
    assert "Waiting for the previous question" in blocks_text(waiting.blocks)
    assert len(fake_wren.requests_to("/api/v1/ask")) == 1
    release.set()
    answers = await wren_bot.wait_finished(first["ts"], count=2)
    assert [a.outcome.value for a in answers] == ["done", "done"]
    asks = fake_wren.requests_to("/api/v1/ask")
    # the follow-up continued the first answer's Wren thread (the first ask started it)
    assert "threadId" not in asks[0].json
    assert answers[0].session_id and asks[1].json["threadId"] == answers[0].session_id


async def test_history_lists_the_callers_runs_in_the_channel_only(wren_bot: SlackBot,
                                                                  fake_wren: FakeWren) -> None:
    mine = await wren_bot.mention("my revenue question")
    theirs = await wren_bot.mention("their churn question", user=OTHER)
    elsewhere = await wren_bot.mention("my other channel question", channel="C0999999999")
    for ev in (mine, theirs):
        await wren_bot.wait_finished(ev["ts"])
    await wren_bot.wait_finished(elsewhere["ts"])
    resp = await wren_bot.command("/insight-history")
    assert resp.status == 200
    await wren_bot.slack.wait_for(lambda: bool(wren_bot.slack.responses_to(USER)))
    body = wren_bot.slack.responses_to(USER)[-1]
    assert body["response_type"] == "ephemeral"
    text = blocks_text(body["blocks"])
    assert "my revenue question" in text
    assert "their churn question" not in text
    assert "my other channel question" not in text
    assert "answered" in text and "https://fake.slack.test/archives/" in text


async def test_history_pages_past_ten(wren_bot: SlackBot) -> None:
    for i in range(12):
        ev = await wren_bot.mention(f"question number {i}")
        await wren_bot.wait_finished(ev["ts"])
    await wren_bot.command("/insight-history")
    await wren_bot.slack.wait_for(lambda: bool(wren_bot.slack.responses_to(USER)))
    first_page = wren_bot.slack.responses_to(USER)[-1]
    text = blocks_text(first_page["blocks"])
    assert "question number 11" in text and "question number 1\n" not in text
    more = [el for b in first_page["blocks"] if b["type"] == "actions" for el in b["elements"]][0]
    await wren_bot.action(more["action_id"], more["value"])
    await wren_bot.slack.wait_for(lambda: len(wren_bot.slack.responses_to(USER)) >= 2)
    second = blocks_text(wren_bot.slack.responses_to(USER)[-1]["blocks"])
    assert "question number 0" in second and "question number 11" not in second


async def test_feedback_is_stored_and_acknowledged_privately(wren_bot: SlackBot) -> None:
    event = await wren_bot.mention("rate me")
    await wren_bot.wait_finished(event["ts"])
    [reply] = [m for m in wren_bot.bot_replies(event["ts"]) if "feedback" in str(m.blocks)]
    fb = [el for b in reply.blocks if b["type"] == "context_actions" for el in b["elements"]][0]
    value = fb["positive_button"]["value"]
    await wren_bot.action("feedback", value, message_ts=reply.ts, thread_ts=event["ts"])
    await wren_bot.slack.wait_for(lambda: bool(wren_bot.slack.ephemerals))
    run = await wren_bot.service.repo.get_run(value.split(":", 1)[1])
    assert run.feedback == "good" and run.feedback_by == USER
    assert "Thanks" in wren_bot.slack.ephemerals[-1].text


async def test_app_home_publishes_recent_analyses(wren_bot: SlackBot) -> None:
    event = await wren_bot.mention("home question")
    await wren_bot.wait_finished(event["ts"])
    await wren_bot.send_event({"type": "app_home_opened", "user": USER, "channel": "D0123456789",
                               "tab": "home", "event_ts": "1.1"}, event_id="EvHOME1")
    await wren_bot.slack.wait_for(lambda: USER in wren_bot.slack.home_views)
    assert "home question" in blocks_text(wren_bot.slack.home_views[USER]["blocks"])


async def test_agent_session_follows_the_run_and_its_stop_event_stops_it(
        wren_bot: SlackBot, fake_wren: FakeWren) -> None:
    event = await running(wren_bot, fake_wren)
    sessions = wren_bot.slack.agent_sessions
    await wren_bot.slack.wait_for(lambda: any(v for v in sessions.values()))
    assert [s["status"] for s in sessions[(CHANNEL, event["ts"])]] == ["processing"]
    await wren_bot.send_event({"type": "agent_session_stopped", "channel": CHANNEL,
                               "thread_ts": event["ts"], "user": USER, "event_ts": "2.2",
                               "streaming_message_ts": []}, event_id="EvSTOP1")
    [answer] = await wren_bot.wait_finished(event["ts"])
    assert answer.outcome.value == "stopped"
    await wren_bot.slack.wait_for(lambda: sessions[(CHANNEL, event["ts"])][-1]["status"] == "active")


async def test_a_workspace_that_refuses_agent_sessions_is_not_asked_every_run(
        wren_bot: SlackBot, fake_wren: FakeWren) -> None:
    # an app not declared as an agent: Slack refuses the session; the next runs do not ask again
    wren_bot.slack.fail_next("agents.sessions.setStatus", error="not_allowed")
    for i in range(3):
        event = await wren_bot.mention(f"question {i}", channel=f"C00000000{i}")
        [answer] = await wren_bot.wait_finished(event["ts"])
        assert answer.outcome.value == "done"
    await wren_bot.settled()
    assert len(wren_bot.slack.calls_to("agents.sessions.setStatus")) == 1

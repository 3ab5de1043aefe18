"""Stop (card button and typed) and history, through Teams as a user would use them."""

from __future__ import annotations

from typing import Any

from tests.fakes.teams_connector import TeamsMessage
from tests.integration.teams.conftest import (
    ADA, BOB, CHANNEL, GROUP, PERSONAL, TENANT, TeamsBot, card_text, stop_buttons, walk,
)


async def running(bot: TeamsBot, conversation: str, ask: Any) -> tuple[TeamsMessage, dict[str, Any]]:
    """Start a question whose backend holds; return the placeholder and its Stop data."""
    bot.backend.hold()
    await ask
    await bot.backend.wait_asked()
    [placeholder] = await bot.wait_replies(conversation)
    [stop] = stop_buttons(placeholder.card)
    return placeholder, stop["data"]


async def test_stop_button_stops_the_run_and_the_card_says_who(teams_bot: TeamsBot) -> None:
    placeholder, data = await running(teams_bot, PERSONAL, teams_bot.personal("slow question"))
    await teams_bot.press(placeholder, data)
    [answer] = await teams_bot.wait_finished(PERSONAL)
    assert answer.outcome.value == "stopped"
    [reply] = teams_bot.replies(PERSONAL)  # no extra message: the card itself says it
    text = card_text(reply.card)
    assert "Stopped by Ada Lovelace after" in text
    assert not stop_buttons(reply.card)
    run = await teams_bot.service.repo.get_run(data["run_id"])
    assert run.status == "stopped" and run.stopped_by == ADA.aad


async def test_only_the_asker_can_stop(teams_bot: TeamsBot) -> None:
    placeholder, data = await running(teams_bot, GROUP, teams_bot.group("slow question"))
    await teams_bot.press(placeholder, data, user=BOB)
    notices = await teams_bot.wait_replies(GROUP, count=2)
    assert "Only the person who asked" in notices[1].text
    assert teams_bot.service.relay.live.get(data["run_id"]) is not None  # still running
    await teams_bot.press(placeholder, data)
    [answer] = await teams_bot.wait_finished(GROUP)
    assert answer.outcome.value == "stopped"
    # pressing again after the end is a polite no-op
    await teams_bot.press(placeholder, data)
    notices = await teams_bot.wait_replies(GROUP, count=3)
    assert "already finished" in notices[2].text


async def test_typed_stop_in_a_channel_thread(teams_bot: TeamsBot) -> None:
    teams_bot.backend.hold()
    post = await teams_bot.channel("slow question")
    thread = post["conversation"]["id"]
    await teams_bot.backend.wait_asked()
    await teams_bot.wait_replies(thread)
    await teams_bot.channel("stop", root=post["id"])
    [answer] = await teams_bot.wait_finished(thread)
    assert answer.outcome.value == "stopped"
    assert teams_bot.backend.questions() == ["slow question"]  # "stop" was not a question
    assert "Stopped by Ada Lovelace" in card_text(teams_bot.replies(thread)[0].card)


async def test_typed_stop_in_a_new_channel_post_stops_the_senders_runs_in_the_channel(
        teams_bot: TeamsBot) -> None:
    teams_bot.backend.hold()
    post = await teams_bot.channel("slow question")
    thread = post["conversation"]["id"]
    await teams_bot.backend.wait_asked()
    stop_post = await teams_bot.channel("stop")  # a new post: its own thread
    [answer] = await teams_bot.wait_finished(thread)
    assert answer.outcome.value == "stopped"
    assert teams_bot.replies(stop_post["conversation"]["id"]) == []  # nothing to say there


async def test_typed_stop_with_nothing_running(teams_bot: TeamsBot) -> None:
    await teams_bot.personal("stop")
    [notice] = await teams_bot.wait_replies(PERSONAL)
    assert notice.text == "Nothing of yours is running here."


async def test_history_lists_the_senders_recent_questions_in_this_conversation(
        teams_bot: TeamsBot) -> None:
    await teams_bot.group("Revenue by state")
    await teams_bot.wait_finished(GROUP)
    await teams_bot.group("Top categories", user=BOB)
    await teams_bot.wait_finished(GROUP, count=2)
    teams_bot.backend.fail_next()
    await teams_bot.group("Churn of unicorns")
    await teams_bot.wait_finished(GROUP, count=3)
    await teams_bot.personal("Something private")
    await teams_bot.wait_finished(PERSONAL)

    await teams_bot.group("history")
    replies = await teams_bot.wait_replies(GROUP, count=4)
    history = replies[3].card
    text = card_text(history)
    assert "Revenue by state" in text and "Churn of unicorns" in text
    assert "Top categories" not in text  # Bob's
    assert "Something private" not in text  # another conversation
    assert "✅ answered" in text and "❌ failed" in text
    assert "{{DATE(" in text
    runs = await teams_bot.service.repo.list_runs("teams", TENANT, channel=GROUP, asker=ADA.aad)
    assert all(f"reference {r.id}" in text for r in runs)
    assert teams_bot.backend.questions().count("history") == 0


async def test_history_in_a_channel_covers_all_its_threads(teams_bot: TeamsBot) -> None:
    first = await teams_bot.channel("Revenue by state")
    await teams_bot.wait_finished(first["conversation"]["id"])
    second = await teams_bot.channel("Top categories")
    await teams_bot.wait_finished(second["conversation"]["id"])
    ask = await teams_bot.channel("history", root=first["id"])
    replies = await teams_bot.wait_replies(ask["conversation"]["id"], count=2)
    text = card_text(replies[1].card)
    assert "Revenue by state" in text and "Top categories" in text
    assert [n for n in walk(replies[1].card) if n.get("type") == "Container"]
    assert CHANNEL in ask["conversation"]["id"]

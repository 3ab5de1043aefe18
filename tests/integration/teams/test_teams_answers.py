"""Questions through Teams: personal chat, group chat, channel threads, long answers, errors."""

from __future__ import annotations

import asyncio
import base64

from tests.integration.quiet import quiet
from tests.integration.teams.conftest import (
    ADA, BOB, BOT, CHANNEL, GROUP, PERSONAL, TENANT, TeamsBot, actions_of, card_text, stop_buttons,
    walk,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


async def test_personal_question_gets_placeholder_updates_and_final_card_with_chart(
        teams_bot: TeamsBot) -> None:
    backend = teams_bot.backend
    release = backend.hold()
    question = await teams_bot.personal("Which states pay the most?")
    await backend.wait_asked()
    # the placeholder card is there at once, and is updated while the backend works
    [reply] = await teams_bot.wait_replies(PERSONAL, predicate=lambda found: found[0].edits >= 1)
    placeholder = reply.versions[0]["attachments"][0]["content"]
    assert "Working on it" in card_text(placeholder)
    [stop] = stop_buttons(placeholder)
    assert stop["data"]["action"] == "stop" and stop["data"]["run_id"]
    assert stop_buttons(reply.versions[-1]["attachments"][0]["content"])  # still running
    release.set()
    [answer] = await teams_bot.wait_finished(PERSONAL)
    assert answer.outcome.value == "done"

    [reply] = teams_bot.replies(PERSONAL)  # one message, updated in place
    card = reply.card
    text = card_text(card)
    assert backend.answer_marker in text and "\\n" not in text  # unescaped answer text
    assert not stop_buttons(card)  # the Stop button is gone
    toggle = actions_of(card, "Action.ToggleVisibility")[0]
    [sql_box] = [n for n in walk(card) if n.get("id") == toggle["targetElements"][0]]
    assert sql_box["isVisible"] is False and "SELECT" in card_text(sql_box)
    [run] = await teams_bot.service.repo.list_runs("teams", TENANT, channel=PERSONAL)
    assert "Answered in" in text and run.id in text  # the reference
    assert run.reply_channel == teams_bot.connector.service_url and run.reply_ts == reply.id
    if backend.draws_charts:
        [image] = actions_of(card, "Image")
        assert image["url"].startswith("data:image/png;base64,")
        assert base64.b64decode(image["url"].split(",", 1)[1])[:8] == PNG_MAGIC
    assert not reply.text  # card only: Teams would split text + attachment

    # the wire: the reply went to the activity's serviceUrl (prefix kept), unauthenticated
    first = teams_bot.connector.calls[0]
    assert first.method == "POST"
    assert first.path == f"/teams/amer/v3/conversations/{PERSONAL}/activities/{question['id']}"
    assert all(c.authorization is None for c in teams_bot.connector.calls)
    assert {c.method for c in teams_bot.connector.calls} <= {"POST", "PUT"}
    assert backend.questions() == ["Which states pay the most?"]


async def test_channel_mention_is_answered_in_its_thread_and_follow_up_continues_session(
        teams_bot: TeamsBot) -> None:
    backend = teams_bot.backend
    post = await teams_bot.channel("Revenue by state")
    thread = post["conversation"]["id"]
    assert thread == f"{CHANNEL};messageid={post['id']}"
    [first] = await teams_bot.wait_finished(thread)
    assert first.outcome.value == "done"
    [reply] = teams_bot.replies(thread)
    assert reply.reply_to_id == post["id"]
    assert backend.questions() == ["Revenue by state"]  # the mention is not part of the question

    await teams_bot.channel("and only for 2024?", root=post["id"])
    await teams_bot.wait_finished(thread, count=2)
    assert len(teams_bot.replies(thread)) == 2
    sessions = backend.sessions_sent()
    assert sessions[0] is None and sessions[1] == first.session_id and first.session_id

    # a new post in the same channel is a new thread, and a new backend session
    other = await teams_bot.channel("Top categories")
    [third] = await teams_bot.wait_finished(other["conversation"]["id"])
    assert backend.sessions_sent()[2] is None
    runs = await teams_bot.service.repo.list_runs("teams", TENANT, channel=CHANNEL)
    assert {r.thread for r in runs} == {thread, other["conversation"]["id"]}
    assert third.outcome.value == "done"


async def test_group_chat_is_one_session_per_chat(teams_bot: TeamsBot) -> None:
    await teams_bot.group("How many customers?")
    [first] = await teams_bot.wait_finished(GROUP)
    await teams_bot.group("and last year?", user=BOB)
    await teams_bot.wait_finished(GROUP, count=2)
    assert teams_bot.backend.sessions_sent()[1] == first.session_id
    assert len(teams_bot.replies(GROUP)) == 2


async def test_same_activity_delivered_twice_is_answered_once(teams_bot: TeamsBot) -> None:
    activity = teams_bot.activity("Top categories", PERSONAL, "personal")
    await asyncio.gather(teams_bot.send(activity), teams_bot.send(activity))
    await teams_bot.wait_finished(PERSONAL)
    await teams_bot.send(activity)  # a late redelivery, after the answer
    assert len(teams_bot.backend.questions()) == 1
    assert len(teams_bot.replies(PERSONAL)) == 1
    # the same message id in another conversation is another message
    await teams_bot.send(teams_bot.activity("Top categories", GROUP, "groupChat", mention=True,
                                            activity_id=activity["id"]))
    await teams_bot.wait_finished(GROUP)
    assert len(teams_bot.backend.questions()) == 2


async def test_backend_error_shows_a_clean_message_with_the_reference(teams_bot: TeamsBot) -> None:
    expected = teams_bot.backend.fail_next()
    await teams_bot.personal("What is the churn of unicorns?")
    [answer] = await teams_bot.wait_finished(PERSONAL)
    assert answer.outcome.value == "failed"
    [reply] = teams_bot.replies(PERSONAL)
    text = card_text(reply.card)
    [run] = await teams_bot.service.repo.list_runs("teams", TENANT, channel=PERSONAL)
    assert expected in text
    assert f"Reference: {run.id}" in text
    assert "Traceback" not in text and "Error(" not in text
    assert [n for n in walk(reply.card) if n.get("style") == "attention"]


async def test_long_answer_is_split_into_several_cards_without_losing_text(teams_bot: TeamsBot) -> None:
    paragraphs = [f"Paragraph {i}: " + ("revenue grew steadily in every region " * 12).strip()
                  for i in range(120)]
    teams_bot.backend.answer_next("\n\n".join(paragraphs))
    await teams_bot.personal("Explain everything")
    await teams_bot.wait_finished(PERSONAL)
    replies = teams_bot.replies(PERSONAL)
    assert len(replies) >= 3
    text = "\n".join(card_text(r.card) for r in replies)
    for i in (0, 57, 119):
        assert f"Paragraph {i}:" in text
    assert all(c.status in (200, 201) for c in teams_bot.connector.calls)  # nothing was too big
    assert "continued 2/" in card_text(replies[1].card)


async def test_turn_failure_never_shows_exception_text(teams_bot: TeamsBot) -> None:
    async def broken(question: object) -> str:
        raise RuntimeError("postgres password hunter2 rejected")

    teams_bot.service.relay.ask = broken  # type: ignore[method-assign]
    await teams_bot.personal("Anything")
    [reply] = await teams_bot.wait_replies(PERSONAL)
    assert "Sorry" in reply.text and "Reference" in reply.text
    assert "hunter2" not in str(reply.activity) and "RuntimeError" not in str(reply.activity)


async def test_help_and_bare_mention_explain_usage(teams_bot: TeamsBot) -> None:
    await teams_bot.personal("help")
    await teams_bot.group("")
    [personal] = await teams_bot.wait_replies(PERSONAL)
    [group] = await teams_bot.wait_replies(GROUP)
    assert "history" in personal.text and "stop" in personal.text
    assert group.text == personal.text
    assert teams_bot.backend.questions() == []


async def test_bot_added_to_a_team_says_hello_once(teams_bot: TeamsBot) -> None:
    update = teams_bot.activity("", CHANNEL, "channel")
    update.update(type="conversationUpdate", membersAdded=[{"id": BOT["id"]}], text=None)
    await teams_bot.send(update)
    await teams_bot.send(update)
    member = teams_bot.activity("", CHANNEL, "channel")
    member.update(type="conversationUpdate", membersAdded=[ADA.account()], text=None)
    await teams_bot.send(member)
    [hello] = await teams_bot.wait_replies(CHANNEL)
    assert "questions about your data" in hello.text
    await quiet(teams_bot.service)  # the work that could still send
    assert len(teams_bot.replies(CHANNEL)) == 1


"""Who may ask, and where, in Slack (issue 12): allowed channels and user groups, Slack Connect
slash commands, and whose feedback counts — through signed Slack requests, as Slack sends them.

Every refusal is checked the same way: the person is told in an ephemeral message (or the slash
command's ephemeral response), the channel gets no message, the backend is never asked, and no
run is stored.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

from bot.slack.access import REFUSED_CHANNEL, REFUSED_PERSON, UNCHECKED
from bot.slack.membership import REFUSAL as REFUSED_ORGANISATION
from bot.slack.voters import NOT_IN_CONVERSATION
from bot.slack.voters import UNCHECKED as VOTE_UNCHECKED
from tests.fakes.wren import FakeWren
from tests.integration.backends import WrenHarness
from tests.integration.conftest import CHANNEL, DM, OTHER, TEAM, USER, SlackBot
from tests.integration.quiet import quiet
from tests.integration.test_slack_suggestions_and_admin import SuggestingBackend

ALLOWED = "C0ALLOWED01"
ANALYSTS = "S0ANALYSTS"
OUTSIDER = "U0PARTNER1"
PARTNER_TEAM = "T0PARTNER"


async def _nothing_happened(bot: SlackBot, fake_wren: FakeWren, channel: str = CHANNEL) -> None:
    """The refusal's guarantees: nothing public, nothing asked, nothing stored."""
    await quiet(bot.service)
    assert fake_wren.requests_to("ask") == []
    assert [m for m in bot.slack.messages(channel) if m.bot_id] == []
    assert await bot.service.repo.list_runs("slack", TEAM) == []


def _refusals(bot: SlackBot, user: str) -> list[str]:
    return [e.text for e in bot.slack.ephemerals if e.user == user]


async def _command(bot: SlackBot, command: str, *, user: str, team: str = TEAM,
                   channel: str = CHANNEL, enterprise: str | None = None) -> None:
    """A slash command as Slack sends it; ``team``: the caller's own team (Slack Connect)."""
    fields = {"token": "legacy", "team_id": team, "team_domain": "fake", "channel_id": channel,
              "channel_name": "general", "user_id": user, "user_name": "someone",
              "command": command, "text": "", "api_app_id": "A1", "is_enterprise_install": "false",
              "response_url": f"{bot.slack.base_url.rsplit('/api/', 1)[0]}/respond/{user}",
              "trigger_id": "1.2.3", **({"enterprise_id": enterprise} if enterprise else {})}
    resp = await bot.post_signed(urlencode(fields), "application/x-www-form-urlencoded")
    assert resp.status == 200, await resp.text()


def _feedback_values(bot: SlackBot, thread_ts: str) -> tuple[str, str, str]:
    """(👍 value, 👎 value, ts of the message carrying them) of an answer."""
    [reply] = [m for m in bot.bot_replies(thread_ts) if "feedback" in str(m.blocks)]
    [buttons] = [el for b in reply.blocks if b["type"] == "context_actions" for el in b["elements"]]
    return buttons["positive_button"]["value"], buttons["negative_button"]["value"], reply.ts


# -- allowed channels ------------------------------------------------------------------------
async def test_a_mention_outside_the_allowed_channels_is_refused_privately(
        start_bot: Any, fake_wren: FakeWren) -> None:
    bot = await start_bot(SLACK_ALLOWED_CHANNELS=ALLOWED, **WrenHarness(fake_wren).settings())
    event = await bot.mention("What is our revenue by state?")
    await bot.slack.wait_for(lambda: bool(bot.slack.ephemerals))
    assert _refusals(bot, USER) == [REFUSED_CHANNEL]
    [refusal] = bot.slack.ephemerals
    assert refusal.channel == CHANNEL and refusal.thread_ts == event["ts"]
    await _nothing_happened(bot, fake_wren)
    # intake's first sign ("is working on it…") is not left under the refused question
    statuses = bot.slack.assistant_statuses[(CHANNEL, event["ts"])]
    await bot.slack.wait_for(lambda: statuses[-1:] == [""])

    allowed = await bot.mention("What is our revenue by state?", channel=ALLOWED)
    [answer] = await bot.wait_finished(allowed["ts"])
    assert answer.outcome.value == "done" and len(fake_wren.requests_to("ask")) == 1


async def test_a_redelivered_refused_mention_is_refused_once(start_bot: Any,
                                                             fake_wren: FakeWren) -> None:
    bot = await start_bot(SLACK_ALLOWED_CHANNELS=ALLOWED, **WrenHarness(fake_wren).settings())
    event = await bot.mention("Revenue?")
    await bot.send_event(event, retry_num=1)
    assert bot.service.slack is not None
    await asyncio.wait_for(bot.service.slack.intake._queue.join(), 5)  # both handled
    await _nothing_happened(bot, fake_wren)
    assert _refusals(bot, USER) == [REFUSED_CHANNEL]


async def test_direct_messages_need_dm_in_the_allowed_channels(start_bot: Any,
                                                               fake_wren: FakeWren) -> None:
    strict = await start_bot(SLACK_ALLOWED_CHANNELS=ALLOWED, **WrenHarness(fake_wren).settings())
    await strict.message("Revenue by state?", channel=DM, channel_type="im")
    await strict.slack.wait_for(lambda: bool(strict.slack.ephemerals))
    assert _refusals(strict, USER) == [REFUSED_CHANNEL]
    await _nothing_happened(strict, fake_wren, channel=DM)


async def test_dm_in_the_allowed_channels_admits_direct_messages(start_bot: Any,
                                                                 fake_wren: FakeWren) -> None:
    bot = await start_bot(SLACK_ALLOWED_CHANNELS=f"{ALLOWED}, DM", **WrenHarness(fake_wren).settings())
    event = await bot.message("Revenue by state?", channel=DM, channel_type="im")
    [answer] = await bot.wait_finished(event["ts"])
    assert answer.outcome.value == "done" and not bot.slack.ephemerals


# -- allowed user groups ---------------------------------------------------------------------
async def test_only_members_of_an_allowed_user_group_may_ask(start_bot: Any,
                                                            fake_wren: FakeWren) -> None:
    bot = await start_bot(SLACK_ALLOWED_USERGROUPS=f"S0NOBODY, {ANALYSTS}",
                          **WrenHarness(fake_wren).settings())
    bot.slack.usergroups.update({ANALYSTS: [USER], "S0NOBODY": []})
    event = await bot.mention("Revenue by state?")
    await bot.wait_finished(event["ts"])
    asked = len(fake_wren.requests_to("ask"))

    # a colleague outside the groups, in the thread the bot already answers (no mention needed)
    await bot.message("And by month?", user=OTHER, thread_ts=event["ts"])
    await bot.slack.wait_for(lambda: bool(_refusals(bot, OTHER)))
    assert _refusals(bot, OTHER) == [REFUSED_PERSON]
    await quiet(bot.service)
    assert len(fake_wren.requests_to("ask")) == asked
    assert [r.asker for r in await bot.service.repo.list_runs("slack", TEAM)] == [USER]
    assert not any(OTHER in (m.text or "") for m in bot.slack.messages(CHANNEL) if m.bot_id)

    # Slack is asked once per group, not once per message (kept for a minute)
    second = await bot.mention("And by quarter?")
    await bot.wait_finished(second["ts"])
    calls = bot.slack.calls_to("usergroups.users.list")
    assert sorted(c.args["usergroup"] for c in calls) == [ANALYSTS, "S0NOBODY"]


async def test_when_slack_cannot_say_who_is_in_the_group_nobody_is_answered(
        start_bot: Any, fake_wren: FakeWren) -> None:
    bot = await start_bot(SLACK_ALLOWED_USERGROUPS=ANALYSTS, **WrenHarness(fake_wren).settings())
    bot.slack.usergroups[ANALYSTS] = [USER]
    bot.slack.fail_next("usergroups.users.list", "missing_scope", needed="usergroups:read",
                        provided="chat:write")
    await bot.mention("Revenue by state?")
    await bot.slack.wait_for(lambda: bool(bot.slack.ephemerals))
    assert _refusals(bot, USER) == [UNCHECKED]
    await _nothing_happened(bot, fake_wren)


async def test_a_suggested_follow_up_is_refused_to_someone_outside_the_groups(start_bot: Any) -> None:
    backend = SuggestingBackend()
    bot = await start_bot(backend=backend, SLACK_ALLOWED_USERGROUPS=ANALYSTS)
    bot.slack.usergroups[ANALYSTS] = [USER]
    event = await bot.mention("revenue last quarter")
    await bot.wait_finished(event["ts"])
    reply = bot.bot_replies(event["ts"])[0]
    [button, *_] = [el for b in reply.blocks if b["type"] == "actions" for el in b["elements"]]
    await bot.action(button["action_id"], button["value"], user=OTHER, message_ts=reply.ts,
                     thread_ts=event["ts"])
    await bot.slack.wait_for(lambda: bool(_refusals(bot, OTHER)))
    assert _refusals(bot, OTHER) == [REFUSED_PERSON]
    await quiet(bot.service)
    assert [r.question for r in backend.asked] == ["revenue last quarter"]
    assert len(await bot.service.repo.list_runs("slack", TEAM)) == 1
    assert not any("asked:" in (m.text or "") for m in bot.slack.messages(CHANNEL))


# -- slash commands --------------------------------------------------------------------------
async def test_slash_commands_answer_a_refusal_privately(start_bot: Any, fake_wren: FakeWren) -> None:
    bot = await start_bot(SLACK_ALLOWED_USERGROUPS=ANALYSTS, **WrenHarness(fake_wren).settings())
    bot.slack.usergroups[ANALYSTS] = [USER]
    event = await bot.mention("Revenue by state?")
    await bot.wait_finished(event["ts"])
    for count, command in enumerate(("/insight-history", "/insight-stop"), start=1):
        await _command(bot, command, user=OTHER)
        await bot.slack.wait_for(lambda: len(bot.slack.responses_to(OTHER)) >= count)
    responses = bot.slack.responses_to(OTHER)
    assert [(r["response_type"], r["text"]) for r in responses] == [("ephemeral", REFUSED_PERSON)] * 2
    assert all("blocks" not in r for r in responses)  # no history, not even an empty one


async def test_slash_commands_outside_the_allowed_channels_are_refused(start_bot: Any,
                                                                       fake_wren: FakeWren) -> None:
    bot = await start_bot(SLACK_ALLOWED_CHANNELS=ALLOWED, **WrenHarness(fake_wren).settings())
    await _command(bot, "/insight-history", user=USER)
    await bot.slack.wait_for(lambda: bool(bot.slack.responses_to(USER)))
    [response] = bot.slack.responses_to(USER)
    assert (response["response_type"], response["text"]) == ("ephemeral", REFUSED_CHANNEL)
    await _command(bot, "/insight-history", user=USER, channel=ALLOWED)
    await bot.slack.wait_for(lambda: len(bot.slack.responses_to(USER)) >= 2)
    assert "blocks" in bot.slack.responses_to(USER)[-1]  # the history itself


async def test_slack_connect_users_are_refused_slash_commands_privately(
        start_bot: Any, fake_wren: FakeWren) -> None:
    bot = await start_bot(**WrenHarness(fake_wren).settings())
    await _command(bot, "/insight-history", user=OUTSIDER, team=PARTNER_TEAM)
    await _command(bot, "/insight-stop", user=OUTSIDER, team=PARTNER_TEAM)
    await bot.slack.wait_for(lambda: len(bot.slack.responses_to(OUTSIDER)) >= 2)
    assert [(r["response_type"], r["text"]) for r in bot.slack.responses_to(OUTSIDER)] \
        == [("ephemeral", REFUSED_ORGANISATION)] * 2
    await _nothing_happened(bot, fake_wren)


async def test_an_allowed_partner_organisation_may_use_slash_commands(
        start_bot: Any, fake_wren: FakeWren) -> None:
    bot = await start_bot(SLACK_EXTERNAL_TEAMS="E0PARTNER", **WrenHarness(fake_wren).settings())
    await _command(bot, "/insight-stop", user=OUTSIDER, team=PARTNER_TEAM, enterprise="E0PARTNER")
    await bot.slack.wait_for(lambda: bool(bot.slack.responses_to(OUTSIDER)))
    [response] = bot.slack.responses_to(OUTSIDER)
    assert response["text"] == "You have no running analyses in this channel."


# -- feedback --------------------------------------------------------------------------------
async def test_a_double_click_on_feedback_is_one_vote(wren_bot: SlackBot) -> None:
    event = await wren_bot.mention("rate me")
    await wren_bot.wait_finished(event["ts"])
    good, bad, reply_ts = _feedback_values(wren_bot, event["ts"])
    run_id = good.split(":", 1)[1]
    for _ in range(2):
        await wren_bot.action("feedback", good, message_ts=reply_ts, thread_ts=event["ts"])
    await wren_bot.slack.wait_for(lambda: len(_refusals(wren_bot, USER)) >= 2)
    assert await wren_bot.service.repo.feedback_counts(run_id) == {"good": 1, "bad": 0}
    assert "already rated" in _refusals(wren_bot, USER)[-1]

    await wren_bot.action("feedback", bad, message_ts=reply_ts, thread_ts=event["ts"])
    await wren_bot.slack.wait_for(lambda: len(_refusals(wren_bot, USER)) >= 3)
    assert await wren_bot.service.repo.feedback_counts(run_id) == {"good": 0, "bad": 1}
    run = await wren_bot.service.repo.get_run(run_id)
    assert (run.feedback, run.feedback_by) == ("bad", USER)


async def test_feedback_counts_from_channel_members_only(wren_bot: SlackBot) -> None:
    wren_bot.slack.channel_members[CHANNEL] = [USER, OTHER]
    event = await wren_bot.mention("rate me")
    await wren_bot.wait_finished(event["ts"])
    good, _, reply_ts = _feedback_values(wren_bot, event["ts"])
    run_id = good.split(":", 1)[1]

    await wren_bot.action("feedback", good, user=OTHER, message_ts=reply_ts, thread_ts=event["ts"])
    await wren_bot.slack.wait_for(lambda: bool(_refusals(wren_bot, OTHER)))
    assert _refusals(wren_bot, OTHER)[-1].startswith("Thanks")

    # someone who can see the public channel but never joined it
    await wren_bot.action("feedback", good, user="U0VISITOR1", message_ts=reply_ts,
                          thread_ts=event["ts"])
    await wren_bot.slack.wait_for(lambda: bool(_refusals(wren_bot, "U0VISITOR1")))
    assert _refusals(wren_bot, "U0VISITOR1") == [NOT_IN_CONVERSATION]
    assert await wren_bot.service.repo.feedback_counts(run_id) == {"good": 1, "bad": 0}
    run = await wren_bot.service.repo.get_run(run_id)
    assert run.feedback_by == OTHER
    # conversations.members was read once (kept a minute), in pages of Slack's largest size
    [call] = wren_bot.slack.calls_to("conversations.members")
    assert call.args["channel"] == CHANNEL and call.args["limit"] == "999"


async def test_feedback_from_a_large_channel_reads_every_page(wren_bot: SlackBot) -> None:
    members = [f"U{i:09d}" for i in range(2500)]
    wren_bot.slack.channel_members[CHANNEL] = [USER, *members]
    event = await wren_bot.mention("rate me")
    await wren_bot.wait_finished(event["ts"])
    good, _, reply_ts = _feedback_values(wren_bot, event["ts"])
    await wren_bot.action("feedback", good, user=members[-1], message_ts=reply_ts,
                          thread_ts=event["ts"])
    await wren_bot.slack.wait_for(lambda: bool(_refusals(wren_bot, members[-1])))
    assert _refusals(wren_bot, members[-1])[-1].startswith("Thanks")
    assert len(wren_bot.slack.calls_to("conversations.members")) == 3


async def test_a_vote_that_cannot_be_checked_is_not_counted(wren_bot: SlackBot) -> None:
    wren_bot.slack.channel_members[CHANNEL] = [USER, OTHER]
    wren_bot.slack.fail_next("conversations.members", "missing_scope", needed="channels:read",
                             provided="chat:write")
    event = await wren_bot.mention("rate me")
    await wren_bot.wait_finished(event["ts"])
    good, _, reply_ts = _feedback_values(wren_bot, event["ts"])
    await wren_bot.action("feedback", good, user=OTHER, message_ts=reply_ts, thread_ts=event["ts"])
    await wren_bot.slack.wait_for(lambda: bool(_refusals(wren_bot, OTHER)))
    assert _refusals(wren_bot, OTHER) == [VOTE_UNCHECKED]
    assert await wren_bot.service.repo.feedback_counts(good.split(":", 1)[1]) == {"good": 0, "bad": 0}
    # the asker's own vote needs no lookup
    await wren_bot.action("feedback", good, message_ts=reply_ts, thread_ts=event["ts"])
    await wren_bot.slack.wait_for(lambda: bool(_refusals(wren_bot, USER)))
    assert await wren_bot.service.repo.feedback_counts(good.split(":", 1)[1]) == {"good": 1, "bad": 0}


async def test_a_vote_naming_a_run_of_another_channel_is_not_recorded(wren_bot: SlackBot) -> None:
    event = await wren_bot.mention("rate me")
    await wren_bot.wait_finished(event["ts"])
    good, _, reply_ts = _feedback_values(wren_bot, event["ts"])
    await wren_bot.action("feedback", good, channel="C0ELSEWHERE", message_ts=reply_ts)
    await wren_bot.slack.wait_for(lambda: bool(_refusals(wren_bot, USER)))
    assert _refusals(wren_bot, USER) == ["I could not record that feedback."]
    assert await wren_bot.service.repo.feedback_counts(good.split(":", 1)[1]) == {"good": 0, "bad": 0}


async def test_an_external_users_vote_is_not_counted(start_bot: Any, fake_wren: FakeWren) -> None:
    bot = await start_bot(**WrenHarness(fake_wren).settings())
    bot.slack.channel_members[CHANNEL] = [USER, OUTSIDER]  # a Slack Connect channel
    event = await bot.mention("rate me")
    await bot.wait_finished(event["ts"])
    good, _, reply_ts = _feedback_values(bot, event["ts"])
    await bot.action("feedback", good, user=OUTSIDER, user_team=PARTNER_TEAM, message_ts=reply_ts,
                     thread_ts=event["ts"])
    await bot.slack.wait_for(lambda: bool(_refusals(bot, OUTSIDER)))
    assert _refusals(bot, OUTSIDER) == [REFUSED_ORGANISATION]
    assert await bot.service.repo.feedback_counts(good.split(":", 1)[1]) == {"good": 0, "bad": 0}

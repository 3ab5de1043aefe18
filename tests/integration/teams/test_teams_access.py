"""Who may ask, and where, in Teams (issue 12): allowed tenants and teams, and feedback votes
counted once per person — through Teams-shaped activities posted to ``/api/messages``.

Teams cannot show a message to one person in a channel or group chat, so a refusal is one short
reply in the conversation; either way the backend is never asked and no run is stored.
"""

from __future__ import annotations

from bot.teams.access import REFUSED_PLACE, REFUSED_TENANT
from tests.fakes.wren import FakeWren
from tests.integration.backends import WrenHarness
from tests.integration.teams.conftest import (
    ADA, BOB, CHANNEL, GROUP, PERSONAL, TEAM, TENANT, StartTeams, TeamsBot, suggestion_buttons,
)


async def _refused_once(bot: TeamsBot, conversation: str, text: str) -> None:
    [reply] = await bot.wait_replies(conversation)
    assert reply.text == text and not reply.card  # short, and nothing of the data
    await bot.client.get("/healthz")  # (a turn in flight would have been answered by now)
    assert bot.backend is not None and bot.backend.questions() == []
    assert await bot.service.repo.list_runs("teams", TENANT) == []


async def test_a_tenant_not_allowed_gets_one_short_reply_and_nothing_is_asked(
        start_teams: StartTeams, fake_wren: FakeWren) -> None:
    bot = await start_teams(WrenHarness(fake_wren), TEAMS_ALLOWED_TENANTS="another-tenant-id")
    activity = await bot.personal("Which states pay the most?")
    await _refused_once(bot, PERSONAL, REFUSED_TENANT)
    await bot.send(activity)  # Teams redelivers a slow turn: refused once
    await bot.client.get("/healthz")
    assert len(bot.replies(PERSONAL)) == 1


async def test_a_listed_tenant_is_answered(start_teams: StartTeams, fake_wren: FakeWren) -> None:
    bot = await start_teams(WrenHarness(fake_wren), TEAMS_ALLOWED_TENANTS=f"another, {TENANT}")
    await bot.personal("Which states pay the most?")
    [answer] = await bot.wait_finished(PERSONAL)
    assert answer.outcome.value == "done"


async def test_allowed_teams_answer_their_channels_only(start_teams: StartTeams,
                                                       fake_wren: FakeWren) -> None:
    bot = await start_teams(WrenHarness(fake_wren), TEAMS_ALLOWED_TEAMS=TEAM)
    await bot.group("Which states pay the most?")
    await _refused_once(bot, GROUP, REFUSED_PLACE)
    await bot.personal("Which states pay the most?")
    [reply] = await bot.wait_replies(PERSONAL)
    assert reply.text == REFUSED_PLACE

    post = await bot.channel("Which states pay the most?")
    [answer] = await bot.wait_finished(post["conversation"]["id"])
    assert answer.outcome.value == "done"
    assert bot.backend is not None and len(bot.backend.questions()) == 1


async def test_personal_in_the_allowed_teams_admits_personal_chats(start_teams: StartTeams,
                                                                   fake_wren: FakeWren) -> None:
    bot = await start_teams(WrenHarness(fake_wren), TEAMS_ALLOWED_TEAMS=f"{TEAM}, Personal")
    await bot.personal("Which states pay the most?")
    [answer] = await bot.wait_finished(PERSONAL)
    assert answer.outcome.value == "done"


async def test_a_team_is_recognised_by_its_entra_group_id(start_teams: StartTeams,
                                                          fake_wren: FakeWren) -> None:
    bot = await start_teams(WrenHarness(fake_wren), TEAMS_ALLOWED_TEAMS="0f1e2d3c-group")
    activity = bot.activity("Which states pay the most?", f"{CHANNEL};messageid=1", "channel",
                            mention=True, activity_id="1")
    activity["channelData"]["team"]["aadGroupId"] = "0f1e2d3c-group"
    await bot.send(activity)
    [answer] = await bot.wait_finished(activity["conversation"]["id"])
    assert answer.outcome.value == "done"


async def test_a_suggestion_is_refused_where_the_bot_may_no_longer_be_used(
        start_teams: StartTeams, fake_wren: FakeWren) -> None:
    first = await start_teams(WrenHarness(fake_wren))
    await first.group("Which states pay the most?")
    await first.wait_finished(GROUP)
    [answer] = first.replies(GROUP)
    [button, *_] = suggestion_buttons(answer.card)
    await first.client.close()
    # restarted with the group chats no longer allowed (same database)
    bot = await start_teams(WrenHarness(fake_wren), TEAMS_ALLOWED_TEAMS=TEAM)
    await bot.send(bot.activity("", GROUP, "groupChat", user=BOB, value=button["data"],
                                reply_to_id=answer.id, activity_id="1700000000999"))
    await bot.wait_replies(GROUP, count=2)
    assert bot.replies(GROUP)[-1].text == REFUSED_PLACE
    await bot.client.get("/healthz")
    assert bot.backend is not None and bot.backend.questions() == ["Which states pay the most?"]
    assert len(await bot.service.repo.list_runs("teams", TENANT)) == 1


# -- feedback --------------------------------------------------------------------------------
async def test_each_person_counts_once_however_often_they_vote(start_teams: StartTeams,
                                                               fake_wren: FakeWren) -> None:
    bot = await start_teams(WrenHarness(fake_wren))
    await bot.group("Which states pay the most?")
    await bot.wait_finished(GROUP)
    [reply] = bot.replies(GROUP)
    [run] = await bot.service.repo.list_runs("teams", TENANT, channel=GROUP)
    for _ in range(3):  # a double click, and Teams redelivering it
        assert await bot.vote(reply, "like", user=BOB) == b""
    assert await bot.service.repo.feedback_counts(run.id) == {"good": 1, "bad": 0}
    await bot.vote(reply, "like", user=ADA)
    assert await bot.service.repo.feedback_counts(run.id) == {"good": 2, "bad": 0}
    await bot.vote(reply, "dislike", user=BOB)  # BOB changes his mind: still one vote of his
    assert await bot.service.repo.feedback_counts(run.id) == {"good": 1, "bad": 1}


async def test_a_vote_from_where_the_bot_may_not_be_used_is_not_counted(
        start_teams: StartTeams, fake_wren: FakeWren) -> None:
    first = await start_teams(WrenHarness(fake_wren))
    await first.group("Which states pay the most?")
    await first.wait_finished(GROUP)
    [reply] = first.replies(GROUP)
    [run] = await first.service.repo.list_runs("teams", TENANT, channel=GROUP)
    await first.client.close()
    bot = await start_teams(WrenHarness(fake_wren), TEAMS_ALLOWED_TENANTS="another-tenant-id")
    assert await bot.vote(reply, "like", user=BOB) == b""  # Teams thanks; nothing is counted
    assert await bot.service.repo.feedback_counts(run.id) == {"good": 0, "bad": 0}
    assert (await bot.service.repo.get_run(run.id)).feedback is None

"""Who may ask, and where: the rules on their own (bot/slack/access.py, bot/slack/usergroups.py,
bot/slack/recent.py, bot/teams/access.py); the integration tests drive them through the bot."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from microsoft_agents.activity import Activity
from slack_sdk.errors import SlackApiError

from bot.config import Settings
from bot.slack.access import (
    REFUSED_CHANNEL, REFUSED_ORGANISATION, REFUSED_PERSON, UNCHECKED, Asker, SlackAccess,
)
from bot.slack.recent import Recent
from bot.teams.access import REFUSED_PLACE, REFUSED_TENANT, TeamsAccess


class Groups:
    """The one Web API method the user-group rule calls, answered from a dict."""

    def __init__(self, groups: dict[str, list[str]], *, error: str | None = None) -> None:
        self.groups = groups
        self.error = error
        self.calls: list[str] = []

    async def usergroups_users_list(self, *, usergroup: str) -> dict[str, Any]:
        self.calls.append(usergroup)
        await asyncio.sleep(0)
        if self.error or usergroup not in self.groups:
            raise SlackApiError("failed", {"ok": False, "error": self.error or "no_such_subteam"})
        return {"ok": True, "users": self.groups[usergroup]}


def settings(**values: str) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def asker(user: str = "U1", channel: str = "C1", team: str | None = "T1", **kw: Any) -> Asker:
    return Asker(user=user, channel=channel, user_team=team, home_team="T1", **kw)


async def test_no_settings_refuse_nobody_of_the_workspace() -> None:
    access = SlackAccess.from_settings(settings())
    assert await access.refusal(Groups({}), asker(channel="D1")) is None
    assert await access.refusal(Groups({}), asker(team="T9")) == REFUSED_ORGANISATION


async def test_allowed_channels_and_the_dm_word() -> None:
    access = SlackAccess.from_settings(settings(SLACK_ALLOWED_CHANNELS=" C1 ,, C2"))
    assert await access.refusal(Groups({}), asker(channel="C2")) is None
    assert await access.refusal(Groups({}), asker(channel="C3")) == REFUSED_CHANNEL
    assert await access.refusal(Groups({}), asker(channel="D1")) == REFUSED_CHANNEL
    with_dm = SlackAccess.from_settings(settings(SLACK_ALLOWED_CHANNELS="C1,Dm"))
    assert await with_dm.refusal(Groups({}), asker(channel="D1")) is None
    assert await with_dm.refusal(Groups({}), asker(channel="C3")) == REFUSED_CHANNEL


async def test_the_organisation_rule_goes_first() -> None:
    access = SlackAccess.from_settings(settings(SLACK_ALLOWED_USERGROUPS="S1"))
    slack = Groups({"S1": ["U1"]})
    assert await access.refusal(slack, asker(team="T9")) == REFUSED_ORGANISATION
    assert slack.calls == []  # not even asked


async def test_an_allowed_grid_admits_its_workspaces_named_apart() -> None:
    access = SlackAccess.from_settings(settings(SLACK_EXTERNAL_TEAMS="E7"))
    assert await access.refusal(Groups({}), asker(team="T9", user_enterprise="E7")) is None
    assert await access.refusal(Groups({}), asker(team="T9", user_enterprise="E8")) \
        == REFUSED_ORGANISATION


async def test_user_groups_are_asked_once_and_kept() -> None:
    access = SlackAccess.from_settings(settings(SLACK_ALLOWED_USERGROUPS="S2, S1"))
    slack = Groups({"S1": ["U1"], "S2": ["U2"]})
    results = await asyncio.gather(*(access.refusal(slack, asker(user=u))
                                     for u in ("U1", "U2", "U3") * 5))
    assert set(results[0::3]) == {None} and set(results[1::3]) == {None}
    assert set(results[2::3]) == {REFUSED_PERSON}
    assert sorted(slack.calls) == ["S1", "S2"]  # once per group, however many asked at once


async def test_a_group_slack_cannot_answer_for_refuses_unless_another_admits() -> None:
    access = SlackAccess.from_settings(settings(SLACK_ALLOWED_USERGROUPS="S0GONE, S1"))
    slack = Groups({"S1": ["U1"]})  # S0GONE: no_such_subteam
    assert await access.refusal(slack, asker(user="U1")) is None
    assert await access.refusal(slack, asker(user="U2")) == UNCHECKED
    broken = SlackAccess.from_settings(settings(SLACK_ALLOWED_USERGROUPS="S1"))
    assert await broken.refusal(Groups({"S1": ["U1"]}, error="missing_scope"), asker()) == UNCHECKED


async def test_recent_keeps_values_not_failures() -> None:
    now = [0.0]
    recent: Recent[str, int] = Recent(60, clock=lambda: now[0])
    loads: list[int] = []

    async def load() -> int:
        loads.append(1)
        if len(loads) == 1:
            raise RuntimeError("slack is down")
        return len(loads)

    with pytest.raises(RuntimeError):
        await recent.get("k", load)
    assert await recent.get("k", load) == 2  # the failure was not kept
    assert await recent.get("k", load) == 2  # the value was
    now[0] = 61
    assert await recent.get("k", load) == 3  # ...for ttl seconds


# -- Teams -----------------------------------------------------------------------------------
def activity(kind: str, *, tenant: str = "t1", team: dict[str, str] | None = None) -> Activity:
    data: dict[str, Any] = {"tenant": {"id": tenant}}
    if team is not None:
        data["team"] = team
    return Activity.model_validate({
        "type": "message", "id": "1", "channelId": "msteams", "serviceUrl": "https://x/",
        "conversation": {"id": "c1", "conversationType": kind, "tenantId": tenant},
        "channelData": data, "from": {"id": "29:u"}, "recipient": {"id": "28:b"}})


def test_teams_no_settings_refuse_nobody() -> None:
    access = TeamsAccess.from_settings(settings())
    assert access.refusal(activity("personal")) is None
    assert access.refusal(activity("channel", team={"id": "19:x"})) is None


def test_teams_allowed_tenants() -> None:
    access = TeamsAccess.from_settings(settings(TEAMS_ALLOWED_TENANTS="t1, t2"))
    assert access.refusal(activity("personal", tenant="t2")) is None
    assert access.refusal(activity("personal", tenant="t3")) == REFUSED_TENANT


def test_teams_allowed_teams_by_id_or_group_and_the_chat_words() -> None:
    access = TeamsAccess.from_settings(settings(TEAMS_ALLOWED_TEAMS="19:team, group-7, GroupChat"))
    assert access.refusal(activity("channel", team={"id": "19:team"})) is None
    assert access.refusal(activity("channel", team={"id": "19:other", "aadGroupId": "group-7"})) is None
    assert access.refusal(activity("channel", team={"id": "19:other"})) == REFUSED_PLACE
    assert access.refusal(activity("groupChat")) is None
    assert access.refusal(activity("personal")) == REFUSED_PLACE
    both = TeamsAccess.from_settings(settings(TEAMS_ALLOWED_TEAMS="personal",
                                              TEAMS_ALLOWED_TENANTS="t9"))
    assert both.refusal(activity("personal")) == REFUSED_TENANT  # every rule must pass

"""The fake Slack's membership methods (``usergroups.users.list``, ``conversations.members``),
driven by the real slack_sdk AsyncWebClient: answers and errors shaped as Slack's."""

from __future__ import annotations

from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack import FakeSlack
from tests.unit.test_fake_slack import client, fake  # noqa: F401  (fixtures)
from tests.unit.test_fake_slack import error_of as raised_by


async def error_of(coro) -> str:
    return (await raised_by(coro)).response["error"]


async def test_usergroup_members_and_errors(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.usergroups["S1"] = ["U1", "W2"]
    assert (await client.usergroups_users_list(usergroup="S1"))["users"] == ["U1", "W2"]
    assert await error_of(client.usergroups_users_list(usergroup="S9")) == "no_such_subteam"
    assert await error_of(client.api_call("usergroups.users.list")) == "invalid_arguments"
    fake.fail_next("usergroups.users.list", "missing_scope", needed="usergroups:read")
    assert await error_of(client.usergroups_users_list(usergroup="S1")) == "missing_scope"


async def test_channel_members_come_in_pages_with_a_cursor(fake: FakeSlack,
                                                           client: AsyncWebClient) -> None:
    fake.channel_members["C1"] = [f"U{i}" for i in range(5)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await client.conversations_members(channel="C1", limit=2,
                                                  **({"cursor": cursor} if cursor else {}))
        seen += page["members"]
        pages += 1
        cursor = page["response_metadata"]["next_cursor"]
        if not cursor:
            break
    assert seen == fake.channel_members["C1"] and pages == 3
    assert len((await client.conversations_members(channel="C1"))["members"]) == 5  # default 100


async def test_channel_members_errors(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.channel_members["C1"] = ["U1"]
    assert await error_of(client.conversations_members(channel="C9")) == "channel_not_found"
    assert await error_of(client.conversations_members(channel="C1", limit=1000)) == "invalid_limit"
    assert await error_of(client.conversations_members(channel="C1", cursor="bm9wZQ==")) \
        == "invalid_cursor"

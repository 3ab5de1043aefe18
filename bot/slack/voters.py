"""Whose 👍/👎 counts on a Slack answer: the people of the conversation it was given in.

A vote counts when it comes from the person who asked, or from a **current member of the
channel** the answer is in (``conversations.members``, :mod:`bot.slack.channel_members`) — in
both cases someone the access rules (:mod:`bot.slack.access`) let use the bot there.

Why channel members, and not just anyone who can press the button: in a public channel people
who never joined can open it and click, and a Slack Connect channel shows the answer to another
organisation; their verdicts would say nothing about how the bot serves its own users. Why not
only the people who posted in the thread: a colleague who read the answer in the channel and
found it wrong is exactly who a 👎 is for, and would not understand being turned away for not
having written in the thread. Channel membership is what Slack itself shows as "in this
conversation", so it is what a user expects. The asker counts even after leaving the channel:
it was their question. In a direct message the members are the asker and the bot.

When Slack cannot say who is in the channel (a missing ``channels:read``/``groups:read`` scope,
an outage), only the asker's vote counts; anyone else is told it was not recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.access import Asker, SlackAccess
from bot.slack.channel_members import ChannelMembers
from bot.slack.recent import LookupFailed
from storage.repository import RunRecord

NOT_IN_CONVERSATION = ("Only people in this conversation can rate its answers — your rating was "
                       "not recorded.")
UNCHECKED = ("I could not check that you are in this conversation, so your rating was not "
             "recorded. Please try again in a minute.")


@dataclass
class Voters:
    access: SlackAccess
    members: ChannelMembers = field(default_factory=ChannelMembers)

    async def refusal(self, client: AsyncWebClient, run: RunRecord, voter: Asker) -> str | None:
        """What to tell ``voter`` if their vote on ``run`` does not count; None when it does.
        ``run`` must be the run of the message clicked (same channel)."""
        refused = await self.access.refusal(client, voter)
        if refused is not None:
            return refused
        if voter.user == run.asker:
            return None
        try:
            if await self.members.includes(client, voter.home_team, run.channel, voter.user):
                return None
        except LookupFailed:
            return UNCHECKED
        return NOT_IN_CONVERSATION

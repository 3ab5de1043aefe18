"""Who may ask the bot in Slack, and where: one decision for every way a question comes in.

The bot answers from the company's data, so an operator decides who gets to ask. Three rules,
each off unless configured, checked in this order:

1. **organisation** — people from another organisation in a Slack Connect channel are refused
   unless ``SLACK_EXTERNAL_TEAMS`` lists their team (:mod:`bot.slack.membership`);
2. **place** — with ``SLACK_ALLOWED_CHANNELS`` set, only those conversations (channel ids) are
   answered; the word ``dm`` admits direct messages with the bot too (their ids, one per person,
   cannot be listed in advance);
3. **person** — with ``SLACK_ALLOWED_USERGROUPS`` set, only members of one of those user groups
   may ask. Slack says who is in a group (:mod:`bot.slack.usergroups`, kept a minute), so the
   groups are managed where people already are; when Slack cannot say, the answer is no.

Mentions, direct messages, thread follow-ups, slash commands and suggested follow-ups all call
:meth:`SlackAccess.refusal` before anything is stored or sent to the backend; feedback votes too
(:mod:`bot.slack.voters`). A refusal is said privately to the one person (an ephemeral message,
or the slash command's ephemeral response), so a channel never sees who was turned away.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.slack.membership import REFUSAL as REFUSED_ORGANISATION
from bot.slack.membership import Membership
from bot.slack.recent import LookupFailed
from bot.slack.usergroups import UsergroupMembers

DIRECT = "dm"  # SLACK_ALLOWED_CHANNELS entry that admits direct messages with the bot

REFUSED_CHANNEL = ("Sorry — I am not set up to answer questions in this conversation. "
                   "Nothing was sent to the analytics agent.")
REFUSED_PERSON = ("Sorry — you are not in a group that may ask me questions; your workspace "
                  "admin can give you access. Nothing was sent to the analytics agent.")
UNCHECKED = ("Sorry — I could not check that you may ask me questions (Slack did not say), so "
             "nothing was sent to the analytics agent. Please try again in a minute.")

__all__ = ["Asker", "SlackAccess", "REFUSED_CHANNEL", "REFUSED_ORGANISATION", "REFUSED_PERSON",
           "UNCHECKED", "home_of"]


@dataclass(frozen=True)
class Asker:
    """Who is asking, from where: what every rule needs, whatever the kind of request."""

    user: str
    channel: str
    user_team: str | None  # the asker's own team as the request names it (None: the home team)
    home_team: str  # the workspace the app is installed in
    home_enterprise: str | None = None
    user_enterprise: str | None = None  # the asker's Grid, when named apart (slash commands)

    @property
    def direct(self) -> bool:
        """A direct message with the bot (Slack's DM ids start with ``D``)."""
        return self.channel.startswith("D")


def _ids(value: str) -> frozenset[str]:
    return frozenset(v.strip() for v in value.split(",") if v.strip())


@dataclass
class SlackAccess:
    membership: Membership = field(default_factory=Membership)
    channels: frozenset[str] = frozenset()  # empty: every conversation
    usergroups: tuple[str, ...] = ()  # empty: everyone
    groups: UsergroupMembers = field(default_factory=UsergroupMembers)

    @classmethod
    def from_settings(cls, settings: Settings) -> "SlackAccess":
        channels = _ids(settings.SLACK_ALLOWED_CHANNELS)
        channels = frozenset(DIRECT if c.lower() == DIRECT else c for c in channels)
        return cls(membership=Membership.from_setting(settings.SLACK_EXTERNAL_TEAMS),
                   channels=channels,
                   usergroups=tuple(sorted(_ids(settings.SLACK_ALLOWED_USERGROUPS))))

    async def refusal(self, client: AsyncWebClient, asker: Asker) -> str | None:
        """What to tell ``asker`` if they may not ask here; None when they may."""
        if not self.membership.may_ask(user_team=asker.user_team, home_team=asker.home_team,
                                       home_enterprise=asker.home_enterprise,
                                       user_enterprise=asker.user_enterprise):
            return REFUSED_ORGANISATION
        if self.channels and not self._place_allowed(asker):
            return REFUSED_CHANNEL
        if self.usergroups:
            try:
                if not await self.groups.includes(client, asker.home_team, asker.user,
                                                  self.usergroups):
                    return REFUSED_PERSON
            except LookupFailed:
                return UNCHECKED
        return None

    def _place_allowed(self, asker: Asker) -> bool:
        return asker.channel in self.channels or (asker.direct and DIRECT in self.channels)


def home_of(context: Any) -> tuple[str, str | None]:
    """The installing workspace and its Enterprise Grid, as Bolt authorised the request.

    Not the request's own ``team_id``: a slash command or a click from someone of another
    organisation in a Slack Connect channel names *their* team there. The authorisation
    (``auth.test`` of the bot's token, or the installation found) names the app's own."""
    result = getattr(context, "authorize_result", None)
    if getattr(context, "is_enterprise_install", False):
        # an Enterprise Grid organisation's installation (the distributed app): it is at home in
        # every workspace of the organisation, so in the one the request comes from
        # (bot/slack/middleware/scheduled_client.py names it)
        enterprise = (result.enterprise_id if result is not None else None) or context.enterprise_id
        return context.get("workspace") or context.team_id or "", enterprise
    if result is None:
        return context.team_id or "", context.enterprise_id
    return result.team_id or context.team_id or "", result.enterprise_id

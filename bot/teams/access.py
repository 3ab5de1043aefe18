"""Who may ask the bot in Teams, and where.

The bot answers from the company's data, so an operator decides who gets to ask. Two rules, each
off unless configured:

* ``TEAMS_ALLOWED_TENANTS`` — Entra tenant ids (``conversation.tenantId``, else
  ``channelData.tenant.id``) whose people may ask: for an app registered multi-tenant, the
  organisations it serves. (``TEAMS_TENANT_ID``, the app's own tenant, still ignores any other
  tenant outright, as before.)
* ``TEAMS_ALLOWED_TEAMS`` — teams whose channels may ask: the team id Teams sends in
  ``channelData.team.id`` (``19:…@thread.tacv2``) or the team's Entra group id
  (``channelData.team.aadGroupId``, what the Teams admin centre shows). Chats belong to no team,
  so with this set they are refused too, unless the list also holds the word ``personal``
  (1:1 chats with the bot) or ``groupchat`` (group chats).

Questions, suggested follow-ups, typed commands and card buttons all pass :meth:`TeamsAccess.
refusal` before anything is stored or asked; a feedback vote from where the bot may not be used
is not counted. Teams cannot show a message to one person in a channel or group chat, so the
refusal is a short reply in the conversation (in a channel, in the thread of the mention) that
names nobody and shows nothing of the data; in a 1:1 chat it is private by nature.
"""

from __future__ import annotations

from dataclasses import dataclass

from microsoft_agents.activity import Activity

from bot.config import Settings
from bot.teams.inbound import tenant_of

CHATS = ("personal", "groupchat")  # TEAMS_ALLOWED_TEAMS words for the chats outside any team

REFUSED_TENANT = ("Sorry — I am not set up to answer people of your organisation. "
                  "Nothing was sent to the analytics agent.")
REFUSED_PLACE = ("Sorry — I am not set up to answer questions here. "
                 "Nothing was sent to the analytics agent.")


def _ids(value: str) -> frozenset[str]:
    ids = (v.strip() for v in value.split(","))
    return frozenset(v.lower() if v.lower() in CHATS else v for v in ids if v)


@dataclass(frozen=True)
class TeamsAccess:
    tenants: frozenset[str] = frozenset()  # empty: every tenant
    teams: frozenset[str] = frozenset()  # empty: every team and chat

    @classmethod
    def from_settings(cls, settings: Settings) -> "TeamsAccess":
        return cls(tenants=_ids(settings.TEAMS_ALLOWED_TENANTS),
                   teams=_ids(settings.TEAMS_ALLOWED_TEAMS))

    def refusal(self, activity: Activity) -> str | None:
        """What to tell the sender of ``activity`` if they may not ask here; None when they may."""
        if self.tenants and tenant_of(activity) not in self.tenants:
            return REFUSED_TENANT
        if self.teams and not self._place_allowed(activity):
            return REFUSED_PLACE
        return None

    def _place_allowed(self, activity: Activity) -> bool:
        data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
        team = data.get("team") if isinstance(data.get("team"), dict) else None
        if team is not None:
            return any(isinstance(team.get(k), str) and team[k] in self.teams
                       for k in ("id", "aadGroupId"))
        kind = ((activity.conversation.conversation_type if activity.conversation else None)
                or "personal").lower()  # as bot/teams/inbound.py reads a chat without a type
        return kind in CHATS and kind in self.teams

"""Who may ask: members of the workspace that installed the app, and allowed external teams.

In a Slack Connect channel people from other organisations can mention the bot too, and it
would query this company's data for them. By default only the installing workspace's members
are answered; ``SLACK_EXTERNAL_TEAMS`` lists workspace (``T…``) or Enterprise Grid (``E…``) ids
whose users may ask as well — list your own Grid organisation's id to let its other workspaces
in. Slack names the asker's own team on every event (``user_team``, else ``team``) and
interaction (``user.team_id``), and a slash command names it as its ``team_id`` (with the
Grid's ``enterprise_id``); a request naming none is from the installing workspace. The other
rules on who may ask (channels, user groups) are in :mod:`bot.slack.access`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

REFUSAL = ("Sorry — I answer members of this workspace only, and your organisation is not "
           "allowed to ask me here. Nothing was sent to the analytics agent.")


@dataclass(frozen=True)
class Membership:
    allowed: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_setting(cls, value: str) -> "Membership":
        return cls(frozenset(v.strip() for v in value.split(",") if v.strip()))

    def may_ask(self, *, user_team: str | None, home_team: str,
                home_enterprise: str | None = None, user_enterprise: str | None = None) -> bool:
        """``user_enterprise``: the asker's Enterprise Grid, when the request names it apart
        from their workspace (slash commands); listing it admits all its workspaces."""
        if not user_team or user_team == home_team:
            return True
        if user_team in self.allowed or (user_enterprise and user_enterprise in self.allowed):
            return True
        return bool(home_enterprise) and home_enterprise in self.allowed  # the Grid's own workspaces


def event_team(event: dict) -> str | None:
    """The asker's own team, as an event names it."""
    team = event.get("user_team") or event.get("team")
    return team if isinstance(team, str) and team else None

"""Microsoft Teams: the second chat platform, on the same relay as Slack.

See :mod:`bot.teams.integration` for the assembly and :mod:`bot.teams.inbound` for how Teams
conversations map to relay threads.
"""

from bot.teams.integration import TeamsIntegration

__all__ = ["TeamsIntegration"]

"""What Slack listeners need, passed explicitly to each ``register(app, deps)``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bot.metrics import Metrics
from bot.relay import Relay, ThreadRef
from bot.routing import Place
from bot.slack.access import SlackAccess
from bot.slack.locales import UserLocales
from bot.slack.membership import Membership
from bot.slack.voters import Voters
from storage.repository import Repository

PLATFORM = "slack"
_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")
_STOP_WORDS = {"stop", "cancel", "stop it", "abort"}


@dataclass
class SlackDeps:
    relay: Relay
    repo: Repository
    metrics: Metrics
    locales: UserLocales = field(default_factory=UserLocales)
    prompt_examples: list[str] = field(default_factory=list)  # SLACK_SUGGESTED_PROMPTS
    membership: Membership = field(default_factory=Membership)  # SLACK_EXTERNAL_TEAMS
    # who may ask, and where (SLACK_EXTERNAL_TEAMS, SLACK_ALLOWED_CHANNELS/USERGROUPS), and whose
    # feedback counts
    access: SlackAccess = field(default_factory=SlackAccess)
    voters: Voters = field(init=False)

    def __post_init__(self) -> None:
        self.voters = Voters(self.access)


def place_of(ref: ThreadRef, channel_type: str | None = None) -> Place:
    """Where a Slack question comes from, as the routes see it (bot/routing.py)."""
    return Place(PLATFORM, ref.workspace, ref.channel,
                 dm=channel_type == "im" or ref.channel.startswith("D"))


def strip_mentions(text: str) -> str:
    return " ".join(_MENTION.sub(" ", text or "").split())


def is_stop(text: str) -> bool:
    return text.strip().lower().rstrip(".!") in _STOP_WORDS


HELP_TEXT = (
    "Ask me a question about your data and I will work it out in this thread — for example "
    "_“@insightbot which regions grew fastest last quarter?”_.\n"
    "• Follow-up questions in the same thread keep the context.\n"
    "• Type `stop` in the thread (or press *Stop*) to stop a running analysis.\n"
    "• `/insight-history` lists your recent questions in a channel; `/insight-stop` stops yours."
)

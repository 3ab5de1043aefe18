"""Slack's published rate limits, as rules for the delivery scheduler.

Sources: shared/reference/slack.md §3.1 (docs.slack.dev rate-limits page, java-slack-sdk's
``MethodsRateLimits``). Tiers are per method, per workspace, per app: Tier 2 = 20+/min, Tier 3 =
50+/min, Tier 4 = 100+/min. Slack does not publish exactly how it enforces them, so every budget
here stays below the published number in any window (90 % of it; ``chat.update``'s own budget
is the ``SLACK_UPDATE_BUDGET`` setting, 45 of Tier 3's 50):

* ``chat.update`` and ``chat.delete``: Tier 3 each — two separate budgets, which is why a
  placeholder can be retired by whichever of the two has room;
* ``chat.postMessage``: "about one message per second per channel" — one post per channel per
  ``SLACK_POST_INTERVAL`` (a little over a second, so network jitter cannot make two posts
  arrive less than a second apart); short bursts are not relied on;
* ``chat.postEphemeral`` and the ``files.*`` upload methods: Tier 4;
* ``chat.startStream``/``stopStream``: Tier 2; ``appendStream``: Tier 4;
* ``assistant.threads.setStatus``: a "special" limit with no published number; status lines are
  per thread, so at most one change per thread per ``SLACK_STATUS_INTERVAL`` (slack-morphism
  uses 1/s for it); a 429 still holds the method back for its ``Retry-After``;
* ``agents.sessions.setStatus``: Tier 3 (java-slack-sdk #1633);
* ``usergroups.users.list``: Tier 2; ``conversations.members``: Tier 4 (the access checks).
"""

from __future__ import annotations

from bot.config import Settings
from bot.delivery.limiter import Window
from bot.delivery.scheduler import Per, Rule, Scheduler

MARGIN = 0.9  # of each published number, for what Slack does not say about its enforcement


def slack_rules(settings: Settings) -> dict[str, Rule]:
    window = settings.SLACK_BUDGET_WINDOW  # Slack's minute (tests run it faster)

    def tier(published: int) -> Rule:
        return Rule((Window(int(published * MARGIN), window),))

    tier2, tier3, tier4 = tier(20), tier(50), tier(100)
    return {
        "chat.update": Rule((Window(settings.SLACK_UPDATE_BUDGET, window),)),
        "chat.delete": tier3,
        "chat.postMessage": Rule((Window(1, settings.SLACK_POST_INTERVAL),), per=Per.CHANNEL),
        "chat.postEphemeral": tier4,
        "chat.startStream": tier2,
        "chat.stopStream": tier2,
        # appends only ever carry progress (the answer ends with stopStream): all of it theirs
        "chat.appendStream": Rule(tier4.windows, progress_share=1.0),
        "files.getUploadURLExternal": tier4,
        "files.completeUploadExternal": tier4,
        "files.info": tier4,
        "assistant.threads.setStatus": Rule((Window(1, settings.SLACK_STATUS_INTERVAL),),
                                            per=Per.THREAD),
        "agents.sessions.setStatus": tier3,
        "reactions.add": tier3,
        "conversations.replies": tier3,
        "conversations.history": tier3,
        "users.info": tier4,
        # access checks (bot/slack/usergroups.py, channel_members.py; also cached a minute)
        "usergroups.users.list": tier2,
        "conversations.members": tier4,
        "views.publish": tier4,
        "views.open": tier4,
    }


def slack_scheduler(settings: Settings) -> Scheduler:
    return Scheduler(slack_rules(settings), progress_share=settings.PROGRESS_SHARE)

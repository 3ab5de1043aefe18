"""Teams' published rate limits, as rules for the delivery scheduler.

From Microsoft's "Optimize your bot: rate limiting" page (shared/reference/teams.md §3.3), per bot
per conversation (thread): 7 sends per second, 8 per 2 s, 60 per 30 s and 1,800 per hour. Posts,
updates and deletes all count, so they share one budget. Every window stays a little under the
published number; all of them scale with ``TEAMS_BUDGET_WINDOW`` (30 s) so tests can run Teams'
clock faster without changing any ratio.

Not modelled: "all bots in one thread: 14/s" (we are one bot) and the per-app-per-tenant global
limit (30–50 RPS, numbers disagree); a 429 from either still holds the conversation back.
"""

from __future__ import annotations

from bot.config import Settings
from bot.delivery.limiter import Window
from bot.delivery.scheduler import Rule, Scheduler

SEND = "send"  # posts, updates and deletes: one budget per conversation
PUBLISHED_WINDOW = 30.0
PUBLISHED_BUDGET = 60  # sends per 30 s: TEAMS_UPDATE_BUDGET is held under it, whatever it says


def teams_rules(settings: Settings) -> dict[str, Rule]:
    scale = settings.TEAMS_BUDGET_WINDOW / PUBLISHED_WINDOW
    windows = (Window(6, 1.0 * scale), Window(7, 2.0 * scale),
               Window(min(settings.TEAMS_UPDATE_BUDGET, PUBLISHED_BUDGET - 1),
                      settings.TEAMS_BUDGET_WINDOW),
               Window(1700, 3600.0 * scale))
    return {SEND: Rule(windows)}


def teams_scheduler(settings: Settings) -> Scheduler:
    return Scheduler(teams_rules(settings), progress_share=settings.PROGRESS_SHARE)

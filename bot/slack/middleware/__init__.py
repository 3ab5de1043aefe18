"""Global Bolt middleware, one small class per concern."""

from bot.slack.middleware.scheduled_client import ScheduledClientMiddleware

__all__ = ["ScheduledClientMiddleware"]

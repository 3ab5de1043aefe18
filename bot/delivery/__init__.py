"""Getting snapshots onto a chat platform without flooding it: coalescing and rate budgets."""

from bot.delivery.budget import RateBudget
from bot.delivery.coalescer import Coalescer

__all__ = ["RateBudget", "Coalescer"]

"""Getting answers onto a chat platform under its limits, fast and without losing any.

``scheduler`` + ``limiter``: one budget per platform method and scope, with priorities;
``reply``: the placeholder → progress → final lifecycle every platform shares; ``coalescer``:
latest-wins progress; ``priority``: who goes first and how a call says so.
"""

from bot.delivery.coalescer import Coalescer
from bot.delivery.limiter import Limiter, SlotTimeout, Window
from bot.delivery.priority import Priority, call_options
from bot.delivery.scheduler import Per, Rule, Scheduler, Scope

__all__ = ["Coalescer", "Limiter", "Per", "Priority", "Rule", "Scheduler", "Scope", "SlotTimeout",
           "Window", "call_options"]

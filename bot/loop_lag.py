"""How late the event loop runs ready work: the wait every ack, placeholder and edit shares.

One task sleeps a short interval again and again and records how much later than asked it
woke up. Anything that holds the loop — a chart render inside the interpreter, a large JSON
document parsed in one go, a synchronous call — shows up here as lag, and it is what every other
run waits for at that moment. Exposed on ``/metrics`` as ``insightbot_event_loop_lag_seconds``
(histogram) and ``insightbot_event_loop_lag_max_seconds``; the benchmarks read both.
"""

from __future__ import annotations

import asyncio
import time

from bot.metrics import Metrics

INTERVAL = 0.05


class LoopLagMonitor:
    def __init__(self, metrics: Metrics, *, interval: float = INTERVAL) -> None:
        self._metrics = metrics
        self._interval = interval
        self.worst = 0.0

    async def run(self) -> None:
        while True:
            asked = time.perf_counter()
            await asyncio.sleep(self._interval)
            lag = max(0.0, time.perf_counter() - asked - self._interval)
            self._metrics.loop_lag.observe(lag)
            if lag > self.worst:
                self.worst = lag
                self._metrics.loop_lag_max.set(lag)

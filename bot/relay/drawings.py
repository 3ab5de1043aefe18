"""A run's charts, drawn off the answer's critical path.

Drawing a chart takes a renderer process a tenth of a second or more, and many answers can
arrive in the same second: rendered one after the other, the thirtieth answer of a burst would
wait seconds for pictures drawn for other runs. So a chart spec starts drawing the moment it
arrives and the run goes on without it; each snapshot carries the chart as drawn so far. When
the run ends the relay waits only briefly (``settle``) for drawings still in flight; what is not
drawn by then reaches the thread after the answer (``ReplySink.add_charts``).

Backends may send the same chart again and again (ClickZetta repeats every item on every poll):
a spec is drawn once per run.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any, Callable, Protocol

from adapters.answer import Answer, ChartPart
from bot.charts.errors import ChartError

log = logging.getLogger(__name__)


class ChartRendering(Protocol):
    """The bit of bot.charts the relay uses: untrusted Vega-Lite in, PNG bytes out."""

    async def render(self, spec: dict[str, Any]) -> bytes:
        ...


class Drawings:
    def __init__(self, renderer: ChartRendering | None, run_id: str,
                 on_drawn: Callable[[], None]) -> None:
        self._renderer = renderer
        self._run_id = run_id
        self._on_drawn = on_drawn
        self._tasks: dict[str, asyncio.Task[ChartPart]] = {}  # chart id → its drawing
        self._specs: dict[str, dict[str, Any]] = {}  # chart id → the spec being drawn
        self._drawn: dict[str, ChartPart] = {}
        self._delivered: set[str] = set()
        self._final: set[str] | None = None  # the final answer's chart ids, once it went out

    def submit(self, chart: ChartPart) -> ChartPart:
        """The chart to show now; starts drawing it if it is a new spec."""
        if chart.vega_spec is None or chart.png is not None or self._renderer is None:
            return chart
        if self._specs.get(chart.id) is chart.vega_spec:
            return self._drawn.get(chart.id, chart)  # the same spec again: drawn once
        # a new spec for this chart: an older drawing still in flight finishes unused (cancelling
        # it would kill its worker process, which costs a restart)
        self._drawn.pop(chart.id, None)
        self._specs[chart.id] = chart.vega_spec
        self._tasks[chart.id] = asyncio.create_task(self._draw(chart),
                                                    name=f"chart-{self._run_id}-{chart.id}")
        return chart

    def into(self, answer: Answer) -> Answer:
        """``answer`` with every chart drawn so far in place of its undrawn spec."""
        for chart in answer.charts:
            drawn = self._drawn.get(chart.id)
            if drawn is not None and chart.png is None and chart.vega_spec is self._specs.get(chart.id):
                answer = replace(answer, parts=tuple(drawn if p is chart else p for p in answer.parts))
        return answer

    async def settle(self, timeout: float) -> None:
        """Wait up to ``timeout`` for drawings in flight."""
        pending = [t for t in self._tasks.values() if not t.done()]
        if pending and timeout > 0:
            await asyncio.wait(pending, timeout=timeout)

    def mark_delivered(self, answer: Answer) -> None:
        """The final answer went out with these charts drawn (or with nothing left to draw).
        Only its charts may follow it: a chart the backend withdrew while it was being drawn
        (ClickZetta replaces an earlier result group) is not the answer's any more."""
        self._delivered.update(c.id for c in answer.charts if c.png is not None or c.note)
        self._final = {c.id for c in answer.charts}

    async def late(self) -> list[ChartPart]:
        """The charts drawn after the answer went out (waits for drawings still in flight)."""
        pending = [t for t in self._tasks.values() if not t.done()]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        return [c for cid, c in self._drawn.items()
                if cid not in self._delivered and c.png is not None
                and (self._final is None or cid in self._final)]

    def cancel(self) -> None:
        for task in self._tasks.values():
            task.cancel()

    async def _draw(self, chart: ChartPart) -> ChartPart:
        assert self._renderer is not None and chart.vega_spec is not None
        try:
            png = await self._renderer.render(chart.vega_spec)
            drawn = replace(chart, png=png)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # ChartError or anything the renderer hit: a quiet note
            log.info("run %s: chart not rendered: %s", self._run_id, exc)
            # a ChartError's text is written for chat users; anything else is not shown
            reason = str(exc).rstrip(".") if isinstance(exc, ChartError) else "it could not be drawn"
            drawn = replace(chart, note=f"No chart this time: {reason}.")
        if self._specs.get(chart.id) is chart.vega_spec:  # still the spec the answer shows
            self._drawn[chart.id] = drawn
            self._on_drawn()
        return drawn

"""A run's charts drawn beside it: what follows the answer into the thread, and what does not."""

from __future__ import annotations

import asyncio
from typing import Any

from adapters.answer import Answer, ChartPart, TextPart
from bot.relay.drawings import Drawings


class GatedRenderer:
    """Draws a chart only when the test lets it (a renderer busy with other runs)."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()

    async def render(self, spec: dict[str, Any]) -> bytes:
        await self.gate.wait()
        return b"\x89PNG" + spec["mark"].encode()


async def test_a_chart_drawn_after_the_answer_follows_it() -> None:
    renderer = GatedRenderer()
    drawings = Drawings(renderer, "run1", on_drawn=lambda: None)
    chart = drawings.submit(ChartPart("c1", vega_spec={"mark": "bar"}))
    answer = Answer(parts=(TextPart("t", "hi"), chart))
    await drawings.settle(0.01)
    drawings.mark_delivered(drawings.into(answer))  # went out without its picture
    renderer.gate.set()
    [late] = await drawings.late()
    assert late.id == "c1" and late.png == b"\x89PNGbar"


async def test_a_chart_withdrawn_before_the_answer_went_out_does_not_follow_it() -> None:
    renderer = GatedRenderer()
    drawings = Drawings(renderer, "run1", on_drawn=lambda: None)
    drawings.submit(ChartPart("old-group", vega_spec={"mark": "line"}))
    kept = drawings.submit(ChartPart("new-group", vega_spec={"mark": "bar"}))
    final = Answer(parts=(TextPart("old-group", ""), kept))  # the backend replaced the first
    drawings.mark_delivered(final)
    renderer.gate.set()
    assert [c.id for c in await drawings.late()] == ["new-group"]


async def test_charts_delivered_with_the_answer_do_not_come_again() -> None:
    renderer = GatedRenderer()
    renderer.gate.set()
    drawings = Drawings(renderer, "run1", on_drawn=lambda: None)
    chart = drawings.submit(ChartPart("c1", vega_spec={"mark": "bar"}))
    await drawings.settle(5)
    drawings.mark_delivered(drawings.into(Answer(parts=(chart,))))
    assert await drawings.late() == []

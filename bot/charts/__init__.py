"""Vega-Lite → PNG for chat, treating every spec as untrusted input.

* :mod:`bot.charts.spec` — :func:`prepare_spec`, the pure rewrite of a browser spec into a
  static, bounded, network-free one;
* :mod:`bot.charts.alt_text` — :func:`chart_alt_text` for screen readers;
* :mod:`bot.charts.render` — the blocking vl-convert calls (:func:`render_png_sync`);
* :mod:`bot.charts.renderer` — :class:`ChartRenderer`, which runs them in worker processes
  (:mod:`bot.charts.pool`, :mod:`bot.charts.process`, :mod:`bot.charts.worker`, over the frames
  of :mod:`bot.charts.frames`) because vl-convert holds the GIL while it renders.

:class:`ChartRenderer` is imported on first use: a worker process (``python -m
bot.charts.worker``) imports this package too, and needs none of the bot-side machinery
(asyncio, the pool) — it starts ~70 ms sooner without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.charts.alt_text import chart_alt_text
from bot.charts.errors import ChartError
from bot.charts.render import register_fonts, render_png_sync
from bot.charts.spec import DEFAULT_FONT, prepare_spec

if TYPE_CHECKING:
    from bot.charts.renderer import ChartRenderer

__all__ = ["DEFAULT_FONT", "ChartError", "ChartRenderer", "chart_alt_text", "prepare_spec",
           "register_fonts", "render_png_sync"]


def __getattr__(name: str) -> Any:
    if name == "ChartRenderer":
        from bot.charts.renderer import ChartRenderer

        return ChartRenderer
    raise AttributeError(f"module 'bot.charts' has no attribute {name!r}")

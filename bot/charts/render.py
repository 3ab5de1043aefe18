"""The vl-convert calls themselves: blocking, GIL-holding, and only safe on a sanitised spec.

These run inside the chart worker process (:mod:`bot.charts.worker`). They stay importable in
the bot process for tests and tools, but the bot never calls them on its event loop: vl-convert
holds the GIL for the whole render (650 ms for 1,000 rows), so even a thread would freeze the
loop.

Defence in depth against data loads: :func:`bot.charts.spec.prepare_spec` refuses data that is
not inline and drops every other ``url``; :func:`render_png_sync` additionally passes
``allowed_base_urls=[]`` so vl-convert itself refuses HTTP(S) loads (verified: it raises
"External data url not allowed"), and vl-convert's loader does not read ``file://`` URLs at all
(verified: the chart renders empty).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import vl_convert

from bot.charts.errors import COULD_NOT_DRAW, ChartError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def render_png_sync(spec: dict[str, Any], *, scale: float = 2.0) -> bytes:
    """Blocking vl-convert call with external data loading refused.

    Low-level: it does not sanitise ``spec``; use :class:`bot.charts.ChartRenderer` for untrusted
    input. ``allowed_base_urls=[]`` makes vl-convert reject every HTTP(S) data URL.
    """
    return vl_convert.vegalite_to_png(spec, scale=scale, allowed_base_urls=[])


def render_checked(spec: dict[str, Any], scale: float) -> bytes:
    """:func:`render_png_sync`, refusing anything that is not a PNG."""
    png = render_png_sync(spec, scale=scale)
    if not png.startswith(PNG_MAGIC):
        raise ChartError(COULD_NOT_DRAW)
    return png


def register_fonts(directories: Iterable[str]) -> None:
    """Make extra font directories (e.g. a Roboto install) known to vl-convert (process-wide)."""
    for directory in directories:
        vl_convert.register_font_directory(directory)

"""Charts drawn in the bot's own process, in a thread — ``CHART_WORKERS=0``; never for a live bot.

vl-convert holds the GIL, so while a chart renders here the event loop stalls (24 ms at 10
rows, 650 ms at 1,000) and a stuck render cannot be stopped. What this mode saves is the ~1 s a
worker process needs to start (Python, then vl-convert's Deno runtime): worth it for the
integration tests, which start ~80 services and draw only small charts, and for one-shot tools.
Requests are handled by exactly the code the worker runs
(:func:`bot.charts.request.handle_request`), so replies and errors are the same as from a worker.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bot.charts.frames import Frame
from bot.charts.pool import PoolClosed
from bot.charts.process import RenderTimeout
from bot.charts.render import register_fonts
from bot.charts.request import handle_request


class InProcessRenderer:
    """The :class:`~bot.charts.pool.WorkerPool` interface, rendering in one thread here."""

    def __init__(self, *, font_dirs: tuple[str, ...] = ()) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chart")
        self._closed = False
        if font_dirs:
            register_fonts(font_dirs)

    async def run(self, header: dict[str, Any], body: bytes, *, timeout: float) -> Frame:
        if self._closed:
            raise PoolClosed()
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, handle_request, header, body)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise RenderTimeout() from None  # the thread cannot be stopped; it finishes unseen

    async def start(self) -> None:
        """Nothing to start."""

    def pids(self) -> list[int]:
        return []

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)

    @property
    def closed(self) -> bool:
        return self._closed

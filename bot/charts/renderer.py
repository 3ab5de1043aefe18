"""``ChartRenderer``: untrusted Vega-Lite in, PNG bytes out, without stalling the event loop.

vl-convert holds Python's GIL while it renders (24 ms for 10 rows, 650 ms for 1,000), so it
cannot run in this interpreter — not even in a thread — without freezing every Slack ack,
placeholder and edit of every other run. The renderer hands each spec to a worker process
(:mod:`bot.charts.pool`), which sanitises it with :func:`~bot.charts.spec.prepare_spec` and
renders it there. The bot's own cost per chart is one ``json.dumps`` of the spec (which it
needed anyway to enforce the size limit) and reading the PNG back from a pipe.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from bot.charts.errors import COULD_NOT_DRAW, TOO_LONG, ChartError
from bot.charts.frames import Frame
from bot.charts.inprocess import InProcessRenderer
from bot.charts.pool import PoolClosed, WorkerPool
from bot.charts.process import RenderTimeout, WorkerLost, WorkerStartError
from bot.charts.render import PNG_MAGIC
from bot.charts.spec import check_drawable, prepare_spec, spec_json

log = logging.getLogger(__name__)


class RenderBackend(Protocol):
    """Where requests are rendered: :class:`WorkerPool` or, with ``workers=0``, this process."""

    async def run(self, header: dict[str, Any], body: bytes, *, timeout: float) -> Frame: ...
    async def start(self) -> None: ...
    def pids(self) -> list[int]: ...
    async def aclose(self) -> None: ...
    def close(self) -> None: ...


class ChartRenderer:
    """Renders untrusted Vega-Lite specs to PNG bytes in a small pool of worker processes.

    ``workers``: one by default — vl-convert is CPU-bound and a chat bot renders a chart per
    answer, so queueing is better than starving the bot's own core. ``0`` renders in this
    process instead (blocks the event loop; tests and tools only, see
    :mod:`bot.charts.inprocess`).

    ``timeout`` bounds one render in a worker; a render over it has its worker killed and gets
    :class:`ChartError`. Start-up is not counted: workers start on the first render (or all at
    once with :meth:`start`) and, with ``warm_up``, draw a tiny chart before taking requests so
    that vl-convert's own start-up is behind them. :meth:`aclose` kills and reaps them.

    ``test_hooks`` lets :meth:`render` pass a ``test_action`` to the worker (``hang``,
    ``noise``). Tests only.
    """

    def __init__(
        self,
        *,
        width: int = 720,
        height: int = 420,
        scale: float = 2.0,
        max_data_rows: int = 5000,
        workers: int = 1,
        timeout: float = 20.0,
        max_spec_bytes: int = 5_000_000,
        font_dirs: Sequence[str] = (),
        warm_up: bool = True,
        start_timeout: float = 60.0,
        test_hooks: bool = False,
    ) -> None:
        self.width = width
        self.height = height
        self.scale = scale
        self.max_data_rows = max_data_rows
        self.timeout = timeout
        self.max_spec_bytes = max_spec_bytes
        self._test_hooks = test_hooks
        dirs = tuple(str(d) for d in font_dirs)
        if workers < 0:
            raise ValueError("workers must be 0 (in this process) or more")
        if workers == 0 and test_hooks:
            raise ValueError("test hooks need worker processes")
        self.backend: RenderBackend = (
            InProcessRenderer(font_dirs=dirs) if workers == 0 else
            WorkerPool(workers, font_dirs=dirs, warm_up=warm_up, test_hooks=test_hooks,
                       start_timeout=start_timeout))

    def prepare(self, spec: Any) -> dict[str, Any]:
        """The sanitised spec, computed in this process (what a worker renders)."""
        return prepare_spec(
            spec,
            width=self.width,
            height=self.height,
            max_rows=self.max_data_rows,
            max_spec_bytes=self.max_spec_bytes,
        )

    async def render(self, spec: Any, *, test_action: str | None = None) -> bytes:
        """Sanitise and render ``spec`` in a worker; raises :class:`ChartError` on any failure."""
        check_drawable(spec)  # cheap refusals need no worker
        body = spec_json(spec, self.max_spec_bytes).encode()
        header: dict[str, Any] = {"type": "render", "width": self.width, "height": self.height,
                                  "scale": self.scale,
                                  "max_rows": self.max_data_rows,
                                  "max_spec_bytes": self.max_spec_bytes}
        if test_action is not None:
            if not self._test_hooks:
                raise ValueError("test_action needs ChartRenderer(test_hooks=True)")
            header["test_action"] = test_action
        try:
            reply, png = await self.backend.run(header, body, timeout=self.timeout)
        except RenderTimeout as exc:
            log.warning("chart render took longer than %g s; stopped", self.timeout)
            raise ChartError(TOO_LONG) from exc
        except (WorkerLost, WorkerStartError, PoolClosed) as exc:
            log.warning("chart not rendered: %s", str(exc) or type(exc).__name__)
            raise ChartError(COULD_NOT_DRAW) from exc
        if not reply.get("ok"):
            if reply.get("detail"):
                log.warning("chart render failed: %s", str(reply["detail"])[:500])
            raise ChartError(str(reply.get("error") or COULD_NOT_DRAW)[:300])
        if not png.startswith(PNG_MAGIC):
            raise ChartError(COULD_NOT_DRAW)
        return png

    async def start(self) -> None:
        """Start the workers now and keep them started; never raises (failures are logged).

        The service runs this as a background task at start-up, so the ~1 s a worker needs to
        start (Python, then vl-convert's Deno runtime) is paid before the first question.
        """
        try:
            await self.backend.start()
        except Exception:
            log.warning("chart workers could not be warmed up", exc_info=True)

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (none before the first render or :meth:`start`)."""
        return self.backend.pids()

    async def aclose(self) -> None:
        """Kill the workers and wait until they are reaped; later renders raise ChartError."""
        await self.backend.aclose()

    def close(self) -> None:
        """Kill the workers without waiting (for callers without a running loop)."""
        self.backend.close()

"""Event-loop lag while Wren-sized charts render: vl-convert in a thread vs ``ChartRenderer``.

vl-convert holds the GIL while it renders, so the old way — ``prepare_spec`` on the loop, then
``render_png_sync`` in a ``ThreadPoolExecutor`` — froze the bot's event loop for as long as a
render took. ``ChartRenderer`` renders in worker processes. For each way this renders bar
charts shaped exactly like Wren's ``/generate_vega_chart`` answer (``tests/fakes/wren.py``:
``$schema``, hover params, colour per category, ``width: "container"``) with 1,000 and 2,000
rows, one at a time and ``AT_ONCE`` at once, while a monitor task sleeps ``TICK`` in a loop
and records how late each wake-up is. Reported per case: loop lag p50/p99/max, latency per
chart (submit → PNG, queueing included) p50/p95, and the worker's RSS (``VmRSS``, peak
``VmHWM``).

Also measured: the same monitor while nothing renders (the machine's own scheduling noise),
what a worker costs to start (``ChartRenderer.start()``: spawn, Python imports,
vl-convert's Deno start-up and a tiny warm-up render), a lazily started worker's first render,
and how much RSS the old way adds to the bot's own process.

Run: ``.venv/bin/python -m bench.chart_lag`` (also part of ``make bench``).
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bot.charts import ChartRenderer, prepare_spec, render_png_sync
from tests.fakes.wren import bar_chart_spec as wren_bar_spec

ROWS = (1000, 2000)
AT_ONCE = 3
ROUNDS = 2
TICK = 0.005
SCALE = 2.0  # production CHART_SCALE


def pick(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def rss_mb(pid: int | str = "self") -> dict[str, float]:
    """VmRSS and VmHWM (peak) of a process, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


class LagMonitor:
    """Sleeps TICK in a loop; each wake-up's lateness is one sample of event-loop lag."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(TICK)
            self.lags.append(time.perf_counter() - before - TICK)

    def __enter__(self) -> LagMonitor:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()

    def summary(self) -> dict[str, float]:
        return {"lag_p50_ms": pick(self.lags, 0.5) * 1000, "lag_p99_ms": pick(self.lags, 0.99) * 1000,
                "lag_max_ms": max(self.lags) * 1000}


async def _rounds(render: Any, rows: int, at_once: int) -> tuple[dict[str, float], list[float]]:
    """ROUNDS rounds of ``at_once`` renders under the lag monitor; (lag summary, latencies)."""
    specs = [wren_bar_spec(rows, title=f"Revenue by store #{i}") for i in range(at_once)]
    latencies: list[float] = []

    async def one(spec: dict[str, Any]) -> None:
        began = time.perf_counter()
        png = await render(spec)
        assert png.startswith(b"\x89PNG")
        latencies.append(time.perf_counter() - began)

    with LagMonitor() as monitor:
        await asyncio.sleep(0.05)  # a few idle samples first
        for _ in range(ROUNDS if at_once > 1 else ROUNDS + 1):
            await asyncio.gather(*(one(s) for s in specs))
    return monitor.summary(), latencies


async def thread_way(rows: int, at_once: int) -> dict[str, float]:
    """The old ChartRenderer: prepare on the loop, vl-convert in a one-thread pool."""
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chart")
    loop = asyncio.get_running_loop()

    async def render(spec: dict[str, Any]) -> bytes:
        safe = prepare_spec(spec)
        return await loop.run_in_executor(executor, functools.partial(render_png_sync, safe, scale=SCALE))

    try:
        await render(wren_bar_spec(3))  # vl-convert's start-up is not what is measured
        lag, latencies = await _rounds(render, rows, at_once)
    finally:
        executor.shutdown(wait=True)
    return {**lag, "chart_p50_ms": pick(latencies, 0.5) * 1000,
            "chart_p95_ms": pick(latencies, 0.95) * 1000, "charts": len(latencies)}


async def process_way(rows: int, at_once: int, workers: int = 1) -> dict[str, float]:
    renderer = ChartRenderer(scale=SCALE, workers=workers)
    try:
        await renderer.start()
        lag, latencies = await _rounds(renderer.render, rows, at_once)
        memory = [rss_mb(pid) for pid in renderer.worker_pids()]
    finally:
        await renderer.aclose()
    return {**lag, "chart_p50_ms": pick(latencies, 0.5) * 1000,
            "chart_p95_ms": pick(latencies, 0.95) * 1000, "charts": len(latencies),
            "worker_rss_mb": max(m["VmRSS"] for m in memory),
            "worker_peak_rss_mb": max(m["VmHWM"] for m in memory)}


async def startup_cost(rounds: int = 5) -> dict[str, float]:
    """What a worker costs to start, warm or lazily on the first chart, and idle."""
    spawn, warm_up, python_only, first_chart, second_chart, idle_rss = [], [], [], [], [], []
    small = wren_bar_spec(10)
    for _ in range(rounds):
        renderer = ChartRenderer(scale=SCALE)
        began = time.perf_counter()
        await renderer.start()
        spawn.append(time.perf_counter() - began)
        [pid] = renderer.worker_pids()
        idle_rss.append(rss_mb(pid)["VmRSS"])
        ready = renderer.backend._slots[0].worker.info  # type: ignore[attr-defined]
        warm_up.append(float(ready["warm_ms"]) / 1000)
        await renderer.aclose()

        renderer = ChartRenderer(scale=SCALE, warm_up=False)
        began = time.perf_counter()
        await renderer.start()
        python_only.append(time.perf_counter() - began)
        await renderer.aclose()

        renderer = ChartRenderer(scale=SCALE)  # lazy: the first chart starts the worker
        began = time.perf_counter()
        await renderer.render(small)
        first_chart.append(time.perf_counter() - began)
        began = time.perf_counter()
        await renderer.render(small)
        second_chart.append(time.perf_counter() - began)
        await renderer.aclose()
    return {"start_ms": pick(spawn, 0.5) * 1000,
            "of_which_vl_convert_warm_up_ms": pick(warm_up, 0.5) * 1000,
            "start_without_warm_up_ms": pick(python_only, 0.5) * 1000,
            "lazy_first_chart_ms": pick(first_chart, 0.5) * 1000,
            "next_chart_ms": pick(second_chart, 0.5) * 1000,
            "idle_worker_rss_mb": pick(idle_rss, 0.5), "rounds": rounds}


async def idle(seconds: float = 5.0) -> dict[str, float]:
    """The monitor alone: what the machine's scheduling costs when nothing renders."""
    with LagMonitor() as monitor:
        await asyncio.sleep(seconds)
    return monitor.summary()


async def main() -> dict[str, Any]:
    results: dict[str, Any] = {"no chart rendering (this machine's baseline)": await idle(),
                               "worker start-up (10-row chart)": await startup_cost()}
    bot_before = rss_mb()["VmRSS"]
    first = ROWS[0]
    results[f"{first} rows, one at a time: ChartRenderer"] = await process_way(first, 1)
    for rows in ROWS:
        results[f"{rows} rows, {AT_ONCE} at once: ChartRenderer, 1 worker"] = \
            await process_way(rows, AT_ONCE)
    results[f"{first} rows, {AT_ONCE} at once: ChartRenderer, 2 workers"] = \
        await process_way(first, AT_ONCE, workers=2)
    bot_processes = rss_mb()["VmRSS"]
    results[f"{first} rows, one at a time: old way (thread)"] = await thread_way(first, 1)
    for rows in ROWS:
        results[f"{rows} rows, {AT_ONCE} at once: old way (thread)"] = await thread_way(rows, AT_ONCE)
    results["bot process RSS"] = {"before_mb": bot_before, "after_worker_cases_mb": bot_processes,
                                  "after_thread_cases_mb": rss_mb()["VmRSS"]}
    results["machine"] = {"cpus": os.cpu_count() or 0}
    return results


def report(results: dict[str, Any]) -> str:
    lines = []
    for name, values in results.items():
        shown = ", ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in values.items())
        lines.append(f"{name}: {shown}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(asyncio.run(main())))

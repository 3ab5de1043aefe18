"""bot.charts worker processes: renders leave the interpreter, and every failure is contained.

vl-convert holds the GIL while it renders, so ChartRenderer draws in child processes. These
tests pin what that buys and what it must not cost: the loop stays free, a stuck or killed
worker is replaced, cancellation does not confuse a worker, and closing leaves nothing behind.

A worker costs ~1 s to start, almost all of it vl-convert's Deno runtime, so the failure tests
use ``warm_up=False`` and a *probe* spec that the worker refuses in ``prepare_spec`` (data that
is not inline) without ever starting vl-convert: each of their workers costs ~0.15 s, and the
probe's answer still proves that a live worker read the request. The tests that need healthy
workers drawing real charts share one module-scoped pool. Tests wait for the worker's ``hang``
test hook through the log line it causes, not by sleeping.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import time
import warnings
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
import pytest_asyncio

from bot.charts import ChartError, ChartRenderer, render_png_sync
from bot.charts.frames import FrameDecoder, FrameError, encode_frame
from bot.config import Settings
from bot.service import Service
from tests.fakes.wren import bar_chart_spec as wren_bar_spec
from tests.unit.test_charts import BAR_ENC, line_spec, png_size

# Refused by the worker's prepare_spec ("not inline") before vl-convert is involved.
PROBE = {"data": {"url": "https://example.test/d.csv"}, "mark": "bar", "encoding": BAR_ENC}
NOT_INLINE = "its data is not inline"
PNG = b"\x89PNG\r\n\x1a\n"


# Workers of the module-scoped ``healthy_pool``: alive across tests, so not counted as leftovers.
SHARED_PIDS: set[int] = set()


def worker_children() -> list[tuple[int, str]]:
    """(pid, state) of every chart worker this process has as a child, zombies included."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if (int(ppid) == os.getpid() and b"bot.charts.worker" in cmdline
                and int(entry.name) not in SHARED_PIDS):
            found.append((int(entry.name), state))
    return found


def open_pipes() -> int:
    """Pipe descriptors this process holds (each worker has three while its transport is open)."""
    count = 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            count += os.readlink(fd).startswith("pipe:")
        except OSError:
            pass
    return count


def gone(pid: int) -> bool:
    """No such process — not even a zombie: it was killed *and* reaped."""
    return not Path(f"/proc/{pid}").exists()


class LogSignal(logging.Handler):
    """An asyncio event set when bot.charts logs a line containing ``text``.

    Worker stderr is logged on the event loop as it arrives, so this is how a test learns that
    a worker reached its ``hang`` hook (or that the bot noticed a worker's death) without polling.
    """

    def __init__(self, text: str) -> None:
        super().__init__(logging.DEBUG)
        self.text = text
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()

    async def wait(self, timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            await self.event.wait()


@pytest.fixture
def log_signal():
    logger = logging.getLogger("bot.charts")
    handlers: list[LogSignal] = []
    old_level = logger.level
    logger.setLevel(logging.DEBUG)

    def make(text: str) -> LogSignal:
        handler = LogSignal(text)
        handlers.append(handler)
        logger.addHandler(handler)
        return handler

    yield make
    for handler in handlers:
        logger.removeHandler(handler)
    logger.setLevel(old_level)


async def probe(renderer: ChartRenderer) -> str:
    """Send the probe spec; return the worker's (user-safe) answer."""
    with pytest.raises(ChartError) as info:
        await renderer.render(PROBE)
    return str(info.value)


# --------------------------------------------------------------------------- frames


def test_frames_survive_any_chunking_and_garbage_is_refused() -> None:
    frames = [({"type": "result", "id": 1, "ok": True}, PNG + bytes(range(256)) * 40),
              ({"type": "started", "id": 2}, b""),
              ({"type": "result", "id": 2, "ok": False, "error": "É"}, b"")]
    stream = b"".join(encode_frame(h, b) for h, b in frames)
    assert FrameDecoder().feed(stream) == frames
    decoder, got = FrameDecoder(), []
    for i in range(0, len(stream), 7):
        got += decoder.feed(stream[i:i + 7])
    assert got == frames and decoder.pending == 0
    with pytest.raises(FrameError):
        FrameDecoder().feed(b"\xff\xff\xff\xff\x00\x00\x00\x00")  # absurd header length
    with pytest.raises(FrameError):
        FrameDecoder().feed(b"\x00\x00\x00\x02\x00\x00\x00\x00[]")  # header not an object


# --------------------------------------------------------------------------- failures contained


async def test_render_over_the_timeout_kills_the_worker_and_the_next_render_works() -> None:
    renderer = ChartRenderer(scale=1.0, timeout=0.2, warm_up=False, test_hooks=True)
    try:
        await renderer.start()
        [pid] = renderer.worker_pids()
        with pytest.raises(ChartError, match="took too long"):
            await renderer.render(line_spec(), test_action="hang")
        assert gone(pid)  # SIGKILLed and reaped before the error was raised
        assert renderer.worker_pids() == []
        renderer.timeout = 30.0  # this worker did not warm up: its first render starts vl-convert
        png = await renderer.render(line_spec())
        [new_pid] = renderer.worker_pids()
    finally:
        await renderer.aclose()
    assert png_size(png) == (720, 420)
    assert new_pid != pid


async def test_worker_killed_mid_render_fails_that_chart_and_is_replaced(log_signal) -> None:
    hanging = log_signal("test hook: hanging")
    renderer = ChartRenderer(timeout=30, warm_up=False, test_hooks=True)
    try:
        await renderer.start()
        [pid] = renderer.worker_pids()
        task = asyncio.create_task(renderer.render(line_spec(), test_action="hang"))
        await hanging.wait()
        os.kill(pid, signal.SIGKILL)  # as the OOM killer would
        with pytest.raises(ChartError) as info:
            await task
        assert str(info.value) == "The chart could not be drawn."
        assert NOT_INLINE in await probe(renderer)  # a fresh worker answers
        [new_pid] = renderer.worker_pids()
    finally:
        await renderer.aclose()
    assert new_pid != pid and gone(pid)


async def test_worker_killed_between_renders_costs_no_chart(log_signal, caplog) -> None:
    renderer = ChartRenderer(timeout=30, warm_up=False)
    try:
        assert NOT_INLINE in await probe(renderer)
        [first] = renderer.worker_pids()
        # Killed, and the next request is written before the loop can notice: the worker dies
        # without reading it, so the pool retries on a fresh worker instead of failing the chart.
        os.kill(first, signal.SIGKILL)
        with caplog.at_level(logging.INFO, logger="bot.charts"):
            assert NOT_INLINE in await probe(renderer)
        assert "gone before it read the request" in caplog.text
        [second] = renderer.worker_pids()
        # Killed, and this time the bot notices first: the next request goes to a fresh worker.
        noticed = log_signal(f"chart worker {second} exited unexpectedly")
        os.kill(second, signal.SIGKILL)
        await noticed.wait()
        assert renderer.worker_pids() == []
        assert NOT_INLINE in await probe(renderer)
        [third] = renderer.worker_pids()
        spawned = renderer.backend.spawned  # type: ignore[attr-defined]
    finally:
        await renderer.aclose()
    assert len({first, second, third}) == 3 and spawned == 3
    assert gone(first) and gone(second)


async def test_cancelled_render_kills_its_worker_but_a_queued_one_does_not(log_signal) -> None:
    hanging = log_signal("test hook: hanging")
    renderer = ChartRenderer(timeout=30, warm_up=False, test_hooks=True)
    try:
        await renderer.start()
        [pid] = renderer.worker_pids()
        in_flight = asyncio.create_task(renderer.render(line_spec(), test_action="hang"))
        await hanging.wait()
        queued = asyncio.create_task(renderer.render(PROBE))
        await asyncio.sleep(0)  # let it reach the pool and wait for the busy worker
        assert not queued.done()
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        assert renderer.worker_pids() == [pid]  # waiting is not rendering: worker untouched
        in_flight.cancel()
        with pytest.raises(asyncio.CancelledError):
            await in_flight
        # A worker whose request was abandoned mid-render is in an unknown state: killed.
        assert renderer.worker_pids() == []
        assert NOT_INLINE in await probe(renderer)
        [new_pid] = renderer.worker_pids()
    finally:
        await renderer.aclose()
    assert new_pid != pid and gone(pid)


async def test_worker_that_cannot_start_is_a_user_safe_error() -> None:
    renderer = ChartRenderer(start_timeout=0.01)  # no Python starts in 10 ms
    try:
        with pytest.raises(ChartError) as info:
            await renderer.render(line_spec())
        assert str(info.value) == "The chart could not be drawn."
        assert renderer.worker_pids() == []
    finally:
        await renderer.aclose()
    assert worker_children() == []


# --------------------------------------------------------------------------- pool and shutdown


async def test_aclose_kills_and_reaps_every_worker(log_signal) -> None:
    hanging = log_signal("test hook: hanging")
    pipes = open_pipes()
    renderer = ChartRenderer(workers=2, timeout=30, warm_up=False, test_hooks=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await renderer.start()
        assert open_pipes() == pipes + 6
        pids = renderer.worker_pids()
        assert len(pids) == 2 and sorted(p for p, _ in worker_children()) == sorted(pids)
        task = asyncio.create_task(renderer.render(line_spec(), test_action="hang"))
        await hanging.wait()
        await renderer.aclose()
        assert open_pipes() == pipes  # every transport closed by the time aclose returns
        assert worker_children() == []  # none running, none a zombie
        assert all(gone(pid) for pid in pids)
        with pytest.raises(ChartError, match="could not be drawn"):
            await task  # the render in flight fails politely
        with pytest.raises(ChartError, match="could not be drawn"):
            await renderer.render(line_spec())  # and no worker is started after close
        assert worker_children() == []
        del renderer, task
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


async def test_service_starts_its_chart_worker_in_the_background_and_reaps_it(tmp_path) -> None:
    class NoBackend:
        async def aclose(self) -> None:
            pass

    settings = Settings(_env_file=None, DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/bot.db",
                        CHART_WORKERS=1)
    pipes = open_pipes()
    service = Service(settings, backend=NoBackend())  # type: ignore[arg-type]
    try:
        await service.start()
        warmup = service._chart_warmup
        assert warmup is not None and not warmup.done()  # start-up did not wait for it
        await warmup
        [pid] = service.charts.worker_pids()  # ready before the first question
    finally:
        await service.close()
    assert gone(pid)
    assert open_pipes() == pipes  # closed and awaited, not just killed
    assert worker_children() == []


async def test_in_process_mode_answers_like_a_worker() -> None:
    """``workers=0`` (the integration tests' setting) runs the worker's own request code here."""
    renderer = ChartRenderer(scale=1.0, workers=0)
    try:
        png = await renderer.render(line_spec())
        assert NOT_INLINE in await probe(renderer)
        assert renderer.worker_pids() == [] and worker_children() == []
    finally:
        await renderer.aclose()
    assert png_size(png) == (720, 420)
    with pytest.raises(ChartError, match="could not be drawn"):
        await renderer.render(line_spec())  # closed


# --------------------------------------------------------------------------- healthy workers, shared


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def healthy_pool(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ChartRenderer]:
    """Two warm workers, shared by the tests that need nothing but healthy ones.

    A worker costs ~1 s to start (vl-convert's Deno runtime), so the tests below share one
    pool instead of starting three. Its font directory holds DejaVu Sans renamed "Qwerty Sans",
    a family only the workers are told about.
    """
    fonts = tmp_path_factory.mktemp("fonts")
    raw = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf").read_bytes()
    (fonts / "qwerty.ttf").write_bytes(
        raw.replace("DejaVu Sans".encode("utf-16-be"), "Qwerty Sans".encode("utf-16-be"))
        .replace(b"DejaVu Sans", b"Qwerty Sans").replace(b"DejaVuSans", b"QwertySans"))
    renderer = ChartRenderer(scale=1.0, workers=2, font_dirs=[str(fonts)], test_hooks=True)
    await renderer.start()
    SHARED_PIDS.update(renderer.worker_pids())
    yield renderer
    await renderer.aclose()
    SHARED_PIDS.clear()


@pytest.mark.asyncio(loop_scope="module")
async def test_render_runs_in_a_child_process_and_leaves_the_loop_free(healthy_pool) -> None:
    """The issue's measurement: in a thread, a Wren chart stalled the loop for all of its render.

    The lag bound is relative (a quarter of the render's own duration) so that a loaded
    machine, which slows the render and the loop's wake-ups alike, does not make it flaky; a
    render holding this interpreter's GIL stalls the loop for nearly its whole duration.
    """
    renderer = healthy_pool
    pids = renderer.worker_pids()
    lags: list[float] = []
    stop = asyncio.Event()

    async def monitor() -> None:
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - before - 0.005)

    watcher = asyncio.create_task(monitor())
    began = time.perf_counter()
    png = await renderer.render(wren_bar_spec(400))
    took = time.perf_counter() - began
    stop.set()
    await watcher
    assert png.startswith(PNG)
    assert len(pids) == 2 and os.getpid() not in pids
    for pid in pids:
        assert b"bot.charts.worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
        assert int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) == os.getpid()
    assert took > 0.1  # long enough to matter: a stall this long is felt by every other run
    assert max(lags) < took / 4, f"loop stalled {max(lags):.3f} s in a {took:.3f} s render"


@pytest.mark.asyncio(loop_scope="module")
async def test_font_dirs_reach_the_workers(healthy_pool) -> None:
    """A font only the workers were told about is used."""

    def text_spec(font: str) -> dict[str, Any]:
        return {"data": {"values": [{"t": "Hamburgefonstiv 0123"}]},
                "mark": {"type": "text", "fontSize": 30, "font": font},
                "encoding": {"text": {"field": "t"}}}

    drawn = await healthy_pool.render(text_spec("Qwerty Sans"))
    # This process never registered the directory: here "Qwerty Sans" falls back.
    as_dejavu = render_png_sync(healthy_pool.prepare(text_spec("DejaVu Sans")), scale=1.0)
    as_fallback = render_png_sync(healthy_pool.prepare(text_spec("Qwerty Sans")), scale=1.0)
    assert as_dejavu != as_fallback  # the comparison can tell the fonts apart
    assert drawn == as_dejavu


@pytest.mark.asyncio(loop_scope="module")
async def test_more_renders_than_workers_all_succeed_with_their_own_replies(
        healthy_pool, caplog) -> None:
    renderer = healthy_pool
    specs = [wren_bar_spec(5 + 3 * i, title=f"Chart {i}") for i in range(3)]
    spawned = renderer.backend.spawned  # type: ignore[attr-defined]
    with caplog.at_level(logging.WARNING, logger="bot.charts"):
        # One of them prints to sys.stdout and writes a frame-like prefix to fd 1: both end up
        # in the worker's stderr (logged here), none of it in any reply.
        together = await asyncio.gather(
            *(renderer.render(s, test_action="noise" if i == 1 else None)
              for i, s in enumerate(specs)))
    one_by_one = [await renderer.render(s) for s in specs]
    assert all(png.startswith(PNG) for png in together)
    assert len(set(together)) == len(specs)  # three different charts...
    assert together == one_by_one  # ...each the reply to its own request
    # Queued for the two workers: no process was added, none was lost.
    assert renderer.backend.spawned == spawned == 2  # type: ignore[attr-defined]
    assert len(renderer.worker_pids()) == 2
    assert "noise via sys.stdout" in caplog.text and "noise via fd 1" in caplog.text

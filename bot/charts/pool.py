"""A small pool of long-lived chart worker processes; renders queue for a free one.

The pool is a fixed number of *slots*. A render takes a free slot (waiting if all are busy, so
there are never more processes than slots), makes sure the slot has a live worker — starting
one if it has none or its last one died — and sends its request. A worker that timed out, was
cancelled mid-request or died is discarded; its slot gets a fresh worker on next use, or at
once after :meth:`WorkerPool.start` (keep-warm mode, what the service uses so that users never
wait for vl-convert's start-up).

Workers start lazily: a process that never draws a chart never spawns one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from bot.charts.frames import Frame
from bot.charts.process import WorkerLost, WorkerProcess

log = logging.getLogger(__name__)


class PoolClosed(Exception):
    """The pool was closed; no more renders."""


class _Slot:
    """Room for one worker process; ``worker`` is None until first use or after a discard."""

    def __init__(self) -> None:
        self.worker: WorkerProcess | None = None

    @property
    def alive(self) -> bool:
        return self.worker is not None and self.worker.alive


class WorkerPool:
    def __init__(self, size: int = 1, *, font_dirs: tuple[str, ...] = (), warm_up: bool = True,
                 test_hooks: bool = False, start_timeout: float = 60.0,
                 shutdown_timeout: float = 5.0) -> None:
        if size < 1:
            raise ValueError("a chart worker pool needs at least one worker")
        self.size = size
        self.font_dirs = font_dirs
        self.warm_up = warm_up
        self.test_hooks = test_hooks
        self.start_timeout = start_timeout
        self.shutdown_timeout = shutdown_timeout
        self._slots = [_Slot() for _ in range(size)]
        self._free: list[_Slot] = list(self._slots)
        self._capacity = asyncio.Semaphore(size)  # binds to a loop only when a render waits
        self._live: set[WorkerProcess] = set()  # every process not yet reaped and closed
        self._background: set[asyncio.Task[None]] = set()
        self._keep_warm = False
        self._closed = False
        self.spawned = 0

    # -- rendering ---------------------------------------------------------------------------
    async def run(self, header: dict[str, Any], body: bytes, *, timeout: float) -> Frame:
        """Send one request to a free worker and return its reply frame.

        Raises :class:`~bot.charts.process.RenderTimeout`, :class:`WorkerLost` (the worker died
        while rendering), :class:`~bot.charts.process.WorkerStartError` or :class:`PoolClosed`.
        A worker found dead before it read the request (killed between two renders) costs a
        retry on a fresh worker, not a failed chart: the spec never reached it.
        """
        for attempt in (1, 2):
            slot = await self._acquire(prefer_live=True)
            try:
                worker = await self._ensure_worker(slot)
                return await worker.request(header, body, timeout=timeout)
            except WorkerLost as exc:
                if exc.started or attempt == 2 or self._closed:
                    raise
                log.info("chart worker %s was gone before it read the request; using a fresh one",
                         exc.pid)
            finally:
                self._release(slot)
        raise AssertionError("unreachable")

    async def start(self) -> None:
        """Start every worker now (and restart them as soon as they die from now on)."""
        self._keep_warm = True
        results = await asyncio.gather(*(self._warm_one() for _ in self._slots),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, PoolClosed):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                log.warning("chart worker warm-up failed: %s", result)

    def pids(self) -> list[int]:
        """Process ids of the live workers (for tests, benchmarks and diagnostics)."""
        return [s.worker.pid for s in self._slots
                if s.worker is not None and s.worker.alive and s.worker.pid is not None]

    # -- shutdown ----------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Kill every worker and wait until each is reaped and its pipes are closed.

        A render still running fails with :class:`WorkerLost`; renders waiting for a slot fail
        with :class:`PoolClosed`. Idempotent.
        """
        self.close()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._live:
            waits = [w.wait_closed() for w in list(self._live)]
            try:
                async with asyncio.timeout(self.shutdown_timeout):
                    await asyncio.gather(*waits)
            except TimeoutError:
                log.error("chart workers %s not reaped %g s after SIGKILL",
                          [w.pid for w in self._live], self.shutdown_timeout)

    def close(self) -> None:
        """Kill every worker without waiting (prefer :meth:`aclose` on a running loop)."""
        self._closed = True
        self._keep_warm = False
        for task in list(self._background):
            task.cancel()
        for worker in list(self._live):
            worker.kill()

    @property
    def closed(self) -> bool:
        return self._closed

    # -- internals ---------------------------------------------------------------------------
    async def _acquire(self, *, prefer_live: bool) -> _Slot:
        if self._closed:
            raise PoolClosed()
        await self._capacity.acquire()
        if self._closed:
            self._capacity.release()
            raise PoolClosed()
        # The semaphore guarantees a free slot. Renders take one whose worker is up; warm-ups
        # one whose worker is not.
        self._free.sort(key=lambda s: s.alive == prefer_live)
        return self._free.pop()

    def _release(self, slot: _Slot, *, restart: bool = True) -> None:
        self._free.append(slot)
        self._capacity.release()
        if restart and self._keep_warm and not self._closed and not slot.alive:
            self._in_background(self._warm_one())

    async def _ensure_worker(self, slot: _Slot) -> WorkerProcess:
        if slot.worker is not None and slot.worker.alive:
            return slot.worker
        if slot.worker is not None:
            slot.worker.kill()  # condemned or half-dead: make sure, then forget it
            slot.worker = None
        worker = await WorkerProcess.spawn(self._live, font_dirs=self.font_dirs,
                                           warm_up=self.warm_up, test_hooks=self.test_hooks,
                                           start_timeout=self.start_timeout)
        self.spawned += 1
        if self._closed:
            worker.kill()
            raise PoolClosed()
        slot.worker = worker
        return worker

    async def _warm_one(self) -> None:
        slot = await self._acquire(prefer_live=False)
        try:
            await self._ensure_worker(slot)
        finally:
            # A failed start is not retried in a loop: the next render tries again.
            self._release(slot, restart=False)

    def _in_background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro, name="chart-worker-start")
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not isinstance(exc, PoolClosed):
            log.warning("chart worker restart failed: %s", exc)

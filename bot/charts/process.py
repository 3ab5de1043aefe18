"""The bot's handle on one chart worker process: spawn it, one request at a time, kill it.

The plumbing is asyncio-native: ``loop.subprocess_exec`` with :class:`WorkerProcess` as the
protocol, so replies and stderr arrive as callbacks on the event loop — no thread per call, no
blocking read, nothing to poll. A worker is *disposable*: after a timeout, a cancelled caller,
a garbled frame or an unexpected exit it is killed and never reused; :mod:`bot.charts.pool`
starts a fresh one.

Killing uses a pidfd where the kernel has them (Linux ≥ 5.3): it names exactly our child even
if it has already been reaped, where ``os.kill(pid)`` could hit a recycled pid and asyncio's
own ``transport.kill()`` polls the child and races the child watcher's ``waitpid``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.charts.frames import Frame, FrameDecoder, FrameError, encode_frame

log = logging.getLogger(__name__)

WORKER_MODULE = "bot.charts.worker"
# The directory that holds the ``bot`` package, so the worker imports the same code as the bot.
_CODE_ROOT = str(Path(__file__).resolve().parents[2])
# The worker gets a minimal environment: it parses untrusted input and needs none of the bot's
# tokens and API keys. Kept: what locale, time zone, fonts and Python itself may need.
_ENV_KEEP = frozenset({"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "SYSTEMROOT"})
_ENV_KEEP_PREFIXES = ("LC_", "XDG_", "FONTCONFIG_", "PYTHON", "COVERAGE_")
_STDERR_LINE_LIMIT = 8192


class WorkerLost(Exception):
    """The worker went away (exited, was killed, or broke the protocol) before replying.

    ``started``: it had already acknowledged the request, i.e. it died while rendering it.
    """

    def __init__(self, pid: int | None, *, started: bool) -> None:
        when = "while rendering" if started else "before reading the request"
        super().__init__(f"chart worker {pid} went away {when}")
        self.pid = pid
        self.started = started


class WorkerStartError(Exception):
    """A worker could not be started or did not report ready in time."""


class RenderTimeout(Exception):
    """The worker did not reply in time; it has been killed."""


def worker_env() -> dict[str, str]:
    """The environment a worker starts with: no secrets, and ``bot`` on ``PYTHONPATH``."""
    env = {k: v for k, v in os.environ.items()
           if k in _ENV_KEEP or k.startswith(_ENV_KEEP_PREFIXES)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_CODE_ROOT, env.get("PYTHONPATH")) if p)
    return env


@dataclass
class _Request:
    id: int
    reply: asyncio.Future[Frame]
    started: bool = False


def _succeeded(fut: asyncio.Future[Any]) -> bool:
    return fut.done() and not fut.cancelled() and fut.exception() is None


class WorkerProcess(asyncio.SubprocessProtocol):
    """One worker process; use :meth:`spawn`, then :meth:`request` (one at a time), :meth:`kill`.

    ``registry`` holds every worker from creation until its process is reaped and its pipes are
    closed, so the pool can kill and await all of them on shutdown — including one whose spawn
    is still in progress.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, registry: set[WorkerProcess]) -> None:
        self._loop = loop
        self._registry = registry
        registry.add(self)
        self._transport: asyncio.SubprocessTransport | None = None
        self._pidfd: int | None = None
        self._decoder = FrameDecoder()
        self._stderr = bytearray()
        self._ready: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._exited: asyncio.Future[int | None] = loop.create_future()
        self._closed: asyncio.Future[None] = loop.create_future()
        self._lost_fds: set[int] = set()
        self._request: _Request | None = None
        self._next_id = 0
        self._killed = False
        self.pid: int | None = None
        self.info: dict[str, Any] = {}  # the ready frame: start-up timings, font errors
        self.spawn_ms: float | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    @classmethod
    async def spawn(cls, registry: set[WorkerProcess], *, font_dirs: tuple[str, ...] = (),
                    warm_up: bool = True, test_hooks: bool = False,
                    start_timeout: float = 60.0) -> WorkerProcess:
        """Start a worker and wait until it has (warmed up and) reported ready."""
        loop = asyncio.get_running_loop()
        worker = cls(loop, registry)
        argv = [sys.executable, "-P", "-m", WORKER_MODULE, "--parent-pid", str(os.getpid())]
        for directory in font_dirs:
            argv += ["--font-dir", str(directory)]
        if not warm_up:
            argv.append("--no-warm-up")
        if test_hooks:
            argv.append("--test-hooks")
        began = loop.time()
        try:
            # A session of its own: terminal signals do not reach it, and where the kernel
            # schedules by session its CPU time is not charged to the bot (see the worker).
            await loop.subprocess_exec(lambda: worker, *argv, stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       env=worker_env(), start_new_session=True)
            async with asyncio.timeout(start_timeout):
                worker.info = await worker._ready
        except BaseException as exc:
            worker.kill()
            if worker._transport is None:
                worker._forget()  # asyncio already reaped the process it could not connect
            if isinstance(exc, TimeoutError):
                raise WorkerStartError(f"chart worker not ready after {start_timeout:g} s") from exc
            if isinstance(exc, WorkerLost):
                raise WorkerStartError("chart worker exited during start-up") from exc
            if isinstance(exc, OSError):
                raise WorkerStartError(f"chart worker could not be started: {exc}") from exc
            raise
        worker.spawn_ms = (loop.time() - began) * 1000
        for problem in worker.info.get("font_errors") or []:
            log.warning("chart worker %s: font directory not registered: %s", worker.pid, problem)
        if worker.info.get("warm_error"):
            log.warning("chart worker %s: warm-up render failed: %s", worker.pid,
                        str(worker.info["warm_error"])[:500])
        log.debug("chart worker %s ready in %.0f ms (%s)", worker.pid, worker.spawn_ms, worker.info)
        return worker

    @property
    def alive(self) -> bool:
        """Running, not condemned, and both pipes of the frame channel still open."""
        return (self._transport is not None and not self._killed and not self._exited.done()
                and not self._lost_fds & {0, 1})

    def kill(self) -> None:
        """SIGKILL the worker if it still runs; never blocks, safe to call repeatedly.

        Its pipes are closed once the process has been reaped (see :meth:`process_exited`).
        """
        self._killed = True
        if self._transport is None or self._exited.done():
            return
        try:
            if self._pidfd is not None:
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            elif self.pid is not None:
                os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    async def wait_closed(self) -> None:
        """Until the process is reaped and every pipe closed (no zombie, no open transport)."""
        await asyncio.shield(self._closed)

    # -- requests ----------------------------------------------------------------------------
    async def request(self, header: dict[str, Any], body: bytes, *, timeout: float) -> Frame:
        """Send one render request and return the reply frame.

        Raises :class:`RenderTimeout` (the worker is killed and reaped first), or
        :class:`WorkerLost`. If the caller is cancelled mid-request the worker is killed: its
        reply would otherwise arrive for nobody and desynchronise the next request.
        """
        if not self.alive or self._transport is None:
            raise WorkerLost(self.pid, started=False)
        if self._request is not None:
            raise RuntimeError("a chart worker serves one request at a time")
        self._next_id += 1
        req = _Request(self._next_id, self._loop.create_future())
        self._request = req
        try:
            stdin = self._transport.get_pipe_transport(0)
            assert isinstance(stdin, asyncio.WriteTransport)
            stdin.write(encode_frame({**header, "type": "render", "id": req.id}, body))
            try:
                async with asyncio.timeout(timeout):
                    return await req.reply
            except TimeoutError:
                self.kill()
                await self._wait_gone()
                raise RenderTimeout() from None
        finally:
            self._request = None
            if not _succeeded(req.reply):
                self.kill()

    async def _wait_gone(self, limit: float = 5.0) -> None:
        try:
            async with asyncio.timeout(limit):
                await self.wait_closed()
        except TimeoutError:
            log.error("chart worker %s still not reaped %g s after SIGKILL", self.pid, limit)

    # -- asyncio.SubprocessProtocol ----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.SubprocessTransport)
        self._transport = transport
        self.pid = transport.get_pid()
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            self._pidfd = None
        if self._killed:  # condemned while spawning (pool closed, caller cancelled)
            self.kill()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == 1:
            self._frames_received(data)
        elif fd == 2:
            self._stderr_received(data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._lost_fds.add(fd)
        if fd == 1:  # no reply can come any more
            self._fail()
        elif fd == 2 and self._stderr:
            self._log_stderr(bytes(self._stderr))
            self._stderr.clear()
        self._maybe_close()

    def process_exited(self) -> None:
        code = self._transport.get_returncode() if self._transport is not None else None
        if not self._killed:
            log.warning("chart worker %s exited unexpectedly (status %s)", self.pid, code)
        if not self._exited.done():
            self._exited.set_result(code)
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        self._maybe_close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail()
        self._registry.discard(self)
        if not self._closed.done():
            self._closed.set_result(None)

    # -- internals ---------------------------------------------------------------------------
    def _maybe_close(self) -> None:
        """Close the transport once the process is reaped (its pipes too, if it was killed).

        Closing only after the exit means asyncio never has to kill or poll the process itself,
        and a worker that exited on its own still gets its last stderr lines logged.
        """
        if self._transport is None or not self._exited.done() or self._transport.is_closing():
            return
        if self._killed or {1, 2} <= self._lost_fds:
            self._transport.close()

    def _forget(self) -> None:
        """For a worker whose process never got connected: nothing left to wait for."""
        self._fail()
        if not self._exited.done():
            self._exited.set_result(None)
        self.connection_lost(None)

    def _fail(self) -> None:
        """Fail whoever waits for this worker: it can no longer answer."""
        if not self._ready.done():
            self._ready.set_exception(WorkerLost(self.pid, started=False))
            self._ready.exception()  # retrieved: nobody may be waiting
        req = self._request
        if req is not None and not req.reply.done():
            req.reply.set_exception(WorkerLost(self.pid, started=req.started))

    def _frames_received(self, data: bytes) -> None:
        if self._killed:
            return  # a condemned worker's late frames are for nobody
        try:
            frames = self._decoder.feed(data)
        except FrameError as exc:
            self._broken(f"garbled reply ({exc})")
            return
        for header, body in frames:
            self._dispatch(header, body)

    def _dispatch(self, header: dict[str, Any], body: bytes) -> None:
        kind = header.get("type")
        req = self._request
        if kind == "ready" and not self._ready.done():
            self._ready.set_result(header)
        elif req is not None and header.get("id") == req.id and kind == "started":
            req.started = True
        elif req is not None and header.get("id") == req.id and kind == "result":
            if not req.reply.done():
                req.reply.set_result((header, body))
        else:
            self._broken(f"unexpected frame {str(header)[:200]}")

    def _broken(self, why: str) -> None:
        log.error("chart worker %s: %s; killing it", self.pid, why)
        self._fail()
        self.kill()

    def _stderr_received(self, data: bytes) -> None:
        self._stderr += data
        while True:
            end = self._stderr.find(b"\n")
            if end < 0 and len(self._stderr) < _STDERR_LINE_LIMIT:
                return
            cut = end if 0 <= end < _STDERR_LINE_LIMIT else _STDERR_LINE_LIMIT
            line = bytes(self._stderr[:cut])
            del self._stderr[:cut + 1 if cut == end else cut]
            self._log_stderr(line)

    def _log_stderr(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace").rstrip()
        if text:
            log.warning("chart worker %s: %s", self.pid, text[:1000])

"""The bot as its own process, measured from outside, as an operator would run it.

The load benchmarks start ``insightbot serve`` (the console script's code path, ``python -m
bot.cli serve``) in a child process pointed at fakes that live in the benchmark's process. The
bot therefore has its own interpreter and event loop, as in production, and the driver, the fake
Slack and the fake backend compete with it for the same two cores — as a test harness on this
machine would. What the process costs is read from ``/proc``: resident memory (the bot and its
chart workers) and CPU time.

The multi-process tests (replicas, rolling deploys, ``kill -9`` at every stage) start and kill
the same processes with :func:`spawn_bot`, :meth:`BotProcess.kill` and
:meth:`BotProcess.terminate`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import aiohttp

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# the code under test, whichever checkout that is (not whatever an editable install points to)
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class BotProcess:
    process: asyncio.subprocess.Process
    url: str
    log_path: Path | None = None

    def kill(self) -> None:
        """``kill -9``: no shutdown, no lease released, nothing flushed."""
        if self.process.returncode is None:
            self.process.kill()

    async def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, as a deploy stops a replica; SIGKILL if it does not exit in ``timeout``."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                self.process.kill()
        return await self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        """User + system CPU of the bot and its finished-and-reaped children so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        utime, stime = int(fields[11]), int(fields[12])
        return (utime + stime) / CLOCK_TICKS + sum(_cpu(p) for p in self.children())

    def rss_bytes(self) -> tuple[int, int]:
        """(bot, its children): resident memory now."""
        return _rss(self.pid), sum(_rss(p) for p in self.children())

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        try:
            return [int(p) for p in path.read_text().split()]
        except OSError:
            return []

    async def metrics(self) -> dict[str, float]:
        """The bot's ``/metrics`` as ``{sample name with labels: value}``."""
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{self.url}/metrics") as resp:
                text = await resp.text()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                out[name] = float(value)
        return out


Launcher = Callable[[dict[str, str], Path, Path], Awaitable[Any]]


async def _exec_serve(env: dict[str, str], workdir: Path, log_path: Path) -> Any:
    """``python -m bot.cli serve`` as a child process (the operator's way)."""
    with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "serve", env=env, cwd=workdir,
            stdout=log, stderr=asyncio.subprocess.STDOUT)


async def spawn_bot(env: dict[str, str], workdir: Path, *, name: str = "bot",
                    ready_timeout: float = 60.0, launch: Launcher = _exec_serve) -> BotProcess:
    """Start ``insightbot serve`` with ``env`` (on top of a clean environment, in ``workdir``,
    logging to ``workdir/<name>.log``) and return once ``/healthz`` answers. ``launch`` starts
    the process (see tests/integration/forked_bots.py for one that forks a pre-imported one)."""
    port = free_port()
    full = {"PATH": os.environ.get("PATH", ""), "HOME": str(workdir), "HOST": "127.0.0.1",
            "PORT": str(port), "LOG_LEVEL": "WARNING", "PYTHONPATH": str(PROJECT_ROOT),
            "DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/bot.db", **env}
    log_path = workdir / f"{name}.log"
    process = await launch(full, workdir, log_path)
    bot = BotProcess(process, f"http://127.0.0.1:{port}", log_path)
    try:
        await _wait_healthy(bot, ready_timeout)
    except BaseException as exc:
        bot.kill()
        await process.wait()
        if isinstance(exc, RuntimeError):
            raise RuntimeError(f"{name} did not start: {exc}\n{bot.log()[-3000:]}") from None
        raise
    return bot


@contextlib.asynccontextmanager
async def bot_process(env: dict[str, str], *, ready_timeout: float = 60.0) -> AsyncIterator[BotProcess]:
    """Run ``insightbot serve`` with ``env`` (on top of a clean environment) until the block ends."""
    with tempfile.TemporaryDirectory() as tmp:
        bot = await spawn_bot(env, Path(tmp), ready_timeout=ready_timeout)
        try:
            yield bot
        finally:
            await bot.terminate()
            tail = bot.log()[-3000:]
            errors = [line for line in tail.splitlines() if re.search(r"ERROR|Traceback", line)]
            if errors:
                print("[bot log, last errors]\n" + "\n".join(errors[-10:]), file=sys.stderr)


async def _wait_healthy(bot: BotProcess, timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            if bot.process.returncode is not None:
                raise RuntimeError(f"the bot exited with {bot.process.returncode}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{bot.url}/healthz") as resp:
                    if resp.status == 200:
                        return
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError("the bot did not become healthy")
            await asyncio.sleep(0.1)


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


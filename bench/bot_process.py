"""The bot as its own process, measured from outside, as an operator would run it.

The load benchmarks start ``insightbot serve`` (the console script's code path, ``python -m
bot.cli serve``) in a child process pointed at fakes that live in the benchmark's process. The
bot therefore has its own interpreter and event loop, as in production, and the driver, the fake
Slack and the fake backend compete with it for the same two cores — as a test harness on this
machine would. What the process costs is read from ``/proc``: resident memory (the bot and its
chart workers) and CPU time.
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
from typing import AsyncIterator

import aiohttp

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class BotProcess:
    process: asyncio.subprocess.Process
    url: str

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


@contextlib.asynccontextmanager
async def bot_process(env: dict[str, str], *, ready_timeout: float = 60.0) -> AsyncIterator[BotProcess]:
    """Run ``insightbot serve`` with ``env`` (on top of a clean environment) until the block ends."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        full = {"PATH": os.environ.get("PATH", ""), "HOME": tmp, "HOST": "127.0.0.1",
                "PORT": str(port), "LOG_LEVEL": "WARNING",
                "DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/bot.db", **env}
        log = open(Path(tmp) / "bot.log", "wb")
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "serve", env=full, cwd=tmp,
            stdout=log, stderr=asyncio.subprocess.STDOUT)
        bot = BotProcess(process, f"http://127.0.0.1:{port}")
        try:
            await _wait_healthy(bot, ready_timeout)
            yield bot
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), 30)
                except TimeoutError:
                    process.kill()
                    await process.wait()
            log.close()
            tail = (Path(tmp) / "bot.log").read_text(errors="replace")[-3000:]
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


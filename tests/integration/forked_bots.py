"""``insightbot serve`` processes forked from a pre-imported parent, for the multi-process tests.

Starting a bot process costs about 1.5 s of imports (SQLAlchemy, Alembic, aiohttp, Bolt…) on
this machine, and the crash and replica tests start two or three processes per case. A zygote —
one Python process that imports the service once — forks a fresh child per replica instead:
each child is a real, separate process running ``bot.cli.main(["serve"])`` with its own
environment, working directory and log, so ``kill -9`` of it is as abrupt as of any other
process. Only third-party imports are shared (before any event loop, thread or connection exists).

Children start with stdin closed, as some process managers start services: ``serve`` must
cope (vl-convert's engine needs a stdin; see ``bot/cli.py``), and the chart tests show it does.

The children are the zygote's, not ours: the zygote ignores SIGCHLD so the kernel reaps them,
and :class:`ForkedProcess` watches ``/proc`` to see one go.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from bench.bot_process import PROJECT_ROOT, BotProcess, spawn_bot

_ZYGOTE = r"""
import json, os, signal, sys
# the expensive third-party imports, once — not vl_convert (its engine does not survive a fork)
# and not the bot itself (each child imports the code under test afresh, cheaply)
import asyncio, aiohttp, aiohttp.web, alembic.command, alembic.config, alembic.runtime.migration
import sqlalchemy, sqlalchemy.ext.asyncio, pydantic, pydantic_settings, prometheus_client
import mako.template, sqlparse, pygments, dotenv, httpx, httpx_sse, asyncpg, aiosqlite
import slack_bolt.async_app, slack_sdk.web.async_client, slack_sdk.socket_mode.aiohttp
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(0)  # as some process managers start services: serve must cope (bot/cli.py)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        code = 1
        try:
            import bot.cli
            code = bot.cli.main(["serve"])
        except BaseException:
            import traceback
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    print(pid, flush=True)
"""


class ForkedProcess:
    """The parts of ``asyncio.subprocess.Process`` that :class:`BotProcess` uses, for a process
    that is not our child (its exit code is not ours to read: gone is ``-1``)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    @property
    def returncode(self) -> int | None:
        return None if Path(f"/proc/{self.pid}").exists() and not _zombie(self.pid) else -1

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def send_signal(self, sig: int) -> None:
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    async def wait(self) -> int:
        while self.returncode is None:
            await asyncio.sleep(0.02)
        return -1


class _Zygote:
    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
        self._proc = subprocess.Popen([sys.executable, "-c", _ZYGOTE], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True, env=env)
        self._lock = threading.Lock()
        atexit.register(self.close)

    def fork(self, env: dict[str, str], cwd: Path, log: Path) -> int:
        with self._lock:
            assert self._proc.stdin is not None and self._proc.stdout is not None
            self._proc.stdin.write(json.dumps({"env": env, "cwd": str(cwd), "log": str(log)}) + "\n")
            self._proc.stdin.flush()
            answer = self._proc.stdout.readline()
        if not answer.strip():
            raise RuntimeError(f"the zygote died (exit {self._proc.poll()})")
        return int(answer)

    def close(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            self._proc.wait(10)


_zygote: _Zygote | None = None


async def fork_bot(env: dict[str, str], workdir: Path, *, name: str = "bot",
                   ready_timeout: float = 60.0) -> BotProcess:
    """:func:`bench.bot_process.spawn_bot`, the process forked from the zygote."""
    return await spawn_bot(env, workdir, name=name, ready_timeout=ready_timeout, launch=_fork)


async def _fork(env: dict[str, str], workdir: Path, log_path: Path) -> ForkedProcess:
    global _zygote
    if _zygote is None:
        _zygote = _Zygote()
    zygote = _zygote
    pid = await asyncio.get_running_loop().run_in_executor(None, zygote.fork, env, workdir, log_path)
    return ForkedProcess(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False

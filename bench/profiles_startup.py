"""What 20 backend profiles cost at start-up: time to healthy, and resident memory.

``insightbot serve`` runs as its own process (:func:`bench.bot_process.spawn_bot`), Slack
configured against the fake Slack, in two set-ups:

* **1 backend** — ``BACKEND=wren`` and its variables, no routing file (as before profiles);
* **3 profiles** — a ``ROUTES_FILE`` with one profile of each kind (what importing all three
  adapters costs);
* **20 profiles** — a ``ROUTES_FILE`` of 7 Wren, 7 ClickZetta and 6 TextQL profiles (each with
  its own base URL and a ``${NAME}`` secret), one Slack-channel route per profile and a default.

Measured per start, from outside: **start-up** = spawning the process → ``/healthz`` answering
200 (interpreter, imports, parsing and checking the routing file, building every backend,
migrations, Bolt app); **RSS** of the bot process once healthy (the chart worker, a separate
process started in the background, is the same in every set-up and not counted). Nothing is
asked: the backends' URLs point nowhere. Each set-up is started ``ROUNDS`` times, in turn; the
median is reported.

Run: ``.venv/bin/python -m bench.profiles_startup``.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bot_process import spawn_bot
from tests.fakes.slack import FakeSlack

ROUNDS = 5
PROFILES = 20
MIB = 1024 * 1024


def routes_toml(count: int) -> tuple[str, dict[str, str]]:
    """A routing file of ``count`` profiles (kinds in turn) and the secrets it refers to."""
    lines = ['default = "p00"', ""]
    env: dict[str, str] = {}
    for i in range(count):
        name, kind = f"p{i:02d}", ("wren", "clickzetta", "textql")[i % 3]
        secret = f"PROFILE_{i:02d}_SECRET"
        env[secret] = f"secret-value-{i:02d}-0123456789"
        lines.append(f"[profiles.{name}]")
        lines.append(f'backend = "{kind}"')
        lines.append(f'description = "Bench profile {i}"')
        if kind == "wren":
            lines += [f'WREN_BASE_URL = "http://127.0.0.1:9/wren{i}"',
                      f'WREN_API_KEY = "${{{secret}}}"', f'WREN_PROJECT_ID = "{i + 1}"']
        elif kind == "clickzetta":
            lines += [f'CLICKZETTA_BASE_URL = "http://127.0.0.1:9/cz{i}/clickzetta-campaign-data"',
                      f'CLICKZETTA_APP_SECRET_KEY = "${{{secret}}}"',
                      f'CLICKZETTA_TENANT_ID = "{i + 10}"', 'CLICKZETTA_USER_ID = "1"',
                      f'CLICKZETTA_DOMAIN_ID = "{i + 100}"', "MAX_CONCURRENT_RUNS = 4"]
        else:
            lines += [f'TEXTQL_BASE_URL = "http://127.0.0.1:9/tql{i}"', 'TEXTQL_MODE = "v2"',
                      f'TEXTQL_API_KEY = "${{{secret}}}"', "RUN_TIMEOUT = 600"]
        lines.append("")
    for i in range(count):
        lines += ["[[routes]]", f'slack_channel = "C0BENCH{i:04d}"', f'profile = "p{i:02d}"', ""]
    return "\n".join(lines), env


async def start_once(env: dict[str, str], workdir: Path) -> dict[str, float]:
    started = time.monotonic()
    bot = await spawn_bot(env, workdir)
    startup = time.monotonic() - started
    try:
        bot_rss, _ = bot.rss_bytes()
        return {"startup": startup, "rss": bot_rss / MIB}
    finally:
        await bot.terminate()


async def main(rounds: int = ROUNDS) -> dict[str, dict[str, float]]:
    setups = {"1 backend": 0, "3 profiles": 3, f"{PROFILES} profiles": PROFILES}
    results: dict[str, list[dict[str, float]]] = {label: [] for label in setups}
    async with FakeSlack() as slack:
        slack_env = {"SLACK_BOT_TOKEN": "xoxb-bench-token", "SLACK_SIGNING_SECRET": "bench-secret",
                     "SLACK_API_URL": slack.base_url}
        single = {**slack_env, "BACKEND": "wren", "WREN_BASE_URL": "http://127.0.0.1:9/wren",
                  "WREN_API_KEY": "secret-value-single", "WREN_PROJECT_ID": "1"}
        for _ in range(rounds):
            for label, count in setups.items():
                with tempfile.TemporaryDirectory() as tmp:
                    work = Path(tmp)
                    if not count:
                        env = single
                    else:
                        text, secrets = routes_toml(count)
                        (work / "routes.toml").write_text(text)
                        env = {**slack_env, **secrets, "ROUTES_FILE": str(work / "routes.toml")}
                    results[label].append(await start_once(env, work))
    return {label: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
            | {"startup_max": max(r["startup"] for r in runs)}
            for label, runs in results.items()}


def report(results: dict[str, dict[str, Any]]) -> str:
    lines = ["| set-up | start-up to healthy, median (max) | bot RSS once healthy, median |",
             "|---|---|---|"]
    for label, r in results.items():
        lines.append(f"| {label} | {r['startup']:.2f} s ({r['startup_max']:.2f} s) | "
                     f"{r['rss']:.1f} MiB |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(asyncio.run(main())))

"""Latency, ack and memory benchmarks for the Slack ↔ Wren path (numbers, not pass/fail).

Measured against loopback fakes with the production pacing settings:

* event → placeholder: signed event POSTed → fake Slack receives ``chat.postMessage``;
* backend finish → final edit: the backend's last answer (``/generate_vega_chart``, or ``/ask``
  for a non-SQL answer) leaves the fake → the final ``chat.update`` arrives (includes rendering
  the chart PNG at 2× for the SQL case);
* acks under load: N signed events at once, HTTP response time of each;
* memory per live conversation: Python heap growth (tracemalloc) per run held open mid-analysis.
"""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
from typing import Any

from bench.harness import running_bot


def _stats(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
    return {"n": len(values), "p50_ms": pick(0.5) * 1000, "p95_ms": pick(0.95) * 1000,
            "max_ms": values[-1] * 1000}


async def event_to_placeholder(rounds: int = 30) -> dict[str, float]:
    async with running_bot() as (bot, wren):
        samples = []
        for i in range(rounds):
            before = len(bot.slack.calls_to("chat.postMessage"))
            t0 = time.monotonic()
            event = await bot.mention(f"question {i}")
            await bot.slack.wait_for(lambda: len(bot.slack.calls_to("chat.postMessage")) > before)
            samples.append(bot.slack.calls_to("chat.postMessage")[before].at - t0)
            await bot.wait_finished(event["ts"], timeout=30)
        return _stats(samples)


def _final_edit_at(bot: Any, thread_ts: str) -> float:
    reply = bot.bot_replies(thread_ts)[0]
    finals = [c for c in bot.slack.calls_to("chat.update")
              if c.args.get("ts") == reply.ts and "feedback" in str(c.args.get("blocks"))]
    return finals[-1].at


async def finish_to_final_edit(rounds: int = 15, *, with_chart: bool) -> dict[str, float]:
    async with running_bot() as (bot, wren):
        samples = []
        for i in range(rounds):
            if with_chart:
                gate = wren.hold_ask("chart")
            else:
                wren.script_ask_non_sql("Just an explanation.")
                gate = wren.hold_ask("ask")
            event = await bot.mention(f"question {i}")
            await wren.wait_for_request("/api/v1/generate_vega_chart" if with_chart else "/api/v1/ask",
                                        count=i + 1)
            t0 = time.monotonic()
            gate.set()
            await bot.wait_finished(event["ts"], timeout=30)
            samples.append(_final_edit_at(bot, event["ts"]) - t0)
        return _stats(samples)


async def acks_under_load(concurrent: int = 200) -> dict[str, float]:
    async with running_bot(SLACK_UPDATE_INTERVAL=3.0) as (bot, wren):
        hold = wren.hold_ask()  # keep analyses open so only acking is measured
        for _ in range(concurrent):
            wren.hold_ask()

        async def one(i: int) -> float:
            t0 = time.monotonic()
            await bot.mention(f"load {i}", channel=f"C{i:010d}")
            return time.monotonic() - t0

        t_all = time.monotonic()
        samples = await asyncio.gather(*(one(i) for i in range(concurrent)))
        wall = time.monotonic() - t_all
        stats = _stats(list(samples))
        stats["events_per_s"] = concurrent / wall
        # let every listener reach the relay before shutting down
        await bot.slack.wait_for(lambda: len(bot.service.relay.live.all()) == concurrent, timeout=60)
        hold.set()
        await bot.service.relay.close()
        return stats


async def memory_per_conversation(live: int = 100) -> dict[str, float]:
    async with running_bot(SLACK_UPDATE_INTERVAL=3.0) as (bot, wren):
        # warm up imports, caches and the first renderer call
        event = await bot.mention("warm up")
        await bot.wait_finished(event["ts"], timeout=30)
        gates = [wren.hold_ask() for _ in range(live)]
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        for i in range(live):
            await bot.mention(f"held {i}", channel=f"C{i:010d}")
        await wren.wait_for_request("/api/v1/ask", count=live + 1, timeout=60)
        await bot.slack.wait_for(lambda: len(bot.service.relay.live.all()) == live, timeout=30)
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        for gate in gates:
            gate.set()
        await bot.service.relay.close()
        return {"live_runs": live, "kib_per_run": used / live / 1024}


async def main() -> dict[str, Any]:
    results = {
        "event_to_placeholder": await event_to_placeholder(),
        "finish_to_final_edit_with_chart": await finish_to_final_edit(with_chart=True),
        "finish_to_final_edit_text_only": await finish_to_final_edit(with_chart=False),
        "acks_under_200_concurrent_events": await acks_under_load(),
        "memory_per_live_conversation": await memory_per_conversation(),
    }
    return results


def report(results: dict[str, Any]) -> str:
    lines = []
    for name, values in results.items():
        shown = ", ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
        lines.append(f"{name}: {shown}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(asyncio.run(main())))

"""Streaming benchmarks for the Slack ↔ TextQL path (numbers, not pass/fail).

TextQL Ana is the *streamed* backend: one ``GET /api/ana`` answers with server-sent events, and a
``block`` is re-sent with the same id as it grows (seed 002). The benchmark stream is the seed's
shape — ``chatId``, ``userMsgId``, ``assistantMsgId``, then N versions of one growing
``TextBlock``, each adding a sentence with a unique marker word, then ``message: "done"`` — sent
in the fake's awkward pieces (23-byte chunks, split ``\\r\\n`` and UTF-8, keep-alives between).

:class:`SteppedTextQL` (a subclass; the shared fake is not edited) holds the stream before every
event from the first block on and lets one event through per :meth:`SteppedTextQL.step`, noting
the ``time.monotonic()`` at which the fake starts writing that event's first byte. The benchmarks
then look for the first ``chat.update`` at the fake Slack whose blocks contain the marker.

* bytes in → edit out, pacer idle: each block is released only once the reply's pacer is idle
  (≥ ``SLACK_UPDATE_INTERVAL`` since its last edit), so the number is the pipeline itself — SSE
  parsing, translating the block, folding it into the answer, rendering the progress blocks and
  the ``chat.update`` round trip;
* continuous stream at production pacing: blocks released at a fixed cadence; per block the
  same bytes → first-edit-showing-it latency (now dominated by the 1.5 s pacing, and blocks that
  arrive after the last progress edit first show in the final edit), and ``chat.update`` calls per
  answer vs. block events sent.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from bench.harness import is_final, reply_updates, report, running_bot_with, stats
from tests.fakes.textql import FakeTextQL, SseEvent, named, text_block
from tests.integration.conftest import blocks_text

META_EVENTS = 3  # chatId, userMsgId, assistantMsgId


def marker(k: int) -> str:
    return f"zq{k:03d}x"


def growing_script(blocks: int) -> list[SseEvent]:
    """The seed's event sequence with ``blocks`` versions of one growing TextBlock."""
    events = [named("chatId", "bench-chat-0001"), named("userMsgId", 1), named("assistantMsgId", 2)]
    text = ""
    for k in range(blocks):
        text += f"Point {marker(k)}. "
        events.append(named("block", text_block("bench-block", text.strip())))
    events.append(named("message", "done"))
    return events


class SteppedTextQL(FakeTextQL):
    """Holds before every event from ``hold_after`` on; :meth:`step` lets exactly one through."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sent_at: list[float] = []  # when each released event started to be written
        self._went: asyncio.Event = asyncio.Event()

    async def _hold(self, response: web.StreamResponse) -> None:
        await super()._hold(response)
        self.sent_at.append(time.monotonic())  # the fake writes this event's bytes next
        self.hold_after = (self.hold_after or 0) + 1  # and holds again before the next one
        self.release = asyncio.Event()
        self._went.set()

    def arm(self, script: list[SseEvent]) -> None:
        """The next stream sends its metadata, then waits for a step before every event."""
        self.legacy_script = script
        self.hold_after = META_EVENTS
        self.release = asyncio.Event()
        self.sent_at = []

    async def step(self) -> float:
        """Let the next event go; return when the fake started writing it."""
        before = len(self.sent_at)
        self._went.clear()
        self.release.set()
        while len(self.sent_at) == before:
            await self._went.wait()
            self._went.clear()
        return self.sent_at[-1]


def _first_showing(updates: list[Any], text: str, after: float) -> Any:
    return next(c for c in updates if c.at >= after and text in blocks_text(c.args.get("blocks")))


async def _start(bot: Any, fake: SteppedTextQL, blocks: int, question: str) -> dict[str, Any]:
    fake.arm(growing_script(blocks))
    event = await bot.mention(question)
    await fake.wait_for_request("/api/ana", count=len(fake.requests_to("/api/ana")) + 1, timeout=10)
    await bot.slack.wait_for(lambda: bool(bot.bot_replies(event["ts"])), timeout=10)
    return event


async def _until_pacer_idle(bot: Any, thread_ts: str, pacing: float) -> None:
    """Wait until the reply's last post or edit is more than one interval old (the metadata
    events alone cause one progress edit 1.5 s after the placeholder)."""
    while True:
        reply = bot.bot_replies(thread_ts)[0]
        sent = [c.at for c in bot.slack.calls_to("chat.postMessage") if c.response.get("ts") == reply.ts]
        last = max(sent + [c.at for c in reply_updates(bot, thread_ts)])
        wait = last + pacing + 0.1 - time.monotonic()
        if wait <= 0:
            return
        await asyncio.sleep(wait)


async def bytes_to_edit_idle(blocks: int = 10) -> dict[str, Any]:
    """Release each block once the pacer is idle; time its bytes → the edit that shows it."""
    fake = SteppedTextQL()
    async with running_bot_with("textql", fake=fake) as (bot, tql):
        pacing = bot.service.settings.SLACK_UPDATE_INTERVAL
        event = await _start(bot, tql, blocks, "stream, slowly")
        samples = []
        for k in range(blocks):
            await _until_pacer_idle(bot, event["ts"], pacing)
            sent = await tql.step()
            await bot.slack.wait_for(lambda: any(marker(k) in blocks_text(c.args.get("blocks"))
                                                 for c in reply_updates(bot, event["ts"])), timeout=10)
            shown = _first_showing(reply_updates(bot, event["ts"]), marker(k), sent)
            samples.append(shown.at - sent)
        await tql.step()  # done
        await bot.wait_finished(event["ts"], timeout=30)
        return {"slack_update_interval_s": pacing, **stats(samples)}


async def continuous_stream(blocks: int, cadence: float) -> dict[str, Any]:
    """Blocks every ``cadence`` s at production pacing: latency per block, edits per answer."""
    fake = SteppedTextQL()
    async with running_bot_with("textql", fake=fake) as (bot, tql):
        event = await _start(bot, tql, blocks, "stream, steadily")
        start = time.monotonic()
        for k in range(blocks):
            await asyncio.sleep(max(0.0, start + k * cadence - time.monotonic()))
            await tql.step()
        await tql.step()  # done
        await bot.wait_finished(event["ts"], timeout=30)
        updates = reply_updates(bot, event["ts"])
        latencies = [_first_showing(updates, marker(k), tql.sent_at[k]).at - tql.sent_at[k]
                     for k in range(blocks)]
        in_final = sum(1 for k in range(blocks) if is_final(_first_showing(updates, marker(k), tql.sent_at[k])))
        stream_s = tql.sent_at[-1] - tql.sent_at[0]
        return {"block_events": blocks, "cadence_s": cadence, "stream_s": stream_s,
                "edits_per_answer": len(updates), "progress_edits": len(updates) - 1,
                **{f"latency_{k}": v for k, v in stats(latencies).items() if k != "n"},
                "blocks_first_shown_in_final": in_final}


async def main() -> dict[str, Any]:
    return {
        "bytes_to_edit_pacer_idle": await bytes_to_edit_idle(),
        "stream_24_blocks_every_250ms": await continuous_stream(24, 0.25),
        "stream_120_blocks_every_50ms": await continuous_stream(120, 0.05),
    }


if __name__ == "__main__":
    print(report(asyncio.run(main())))

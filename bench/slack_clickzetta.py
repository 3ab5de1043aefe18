"""Polling and latency benchmarks for the Slack ↔ ClickZetta path (numbers, not pass/fail).

ClickZetta is the *polled* backend: the adapter asks ``safe_question_poll`` every
``CLICKZETTA_POLL_INTERVAL`` seconds and gets every item so far. The fake advances its scripted
analysis by one item per poll (8 items: notify, knowledge, metric, SQL, chart, summary, fuller
summary, ``finish``), so the script needs at least 8 polls; :meth:`FakeClickZetta.hold` keeps
the analysis where it is for as long as a benchmark wants (every poll meanwhile is unchanged).

Measured (Slack pacing as in production, ``SLACK_UPDATE_INTERVAL=1.5``):

* polls per question at ``CLICKZETTA_POLL_INTERVAL=0.05`` and the effective poll period (gap
  between two polls of one question = interval + one poll round trip + translating it);
* backend finish → final edit: from the moment the fake's poll handler *returns* the response
  whose last item is ``finish`` (timestamped by :class:`TimedClickZetta`, a subclass that wraps
  the handler; the fake itself is not edited) to the arrival at the fake Slack of the
  ``chat.update`` that carries the feedback buttons. It covers the response's trip to the
  adapter, JSON decoding and translation, the relay storing the finished run in SQLite, stopping
  the pacer, rendering the final blocks and the ``chat.update`` round trip. Also shown: from
  :meth:`FakeClickZetta.release` to the same edit, which adds the wait for the next poll;
* edits per answer: ``chat.update`` calls per reply (paced progress edits + the final one), at
  the 0.05 s poll interval and at the production default of 2 s.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bench.harness import counts, is_final, reply_updates, report, running_bot_with, stats
from tests.fakes.clickzetta import TERMINAL, FakeClickZetta

FAST_POLL = 0.05
PRODUCTION_POLL = 2.0  # CLICKZETTA_POLL_INTERVAL's default
SCRIPT_STEPS = 8
FINISH_STEP = SCRIPT_STEPS - 1  # hold here: everything but ``finish`` has been shown


@dataclass
class PollServed:
    question_id: int
    at: float  # time.monotonic() when the handler returned the response
    items: int
    last: str | None  # dataType of the last item


class TimedClickZetta(FakeClickZetta):
    """The fake, plus the time each poll response left its handler and what it carried."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.served: list[PollServed] = []

    async def _poll(self, request: web.Request) -> web.Response:
        response = await super()._poll(request)
        at = time.monotonic()  # the handler is done; aiohttp writes the bytes next
        try:
            items = json.loads(response.body)["data"]["responses"]
            question = int((await request.json())["questionId"])
        except (KeyError, TypeError, ValueError):
            return response  # a refusal or an injected fault: not a served poll
        self.served.append(PollServed(question, at, len(items), items[-1].get("dataType") if items else None))
        return response

    def polls_of(self, question_id: int) -> list[PollServed]:
        return [p for p in self.served if p.question_id == question_id]

    def finish_served_at(self, question_id: int) -> float:
        return next(p.at for p in self.polls_of(question_id) if p.last in TERMINAL)


async def _ask(bot: Any, fake: TimedClickZetta, text: str, **kw: Any) -> tuple[dict[str, Any], int]:
    """Mention the bot; return the event and the fake's question id once it was submitted."""
    before = len(fake.requests_to("query"))
    event = await bot.mention(text, **kw)
    await fake.wait_for_request("query", count=before + 1, timeout=10)
    # the handler registers the question without yielding after it recorded the request
    assert len(fake.questions) == before + 1, "the query was refused"
    return event, max(fake.questions)


def _period(polls: list[PollServed]) -> list[float]:
    return [b.at - a.at for a, b in zip(polls, polls[1:])]


async def polls_per_question(rounds: int = 10, *, interval: float = FAST_POLL,
                             held_for: float = 0.0) -> dict[str, Any]:
    """Polls per question; with ``held_for`` the analysis is paused that long mid-way."""
    fake = TimedClickZetta()
    async with running_bot_with("clickzetta", fake=fake, CLICKZETTA_POLL_INTERVAL=interval) as (bot, cz):
        polls, periods, edits, durations = [], [], [], []
        for i in range(rounds):
            if held_for:
                cz.hold(at_step=3)
            event, qid = await _ask(bot, cz, f"question {i}")
            if held_for:
                await asyncio.sleep(held_for)
                cz.release()
            await bot.wait_finished(event["ts"], timeout=60)
            served = cz.polls_of(qid)
            polls.append(len(served))
            periods += _period(served)
            durations.append(served[-1].at - served[0].at)
            edits.append(len(reply_updates(bot, event["ts"])))
        out: dict[str, Any] = {"poll_interval_s": interval, "held_s": held_for,
                               "polls_per_question": counts(polls)["mean"], "min": min(polls), "max": max(polls)}
        out.update({f"poll_period_{k}": v for k, v in stats(periods).items() if k != "n"})
        out["first_to_last_poll_s"] = sum(durations) / len(durations)
        out["edits_per_answer"] = counts(edits)["mean"]
        return out


async def finish_to_final_edit(rounds: int = 15, *, interval: float = FAST_POLL,
                               pacer_idle: bool = False) -> dict[str, Any]:
    """Hold the analysis before ``finish``, release it, time the finish response → final edit.

    ``pacer_idle=False``: released right after the adapter starts polling the held analysis,
    while the reply's pacer is still waiting out its 1.5 s (no progress edit sent yet).
    ``pacer_idle=True``: released once a progress edit showed the held state and another
    interval has passed — what every finish looks like at the 2 s production poll interval.
    """
    fake = TimedClickZetta()
    async with running_bot_with("clickzetta", fake=fake, CLICKZETTA_POLL_INTERVAL=interval) as (bot, cz):
        interval_s = bot.service.settings.SLACK_UPDATE_INTERVAL
        from_finish, from_release, extra_edits = [], [], []
        for i in range(rounds):
            cz.hold(at_step=FINISH_STEP)
            polls_before = len(cz.requests_to("poll"))
            event, qid = await _ask(bot, cz, f"question {i}")
            # one poll past the hold point: the adapter is now polling an unchanged analysis
            await cz.wait_for_request("poll", count=polls_before + FINISH_STEP + 1, timeout=10)
            if pacer_idle:
                await bot.slack.wait_for(lambda: bool(reply_updates(bot, event["ts"])), timeout=10)
                last = reply_updates(bot, event["ts"])[-1].at
                await asyncio.sleep(max(0.0, last + interval_s + 0.1 - time.monotonic()))
            progress_before = len(reply_updates(bot, event["ts"]))
            released = time.monotonic()
            cz.release()
            await bot.wait_finished(event["ts"], timeout=30)
            updates = reply_updates(bot, event["ts"])
            final = [c for c in updates if is_final(c)][-1]
            from_finish.append(final.at - cz.finish_served_at(qid))
            from_release.append(final.at - released)
            extra_edits.append(len(updates) - progress_before - 1)
        return {"poll_interval_s": interval, "pacer_idle": pacer_idle,
                **{f"finish_{k}": v for k, v in stats(from_finish).items()},
                **{f"release_{k}": v for k, v in stats(from_release).items() if k != "n"},
                "progress_edits_after_finish": sum(extra_edits) / len(extra_edits)}


async def edits_per_answer_production(answers: int = 3) -> dict[str, Any]:
    """Concurrent questions (one per channel) at the production poll interval of 2 s."""
    fake = TimedClickZetta()
    async with running_bot_with("clickzetta", fake=fake, CLICKZETTA_POLL_INTERVAL=PRODUCTION_POLL) as (bot, cz):
        channels = [f"C{i:010d}" for i in range(answers)]
        asked = [await _ask(bot, cz, f"question {i}", channel=ch) for i, ch in enumerate(channels)]
        for event, _ in asked:
            await bot.wait_finished(event["ts"], timeout=60)
        edits = [len(reply_updates(bot, ev["ts"], ch)) for (ev, _), ch in zip(asked, channels)]
        polls = [len(cz.polls_of(qid)) for _, qid in asked]
        durations = [cz.polls_of(qid)[-1].at - cz.polls_of(qid)[0].at for _, qid in asked]
        return {"poll_interval_s": PRODUCTION_POLL, "answers": answers,
                "polls_per_question": sum(polls) / len(polls),
                "first_to_last_poll_s": sum(durations) / len(durations),
                "edits_per_answer": sum(edits) / len(edits), "min": min(edits), "max": max(edits)}


async def main() -> dict[str, Any]:
    return {
        "polls_per_question_fast": await polls_per_question(),
        "polls_per_question_held_1s": await polls_per_question(3, held_for=1.0),
        "finish_to_final_edit_pacer_waiting": await finish_to_final_edit(20),
        "finish_to_final_edit_pacer_idle": await finish_to_final_edit(12, pacer_idle=True),
        "edits_per_answer_production_poll": await edits_per_answer_production(),
    }


if __name__ == "__main__":
    print(report(asyncio.run(main())))

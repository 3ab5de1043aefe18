"""A burst of questions against the repository: what the relay asks of storage, 200 at once.

Shared by the burst tests (SQLite in tests/unit, PostgreSQL in tests/integration) and by
``bench/storage_burst.py``. Each simulated question makes the repository calls one question
makes today (bot/slack/listeners/events.py, then bot/relay/relay.py), in order:

    claim_event · get_conversation · ensure_conversation · create_run      (intake)
    update_run(reply_channel, reply_ts) · start_run · get_conversation
    set_session · update_run(session_id, backend_run_id) · finish_run(answer of ~5 KB)

or, with ``intake="record_question"``, the intake as one :meth:`Repository.record_question`.
Between the calls it does the relay's synchronous work (a fixed amount of JSON encoding, the
stand-in for folding updates and rendering Block Kit), so the event loop is as busy as a bot's;
meanwhile each repository polls ``stop_requests`` for the live runs, as the relay's
remote-stop watcher does. Questions are dealt round-robin to the repositories given: two
repositories on one SQLite file are two processes sharing it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Awaitable, TypeVar

from storage import Repository

T = TypeVar("T")

QUESTIONS = 200
# JSON encodings of the answer per relay step: ≈0.25 ms of event-loop work on the CI machine
RELAY_WORK = 5
STOP_POLL_INTERVAL = 0.02
STALE_AFTER = timedelta(minutes=15)


def answer_for(i: int) -> dict[str, Any]:
    """A final answer snapshot of about 5 KB (text, SQL, a table), distinct per question."""
    rows = [[f"2025-{m:02d}", 1000 + 37 * m + i, f"region-{m % 4}"] for m in range(1, 13)]
    return {
        "outcome": "done",
        "session_id": f"sess-{i}",
        "parts": [
            {"id": "status", "kind": "status", "text": ""},
            {"id": "text", "kind": "text", "text": f"Answer {i}: " + "Revenue grew steadily. " * 100},
            {"id": "sql", "kind": "sql", "sql": "SELECT month, sum(amount) AS revenue, region "
                                                "FROM orders GROUP BY month, region " * 8},
            {"id": "table", "kind": "table", "columns": ["month", "revenue", "region"],
             "rows": rows * 6, "total": 72},
        ],
    }


@dataclass
class Burst:
    tag: str = ""  # in channel names: bursts with different tags do not share threads or events
    wall: float = 0.0
    errors: list[tuple[int, BaseException]] = field(default_factory=list)
    runs: dict[int, str] = field(default_factory=dict)  # question → run id
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    intake: list[float] = field(default_factory=list)  # event in → run recorded (placeholder may go)


class _Question:
    def __init__(self, burst: Burst, repo: Repository, i: int) -> None:
        self.burst, self.repo, self.i = burst, repo, i

    async def timed(self, name: str, call: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            return await call
        finally:
            self.burst.latencies[name].append(time.perf_counter() - started)


def _relay_work(answer: dict[str, Any]) -> None:
    for _ in range(RELAY_WORK):
        json.dumps(answer)


async def _ask(burst: Burst, repo: Repository, i: int, intake: str, live: set[str]) -> None:
    q = _Question(burst, repo, i)
    channel, thread, answer = f"C{burst.tag}{i % 5}", f"1800000000.{i:06d}", answer_for(i)
    key = f"slack:msg:{channel}:{thread}"
    started = time.perf_counter()
    if intake == "record_question":
        recorded = await q.timed("record_question", repo.record_question(
            key, "slack", "T1", channel, thread, "wren", f"question {i}", "U1"))
        assert recorded is not None, f"question {i}: event already claimed"
        conv, run = recorded
    else:
        assert await q.timed("claim_event", repo.claim_event(key)), f"question {i}: event already claimed"
        assert await q.timed("get_conversation", repo.get_conversation("slack", "T1", channel, thread)) is None
        conv = await q.timed("ensure_conversation",
                             repo.ensure_conversation("slack", "T1", channel, thread, "wren"))
        run = await q.timed("create_run", repo.create_run(conv, f"question {i}", "U1"))
    burst.intake.append(time.perf_counter() - started)
    burst.runs[i] = run.id
    live.add(run.id)
    try:
        _relay_work(answer)  # post the placeholder
        await q.timed("update_run", repo.update_run(run.id, reply_channel=channel, reply_ts=f"{thread}1"))
        assert await q.timed("start_run", repo.start_run(run.id, stale_after=STALE_AFTER)) is not None
        conv = await q.timed("get_conversation", repo.get_conversation("slack", "T1", channel, thread))
        assert conv is not None
        _relay_work(answer)  # the backend answers: fold its first updates
        await q.timed("set_session", repo.set_session(conv.id, f"sess-{i}"))
        await q.timed("update_run", repo.update_run(run.id, session_id=f"sess-{i}", backend_run_id=f"b-{i}"))
        _relay_work(answer)  # the final snapshot
        finished = await q.timed("finish_run", repo.finish_run(run.id, "done", answer=answer))
        assert finished is not None and finished.status == "done", f"question {i}: not finished"
    finally:
        live.discard(run.id)


async def _poll_stops(burst: Burst, repo: Repository, live: set[str], done: asyncio.Event) -> None:
    while not done.is_set():
        started = time.perf_counter()
        await repo.stop_requests(sorted(live) or ["none"])
        burst.latencies["stop_requests"].append(time.perf_counter() - started)
        try:
            await asyncio.wait_for(done.wait(), STOP_POLL_INTERVAL)
        except TimeoutError:
            pass


async def burst(repos: list[Repository], questions: int = QUESTIONS, *,
                intake: str = "calls", tag: str = "") -> Burst:
    """Start ``questions`` questions at once, dealt round-robin to ``repos``; wait for all."""
    result = Burst(tag=tag)
    live: list[set[str]] = [set() for _ in repos]
    done = asyncio.Event()
    pollers = [asyncio.create_task(_poll_stops(result, repo, live[n], done))
               for n, repo in enumerate(repos)]
    started = time.perf_counter()
    outcomes = await asyncio.gather(
        *(_ask(result, repos[i % len(repos)], i, intake, live[i % len(repos)]) for i in range(questions)),
        return_exceptions=True)
    result.wall = time.perf_counter() - started
    done.set()
    await asyncio.gather(*pollers, return_exceptions=True)
    result.errors = [(i, exc) for i, exc in enumerate(outcomes) if isinstance(exc, BaseException)]
    return result


async def assert_all_answered(repo: Repository, result: Burst, questions: int = QUESTIONS) -> None:
    """No call failed, and every question's run is finished with its answer stored."""
    assert not result.errors, (f"{len(result.errors)} of {questions} questions failed, first: "
                               f"question {result.errors[0][0]}: {result.errors[0][1]!r}")
    assert len(result.runs) == questions
    assert [r for r in await repo.running_runs() if r.id in result.runs.values()] == []
    for i, run_id in result.runs.items():
        run = await repo.get_run(run_id)
        assert run is not None and run.status == "done", f"question {i}: {run}"
        assert run.answer == answer_for(i), f"question {i}: answer not stored"
        assert (run.session_id, run.backend_run_id, run.reply_ts) == (
            f"sess-{i}", f"b-{i}", f"1800000000.{i:06d}1")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

"""Real replicas on one PostgreSQL database: a rolling deploy, a ``kill -9``, and a follow-up and
a stop that reach the other replica (issue 12).

Each replica is its own ``insightbot serve`` process. What is checked is what a person sees in
the thread (one answer, no "interrupted" notice for an analysis that completed, no reply left
"working") and what the other replica did (nothing, when the run was not its to touch).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from storage import Repository
from tests.fakes.slack import FakeSlack
from tests.integration.backends import BackendHarness
from tests.integration.replica_processes import (
    INTERRUPTED, LEASE, STOP_BUTTON, Replica, Replicas, bot_replies, mid_run, outcome, question,
    replica_env, settled, shown,
)
from tests.integration.conftest import CHANNEL, TEAM
from tests.integration.test_replica_leases_postgres import _empty
from tests.integration.test_storage_postgres import pg_url  # noqa: F401  (fixture)


async def _platform_calls(replica: Replica) -> float:
    """How many Slack Web API calls this replica made (its own ``/metrics``)."""
    metrics = await replica.process.metrics()
    return sum(v for k, v in metrics.items() if k.startswith("insightbot_platform_calls_total{"))


async def _finished_by(replica: Replica) -> float:
    metrics = await replica.process.metrics()
    return sum(v for k, v in metrics.items() if k.startswith("insightbot_runs_finished_total{"))


async def test_a_rolling_deploy_answers_each_question_once(
        tmp_path: Path, pg_url: str, fake_slack: FakeSlack, backend: BackendHarness) -> None:  # noqa: F811
    """B starts while A runs an analysis; A finishes it, then a second one is in flight when A
    is stopped (SIGTERM) and B takes that one over at once."""
    await _empty(pg_url)
    replicas = Replicas(tmp_path, replica_env(fake_slack, backend, pg_url))
    marker = backend.answer_marker
    try:
        a = await replicas.start()
        release = backend.hold()
        first = question("first: revenue by city", "1800000001.000100")
        assert await a.deliver(first) == 200
        await backend.wait_asked()
        b = await replicas.start()  # the deploy brings B up while A works
        await asyncio.sleep(2 * LEASE)  # six of B's lease rounds: it must leave the run alone
        assert await _platform_calls(b) == 0 and await _finished_by(b) == 0
        release.set()
        await fake_slack.wait_for(lambda: settled(fake_slack, first["ts"], marker), timeout=20)
        assert outcome(fake_slack, first["ts"], marker) == {"answers": 1, "interrupted": 0, "working": 0}

        release = backend.hold()
        second = question("second: the same by month", "1800000002.000100")
        assert await a.deliver(second) == 200
        await fake_slack.wait_for(lambda: mid_run(fake_slack, backend, second["ts"]), timeout=10)
        stopped = time.monotonic()
        await replicas.stop(a)  # A is replaced: it releases the run, B continues or closes it
        release.set()
        await fake_slack.wait_for(lambda: settled(fake_slack, second["ts"], marker), timeout=20)
        taken = time.monotonic() - stopped
        seen = outcome(fake_slack, second["ts"], marker)
        assert seen["working"] == 0 and seen["answers"] + seen["interrupted"] == 1, seen
        if backend.resumable:  # ClickZetta: B polls the same question on to its answer
            assert seen["answers"] == 1, seen
        assert taken < 10, taken  # handed over at once (well within the 30 s run timeout)

        # the first answer was not touched again, and nobody asked the backend a third time
        assert outcome(fake_slack, first["ts"], marker) == {"answers": 1, "interrupted": 0, "working": 0}
        assert len(backend.questions()) == 2
        await replicas.stop(b)
        repo = await Repository.open(pg_url, migrate=False)
        try:
            runs = await repo.list_runs("slack", TEAM, channel=CHANNEL)
        finally:
            await repo.close()
        assert len(runs) == 2 and all(not r.active and r.delivered_at for r in runs), runs
    finally:
        await replicas.close()


async def test_a_killed_replicas_run_is_closed_by_a_survivor_within_one_lease(
        tmp_path: Path, pg_url: str, fake_slack: FakeSlack, backend: BackendHarness) -> None:  # noqa: F811
    await _empty(pg_url)
    replicas = Replicas(tmp_path, replica_env(fake_slack, backend, pg_url))
    marker = backend.answer_marker
    try:
        a = await replicas.start()
        b = await replicas.start()
        release = backend.hold()
        event = question("revenue by city", "1800000003.000100")
        assert await a.deliver(event) == 200
        await fake_slack.wait_for(lambda: mid_run(fake_slack, backend, event["ts"]), timeout=10)
        replicas.kill(a)  # kill -9 mid-run
        died = time.monotonic()
        release.set()
        await fake_slack.wait_for(lambda: settled(fake_slack, event["ts"], marker), timeout=20)
        taken = time.monotonic() - died
        seen = outcome(fake_slack, event["ts"], marker)
        assert seen["working"] == 0 and seen["answers"] + seen["interrupted"] == 1, seen
        if backend.resumable:
            assert seen["answers"] == 1, seen
        # within one lease, plus a renewal round and the survivor's own work
        assert taken < LEASE + LEASE / 3 + 3.0, taken
        assert await _finished_by(b) == 1
    finally:
        await replicas.close()


async def test_a_follow_up_and_a_stop_sent_to_the_other_replica(
        tmp_path: Path, pg_url: str, fake_slack: FakeSlack, backend: BackendHarness) -> None:  # noqa: F811
    """The load balancer sends the thread's follow-up and the Stop click to B while A runs the
    first question: B stops A's run through the database, then answers the follow-up in the
    same backend conversation."""
    await _empty(pg_url)
    replicas = Replicas(tmp_path, replica_env(fake_slack, backend, pg_url))
    marker = backend.answer_marker
    thread = "1800000004.000100"
    try:
        a = await replicas.start()
        b = await replicas.start()
        release = backend.hold()
        assert await a.deliver(question("revenue by city", thread)) == 200
        await backend.wait_asked()
        await fake_slack.wait_for(lambda: bool(bot_replies(fake_slack, thread)), timeout=10)
        placeholder = bot_replies(fake_slack, thread)[0]
        follow_up = question("and by month?", "1800000004.000200")
        follow_up["thread_ts"] = thread
        assert await b.deliver(follow_up) == 200
        # B holds the follow-up until the thread's first question is over
        await fake_slack.wait_for(lambda: len(bot_replies(fake_slack, thread)) >= 2, timeout=10)
        assert len(backend.questions()) == 1

        run_id = _stop_value(placeholder.blocks)
        assert await b.click(STOP_BUTTON, run_id, message_ts=placeholder.ts, thread_ts=thread) == 200
        if backend.name == "clickzetta":
            await backend.wait_cancelled()  # A stopped it on ClickZetta too
        await fake_slack.wait_for(lambda: "Stopped" in shown(fake_slack.message(CHANNEL, placeholder.ts)),
                                  timeout=10)
        release.set()  # (a backend that holds every analysis lets the follow-up through)
        await backend.wait_asked(2)  # then B asks the follow-up
        await fake_slack.wait_for(lambda: settled(fake_slack, thread, marker), timeout=20)
        seen = outcome(fake_slack, thread, marker)
        assert seen == {"answers": 1, "interrupted": 0, "working": 0}, seen
        assert INTERRUPTED not in shown(fake_slack.message(CHANNEL, placeholder.ts))
        assert backend.questions()[1] == "and by month?"
    finally:
        await replicas.close()


def _stop_value(blocks: object) -> str:
    for block in blocks or []:  # type: ignore[union-attr]
        for element in block.get("elements", []) if isinstance(block, dict) else []:
            if isinstance(element, dict) and element.get("action_id") == STOP_BUTTON:
                return str(element["value"])
    raise AssertionError(f"no Stop button in {json.dumps(blocks)[:500]}")

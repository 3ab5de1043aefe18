"""``kill -9`` at every stage of a run, then a restart and Slack's redeliveries (issue 12).

For each backend, on SQLite and on PostgreSQL, a real ``insightbot serve`` process is killed at
one point of a question's life:

* ``before_placeholder`` — the placeholder post is on its way (Slack never got it);
* ``after_placeholder`` — the placeholder is shown, the backend asked and not answered;
* ``mid_run`` — the backend is streaming or being polled and progress is shown;
* ``chart_upload`` — the answer is ready and its chart is being uploaded (charting backends);
* ``final_unsent`` — the answer is stored and its final edit is on its way;
* ``final_unrecorded`` — the final edit reached Slack, the bot did not record it yet.

Then a new process starts on the same database and Slack redelivers the same event twice (its
retries after an unacknowledged delivery). The thread must end with exactly one answer or one
"interrupted, please ask again" notice — never two, never none, never a reply still "working".
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Callable

import pytest

from storage import Repository, RunRecord
from tests.fakes.slack import FakeSlack
from tests.integration.backends import BackendHarness
from tests.integration.conftest import CHANNEL, TEAM
from tests.integration.replica_processes import (
    STOP_BUTTON, Replicas, bot_replies, mid_run, outcome, question, replica_env, settled,
)
from tests.integration.test_replica_leases_postgres import _empty
from tests.integration.test_storage_postgres import pg_url  # noqa: F401  (fixture)

STAGES = ["before_placeholder", "after_placeholder", "mid_run", "chart_upload", "final_unsent",
          "final_unrecorded"]
DATABASES = ["sqlite", "postgresql"]
RESTART_LEASE = 0.5  # seconds before the restarted process takes the dead one's runs


def _is_final(marker: str) -> Callable[[dict[str, Any]], bool]:
    """A ``chat.update`` carrying the answer (no Stop button left)."""
    def check(args: dict[str, Any]) -> bool:
        body = json.dumps(args, ensure_ascii=False)
        return marker in body and STOP_BUTTON not in body
    return check


class Stage:
    """Arranges the fakes so the run pauses at one point, and says when it got there."""

    def __init__(self, name: str, slack: FakeSlack, backend: BackendHarness, thread: str) -> None:
        self.name, self.slack, self.backend, self.thread = name, slack, backend, thread
        self.release_backend: Any = None

    def arrange(self) -> None:
        if self.name in ("before_placeholder", "after_placeholder", "mid_run"):
            self.release_backend = self.backend.hold()
        if self.name == "before_placeholder":
            self.slack.hold_calls("chat.postMessage")
        elif self.name == "chart_upload":
            self.slack.hold_calls("files.completeUploadExternal")
        elif self.name == "final_unsent":
            self.slack.hold_calls("chat.update", when=_is_final(self.backend.answer_marker))
        elif self.name == "final_unrecorded":
            self.slack.hold_calls("chat.update", when=_is_final(self.backend.answer_marker),
                                  after=True)

    def reached(self) -> bool:
        held = [method for method, _ in self.slack.held]
        placeholder = bool(bot_replies(self.slack, self.thread))
        if self.name == "before_placeholder":
            return "chat.postMessage" in held
        if self.name == "after_placeholder":
            return placeholder and bool(self.backend.questions())
        if self.name == "mid_run":
            return mid_run(self.slack, self.backend, self.thread)
        if self.name == "chart_upload":
            return "files.completeUploadExternal" in held
        return "chat.update" in held  # final_unsent, final_unrecorded

    def resume(self) -> None:
        """After the restart: Slack and the backend work normally again."""
        for hold in self.slack._holds.values():
            hold.gate.set()
        if self.release_backend is not None:
            self.release_backend.set()


async def _runs_of(url: str) -> list[RunRecord]:
    repo = await Repository.open(url, migrate=False)
    try:
        return await repo.list_runs("slack", TEAM, channel=CHANNEL)
    finally:
        await repo.close()


async def _delivered(url: str, timeout: float = 30.0) -> None:
    """Wait until the database says every run's answer reached Slack."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not all(not r.active and r.delivered_at for r in await _runs_of(url)):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not delivered within {timeout}s: {await _runs_of(url)}")
        await asyncio.sleep(0.1)


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLite file of the test's own, or the session's PostgreSQL database."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite+aiosqlite:///{tmp_path}/bot.db"


@pytest.mark.parametrize("stage", STAGES)
async def test_kill_9_at_any_stage_ends_with_exactly_one_answer_or_notice(
        stage: str, database_url: str, tmp_path: Path, fake_slack: FakeSlack,
        backend: BackendHarness) -> None:
    if stage == "chart_upload" and not backend.draws_charts:
        pytest.skip(f"{backend.name} draws no chart in this harness (no warehouse configured)")
    url = database_url
    if url.startswith("postgresql"):
        await _empty(url)
    # one process at a time here: a short lease cannot be missed by a live replica
    replicas = Replicas(tmp_path, replica_env(fake_slack, backend, url, RUN_LEASE=RESTART_LEASE))
    thread = "1800000001.000100"
    point = Stage(stage, fake_slack, backend, thread)
    event = question("the revenue by city, please", thread)
    try:
        first = await replicas.start()
        point.arrange()
        assert await first.deliver(event) == 200
        await fake_slack.wait_for(point.reached, timeout=30)
        replicas.kill(first)  # kill -9: nothing released, nothing flushed
        await first.process.process.wait()

        second = await replicas.start()
        point.resume()
        # Slack's redeliveries of the event the dead process may not have acknowledged
        assert await second.deliver(event, retry_num=1) == 200
        assert await second.deliver(event, retry_num=2) == 200
        marker = backend.answer_marker
        await fake_slack.wait_for(lambda: settled(fake_slack, thread, marker), timeout=30)
        await _delivered(url)  # (an answer shown before the kill is recorded once re-sent)
        await replicas.stop(second)  # its background work ends: nothing comes later
        runs = await _runs_of(url)
        assert len(runs) == 1, "\n".join([repr(r) for r in runs] + [replicas.logs()])  # the redeliveries started nothing
        assert not runs[0].active and runs[0].delivered_at is not None, (
            runs[0], [(m.ts, m.text) for m in bot_replies(fake_slack, thread)], replicas.logs())
        seen = outcome(fake_slack, thread, marker)
        assert seen["answers"] + seen["interrupted"] == 1, (seen, replicas.logs())
        assert seen["working"] == 0, (seen, replicas.logs())
        assert len(backend.questions()) <= 2  # asked again at most once (it never started)
    finally:
        point.resume()
        await replicas.close()
        await asyncio.sleep(0)

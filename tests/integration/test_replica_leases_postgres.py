"""Run ownership across replicas on one PostgreSQL database (issue 12).

A replica starting during a rolling deploy must not take the runs another live replica is
executing (it used to mark them "interrupted" and answer them a second time); a replica that
shuts down cleanly hands its runs over at once; one that dies has them taken over within one
lease period. Services run in this process against the real PostgreSQL (TEST_DATABASE_URL).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text

from bot.service import Service
from storage import Repository
from tests.fakes.slack import FakeSlack
from tests.integration.backends import BackendHarness
from tests.integration.conftest import FinishedRuns, SlackBot, blocks_text, fast_settings
from tests.integration.test_storage_postgres import pg_url  # noqa: F401  (fixture)

LEASE = 0.6  # seconds: renewed every 0.2 s, so a dead replica's runs move within ~0.8 s
INTERRUPTED = "interrupted by a restart"


async def _empty(url: str) -> None:
    repo = await Repository.open(url)
    async with repo.engine.begin() as conn:
        await conn.execute(text("TRUNCATE events, runs, conversations RESTART IDENTITY CASCADE"))
    await repo.close()


class Replicas:
    """Start replicas one at a time, as a rolling deploy does; close what is left at the end."""

    def __init__(self, tmp_path: Any, url: str, slack: FakeSlack, backend: BackendHarness,
                 lease: float = LEASE) -> None:
        self.tmp_path, self.url, self.slack, self.backend = tmp_path, url, slack, backend
        self.lease = lease
        self.clients: list[TestClient] = []

    async def start(self) -> SlackBot:
        settings = fast_settings(self.tmp_path, self.slack.base_url, DATABASE_URL=self.url,
                                 RUN_LEASE=self.lease, **self.backend.settings())
        service = Service(settings)
        client = TestClient(TestServer(service.web_app()))
        await client.start_server()
        self.clients.append(client)
        finished = FinishedRuns()
        service.relay.on_finish.append(finished)
        return SlackBot(client=client, slack=self.slack, service=service, finished=finished)

    async def stop(self, bot: SlackBot) -> None:
        """A clean shutdown (SIGTERM in a rolling deploy)."""
        self.clients.remove(bot.client)
        await bot.client.close()

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


async def _until(predicate: Any) -> None:
    while not predicate():
        await asyncio.sleep(0.02)


def _texts(bot: SlackBot, thread: str) -> str:
    return " ".join(blocks_text(m.blocks) + " " + (m.text or "") for m in bot.bot_replies(thread))


async def test_a_replica_starting_mid_run_leaves_it_to_its_owner(
        tmp_path: Any, pg_url: str, fake_slack: FakeSlack, backend: BackendHarness) -> None:  # noqa: F811
    await _empty(pg_url)
    replicas = Replicas(tmp_path, pg_url, fake_slack, backend)
    try:
        a = await replicas.start()
        release = backend.hold()
        event = await a.mention("a long analysis")
        await backend.wait_asked()
        b = await replicas.start()  # the deploy brings up B while A works
        [run] = await b.service.repo.running_runs()
        assert run.owner == a.service.relay.replica and run.owner != b.service.relay.replica
        assert not b.service.relay.live.all()
        await asyncio.sleep(3 * LEASE)  # several of B's lease rounds: it still must not take it
        assert not b.service.relay.live.all()
        release.set()
        [answer] = await a.wait_finished(event["ts"])
        assert answer.outcome.value == "done"
        await a.settled()
        assert b.finished.items == [] and INTERRUPTED not in _texts(a, event["ts"])
        assert len(backend.questions()) == 1  # asked once, by A
    finally:
        await replicas.close()


async def test_a_clean_shutdown_hands_the_run_to_a_live_replica(
        tmp_path: Any, pg_url: str, fake_slack: FakeSlack, backend: BackendHarness) -> None:  # noqa: F811
    await _empty(pg_url)
    lease = 3.0  # long enough to tell "handed over at once" from "taken when the lease ran out"
    replicas = Replicas(tmp_path, pg_url, fake_slack, backend, lease=lease)
    try:
        a = await replicas.start()
        b = await replicas.start()
        release = backend.hold()
        event = await a.mention("a long analysis")
        await backend.wait_asked()
        await a.slack.wait_for(lambda: bool(a.bot_replies(event["ts"])))
        await replicas.stop(a)  # A is replaced mid-run: its lease is released
        stopped = time.monotonic()
        # B took it: running it now, or already closed it (a run it cannot re-attach to)
        await asyncio.wait_for(_until(lambda: bool(b.service.relay.live.all() or b.finished.items)),
                               lease)
        assert time.monotonic() - stopped < 2 * lease / 3 + 0.5  # one round, not a whole lease
        release.set()
        [answer] = await b.wait_finished(event["ts"], timeout=10)
        # B continued it: the same reply, answered (ClickZetta resumes) or visibly closed
        replies = b.bot_replies(event["ts"])
        assert len([m for m in replies if "stop_run" in str(m.blocks)]) == 0  # no live Stop left
        if backend.resumable:
            assert answer.outcome.value == "done" and backend.answer_marker in _texts(b, event["ts"])
        else:
            assert answer.outcome.value == "failed" and INTERRUPTED in _texts(b, event["ts"])
    finally:
        await replicas.close()


async def test_a_dead_replicas_run_is_taken_over_within_one_lease(
        tmp_path: Any, pg_url: str, fake_slack: FakeSlack, backend: BackendHarness) -> None:  # noqa: F811
    await _empty(pg_url)
    replicas = Replicas(tmp_path, pg_url, fake_slack, backend)
    try:
        a = await replicas.start()
        b = await replicas.start()
        release = backend.hold()
        event = await a.mention("a long analysis")
        await backend.wait_asked()
        await a.slack.wait_for(lambda: bool(a.bot_replies(event["ts"])))
        # A dies: no more lease renewals, no final message, nothing released (kill -9)
        relay = a.service.relay
        assert relay.leases._task is not None
        relay.leases._task.cancel()
        for live in relay.live.all():
            live.given_up = True
            for task in (live.task, live.consumer):
                if task is not None:
                    task.cancel()
        died = time.monotonic()
        release.set()
        [answer] = await b.wait_finished(event["ts"], timeout=10 * LEASE + 5)
        taken = time.monotonic() - died
        assert answer.outcome.value in ("done", "failed")
        assert "stop_run" not in str([m.blocks for m in b.bot_replies(event["ts"])])
        assert taken < LEASE + 2 * (LEASE / 3) + 2.0, taken  # within one lease (plus a round)
    finally:
        await replicas.close()


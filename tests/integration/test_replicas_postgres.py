"""Two replicas on one PostgreSQL database: a redelivered event is answered once.

Slack retries a delivery it thinks failed, and behind a load balancer the retry can reach a
different replica. The event ledger lives in the database, so the second replica sees the claim
and stays quiet. Skipped cleanly when PostgreSQL is not reachable (TEST_DATABASE_URL).
"""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient, TestServer

from bot.service import Service
from tests.fakes.slack import FakeSlack
from tests.fakes.wren import FakeWren
from tests.integration.conftest import FinishedRuns, SlackBot, blocks_text, fast_settings
from tests.integration.test_storage_postgres import pg_url  # noqa: F401  (fixture)


async def test_retry_reaching_another_replica_is_not_answered_twice(
        tmp_path, pg_url: str, fake_slack: FakeSlack, fake_wren: FakeWren) -> None:  # noqa: F811
    bots: list[SlackBot] = []
    clients: list[TestClient] = []
    try:
        for _ in range(2):
            settings = fast_settings(tmp_path, fake_slack.base_url, DATABASE_URL=pg_url, BACKEND="wren",
                                     WREN_BASE_URL=fake_wren.base_url, WREN_API_KEY=fake_wren.api_key)
            service = Service(settings)
            client = TestClient(TestServer(service.web_app()))
            await client.start_server()
            clients.append(client)
            finished = FinishedRuns()
            service.relay.on_finish.append(finished)
            bots.append(SlackBot(client=client, slack=fake_slack, service=service, finished=finished))
        a, b = bots
        event = await a.mention("replicated question", channel="C0REPLICA01")
        await b.send_event(event, event_id="EvRetryOnB", retry_num=1)
        # both acknowledged at once; whichever records the question first answers it, once
        first: asyncio.Future[SlackBot] = asyncio.get_running_loop().create_future()
        for bot in bots:
            bot.service.relay.on_finish.append(
                lambda *_, bot=bot: first.done() or first.set_result(bot))
        answering = await asyncio.wait_for(first, 10)
        quiet = b if answering is a else a
        await quiet.dropped_duplicates(1)  # the other replica saw the claim and dropped its copy
        assert len(fake_wren.requests_to("/api/v1/ask")) == 1
        assert quiet.finished.items == [] and not quiet.service.relay.live.all()
        a, b = answering, quiet
        # the other replica knows the thread: a follow-up sent to it continues the conversation
        await b.message("and last year?", channel="C0REPLICA01", thread_ts=event["ts"],
                        ts="1800000999.000300")
        await b.wait_finished(event["ts"])
        asks = fake_wren.requests_to("/api/v1/ask")
        assert len(asks) == 2 and asks[1].json["threadId"]
        health = await b.client.get("/healthz")
        assert health.status == 200
        # a Stop pressed on replica B for an analysis running on replica A stops it on A
        gate = fake_wren.hold_ask()
        slow = await a.mention("slow one", channel="C0REPLICA01", ts="1800000999.000400")
        await fake_wren.wait_for_request("/api/v1/ask", count=3)
        run = (await a.service.repo.running_runs())[0]
        await b.action("stop_run", run.id, channel="C0REPLICA01", message_ts=run.reply_ts or "",
                       thread_ts=slow["ts"])
        [answer] = await a.wait_finished(slow["ts"])
        assert answer.outcome.value == "stopped" and answer.stopped_by == "U0ASKER01"
        gate.set()
        # one question at a time per thread holds across replicas too
        gate = fake_wren.hold_ask()
        busy = await a.mention("long one", channel="C0REPLICA01", ts="1800000999.000500")
        await fake_wren.wait_for_request("/api/v1/ask", count=4)
        await b.message("and a follow-up", channel="C0REPLICA01", thread_ts=busy["ts"],
                        ts="1800000999.000600")
        await b.slack.wait_for(lambda: any("Waiting for the previous question" in blocks_text(m.blocks)
                                           for m in b.bot_replies(busy["ts"], channel="C0REPLICA01")))
        assert len(fake_wren.requests_to("/api/v1/ask")) == 4  # B has not asked yet
        gate.set()
        await b.wait_finished(busy["ts"])
        asks = fake_wren.requests_to("/api/v1/ask")
        assert [r.json["question"] for r in asks[-2:]] == ["long one", "and a follow-up"]
    finally:
        for client in clients:
            await client.close()

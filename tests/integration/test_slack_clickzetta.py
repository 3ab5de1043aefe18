"""ClickZetta through Slack: visible steps, stop, token renewal, restart, warehouse charts."""

from __future__ import annotations

import sqlite3
from typing import Any, AsyncIterator

import pytest

from tests.fakes.clickzetta import FakeClickZetta
from tests.integration.conftest import CHANNEL, USER, SlackBot, blocks_text
from tests.integration.test_slack_controls import stop_value


@pytest.fixture
async def fake_cz() -> AsyncIterator[FakeClickZetta]:
    async with FakeClickZetta() as fake:
        yield fake


async def _bot(start_bot, fake: FakeClickZetta, **extra: Any) -> SlackBot:
    ident = fake.identity()
    return await start_bot(BACKEND="clickzetta", CLICKZETTA_BASE_URL=ident["base_url"],
                           CLICKZETTA_APP_SECRET_KEY=ident["app_secret_key"],
                           CLICKZETTA_TENANT_ID=str(ident["tenant_id"]),
                           CLICKZETTA_USER_ID=str(ident["user_id"]),
                           CLICKZETTA_DOMAIN_ID=str(ident["domain_id"]),
                           CLICKZETTA_POLL_INTERVAL=0.01, **extra)


def reply_text(bot: SlackBot, thread_ts: str) -> str:
    replies = bot.bot_replies(thread_ts)
    return blocks_text(replies[0].blocks) if replies else ""


async def test_steps_appear_progressively_then_the_summary(start_bot, fake_cz) -> None:
    bot = await _bot(start_bot, fake_cz)
    fake_cz.hold(at_step=2)  # knowledge consulted
    event = await bot.mention("Transaction amount by district?")
    await bot.slack.wait_for(lambda: "Consulted:" in reply_text(bot, event["ts"]))
    assert "SELECT" not in reply_text(bot, event["ts"])
    fake_cz.hold(at_step=4)  # + metric + SQL
    fake_cz.release()
    fake_cz.hold(at_step=4)
    await bot.slack.wait_for(lambda: "SELECT" in reply_text(bot, event["ts"]))
    text = reply_text(bot, event["ts"])
    assert "Metric:" in text and "Total Transaction Amount" in text
    assert "Chaoyang" not in text
    fake_cz.release()
    [answer] = await bot.wait_finished(event["ts"])
    assert answer.outcome.value == "done"
    final = reply_text(bot, event["ts"])
    assert "Chaoyang District: CNY 103.49 billion" in final and "\\n" not in final
    assert "CLICKZETTA_WAREHOUSE_URL" in final  # chart needs the warehouse
    assert "metricDsl" not in final  # DSL is not dumped raw


async def test_stop_mid_run_calls_backend_stop_and_keeps_partial_results(start_bot, fake_cz) -> None:
    bot = await _bot(start_bot, fake_cz)
    fake_cz.hold(at_step=4)
    event = await bot.mention("slow analysis")
    await bot.slack.wait_for(lambda: "SELECT" in reply_text(bot, event["ts"]))
    run_id, reply_ts = stop_value(bot, event["ts"])
    await bot.action("stop_run", run_id, message_ts=reply_ts, thread_ts=event["ts"])
    [answer] = await bot.wait_finished(event["ts"])
    assert answer.outcome.value == "stopped"
    assert len(fake_cz.requests_to("stop")) == 1
    final = blocks_text(bot.slack.message(CHANNEL, reply_ts).blocks)
    assert "SELECT" in final and f"Stopped by <@{USER}>" in final


async def test_expired_token_is_renewed_mid_run(start_bot, fake_cz) -> None:
    bot = await _bot(start_bot, fake_cz)
    fake_cz.hold(at_step=3)
    event = await bot.mention("token test")
    await bot.slack.wait_for(lambda: "Metric:" in reply_text(bot, event["ts"]))
    fake_cz.expire_tokens()
    fake_cz.release()
    [answer] = await bot.wait_finished(event["ts"])
    assert answer.outcome.value == "done"
    assert len(fake_cz.requests_to("token")) >= 2


async def test_follow_up_reuses_the_session(start_bot, fake_cz) -> None:
    bot = await _bot(start_bot, fake_cz)
    first = await bot.mention("first question")
    await bot.wait_finished(first["ts"])
    await bot.message("follow-up", thread_ts=first["ts"])
    await bot.wait_finished(first["ts"], count=2)
    assert len(fake_cz.requests_to("session")) == 1
    queries = fake_cz.requests_to("query")
    assert queries[0].body["sessionId"] == queries[1].body["sessionId"]


async def test_restart_mid_run_resumes_and_completes_the_same_reply(start_bot, fake_cz) -> None:
    bot = await _bot(start_bot, fake_cz)
    fake_cz.hold(at_step=4)
    event = await bot.mention("survive a restart")
    await bot.slack.wait_for(lambda: "SELECT" in reply_text(bot, event["ts"]))
    reply_ts = bot.bot_replies(event["ts"])[0].ts
    await bot.client.close()  # the service stops mid-analysis
    assert fake_cz.requests_to("stop") == []

    fake_cz.release()
    again = await _bot(start_bot, fake_cz)  # same database file
    [answer] = await again.wait_finished(event["ts"])
    assert answer.outcome.value == "done"
    replies = [m for m in again.bot_replies(event["ts"]) if not m.files]
    assert [m.ts for m in replies] == [reply_ts]  # the same reply was completed, no new one
    assert "Chaoyang" in blocks_text(again.slack.message(CHANNEL, reply_ts).blocks)
    assert len(fake_cz.requests_to("query")) == 1  # not asked twice


async def test_chart_from_the_warehouse_is_uploaded(start_bot, fake_cz, tmp_path) -> None:
    db = tmp_path / "warehouse.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE beijing_housing (region TEXT, transaction_price REAL)")
        conn.executemany("INSERT INTO beijing_housing VALUES (?, ?)",
                         [("Chaoyang", 1034.9), ("Haidian", 981.2), ("Fengtai", 420.0), ("Xicheng", 610.5)])
    bot = await _bot(start_bot, fake_cz, CLICKZETTA_WAREHOUSE_URL=f"sqlite:///{db}")
    event = await bot.mention("Transaction amount by district?")
    [answer] = await bot.wait_finished(event["ts"])
    assert answer.outcome.value == "done"
    pngs = [f for f in bot.slack.files.values() if f.data and f.data[:4] == b"\x89PNG"]
    assert len(pngs) == 1 and pngs[0].thread_ts == event["ts"]
    (tmp_path / "cz_chart.png").write_bytes(pngs[0].data)


async def test_backend_failures_end_with_reference(start_bot, fake_cz) -> None:
    bot = await _bot(start_bot, fake_cz)
    fake_cz.fail("query", "http_500")
    e1 = await bot.mention("fails")
    [a1] = await bot.wait_finished(e1["ts"])
    fake_cz.fail("poll", "success_false", times=10, message="internal problem")
    e2 = await bot.mention("fails while polling")
    [a2] = await bot.wait_finished(e2["ts"])
    for event, answer in ((e1, a1), (e2, a2)):
        assert answer.outcome.value == "failed"
        assert "Reference:" in reply_text(bot, event["ts"])

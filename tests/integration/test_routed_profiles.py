"""Backend profiles and routes (ROUTES_FILE) through Slack: each channel answered by its own
backend, a thread kept on its profile when the routes change (also across a restart mid-run),
an unrouted channel refused privately with nothing stored or asked, ``/insight-routes``, and a
bad routing file stopping ``insightbot serve`` with one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.clickzetta import FakeClickZetta
from tests.fakes.wren import ASK, FakeWren
from tests.integration.backends import ClickZettaHarness, WrenHarness
from tests.integration.conftest import TEAM, USER, SlackBot, blocks_text

SALES = "C0SALES001"  # routed to the Wren profile
OPS = "C0OPS00001"  # routed to the ClickZetta profile
NOWHERE = "C0NOWHERE1"  # routed nowhere
ROOT = Path(__file__).resolve().parents[2]


def routes_file(tmp_path: Path, wren: FakeWren, cz: FakeClickZetta, *, sales: str = SALES,
                ops: str = OPS, default: str | None = None, name: str = "routes.toml",
                sales_extra: str = "", ops_extra: str = "") -> str:
    ident = cz.identity()
    text = f"""\
{f'default = "{default}"' if default else "# no default: unrouted chats are refused"}

[profiles.sales]
backend = "wren"
description = "Sales data"
WREN_BASE_URL = "{wren.base_url}"
WREN_API_KEY = "${{TEST_SALES_WREN_KEY}}"
WREN_PROJECT_ID = "7"
{sales_extra}

[profiles.ops]
backend = "clickzetta"
CLICKZETTA_BASE_URL = "{ident['base_url']}"
CLICKZETTA_APP_SECRET_KEY = "${{TEST_OPS_CZ_SECRET}}"
CLICKZETTA_TENANT_ID = "{ident['tenant_id']}"
CLICKZETTA_USER_ID = "{ident['user_id']}"
CLICKZETTA_DOMAIN_ID = "{ident['domain_id']}"
CLICKZETTA_POLL_INTERVAL = 0.01
{ops_extra}

[[routes]]
slack_channel = "{sales}"
profile = "sales"

[[routes]]
slack_channel = "{ops}"
profile = "ops"
"""
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.fixture
def secrets_env(monkeypatch, fake_wren: FakeWren, fake_clickzetta: FakeClickZetta) -> None:
    monkeypatch.setenv("TEST_SALES_WREN_KEY", fake_wren.api_key)
    monkeypatch.setenv("TEST_OPS_CZ_SECRET", fake_clickzetta.identity()["app_secret_key"])


async def routed_bot(start_bot, path: str) -> SlackBot:
    return await start_bot(ROUTES_FILE=path)


def reply_text(bot: SlackBot, thread_ts: str, channel: str) -> str:
    return "\n".join(blocks_text(m.blocks) for m in bot.bot_replies(thread_ts, channel))


async def test_two_channels_are_answered_by_their_own_backends(
        start_bot, tmp_path, fake_wren, fake_clickzetta, secrets_env) -> None:
    wren, cz = WrenHarness(fake_wren), ClickZettaHarness(fake_clickzetta)
    bot = await routed_bot(start_bot, routes_file(tmp_path, fake_wren, fake_clickzetta))
    sales = await bot.mention("Which states pay the most?", channel=SALES)
    ops = await bot.mention("Transaction amount by district?", channel=OPS)
    [sales_answer] = await bot.wait_finished(sales["ts"])
    [ops_answer] = await bot.wait_finished(ops["ts"])
    assert sales_answer.outcome.value == ops_answer.outcome.value == "done"
    assert wren.questions() == ["Which states pay the most?"]
    assert cz.questions() == ["Transaction amount by district?"]
    assert wren.answer_marker in reply_text(bot, sales["ts"], SALES)
    assert cz.answer_marker in reply_text(bot, ops["ts"], OPS)
    repo = bot.service.repo
    assert repo is not None
    for channel, event, profile, kind in ((SALES, sales, "sales", "wren"),
                                          (OPS, ops, "ops", "clickzetta")):
        conv = await repo.get_conversation("slack", TEAM, channel, event["ts"])
        assert conv is not None and (conv.profile, conv.backend) == (profile, kind)
    metrics = bot.service.metrics.render().decode()
    assert 'insightbot_runs_finished_total{backend="clickzetta",outcome="done",profile="ops"} 1.0' in metrics
    assert 'insightbot_runs_finished_total{backend="wren",outcome="done",profile="sales"} 1.0' in metrics


async def test_a_thread_keeps_its_profile_after_the_routes_change(
        start_bot, tmp_path, fake_wren, fake_clickzetta, secrets_env) -> None:
    wren, cz = WrenHarness(fake_wren), ClickZettaHarness(fake_clickzetta)
    before = await routed_bot(start_bot, routes_file(tmp_path, fake_wren, fake_clickzetta))
    first = await before.mention("Which states pay the most?", channel=SALES)
    await before.wait_finished(first["ts"])
    await before.client.close()

    # the same database; the SALES channel now routes to the ClickZetta profile
    swapped = routes_file(tmp_path, fake_wren, fake_clickzetta, sales=OPS, ops=SALES,
                          name="routes-swapped.toml")
    after = await routed_bot(start_bot, swapped)
    after._ts = before._ts  # Slack's clock goes on
    follow_up = await after.message("and by month?", channel=SALES, thread_ts=first["ts"])
    fresh = await after.mention("Transaction amount by district?", channel=SALES)
    await after.wait_finished(first["ts"])
    await after.wait_finished(fresh["ts"])
    # the follow-up went on in the thread's Wren conversation; the new thread took the new route
    assert wren.questions() == ["Which states pay the most?", "and by month?"]
    assert wren.sessions_sent()[1] is not None and wren.sessions_sent()[1] == \
        (await after.service.repo.get_conversation("slack", TEAM, SALES, first["ts"])).session_id
    assert cz.questions() == ["Transaction amount by district?"]
    assert follow_up["thread_ts"] == first["ts"]


async def test_a_resumed_run_continues_on_its_conversations_profile(
        start_bot, tmp_path, fake_wren, fake_clickzetta, secrets_env) -> None:
    cz = ClickZettaHarness(fake_clickzetta)
    before = await routed_bot(start_bot, routes_file(tmp_path, fake_wren, fake_clickzetta))
    fake_clickzetta.hold(at_step=4)
    event = await before.mention("survive a restart", channel=OPS)
    await before.slack.wait_for(lambda: "SELECT" in reply_text(before, event["ts"], OPS))
    await before.client.close()  # the service stops mid-analysis

    fake_clickzetta.release()
    swapped = routes_file(tmp_path, fake_wren, fake_clickzetta, sales=OPS, ops=SALES,
                          name="routes-swapped.toml")
    after = await routed_bot(start_bot, swapped)  # OPS now routes to Wren: the run stays on ops
    [answer] = await after.wait_finished(event["ts"])
    assert answer.outcome.value == "done"
    assert cz.answer_marker in reply_text(after, event["ts"], OPS)
    assert cz.questions() == ["survive a restart"]  # re-attached, not asked again
    assert fake_wren.requests_to(ASK) == []


async def test_an_unrouted_channel_is_refused_privately_and_nothing_is_asked(
        start_bot, tmp_path, fake_wren, fake_clickzetta, secrets_env) -> None:
    wren, cz = WrenHarness(fake_wren), ClickZettaHarness(fake_clickzetta)
    bot = await routed_bot(start_bot, routes_file(tmp_path, fake_wren, fake_clickzetta))
    event = await bot.mention("Which states pay the most?", channel=NOWHERE)
    await bot.send_event({**event}, retry_num=1)  # Slack's retry is not refused twice
    await bot.slack.wait_for(lambda: bool(bot.slack.calls_to("chat.postEphemeral")))
    await bot.dropped_duplicates(1)
    [call] = bot.slack.calls_to("chat.postEphemeral")
    assert call.args["user"] == USER and call.args["channel"] == NOWHERE
    text = call.args["text"]
    assert "no analytics agent is set up for this conversation" in text
    assert "Nothing was sent" in text
    assert "`sales` — Wren AI: Sales data" in text and "`ops` — ClickZetta" in text
    assert fake_wren.api_key not in text and fake_wren.base_url not in text
    assert bot.bot_replies(event["ts"], NOWHERE) == []  # nothing in the channel
    assert wren.questions() == [] and cz.questions() == []
    repo = bot.service.repo
    assert repo is not None
    assert await repo.count_runs("slack", TEAM) == 0
    assert await repo.get_conversation("slack", TEAM, NOWHERE, event["ts"]) is None
    # a routed channel of the same bot still answers
    ok = await bot.mention("Which states pay the most?", channel=SALES)
    [answer] = await bot.wait_finished(ok["ts"])
    assert answer.outcome.value == "done" and len(bot.slack.calls_to("chat.postEphemeral")) == 1


async def test_insight_routes_shows_admins_the_routes_and_others_their_channel(
        start_bot, tmp_path, fake_wren, fake_clickzetta, secrets_env) -> None:
    bot = await routed_bot(start_bot, routes_file(tmp_path, fake_wren, fake_clickzetta,
                                                  default="sales"))
    bot.slack.admins.add(USER)
    resp = await bot.command("/insight-routes", channel=OPS)
    assert resp.status == 200
    await bot.slack.wait_for(lambda: bool(bot.slack.responses_to(USER)))
    admin = bot.slack.responses_to(USER)[-1]
    assert admin["response_type"] == "ephemeral"
    assert "1. Slack channel `C0SALES001` → `sales`" in admin["text"]
    assert "2. Slack channel `C0OPS00001` → `ops`" in admin["text"]
    assert "Anything else → `sales` (the default)." in admin["text"]
    assert "Here: `ops` (by route 1)" not in admin["text"] and "Here: `ops` (by route 2)." in admin["text"]
    other = "U0OTHER01"
    await bot.command("/insight-routes", channel=NOWHERE, user=other)
    await bot.slack.wait_for(lambda: bool(bot.slack.responses_to(other)))
    reply = bot.slack.responses_to(other)[-1]["text"]
    assert "Questions here go to `sales` (Wren AI)." in reply and "→" not in reply
    for shown in (admin["text"], reply):
        for secret in (fake_wren.api_key, fake_clickzetta.identity()["app_secret_key"],
                       fake_wren.base_url):
            assert secret not in shown


async def test_a_profile_limits_its_runs_at_once_and_their_length(
        start_bot, tmp_path, fake_wren, fake_clickzetta, secrets_env) -> None:
    wren = WrenHarness(fake_wren)
    bot = await routed_bot(start_bot, routes_file(
        tmp_path, fake_wren, fake_clickzetta, sales_extra="MAX_CONCURRENT_RUNS = 1",
        ops_extra="RUN_TIMEOUT = 1"))
    release = wren.hold()
    first = await bot.mention("first question", channel=SALES)
    await wren.wait_asked()
    second = await bot.mention("second question", channel=SALES)  # another thread, same profile
    await bot.slack.wait_for(lambda: "Waiting for a free slot: `sales` answers 1 questions at a time"
                             in reply_text(bot, second["ts"], SALES))
    waiting = bot.service.metrics.profile_runs_waiting.labels("sales")
    assert waiting._value.get() == 1 and wren.questions() == ["first question"]
    release.set()
    await bot.wait_finished(first["ts"])
    [answer] = await bot.wait_finished(second["ts"])
    assert answer.outcome.value == "done" and wren.questions() == ["first question", "second question"]
    assert waiting._value.get() == 0

    fake_clickzetta.hold(at_step=1)  # ops' own RUN_TIMEOUT (1 s), not the service's 20 s
    slow = await bot.mention("never ends", channel=OPS)
    [timed_out] = await bot.wait_finished(slow["ts"])
    assert timed_out.outcome.value == "failed"
    assert "longer than 1 s" in reply_text(bot, slow["ts"], OPS)
    fake_clickzetta.release()


def test_a_bad_routing_file_stops_serve_with_one_line(tmp_path) -> None:
    bad = tmp_path / "routes.toml"
    bad.write_text('[profiles.ops]\nbackend = "clickzetta"\n'
                   'CLICKZETTA_BASE_URL = "https://cz/clickzetta-campaign-data"\n'
                   'CLICKZETTA_APP_SECRET_KEY = "${OPS_SECRET}"\n'
                   'CLICKZETTA_USER_ID = "1"\nCLICKZETTA_DOMAIN_ID = "106"\n')
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
           "ROUTES_FILE": str(bad), "OPS_SECRET": "cz-secret-value",
           "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/bot.db"}
    proc = subprocess.run([sys.executable, "-m", "bot.cli", "serve"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"insightbot: configuration error: {bad}:1: profile 'ops': CLICKZETTA_TENANT_ID is required"]
    # and an unset secret reference names the variable
    env.pop("OPS_SECRET")
    bad.write_text(bad.read_text().replace('CLICKZETTA_USER_ID', 'CLICKZETTA_TENANT_ID = "10"\nCLICKZETTA_USER_ID'))
    proc = subprocess.run([sys.executable, "-m", "bot.cli", "serve"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"insightbot: configuration error: {bad}:4: profile 'ops': CLICKZETTA_APP_SECRET_KEY "
        "refers to ${OPS_SECRET}, which is not set in the environment"]
    assert not (tmp_path / "bot.db").exists()  # stopped before touching anything

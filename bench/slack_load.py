"""Delivery under load: many analyses at once in one workspace, against Slack's published limits.

Numbers, not pass/fail. The bot runs as its own process (``bench/bot_process.py``) with its
production settings; this process holds the driver and the fakes:

* a fake Slack that enforces Slack's published limits — ``chat.update``, ``chat.delete`` and
  ``agents.sessions.setStatus`` 50 per minute per workspace (Tier 3), ``chat.postMessage`` one
  per second per channel with **no** burst, ``files.*`` and ``chat.postEphemeral`` 100 per
  minute (Tier 4) — answering 429 with ``Retry-After`` like Slack;
* a Wren fake that answers ``/ask`` after ``answer_after`` seconds (default 1 s), or a ClickZetta
  fake whose analysis takes ``duration`` seconds of wall time (8 items, polled at the default
  2 s);
* a driver that POSTs every question as a signed ``app_mention`` at the same moment.

For each question (``bench/timeline.py``): ack time of the HTTP request; first sign of life in the
thread (placeholder or status line); **final lag** = the finished answer visible in the thread −
the backend's last response for that question leaving the fake; ``chat.update`` calls per
answer; 429s by method. Also: RSS of the bot (and its chart worker) idle and with every analysis
live, CPU seconds per question, and the bot's own event-loop lag (``/metrics``).

Those scenarios run the placeholder path (``SLACK_STREAMING=false``, issue #9). The ``stream*``
scenarios run Slack's native streaming (``SLACK_STREAMING=true``, the default since issue #11):
``chat.startStream`` → ``appendStream`` (task_update and markdown_text chunks) → ``stopStream``
(carrying the answer's blocks when they fit, else followed by ``chat.update``), or the
placeholder path when the workspace's Tier 2 budget is short. They add, per question: **first
visible step** and **first visible token** after the event, Slack calls per answer by method,
and how many replies streamed vs fell back (the fake Slack holds ``startStream``/``stopStream``
to Tier 2, 20 a minute).

Run: ``.venv/bin/python -m bench.slack_load [scenario ...]`` (all by default; ``make bench`` runs
them too). Scenarios: ``wren1``, ``wren30``, ``wren200``, ``wren200pg``, ``clickzetta10``,
``charts1000``, ``chart1000``, ``stream1``, ``stream10``, ``stream30``, ``streamcz1``,
``streamcz10``, and ``stream10off``, ``stream30off``, ``streamcz10off`` (the same questions on
the placeholder path, measured like the stream scenarios).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from typing import Any, Callable

import aiohttp
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from bench.bot_process import BotProcess, bot_process
from bench.harness import counts, report, stats
from bench.timeline import Asked, Timeline, still_working, timelines
from tests.fakes.clickzetta import FakeClickZetta, FakeQuestion
from tests.fakes.slack import FakeSlack
from tests.fakes.wren import FakeWren

SECRET = "bench-signing-secret"
TEAM = "T1"
PG_ADMIN = os.environ.get("TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


# -- fakes that stamp when the backend's answer left ----------------------------------------------
class TimedWren(FakeWren):
    """Wren answering ``/ask`` (or starting ``/stream/ask``, the default wire) after
    ``answer_after`` s; notes when each question's chart left."""

    def __init__(self, answer_after: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.answer_after = answer_after
        self.done: dict[str, float] = {}  # question → when its last response left the handler

    async def _ask(self, request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(self.answer_after)
        return await super()._ask(request)

    async def _stream_ask(self, request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(self.answer_after)
        return await super()._stream_ask(request)

    async def _chart(self, request: web.Request) -> web.StreamResponse:
        response = await super()._chart(request)
        try:
            question = (await request.json()).get("question", "")
        except ValueError:
            question = ""
        self.done[question] = time.monotonic()
        return response


class TimedClickZetta(FakeClickZetta):
    """An analysis that unfolds over ``duration`` seconds of wall time, whatever the poll rate:
    item k of the script becomes visible at k/(n-1) of the duration (``finish`` at the end)."""

    def __init__(self, duration: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.duration = duration
        self.started: dict[int, float] = {}
        self.done: dict[str, float] = {}  # question → when the poll carrying ``finish`` left

    async def _query(self, request: web.Request) -> web.StreamResponse:
        response = await super()._query(request)
        if self.questions:
            newest = max(self.questions)
            self.started.setdefault(newest, time.monotonic())
        return response

    def _progress(self, question: FakeQuestion) -> None:
        steps = len(question.script)
        elapsed = time.monotonic() - self.started.get(question.question_id, time.monotonic())
        due = min(steps, 1 + int(elapsed / (self.duration / (steps - 1))))
        while question.step < due:
            question.advance()
        if question.finished:  # this poll's response carries ``finish``: it leaves next
            self.done.setdefault(question.msg, time.monotonic())


# -- the driver -------------------------------------------------------------------------------------
def mention(channel: str, ts: str, text: str) -> str:
    return json.dumps({"token": "legacy", "team_id": TEAM, "api_app_id": "A1",
                       "type": "event_callback", "event_id": f"Ev{ts.replace('.', '')}",
                       "event_time": int(time.time()),
                       "event": {"type": "app_mention", "user": "U0ASKER01", "team": TEAM,
                                 "text": f"<@UBOT> {text}", "ts": ts, "channel": channel,
                                 "event_ts": ts}})


async def ask_all(url: str, questions: list[tuple[str, str, str]]) -> list[Asked]:
    """POST every ``(channel, ts, text)`` as a signed event, all at once."""
    verifier = SignatureVerifier(SECRET)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one(channel: str, ts: str, text: str) -> Asked:
            body = mention(channel, ts, text)
            stamp = str(int(time.time()))
            headers = {"Content-Type": "application/json", "X-Slack-Request-Timestamp": stamp,
                       "X-Slack-Signature": verifier.generate_signature(timestamp=stamp, body=body)}
            sent = time.monotonic()
            async with session.post(f"{url}/slack/events", data=body.encode(), headers=headers) as r:
                await r.read()
                return Asked(channel, ts, text, sent, time.monotonic(), r.status)

        return list(await asyncio.gather(*(one(*q) for q in questions)))


def plan(runs: int, channels: int, prefix: str) -> list[tuple[str, str, str]]:
    base = int(time.time())
    return [(f"C{prefix}{i % channels:08d}", f"{base}.{i:06d}", f"question {prefix}{i} revenue by state")
            for i in range(runs)]


# -- scenarios --------------------------------------------------------------------------------------
def slack_env(slack: FakeSlack, *, streaming: bool = False) -> dict[str, str]:
    # The issue #9 scenarios measure the placeholder path (SLACK_STREAMING=false); the stream*
    # scenarios (issue #11) run native streaming, the bot's default.
    return {"SLACK_BOT_TOKEN": "xoxb-bench-token", "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.base_url, "SLACK_STREAMING": "true" if streaming else "false"}


def honest_slack() -> FakeSlack:
    """Slack's published limits; postMessage strictly one per second per channel."""
    return FakeSlack(post_message_burst=1)


async def run_scenario(*, runs: int, channels: int, backend: Any, backend_env: dict[str, str],
                       done: Callable[[], dict[str, float]], database_url: str | None = None,
                       timeout: float = 600.0, before: Callable[[], None] | None = None,
                       live_rss: Callable[[BotProcess], Any] | None = None,
                       streaming: bool = False, fresh_tier2: bool = False,
                       steps: bool = False) -> dict[str, Any]:
    """``steps``: also measure what the stream* scenarios measure (first visible step and
    token, calls per answer by method) on the placeholder path, for comparison."""
    async with honest_slack() as slack, backend:
        env = {**slack_env(slack, streaming=streaming), **backend_env}
        if database_url:
            env["DATABASE_URL"] = database_url
        async with bot_process(env) as bot:
            await warm_up(bot, slack)
            if fresh_tier2:
                await tier2_window_passed(slack)
            profiler = await start_profiler(bot)
            idle_rss = bot.rss_bytes()
            cpu0 = bot.cpu_seconds()
            lag0 = await bot.metrics()
            questions = plan(runs, channels, "L")
            if before is not None:
                before()
            asked = await ask_all(bot.url, questions)
            held_rss = await live_rss(bot) if live_rss is not None else None
            lines: dict[str, Timeline] = {}

            def all_final() -> bool:
                nonlocal lines
                lines = timelines(slack, asked)
                return all(line.final_seen is not None for line in lines.values())

            started = time.monotonic()
            await poll(all_final, timeout=timeout)
            finals_in = time.monotonic() - started
            cpu = bot.cpu_seconds() - cpu0
            await wait_quiet(slack, lambda: still_working(slack, lines) == 0, timeout=240)
            retired_in = time.monotonic() - started
            lag1 = await bot.metrics()
            if profiler is not None:
                profiler.send_signal(2)
                await profiler.wait()
    if streaming or steps:  # every call, the late retiring ones too (calls per answer)
        lines = timelines(slack, asked)
    by_question = done()
    for line in lines.values():
        line.backend_done = by_question.get(line.asked.question)
    out = summarise(lines, slack, asked, cpu=cpu, idle_rss=idle_rss, held_rss=held_rss,
                    finals_in=finals_in, retired_in=retired_in, lag=(lag0, lag1),
                    working_left=still_working(slack, lines))
    if streaming or steps:
        out.update(streaming_summary(lines, slack))
    return out


async def start_profiler(bot: BotProcess) -> asyncio.subprocess.Process | None:
    """``BENCH_PYSPY=out.txt``: sample the bot with py-spy (if installed) while it is measured."""
    out = os.environ.get("BENCH_PYSPY")
    if not out:
        return None
    return await asyncio.create_subprocess_exec(
        os.path.join(os.path.dirname(sys.executable), "py-spy"), "record", "-p", str(bot.pid),
        "-o", out, "--format", "raw", "-r", "200", stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)


async def warm_up(bot: BotProcess, slack: FakeSlack) -> None:
    """One question first (imports, the chart worker, Bolt's auth.test) — not measured."""
    [warm] = await ask_all(bot.url, [("CWARMUP00", f"{int(time.time())}.999999", "warm up")])
    await poll(lambda: bool(timelines(slack, [warm])[warm.thread].final_seen), timeout=120)


async def tier2_window_passed(slack: FakeSlack) -> None:
    """Wait until the warm-up's ``startStream``/``stopStream`` have left Slack's minute, so a
    scenario starts with the workspace's whole Tier 2 budget (the bot's window is the same
    60 s; one more second for the bot's clock against the fake's)."""
    tier2 = [c.at for c in slack.calls if c.method in ("chat.startStream", "chat.stopStream")]
    if tier2:
        await asyncio.sleep(max(0.0, max(tier2) + slack.window_seconds + 1.0 - time.monotonic()))


async def poll(predicate: Callable[[], bool], *, timeout: float, every: float = 0.25) -> None:
    """Wait for ``predicate`` by looking now and then. (``FakeSlack.wait_for`` re-checks on every
    call the fake serves; with a predicate that reads the whole call log, under hundreds of calls
    that would slow the fake — and so every number measured — down.)"""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not reached within {timeout} s")
        await asyncio.sleep(every)


async def wait_quiet(slack: FakeSlack, predicate: Callable[[], bool], timeout: float) -> None:
    try:
        await poll(predicate, timeout=timeout, every=1.0)
    except TimeoutError:
        pass  # reported as "working left"


def summarise(lines: dict[str, Timeline], slack: FakeSlack, asked: list[Asked], *, cpu: float,
              idle_rss: tuple[int, int], held_rss: Any, finals_in: float, retired_in: float,
              lag: tuple[dict[str, float], dict[str, float]], working_left: int) -> dict[str, Any]:
    values = list(lines.values())
    final_lag = [v.final_lag for v in values if v.final_lag is not None]
    answer_lag = [v.answer_lag for v in values if v.answer_lag is not None]
    seen = [v.first_seen - v.asked.sent for v in values if v.first_seen is not None]
    acks = [a.acked - a.sent for a in asked]
    limited: dict[str, int] = {}
    for call in slack.calls:
        if call.status == 429:
            limited[call.method] = limited.get(call.method, 0) + 1
    mib = 1024 * 1024
    out: dict[str, Any] = {
        "answer text visible after the backend's answer": stats(answer_lag),
        "final lag after the backend's answer (charts, CSV and feedback row in)": stats(final_lag),
        "first sign of life (placeholder or status)": stats(seen),
        "ack of the HTTP request": stats(acks),
        "chat.update per answer": counts([v.edits for v in values]),
        "429s": {"total": sum(limited.values()), **limited},
        "all answers visible after (s)": {"v": finals_in},
        "no placeholder left working after (s)": {"v": retired_in, "left": working_left},
        "answered": {"answered": sum(1 for v in values if v.final_seen), "asked": len(values),
                     "http_errors": sum(1 for a in asked if a.status != 200)},
        "cpu per question (ms)": {"v": cpu / max(1, len(values)) * 1000},
        "rss idle (MiB)": {"bot": idle_rss[0] / mib, "chart_workers": idle_rss[1] / mib},
        "event-loop lag (bot)": loop_lag(*lag),
    }
    if held_rss is not None:
        out["rss with every analysis live (MiB)"] = {"bot": held_rss[0] / mib,
                                                     "chart_workers": held_rss[1] / mib}
    return out


def streaming_summary(lines: dict[str, Timeline], slack: FakeSlack) -> dict[str, Any]:
    """What native streaming adds: first visible step and token, how many replies streamed,
    calls per answer by method (streamed and placeholder-path replies apart)."""
    values = list(lines.values())
    streamed = [v for v in values if v.streamed]
    fell_back = [v for v in values if not v.streamed]

    def after_event(attr: str, group: list[Timeline]) -> dict[str, float]:
        seen = [getattr(v, attr) - v.asked.sent for v in group if getattr(v, attr) is not None]
        return {**({"min_ms": min(seen) * 1000} if seen else {}), **stats(seen)}

    def per_answer(group: list[Timeline]) -> dict[str, Any]:
        methods = sorted({m for v in group for m in v.calls})
        out: dict[str, Any] = {"n": len(group)}
        for method in methods:
            per = [v.calls.get(method, 0) for v in group]
            out[method.split(".", 1)[1] if method.startswith("chat.") else method] = (
                f"{sum(per) / len(per):.2f} ({min(per)}-{max(per)})")
        return out

    def via(attr: str) -> dict[str, int]:
        seen: dict[str, int] = {}
        for v in values:
            key = getattr(v, attr) or "never"
            seen[key] = seen.get(key, 0) + 1
        return seen

    stop_to_final = [v.final_seen - v.stream_stopped for v in streamed
                     if v.final_seen is not None and v.stream_stopped is not None]
    still_streaming = 0
    for v in values:
        for ts in v.messages:
            message = slack.message(v.asked.channel, ts)
            still_streaming += message is not None and message.streaming
    return {
        "replies": {"streamed": len(streamed), "placeholder_path": len(fell_back),
                    "still_streaming_at_end": still_streaming},
        "first visible step (all)": after_event("first_step", values),
        "first visible step (streamed)": after_event("first_step", streamed),
        "first visible step (placeholder path)": after_event("first_step", fell_back),
        "first step shown by": via("step_via"),
        "first visible token (all)": after_event("first_token", values),
        "first visible token (streamed)": after_event("first_token", streamed),
        "first visible token (placeholder path)": after_event("first_token", fell_back),
        "first token shown by": via("token_via"),
        "final answer shown by": via("final_via"),
        "first sign, status line included (streamed)": after_event("first_seen", streamed),
        "first sign, status line included (placeholder path)": after_event("first_seen",
                                                                            fell_back),
        "reply message opened (startStream)": after_event("opened", streamed),
        "reply message opened (placeholder post)": after_event("opened", fell_back),
        "stopStream → final answer visible": stats(stop_to_final),
        "calls per streamed answer": per_answer(streamed),
        "calls per placeholder-path answer": per_answer(fell_back),
        "429s per answer (thread-attributed)": {
            m: sum(v.limited.get(m, 0) for v in values) for m in
            sorted({m for v in values for m in v.limited})} or {"none": 0},
    }


LAG_BUCKETS = ["0.001", "0.002", "0.005", "0.01", "0.02", "0.05", "0.1", "0.2", "0.5", "1.0",
               "2.0", "+Inf"]


def loop_lag(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """The bot's loop-lag samples during the scenario (its histogram, before and after): how many
    were over 20 ms, and the bucket the worst one fell in."""
    def count(le: str) -> float:
        name = f'insightbot_event_loop_lag_seconds_bucket{{le="{le}"}}'
        return after.get(name, 0.0) - before.get(name, 0.0)

    total = count("+Inf")
    worst = next((le for le in LAG_BUCKETS if count(le) >= total), "+Inf")
    return {"samples": total, "over_20ms_pct": 100 * (total - count("0.02")) / max(1, total),
            "worst_ms_at_most": "inf" if worst == "+Inf" else float(worst) * 1000}


async def wren(runs: int, channels: int, *, database_url: str | None = None,
               chart_rows: int | None = None, hold_for_rss: bool = False,
               streaming: bool = False, fresh_tier2: bool = False,
               steps: bool = False) -> dict[str, Any]:
    rows = None if chart_rows is None else [
        {"state": f"S{i:04d}", "revenue": (i * 7919) % 100_000} for i in range(chart_rows)]
    fake = TimedWren(1.0, **({"chart_rows": rows} if rows is not None else {}))
    env = {"BACKEND": "wren", "WREN_API_KEY": fake.api_key, "WREN_PROJECT_ID": "1"}

    gates: list[asyncio.Event] = []

    def hold_all() -> None:
        gates.extend(fake.hold_ask() for _ in range(runs))

    async def held(bot: BotProcess) -> Any:
        """Every analysis is live (the backend holds them all): the bot's memory now. Then they
        are released together, so all answers come back within the same second."""
        try:
            await fake.wait_for_request("/api/v1/ask", count=runs + 1, timeout=120)
            await asyncio.sleep(1.0)
            return bot.rss_bytes()
        finally:
            for gate in gates:
                gate.set()

    class Started:
        async def __aenter__(self) -> None:
            await fake.start()
            env["WREN_BASE_URL"] = fake.base_url

        async def __aexit__(self, *exc: object) -> None:
            await fake.close()

    return await run_scenario(runs=runs, channels=channels, backend=Started(), backend_env=env,
                              done=lambda: fake.done, database_url=database_url,
                              before=hold_all if hold_for_rss else None,
                              live_rss=held if hold_for_rss else None,
                              streaming=streaming, fresh_tier2=fresh_tier2, steps=steps)


async def clickzetta(runs: int, channels: int, *, duration: float = 12.0,
                     streaming: bool = False, fresh_tier2: bool = False,
               steps: bool = False) -> dict[str, Any]:
    fake = TimedClickZetta(duration)
    env: dict[str, str] = {"BACKEND": "clickzetta"}

    class Started:
        async def __aenter__(self) -> None:
            await fake.start()
            ident = fake.identity()
            env.update(CLICKZETTA_BASE_URL=ident["base_url"],
                       CLICKZETTA_APP_SECRET_KEY=ident["app_secret_key"],
                       CLICKZETTA_TENANT_ID=str(ident["tenant_id"]),
                       CLICKZETTA_USER_ID=str(ident["user_id"]),
                       CLICKZETTA_DOMAIN_ID=str(ident["domain_id"]))

        async def __aexit__(self, *exc: object) -> None:
            await fake.close()

    return await run_scenario(runs=runs, channels=channels, backend=Started(), backend_env=env,
                              done=lambda: fake.done, streaming=streaming,
                              fresh_tier2=fresh_tier2, steps=steps)


async def postgres_database() -> tuple[str, Callable[[], Any]]:
    """A fresh database on the local server for one run, and how to drop it."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from storage.engine import normalize_url

    name = f"insightbot_bench_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(normalize_url(PG_ADMIN), isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()

    async def drop() -> None:
        engine = create_async_engine(normalize_url(PG_ADMIN), isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await engine.dispose()

    url = normalize_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
    return url, drop


async def wren200pg() -> dict[str, Any]:
    try:
        url, drop = await postgres_database()
    except Exception as exc:  # noqa: BLE001 - a benchmark reports, it does not fail
        return {"skipped": {"reason": f"no PostgreSQL at {PG_ADMIN}: {type(exc).__name__}"}}
    try:
        return await wren(200, 50, database_url=url)
    finally:
        await drop()


SCENARIOS: dict[str, Callable[[], Any]] = {
    "wren1": lambda: wren(1, 1),
    "wren30": lambda: wren(30, 10),
    "wren200": lambda: wren(200, 50, hold_for_rss=True),
    "wren200pg": wren200pg,
    "clickzetta10": lambda: clickzetta(10, 5),
    "charts1000": lambda: wren(30, 10, chart_rows=1000),
    "chart1000": lambda: wren(3, 3, chart_rows=1000),
    # native streaming (issue #11). Each scenario has a fresh fake Slack and bot, so only the
    # warm-up's stream has used the Tier 2 minute; stream30, which measures where streaming
    # runs out, waits until that minute has passed (about a minute more).
    "stream1": lambda: wren(1, 1, streaming=True),
    "stream10": lambda: wren(10, 5, streaming=True),
    "stream30": lambda: wren(30, 10, streaming=True, fresh_tier2=True),
    "streamcz1": lambda: clickzetta(1, 1, streaming=True),
    "streamcz10": lambda: clickzetta(10, 5, streaming=True),
    # the same questions on the placeholder path, measured the same way, for comparison
    "stream10off": lambda: wren(10, 5, steps=True),
    "stream30off": lambda: wren(30, 10, steps=True),
    "streamcz10off": lambda: clickzetta(10, 5, steps=True),
}

TITLES = {
    "wren1": "one Wren analysis on its own (Wren answers in 1 s)",
    "wren30": "30 Wren analyses at once, 10 channels, one workspace (Wren answers in 1 s)",
    "wren200": "200 Wren analyses at once, 50 channels (SQLite)",
    "wren200pg": "200 Wren analyses at once, 50 channels (PostgreSQL)",
    "clickzetta10": "10 ClickZetta analyses at once, 12 s each, 5 channels, 2 s polls",
    "charts1000": "30 Wren analyses at once whose charts have 1,000 rows (event-loop lag)",
    "chart1000": "3 Wren analyses whose charts have 1,000 rows (event-loop lag while they render)",
    "stream1": "native streaming: one Wren analysis (Wren answers in 1 s)",
    "stream10": "native streaming: 10 Wren analyses at once, 5 channels",
    "stream30": "native streaming: 30 Wren analyses at once, 10 channels (beyond Tier 2)",
    "streamcz1": "native streaming: one ClickZetta analysis, 12 s, 2 s polls",
    "streamcz10": "native streaming: 10 ClickZetta analyses at once, 12 s each, 5 channels",
    "stream10off": "stream10 on the placeholder path (SLACK_STREAMING=false), for comparison",
    "stream30off": "stream30 on the placeholder path (SLACK_STREAMING=false), for comparison",
    "streamcz10off": "streamcz10 on the placeholder path (SLACK_STREAMING=false), for comparison",
}


async def main(names: list[str] | None = None) -> dict[str, Any]:
    """Run the scenarios (all by default), printing each one's numbers as soon as it ends."""
    results = {}
    for name in names or list(SCENARIOS):
        started = time.monotonic()
        print(f"-- {TITLES[name]} --", flush=True)
        result = await SCENARIOS[name]()
        print(report(result), flush=True)
        print(f"({time.monotonic() - started:.0f} s)\n", flush=True)
        results[name] = result
    return results


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))

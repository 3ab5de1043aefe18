"""Answers that show the data itself, in Slack: result tables, the CSV of a long result, a
workspace that does not take ``data_table`` yet, built follow-ups, the asker's language, and the
last-resort notice when no rendering of an answer is accepted.

The backend here is a small one of our own protocol that returns a result table, so what is
checked is the Slack side: the blocks a person sees and the files they can open.
"""

from __future__ import annotations

import asyncio
import csv
import io
from typing import Any, AsyncIterator

from adapters.answer import Column, Finished, Outcome, PartUpsert, SessionAssigned, TablePart, TextPart
from adapters.base import AskRequest
from tests.fakes.slack import FakeSlack
from tests.integration.conftest import CHANNEL, OTHER, USER, blocks_text
from tests.integration.own_backend import OwnBackend
from tests.integration.quiet import quiet


class TableBackend(OwnBackend):
    """Answers every question with a summary and a result of ``rows`` rows (month, state,
    revenue as a number written as text — the way previews hand numbers over)."""

    name = "tables"

    def __init__(self, rows: int = 3, text: str = "Revenue by state and month.") -> None:
        super().__init__()
        self.rows = rows
        self.text = text
        self.release: asyncio.Event | None = None  # set: answers wait for it

    async def ask(self, request: AskRequest) -> AsyncIterator[Any]:
        self.asked.append(request)
        yield SessionAssigned("conv-1")
        if self.release is not None:
            await self.release.wait()
        yield PartUpsert(TextPart("summary", self.text))
        rows = tuple((f"2024-{1 + i % 12:02d}-01", f"State {i:03d}", f"{1000 * i + 0.5}")
                     for i in range(self.rows))
        yield PartUpsert(TablePart("result", (Column("order_month", "date"), Column("state"),
                                              Column("revenue", "decimal(18,2)")),
                                   rows, total=self.rows, title="Revenue by state"))
        yield Finished(Outcome.DONE)


def _tables(message: Any) -> list[dict[str, Any]]:
    return [b for b in message.blocks or [] if b["type"] in ("data_table", "table")]


async def test_long_result_shows_100_rows_formatted_and_attaches_every_row_as_csv(
        start_bot, fake_slack: FakeSlack) -> None:
    bot = await start_bot(backend=TableBackend(rows=150))
    event = await bot.mention("revenue by state")
    await bot.wait_finished(event["ts"])
    await bot.settled()
    replies = bot.bot_replies(event["ts"])
    [table] = _tables(replies[0])
    assert table["type"] == "data_table" and table["caption"] == "Revenue by state"
    header, *rows = table["rows"]
    assert [c["text"] for c in header] == ["order_month", "state", "revenue"]
    assert len(rows) == 100
    revenue = rows[2][2]  # "2000.5" from the backend: a number, sortable and formatted
    assert revenue == {"type": "raw_number", "value": 2000.5, "text": "2,000.50"}
    assert "Showing 100 of 150 rows" in blocks_text(replies[0].blocks)
    [csv_file] = [f for f in fake_slack.files.values() if f.filename.endswith(".csv")]
    assert csv_file.thread_ts == event["ts"]
    assert csv_file.data is not None and csv_file.data.startswith("\ufeff".encode())
    lines = list(csv.reader(io.StringIO(csv_file.data.decode("utf-8-sig"))))
    assert lines[0] == ["order_month", "state", "revenue"] and len(lines) == 151
    assert lines[150] == ["2024-06-01", "State 149", "149000.5"]
    # feedback and follow-ups come after the file, so they close the answer
    assert "Was this answer helpful?" in replies[-1].text
    assert csv_file.share_ts is not None and float(csv_file.share_ts) < float(replies[-1].ts)


async def test_workspace_without_data_table_gets_table_blocks_and_is_remembered(start_bot) -> None:
    async with FakeSlack(unsupported_blocks=frozenset({"data_table"})) as slack:
        bot = await start_bot(slack=slack, backend=TableBackend(rows=5))
        first = await bot.mention("revenue by state")
        await bot.wait_finished(first["ts"])
        [table] = _tables(bot.bot_replies(first["ts"])[0])
        assert table["type"] == "table"
        align = [c["align"] for c in table["column_settings"]]
        assert align == ["left", "left", "right"]  # the number column is right-aligned
        tried = _data_table_attempts(slack)
        assert tried == 1

        second = await bot.mention("and by city?")
        await bot.wait_finished(second["ts"])
        [table] = _tables(bot.bot_replies(second["ts"])[0])
        assert table["type"] == "table"
        assert _data_table_attempts(slack) == tried  # not offered again in this workspace


def _data_table_attempts(slack: FakeSlack) -> int:
    return sum(1 for c in slack.calls if c.method in ("chat.update", "chat.postMessage")
               and "data_table" in str(c.args.get("blocks", "")))


async def test_built_follow_up_says_who_asked_and_asks_in_the_thread(
        start_bot, fake_slack: FakeSlack) -> None:
    backend = TableBackend(rows=4)
    bot = await start_bot(backend=backend)
    event = await bot.mention("revenue by state")
    await bot.wait_finished(event["ts"])
    await bot.settled()
    trailer = bot.bot_replies(event["ts"])[-1]
    buttons = [el for b in trailer.blocks if b["type"] == "actions" for el in b["elements"]
               if el["action_id"].startswith("ask_suggestion")]
    labels = [b["text"]["text"] for b in buttons]
    assert labels == ["Compare revenue to the same period last year", "Top 10 state by revenue"]

    for _ in range(2):  # a double click
        await bot.action(buttons[0]["action_id"], buttons[0]["value"], user=OTHER,
                         message_ts=trailer.ts, thread_ts=event["ts"])
    await bot.wait_finished(event["ts"], count=2)
    await bot.dropped_duplicates(1)  # the second click was seen, and dropped
    await quiet(bot.service)
    said = [m.text for m in bot.bot_replies(event["ts"]) if "asked:" in m.text]
    assert said == [f"<@{OTHER}> asked: {buttons[0]['value']}"]
    assert [a.question for a in backend.asked] == ["revenue by state", buttons[0]["value"]]
    assert backend.asked[-1].session_id == "conv-1"


async def test_the_askers_slack_locale_reaches_the_backend(
        start_bot, fake_slack: FakeSlack) -> None:
    fake_slack.locales[USER] = "pt-BR"
    backend = TableBackend()
    bot = await start_bot(backend=backend)
    event = await bot.mention("receita por estado")
    await bot.wait_finished(event["ts"])
    assert backend.asked[0].language == "pt-BR"
    assert fake_slack.calls_to("users.info")[0].args["user"] == USER
    again = await bot.mention("e por mês?")
    await bot.wait_finished(again["ts"])
    assert backend.asked[1].language == "pt-BR"
    assert len(fake_slack.calls_to("users.info")) == 1  # remembered


async def test_answer_no_rendering_of_which_is_accepted_ends_with_a_notice_and_reference(
        start_bot, fake_slack: FakeSlack) -> None:
    backend = TableBackend()
    backend.release = asyncio.Event()
    bot = await start_bot(backend=backend)
    event = await bot.mention("revenue by state")
    await _wait(lambda: bot.bot_replies(event["ts"]))
    placeholder = bot.bot_replies(event["ts"])[0]
    # every rendering is refused in place (data_table, table, monospace, plain) and the
    # plain answer cannot be posted anew either; the notice edit is the next update
    fake_slack.fail_next("chat.update", "invalid_blocks", times=4)
    fake_slack.fail_next("chat.postMessage", "invalid_blocks", times=1)
    backend.release.set()
    [answer] = await bot.wait_finished(event["ts"])
    await bot.settled()
    run_id = (await bot.service.repo.list_runs("slack", "T1", channel=CHANNEL))[0].id
    shown = [m for m in bot.bot_replies(event["ts"]) if m.ts == placeholder.ts][0]
    assert shown.text == f"Sorry — this answer could not be shown here. Reference: {run_id}"
    assert "Working" not in shown.text and "stop_run" not in str(shown.blocks)


async def test_a_30000_character_answer_arrives_whole_over_several_messages(
        start_bot, fake_slack: FakeSlack) -> None:
    text = "\n\n".join(f"## Finding {i}\n" + f"Revenue grew in region {i}. " * 40 + "\n\n---"
                       for i in range(45))
    assert len(text) > 30_000
    bot = await start_bot(backend=TableBackend(rows=150, text=text))
    event = await bot.mention("write me a report")
    await bot.wait_finished(event["ts"])
    await bot.settled()
    refused = [c for c in fake_slack.calls if c.method in ("chat.update", "chat.postMessage")
               and c.response.get("ok") is False]
    assert refused == []  # every message was within Slack's limits the first time
    replies = bot.bot_replies(event["ts"])
    assert len(replies) >= 3
    shown = "\n".join(b["text"] for m in replies for b in m.blocks or [] if b["type"] == "markdown")
    for i in range(45):
        assert f"## Finding {i}\n" in shown
    assert [len(_tables(m)) for m in replies].count(1) == 1  # the table, once
    assert "Was this answer helpful?" in replies[-1].text


async def _wait(predicate: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)

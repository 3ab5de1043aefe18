"""Renderings the stricter fake Slack refused, sent through the real slack_sdk client to it.

Each case is a bug the fake's element rules (``tests/fakes/slack_rules.py``) exposed: Slack
refuses the whole message or view (``invalid_blocks`` / ``invalid_arguments``), so one bad
element used to cost the reader the answer, the history or the App Home tab.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from adapters.answer import Answer, Outcome, SqlPart, TextPart
from bot.relay.backend_history import BackendChat
from bot.relay.snapshot import answer_to_dict
from bot.slack import history
from bot.slack.home import publish_home
from bot.slack.render import VIEW_SQL_ACTION, render_final, sql_of
from bot.slack.tables import TableStyle
from storage.records import RunRecord
from tests.fakes.slack import FakeSlack

CH = "C0123456789"
LONG_SQL = "\n".join(f"SELECT {i} AS c{i}" for i in range(30))  # long enough to collapse


@pytest.fixture
async def fake():
    async with FakeSlack() as f:
        yield f


@pytest.fixture
def client(fake: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-test", base_url=fake.base_url)


def done(*parts: Any, notice: str = "") -> Answer:
    answer = Answer()
    for part in parts:
        answer = answer.upsert(part)
    return answer.finish(Outcome.DONE, notice=notice).with_elapsed(3.0)


async def post_all(client: AsyncWebClient, answer: Answer) -> list[dict[str, Any]]:
    """Post every message of the final reply as the sink does; return all blocks sent."""
    reply = render_final(answer, "run-1", TableStyle.DATA_TABLE)
    sent: list[dict[str, Any]] = []
    for message in reply.messages + ([reply.trailer] if reply.trailer else []):
        await client.chat_postMessage(channel=CH, text=message.text, blocks=message.blocks)
        sent += message.blocks
    return sent


def view_sql_buttons(blocks: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(b.get("block_id", ""), e) for b in blocks if b.get("type") == "actions"
            for e in b["elements"] if e.get("action_id") == VIEW_SQL_ACTION]


async def test_long_sql_part_ids_give_distinct_block_ids_and_short_button_values(
        client: AsyncWebClient) -> None:
    """Two SQL parts whose (backend-given) ids share their first 255 characters were given one
    ``block_id`` (the id cut to fit), and an id near 2,000 characters overflowed the button's
    ``value``: Slack refused the answer and the reader got the plain-text fallback."""
    shared = "block-" + "x" * 300
    huge = "y" * 2500
    answer = done(TextPart("t", "Here is the revenue."), SqlPart(shared + "-a", LONG_SQL, "First"),
                  SqlPart(shared + "-b", LONG_SQL + "\n-- b", "Second"), SqlPart(huge, LONG_SQL + "\n-- c"),
                  SqlPart("sql", LONG_SQL + "\n-- short"))
    blocks = await post_all(client, answer)  # accepted: no SlackApiError
    buttons = view_sql_buttons(blocks)
    assert len(buttons) == 4
    assert len({block_id for block_id, _ in buttons}) == 4
    assert all(len(block_id) <= 255 and len(e["value"]) <= 2000 for block_id, e in buttons)
    # a short id is kept as it is; every value still leads to its own SQL
    assert ("sql:sql", "run-1:sql") in [(b, e["value"]) for b, e in buttons]
    stored = answer_to_dict(answer)
    found = []
    for _, button in buttons:
        run_id, _, ref = button["value"].partition(":")
        assert run_id == "run-1"
        found.append(sql_of(stored, ref))
    assert [sql for _, sql in found] == [LONG_SQL, LONG_SQL + "\n-- b", LONG_SQL + "\n-- c",
                                         LONG_SQL + "\n-- short"]


async def test_a_blank_notice_adds_no_empty_context(client: AsyncWebClient) -> None:
    """A context element with empty text is refused; a notice of only spaces made one."""
    blocks = await post_all(client, done(TextPart("t", "Answer"), notice="  \n "))
    assert all(e.get("text") for b in blocks if b["type"] == "context" for e in b["elements"])


def run_record(question: str, *, reply_ts: str | None = None, session: str | None = None) -> RunRecord:
    now = datetime.datetime(2026, 9, 1, 10, 0)
    return RunRecord(id="r1", conversation_id=1, platform="slack", workspace="T1", channel=CH,
                     thread="1.1", question=question, asker="U1", backend="textql",
                     backend_run_id=None, session_id=session, status="done", reply_channel=CH,
                     reply_ts=reply_ts, error=None, answer=None, stopped_by=None, feedback=None,
                     feedback_by=None, created_at=now, started_at=now, finished_at=now)


class Repo:
    def __init__(self, runs: list[RunRecord]) -> None:
        self.runs = runs

    async def list_runs(self, *args: Any, **kwargs: Any) -> list[RunRecord]:
        return self.runs


class Deps:
    def __init__(self, runs: list[RunRecord]) -> None:
        self.repo = Repo(runs)


async def test_a_run_without_question_text_does_not_break_the_home_tab(
        fake: FakeSlack, client: AsyncWebClient) -> None:
    """One run with no question text (and no reply to link) made an empty section, and Slack
    refused the whole App Home view."""
    runs = [run_record("What was revenue?", reply_ts="1.2"), run_record("   ")]
    await publish_home(Deps(runs), client, "T1", "U1")  # type: ignore[arg-type]
    blocks = fake.home_views["U1"]["blocks"]
    texts = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert history.NO_QUESTION in texts and any("What was revenue?" in t for t in texts)
    history_blocks = await history.history_blocks(client, runs, total=2, offset=0, channel=CH)
    await client.chat_postMessage(channel=CH, text="history", blocks=history_blocks)


async def test_long_backend_chat_ids_fit_the_history_section(client: AsyncWebClient) -> None:
    """Ten chats with long ids overflowed the 3,000-character section of /insight-history."""
    ids = [f"chat-{i}-" + "z" * 600 for i in range(10)]

    class Chats:
        async def list_chats(self, limit: int) -> list[BackendChat]:
            return [BackendChat(chat_id, "Revenue questions", None) for chat_id in ids]

    class Backend:
        name = "textql"
        history = Chats()

    runs = [run_record("q", session=chat_id) for chat_id in ids]
    blocks = await history.backend_chat_blocks(Backend(), runs)
    await client.chat_postMessage(channel=CH, text="history", blocks=blocks)
    assert blocks[-1]["text"]["text"].count("(chat `chat-") == 10


async def test_suggested_follow_ups_fit_slacks_button_limits(client: AsyncWebClient) -> None:
    """A follow-up longer than a button label (75) or value (2,000) still goes out: the label
    is shortened, the value cut, and each button of the block has its own action_id."""
    from adapters.answer import SuggestionsPart

    questions = ("Which of our " + "very " * 30 + "large customers churned?",
                 "q" * 2500, "Revenue by state?")
    blocks = await post_all(client, done(TextPart("t", "Answer"), SuggestionsPart("s", questions)))
    [row] = [b for b in blocks if b.get("block_id") == "suggestions"]
    labels = [e["text"]["text"] for e in row["elements"]]
    assert all(len(label) <= 75 for label in labels) and labels[2] == "Revenue by state?"
    assert [len(e["value"]) for e in row["elements"]] == [len(questions[0]), 2000, 17]
    assert len({e["action_id"] for e in row["elements"]}) == 3

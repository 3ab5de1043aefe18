"""Block Kit rendering under Slack's limits (the same limits the fake Slack enforces)."""

import csv
import io

import pytest

from adapters.answer import (
    Answer, ChartPart, Column, ErrorPart, KnowledgeEntry, KnowledgePart, Outcome, SqlPart,
    StatusPart, SuggestionsPart, TablePart, TextPart,
)
from bot.slack.blocks import counted_blocks, markdown
from bot.slack.render import render_final, render_progress
from bot.slack.tables import TableStyle
from tests.fakes.slack import FakeSlack, _Fail, _expanded

FAKE = FakeSlack()


def _valid(blocks: list[dict]) -> None:
    """What the fake Slack (Slack's real per-message limits) would say to these blocks."""
    try:
        FAKE._validate_blocks(blocks)
    except _Fail as fail:  # pragma: no cover - the assertion message is the point
        raise AssertionError(fail.body) from None


def _result(rows: int, total: int | None = None) -> TablePart:
    return TablePart("tb", (Column("customer_state", "STRING"), Column("revenue", "DOUBLE")),
                     tuple((f"S{i:03d}", 1000.5 * i) for i in range(rows)), total=total)


def test_progress_has_status_and_stop_button() -> None:
    a = Answer(parts=(StatusPart("status", "Writing SQL…"),))
    msg = render_progress(a, "run1")
    assert "Writing SQL" in msg.blocks[0]["elements"][0]["text"]
    assert msg.blocks[-1]["elements"][0]["action_id"] == "stop_run"
    assert msg.blocks[-1]["elements"][0]["value"] == "run1"
    _valid(msg.blocks)


def test_huge_answer_is_split_across_valid_messages_without_loss() -> None:
    text = "\n\n".join(f"Section {i}: " + "word " * 400 for i in range(40))  # ~80k chars
    a = Answer(parts=(TextPart("t", text), SqlPart("s", "SELECT 1"))).finish(Outcome.DONE)
    reply = render_final(a, "r")
    assert len(reply.messages) > 1
    for msg in reply.messages:
        _valid(msg.blocks)
        assert len(msg.text) <= 4000
    joined = "".join(b.get("text", "") for m in reply.messages for b in m.blocks if b["type"] == "markdown")
    for i in range(40):
        assert f"Section {i}:" in joined


def test_a_30000_character_answer_with_headings_arrives_whole_within_every_limit() -> None:
    text = "\n\n".join(f"## Finding {i}\n" + f"Revenue grew in region {i}. " * 40 + "\n\n---"
                       for i in range(45))
    assert len(text) > 30_000
    a = Answer(parts=(TextPart("t", text),)).finish(Outcome.DONE)
    reply = render_final(a, "r")
    for msg in reply.messages + ([reply.trailer] if reply.trailer else []):
        _valid(msg.blocks)  # ≤ 50 blocks as Slack expands them, ≤ 12,000 characters of text
        assert sum(_expanded(b) for b in msg.blocks) <= 50
    shown = "\n".join(b["text"] for m in reply.messages for b in m.blocks if b["type"] == "markdown")
    for i in range(45):
        assert f"## Finding {i}\n" in shown  # nothing cut, in order
    assert shown.index("## Finding 3\n") < shown.index("## Finding 30\n")


def test_markdown_blocks_count_what_slack_expands_them_into() -> None:
    text = "intro\n# A\nbody\n---\nmore\n```\ncode\n```\nend"
    [block] = markdown(text)
    assert counted_blocks(block) >= _expanded(block) == 7  # text, heading, text, rule, text, code, text


def test_result_table_is_a_data_table_with_numbers_and_a_csv_when_cut() -> None:
    a = Answer(parts=(_result(200),)).finish(Outcome.DONE)
    reply = render_final(a, "r")
    blocks = [b for m in reply.messages for b in m.blocks]
    [table] = [b for b in blocks if b["type"] == "data_table"]
    assert len(table["rows"]) == 101 and table["caption"] == "Result" and table["page_size"] == 10
    assert table["rows"][0] == [{"type": "raw_text", "text": "customer_state"},
                                {"type": "raw_text", "text": "revenue"}]
    assert table["rows"][3][1] == {"type": "raw_number", "value": 2001, "text": "2,001"}
    assert table["rows"][2][1] == {"type": "raw_number", "value": 1000.5, "text": "1,000.50"}
    assert "Showing 100 of 200 rows" in str(blocks)
    [csv_file] = [x for x in reply.attachments if x.filename.endswith(".csv")]
    rows = list(csv.reader(io.StringIO(csv_file.content.decode("utf-8-sig"))))
    assert rows[0] == ["customer_state", "revenue"] and len(rows) == 201 and rows[200][0] == "S199"
    for msg in reply.messages:
        _valid(msg.blocks)


def test_a_short_result_is_shown_whole_without_a_csv() -> None:
    reply = render_final(Answer(parts=(_result(12),)).finish(Outcome.DONE), "r")
    assert "12 rows" in str(reply.messages[0].blocks)
    assert not [x for x in reply.attachments if x.filename.endswith(".csv")]


@pytest.mark.parametrize("style", list(TableStyle))
def test_every_table_style_is_valid_and_says_how_much_it_shows(style: TableStyle) -> None:
    a = Answer(parts=(_result(150, total=5000),)).finish(Outcome.DONE)
    reply = render_final(a, "r", style)
    for msg in reply.messages:
        _valid(msg.blocks)
    flat = str([m.blocks for m in reply.messages])
    shown = {TableStyle.DATA_TABLE: 100, TableStyle.TABLE: 99, TableStyle.MONOSPACE: 30}[style]
    assert f"Showing {shown} of 5,000 rows" in flat
    if style is TableStyle.TABLE:
        [table] = [b for m in reply.messages for b in m.blocks if b["type"] == "table"]
        assert table["column_settings"] == [{"align": "left", "is_wrapped": True},
                                            {"align": "right", "is_wrapped": False}]


def test_a_wide_table_keeps_to_the_cell_budget_and_attaches_the_rest() -> None:
    columns = tuple(Column(f"c{i}") for i in range(25))
    rows = tuple(tuple("x" * 60 for _ in range(25)) for _ in range(100))
    reply = render_final(Answer(parts=(TablePart("w", columns, rows),)).finish(Outcome.DONE), "r")
    for msg in reply.messages:
        _valid(msg.blocks)
    [table] = [b for m in reply.messages for b in m.blocks if b["type"] == "data_table"]
    assert len(table["rows"][0]) == 20  # Slack's column limit
    assert "5 more columns in the CSV" in str(reply.messages)
    assert [x for x in reply.attachments if x.filename.endswith(".csv")]


def test_markdown_tables_in_the_answer_become_real_tables() -> None:
    text = ("Top states:\n\n| State | Revenue |\n|:--|--:|\n| SP | 1,234.5 |\n| RJ | 99 |\n\n"
            "SP leads.")
    reply = render_final(Answer(parts=(TextPart("t", text),)).finish(Outcome.DONE), "r")
    blocks = reply.messages[0].blocks
    [table] = [b for b in blocks if b["type"] == "data_table"]
    assert table["rows"][1] == [{"type": "raw_text", "text": "SP"},
                                {"type": "raw_number", "value": 1234.5, "text": "1,234.5"}]
    texts = [b["text"] for b in blocks if b["type"] == "markdown"]
    assert texts[0].strip() == "Top states:" and texts[1].strip() == "SP leads."
    assert "|--" not in str(blocks)


def test_long_sql_stays_collapsed_behind_view_sql() -> None:
    sql = "SELECT\n" + ",\n".join(f"  SUM(col_{i}) AS total_{i}" for i in range(60)) + "\nFROM t"
    reply = render_final(Answer(parts=(TextPart("t", "The answer."), SqlPart("s", sql)))
                         .finish(Outcome.DONE), "run9")
    flat = str(reply.messages[0].blocks)
    assert "total_5" in flat and "total_40" not in flat  # the first lines only
    [view] = [e for b in reply.messages[0].blocks if b["type"] == "actions" for e in b["elements"]
              if e["action_id"] == "view_sql"]
    assert view["value"] == "run9:s"
    assert len(reply.messages) == 1 and reply.messages[0].blocks[0]["text"] == "The answer."


def test_final_with_table_knowledge_error_and_chart_note() -> None:
    a = Answer(parts=(
        KnowledgePart("k", (KnowledgeEntry("Revenue glossary"), KnowledgeEntry("orders table"))),
        TablePart("tb", (Column("region", "STRING"), Column("total", "LONG")),
                  tuple((f"r{i}", i) for i in range(30)), total=120),
        ChartPart("c", title="Sales", note="No chart this time: no data"),
    )).finish(Outcome.FAILED, error=ErrorPart("error", "It broke", code="X", reference="abc123"))
    reply = render_final(a, "abc123")
    blocks = reply.messages[0].blocks
    _valid(blocks)
    flat = str(blocks)
    assert "Consulted: Revenue glossary, orders table" in flat
    assert "Showing 30 of 120 rows" in flat
    assert "Reference: `abc123`" in flat
    assert "No chart this time" in flat
    assert "feedback" not in str(reply)  # only finished answers ask for feedback


def test_stopped_answer_names_who_and_when() -> None:
    a = Answer(parts=(TextPart("t", "partial"),)).finish(Outcome.STOPPED, stopped_by="U1").with_elapsed(12.4)
    flat = str(render_final(a, "r").messages[0].blocks)
    assert "Stopped by <@U1> after 12 s" in flat


def test_a_chart_goes_right_after_the_answer_and_the_feedback_after_it() -> None:
    a = Answer(parts=(TextPart("t", "Sales grew."), ChartPart("c", title="Sales", png=b"png"),
                      SuggestionsPart("s", ("Top 10 states by revenue",)))).finish(Outcome.DONE)
    reply = render_final(a, "r")
    assert [(x.filename, x.title) for x in reply.attachments] == [("chart-1.png", "Sales")]
    assert "feedback" not in str(reply.messages)  # the answer itself ends with the answer
    assert reply.trailer is not None
    trailer = str(reply.trailer.blocks)
    assert "feedback" in trailer and "Top 10 states by revenue" in trailer


def test_without_files_the_trailer_stays_in_the_answer() -> None:
    reply = render_final(Answer(parts=(TextPart("t", "Done."),)).finish(Outcome.DONE), "r")
    assert reply.trailer is None and "feedback" in str(reply.messages[-1].blocks)

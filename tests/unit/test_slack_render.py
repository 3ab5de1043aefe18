"""Block Kit rendering under Slack's limits (the same limits the fake Slack enforces)."""

from adapters.answer import (
    Answer, ChartPart, Column, ErrorPart, KnowledgeEntry, KnowledgePart, Outcome, SqlPart,
    StatusPart, TablePart, TextPart,
)
from bot.slack.render import render_final, render_progress
from tests.fakes.slack import _block_errors


def _valid(blocks: list[dict]) -> None:
    assert len(blocks) <= 50
    errors = [e for i, b in enumerate(blocks) for e in _block_errors(b, f"/blocks/{i}")]
    assert not errors, errors
    assert sum(len(b.get("text", "")) for b in blocks if b["type"] == "markdown") <= 12_000


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
    assert "Showing 15 of 120 rows" in flat
    assert "Reference: `abc123`" in flat
    assert "No chart this time" in flat
    assert "feedback" not in flat  # only finished answers ask for feedback


def test_stopped_answer_names_who_and_when() -> None:
    a = Answer(parts=(TextPart("t", "partial"),)).finish(Outcome.STOPPED, stopped_by="U1").with_elapsed(12.4)
    flat = str(render_final(a, "r").messages[0].blocks)
    assert "Stopped by <@U1> after 12 s" in flat


def test_chart_png_becomes_an_attachment() -> None:
    a = Answer(parts=(ChartPart("c", title="Sales", png=b"png"),)).finish(Outcome.DONE)
    reply = render_final(a, "r")
    assert [(x.filename, x.title) for x in reply.attachments] == [("chart-1.png", "Sales")]

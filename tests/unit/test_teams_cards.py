"""Answer → Adaptive Cards: progress, finished answer, packing under Teams' size limit."""

from __future__ import annotations

import io
import json
from typing import Any

from PIL import Image

from adapters.answer import (
    Answer, ChartPart, Column, ErrorPart, KnowledgeEntry, KnowledgePart, Outcome, SqlPart,
    StatusPart, StepPart, StepState, TablePart, TextPart,
)
from bot.teams.cards import CARD_BUDGET, plain_messages, render_final, render_progress
from bot.teams.images import data_uri
from bot.teams.markdown import markdown_elements
from tests.integration.teams.conftest import walk


def texts(card: Any) -> str:
    return "\n".join(n.get("text") or n.get("codeSnippet") or n.get("title") or "" for n in walk(card))


def png(width: int = 40, height: int = 30) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(out, format="PNG")
    return out.getvalue()


def names(user: str) -> str:
    return {"aad-ada": "Ada Lovelace"}.get(user, "")


def finished(*parts: Any, outcome: Outcome = Outcome.DONE, **kw: Any) -> Answer:
    return Answer(parts=tuple(parts), outcome=outcome, elapsed=3.2, **kw)


def test_progress_card_has_status_steps_and_a_stop_button() -> None:
    answer = Answer(parts=(StatusPart("status", "Writing SQL…"),
                           StepPart("s1", "Understanding the question", StepState.DONE),
                           StepPart("s2", "Querying", StepState.RUNNING),
                           TextPart("t", "x" * 5000)))
    card = render_progress(answer, "run123")
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.5"
    text = texts(card)
    assert "⏳ Writing SQL…" in text and "✅ Understanding the question" in text
    assert len(text) < 4000  # partial text is trimmed while running
    [stop] = card["actions"]
    assert stop["type"] == "Action.Submit" and stop["data"] == {"action": "stop", "run_id": "run123"}


def test_final_card_holds_answer_sql_consulted_and_chart() -> None:
    chart = ChartPart("chart", title="Payments", png=png())
    answer = finished(KnowledgePart("k", (KnowledgeEntry("orders"), KnowledgeEntry("payments"))),
                      TextPart("t", "**SP** leads."), SqlPart("sql", "select 1"), chart)
    [card] = render_final(answer, "run1", {"chart": data_uri(chart.png)}, names)
    text = texts(card)
    assert "**SP** leads." in text and "📚 Consulted: orders, payments" in text
    assert "Answered in 3 s · reference run1" in text
    [image] = [n for n in walk(card) if n.get("type") == "Image"]
    assert image["url"].startswith("data:image/png;base64,")
    [toggle] = [n for n in walk(card) if n.get("type") == "Action.ToggleVisibility"]
    [box] = [n for n in walk(card) if n.get("id") == toggle["targetElements"][0]]
    assert box["isVisible"] is False
    [code] = [n for n in box["items"] if n["type"] == "CodeBlock"]
    assert code["language"] == "sql" and "SELECT 1" in code["codeSnippet"].upper()
    assert code["fallback"]["fontType"] == "Monospace"
    assert "actions" not in card  # no Stop button on a finished answer


def test_chart_too_large_for_teams_is_mentioned_not_dropped_silently() -> None:
    answer = finished(TextPart("t", "ok"), ChartPart("chart", title="Big", png=png()))
    [card] = render_final(answer, "r", {"chart": None}, names)
    assert "too large to show in Teams" in texts(card)
    assert not [n for n in walk(card) if n.get("type") == "Image"]


def test_error_shows_message_code_and_reference() -> None:
    answer = finished(ErrorPart("error", "No data for that.", code="NO_RELEVANT_DATA",
                                reference="run9"), outcome=Outcome.FAILED)
    [card] = render_final(answer, "run9", {}, names)
    [box] = [n for n in walk(card) if n.get("style") == "attention"]
    assert "⚠️ No data for that." in texts(box)
    assert "Reference: run9 · code NO_RELEVANT_DATA" in texts(box)


def test_stopped_answer_says_who_and_after_how_long() -> None:
    answer = finished(TextPart("t", "partial"), outcome=Outcome.STOPPED, stopped_by="aad-ada")
    [card] = render_final(answer, "r", {}, names)
    assert "⏹️ Stopped by Ada Lovelace after 3 s." in texts(card)
    unknown = finished(outcome=Outcome.STOPPED, stopped_by="aad-unknown")
    assert "⏹️ Stopped after 3 s." in texts(render_final(unknown, "r", {}, names)[0])


def test_long_answers_are_packed_into_cards_under_the_budget_with_one_image_each() -> None:
    text = "\n\n".join(f"Paragraph {i}: " + "growth " * 150 for i in range(60))
    charts = [ChartPart(f"c{i}", title=f"Chart {i}", png=png()) for i in range(3)]
    answer = finished(TextPart("t", text), SqlPart("sql", "SELECT x FROM t\n" * 900), *charts)
    images = {c.id: data_uri(c.png) for c in charts}
    cards = render_final(answer, "r", images, names)
    assert len(cards) > 3
    for card in cards:
        stripped = json.dumps(card, ensure_ascii=False)
        for uri in images.values():
            stripped = stripped.replace(uri, "")
        assert len(stripped.encode()) <= CARD_BUDGET + 500
        assert len([n for n in walk(card) if n.get("type") == "Image"]) <= 1
    everything = "\n".join(texts(c) for c in cards)
    assert all(f"Paragraph {i}:" in everything for i in range(60))
    code = "\n".join(n["codeSnippet"] for c in cards for n in walk(c) if n.get("type") == "CodeBlock")
    assert code.count("SELECT x FROM t") == 900  # the SQL, in toggled parts, complete
    assert "Answered in" in texts(cards[-1])
    toggles = [n for c in cards for n in walk(c) if n.get("type") == "Action.ToggleVisibility"]
    ids = [n.get("id") for c in cards for n in walk(c) if n.get("type") == "Container"]
    assert all(t["targetElements"][0] in ids for t in toggles)


def test_table_part_becomes_an_adaptive_table() -> None:
    rows = tuple((f"state{i}", i * 10) for i in range(40))
    answer = finished(TablePart("tbl", (Column("state", "VARCHAR"), Column("total", "DOUBLE")), rows,
                                total=27))
    [card] = render_final(answer, "r", {}, names)
    [table] = [n for n in walk(card) if n.get("type") == "Table"]
    assert len(table["rows"]) == 16  # header + 15
    assert "Showing 15 of 27 rows" in texts(card)


def test_markdown_headings_tables_and_code_become_elements() -> None:
    md = ("# Summary\n\nRevenue **grew**.\n\n| state | total |\n|---|---:|\n| SP | 5 |\n| RJ | 2 |\n\n"
          "```sql\nSELECT 1\n```\n\n- a\n- b")
    elements = markdown_elements(md)
    kinds = [e["type"] for e in elements]
    assert kinds == ["TextBlock", "TextBlock", "Table", "CodeBlock", "TextBlock"]
    assert elements[0]["text"] == "Summary" and elements[0]["weight"] == "Bolder"
    assert elements[3]["language"] == "sql"
    assert elements[4]["text"] == "- a\n- b"
    cells = [c["items"][0]["text"] for c in elements[2]["rows"][1]["cells"]]
    assert cells == ["SP", "5"]


def test_plain_fallback_keeps_text_sql_errors_and_the_ending() -> None:
    answer = finished(TextPart("t", "Answer."), SqlPart("sql", "select 1"),
                      ErrorPart("e", "Chart failed", reference="r1"))
    text = "\n".join(plain_messages(answer, "r1", names))
    assert "Answer." in text and "SELECT 1" in text.upper() and "reference r1" in text
    assert "Answered in 3 s" in text

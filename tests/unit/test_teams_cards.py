"""Answer → Adaptive Cards: progress, finished answer, packing under Teams' size limit."""

from __future__ import annotations

import io
import json
from typing import Any

from PIL import Image

from adapters.answer import (
    Answer, ChartPart, Column, ErrorPart, KnowledgeEntry, KnowledgePart, Outcome, SqlPart,
    StatusPart, StepPart, StepState, SuggestionsPart, TablePart, TextPart,
)
from bot.teams.cards import (
    CARD_BUDGET, Files, card_activity, has_ai_content, mark_ai_generated, plain_activities,
    plain_messages, render_final, render_progress, summary_text, text_activity, wants_feedback,
    with_feedback,
)
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


def test_result_table_shows_100_rows_in_chunks_under_the_card_budget() -> None:
    rows = tuple((f"state{i}", i * 1234.5678, 2000 + i % 25, str(i * 1000)) for i in range(150))
    columns = (Column("state", "VARCHAR"), Column("total", "DOUBLE"), Column("year", "INTEGER"),
               Column("orders"))
    answer = finished(TablePart("tbl", columns, rows, total=150, title="Revenue by state"))
    cards = render_final(answer, "r", {}, names)
    assert len(cards) >= 2  # a hundred rows do not fit one Teams message
    for card in cards:
        assert len(json.dumps(card, ensure_ascii=False).encode()) <= CARD_BUDGET + 500
    tables = [n for c in cards for n in walk(c) if n.get("type") == "Table"]
    assert len(tables) >= 2
    body_rows = [r for t in tables for r in t["rows"][1:]]
    assert len(body_rows) == 100  # at most a hundred, none twice, none lost
    cells = [[c["items"][0]["text"] for c in r["cells"]] for r in body_rows]
    assert [c[0] for c in cells] == [f"state{i}" for i in range(100)]
    for table in tables:  # every chunk repeats the header row
        assert [c["items"][0]["text"] for c in table["rows"][0]["cells"]] == ["state", "total", "year", "orders"]
        assert table["firstRowAsHeaders"] is True
        aligns = [c.get("horizontalCellContentAlignment") for c in table["columns"]]
        assert aligns == [None, "Right", "Right", "Right"]  # numbers right-aligned
    assert cells[1] == ["state1", "1,234.57", "2001", "1,000"]  # separators, 2 decimals, plain years
    assert cells[0][1] == "0" and cells[99][1] == "122,222.21"
    text = "\n".join(texts(c) for c in cards)
    assert "Showing 100 of 150 rows" in text
    second = [n["text"] for n in walk(cards[1]) if str(n.get("text", "")).startswith("Rows ")]
    assert second and second[-1].endswith("–100")  # a later chunk says which rows it holds


def test_a_table_that_fits_says_how_many_rows_and_offers_nothing() -> None:
    rows = tuple((f"s{i}", i) for i in range(12))
    answer = finished(TablePart("tbl", (Column("state"), Column("n", "BIGINT")), rows))
    [card] = render_final(answer, "r", {}, names, files={"tbl": Files.OFFER})
    text = texts(card)
    assert "12 rows" in text and "Showing" not in text and "CSV" not in text
    [table] = [n for n in walk(card) if n.get("type") == "Table"]
    assert len(table["rows"]) == 13


def test_the_cut_is_explained_where_the_csv_can_and_cannot_go() -> None:
    rows = tuple((f"s{i}", i) for i in range(250))
    part = TablePart("tbl", (Column("state"), Column("n", "BIGINT")), rows, total=9000)
    note = {rule: texts(render_final(finished(part), "r", {}, names, files={"tbl": rule})[-1])
            for rule in (Files.OFFER, Files.NOT_HERE, Files.TOO_LARGE, Files.NONE)}
    assert "Showing 100 of 9,000 rows" in note[Files.OFFER]
    assert "The 250 rows the backend returned are offered as a CSV file below" in note[Files.OFFER]
    assert "only in personal chats" in note[Files.NOT_HERE] and "cannot be attached here" in note[Files.NOT_HERE]
    assert "too large to send as a file" in note[Files.TOO_LARGE]
    assert "CSV" not in note[Files.NONE] and "Showing 100 of 9,000 rows" in note[Files.NONE]
    all_rows = TablePart("t2", (Column("state"),), tuple((f"s{i}",) for i in range(150)))
    assert "All 150 rows are offered" in texts(render_final(finished(all_rows), "r", {}, names,
                                                             files={"t2": Files.OFFER})[-1])
    wide = TablePart("w", tuple(Column(f"c{i}") for i in range(11)), (tuple(range(11)),))
    wide_text = texts(render_final(finished(wide), "r", {}, names, files={"w": Files.OFFER})[0])
    assert "3 more columns not shown" in wide_text and "offered as a CSV file" in wide_text


def test_final_answer_activity_is_ai_generated_with_native_feedback() -> None:
    answer = finished(TextPart("t", "ok"))
    activity = with_feedback(mark_ai_generated(card_activity(render_final(answer, "r", {}, names)[0])))
    wire = activity.model_dump(by_alias=True, exclude_unset=True, mode="json")  # as the SDK sends it
    [entity] = wire["entities"]
    assert entity["additionalType"] == ["AIGeneratedContent"]
    assert entity["@type"] == "Message" and entity["@context"] == "https://schema.org"
    assert entity["@id"] == "" and entity["type"] == "https://schema.org/Message"
    assert wire["channelData"] == {"feedbackLoop": {"type": "default"}}
    mark_ai_generated(activity)  # twice: still one root entity (Teams refuses two)
    assert len(activity.entities) == 1
    legacy = text_activity("x")
    legacy.channel_data = {"feedbackLoopEnabled": True}
    assert with_feedback(legacy).channel_data == {"feedbackLoop": {"type": "default"}}


def test_which_answers_are_labelled_and_which_get_feedback() -> None:
    assert has_ai_content(finished(TextPart("t", "ok"))) and wants_feedback(finished(TextPart("t", "ok")))
    failed = finished(ErrorPart("e", "No data."), outcome=Outcome.FAILED)
    assert not has_ai_content(failed) and not wants_feedback(failed)
    assert not has_ai_content(Answer(parts=(StatusPart("status", "Working on it…"),)))
    stopped = finished(TextPart("t", "partial"), outcome=Outcome.STOPPED)
    assert has_ai_content(stopped) and not wants_feedback(stopped)


def test_plain_text_answer_cites_what_was_consulted() -> None:
    entries = tuple(KnowledgeEntry(f"table_{i}", f"detail {i} " + "x" * 300) for i in range(23))
    # the answer's own text may hold a "[21]" (a footnote, an index): still at most 20
    answer = finished(KnowledgePart("k", entries), TextPart("t", "Answer, as in values[21]."))
    [activity] = plain_activities(answer, "r1", names)
    assert "📚 Consulted: table_0 [1], table_1 [2]" in activity.text
    consulted = [line for line in activity.text.split("\n") if "Consulted" in line][0]
    assert "table_19 [20] (+3 more)" in consulted and "[21]" not in consulted
    wire = activity.model_dump(by_alias=True, exclude_unset=True, mode="json")
    [entity] = wire["entities"]
    assert entity["additionalType"] == ["AIGeneratedContent"]
    citations = entity["citation"]
    assert [c["position"] for c in citations] == list(range(1, 21))  # Teams takes at most 20
    first = citations[0]
    assert first["@type"] == "Claim" and first["appearance"]["@type"] == "DigitalDocument"
    assert first["appearance"]["name"] == "table_0"
    assert len(first["appearance"]["abstract"]) <= 160
    assert wire["channelData"] == {"feedbackLoop": {"type": "default"}}


def test_citations_go_only_on_the_message_that_carries_their_markers() -> None:
    answer = finished(KnowledgePart("k", (KnowledgeEntry("orders"),)),
                      TextPart("t", "\n\n".join(f"Paragraph {i}. " + "word " * 300 for i in range(12))))
    activities = plain_activities(answer, "r1", names)
    assert len(activities) > 1
    cited = [a for a in activities if any(getattr(e, "citation", None) for e in a.entities or [])]
    [holder] = cited
    assert "orders [1]" in holder.text
    assert all(len(a.entities) == 1 for a in activities)  # every message is labelled, once


def test_cards_keep_the_plain_consulted_list() -> None:
    answer = finished(KnowledgePart("k", (KnowledgeEntry("orders"), KnowledgeEntry("payments"))),
                      TextPart("t", "ok"))
    [card] = render_final(answer, "r", {}, names)
    assert "📚 Consulted: orders, payments" in texts(card) and "[1]" not in texts(card)


def test_suggested_follow_ups_are_submit_buttons_on_the_last_card() -> None:
    long = "Compare " + "very " * 30 + "long question"
    answer = finished(TextPart("t", "ok"), SuggestionsPart("s", ("Top 10 states", long, "Top 10 states",
                                                                 "By month", "Fourth")))
    [card] = render_final(answer, "r", {}, names)
    buttons = [n for n in walk(card) if n.get("type") == "Action.Submit"]
    assert [b["data"] for b in buttons] == [{"action": "ask", "question": "Top 10 states"},
                                            {"action": "ask", "question": long},
                                            {"action": "ask", "question": "By month"}]
    assert len(buttons[1]["title"]) <= 80 and buttons[1]["tooltip"] == long
    assert "Ask next:" in texts(card)
    failed = finished(TextPart("t", "partial"), SuggestionsPart("s", ("Top 10 states",)),
                      outcome=Outcome.STOPPED)
    assert not [n for n in walk(render_final(failed, "r", {}, names)) if n.get("type") == "Action.Submit"]
    assert "Ask next: “Top 10 states”" in "\n".join(plain_messages(answer, "r", names))


def test_a_question_from_a_click_says_who_asked_it() -> None:
    intro = "Bob Babbage asked: Top 10 states"
    progress = render_progress(Answer(), "r", intro=intro)
    assert progress["body"][0]["text"] == "💬 Bob Babbage asked: Top 10 states"
    cards = render_final(finished(TextPart("t", "x " * 20000)), "r", {}, names, intro=intro)
    assert len(cards) > 1
    assert cards[0]["body"][0]["text"] == "💬 Bob Babbage asked: Top 10 states"
    assert "asked" not in texts(cards[1])
    assert plain_messages(finished(TextPart("t", "ok")), "r", names, intro=intro)[0].startswith("💬 Bob")


def test_halves_of_an_emoji_are_joined_and_a_lone_half_replaced() -> None:
    halves = "Top \ud83d\ude00 and lone \ud83d."
    answer = finished(TextPart("t", halves))
    [card] = render_final(answer, "r", {}, names)  # sizing the card must not choke on them
    activity = card_activity(card, summary_text(answer))
    text = texts(activity.attachments[0].content)
    assert "Top 😀 and lone \ufffd." in text
    text.encode("utf-8")
    assert activity.summary == "Top 😀 and lone \ufffd."
    assert text_activity(halves).text == "Top 😀 and lone \ufffd."


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
    assert "Consulted" not in text  # nothing was consulted: no empty list
    table = TablePart("tbl", (Column("n"),), tuple((i,) for i in range(150)), title="Orders")
    text = "\n".join(plain_messages(finished(table), "r1", names, files={"tbl": Files.OFFER}))
    assert "📋 Orders: 150 rows, not shown in this plain-text version (its CSV file follows)." in text

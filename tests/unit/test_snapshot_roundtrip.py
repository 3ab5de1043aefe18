"""The stored answer snapshot reads back as the answer that was shown (what a replica delivers
again after the one that stored it died), charts excepted: their bytes were never stored."""

from __future__ import annotations

from adapters.answer import (
    Answer, ChartPart, Column, ErrorPart, KnowledgeEntry, KnowledgePart, Outcome, SqlPart,
    StepPart, StepState, SuggestionsPart, TablePart, TextPart,
)
from bot.relay.snapshot import CHARTS_LOST, answer_from_dict, answer_to_dict


def test_a_stored_answer_reads_back_part_for_part() -> None:
    answer = Answer(parts=(
        StepPart("s1", "Writing SQL", StepState.DONE, "2 tables"),
        KnowledgePart("k", (KnowledgeEntry("revenue", "sum of payments"),)),
        TextPart("t", "São Paulo leads"),
        SqlPart("q", "SELECT 1", "the query"),
        TablePart("r", (Column("city", "text"), Column("total", "int")), (("SP", 5), ("RJ", 2)), 2),
        SuggestionsPart("f", ("and by month?",)),
        ErrorPart("e", "partly failed", "E1", "run42"),
    ), outcome=Outcome.DONE, session_id="s", run_id="r1", elapsed=3.5)
    assert answer_from_dict(answer_to_dict(answer)) == answer


def test_charts_become_a_notice_and_junk_parts_are_skipped() -> None:
    answer = Answer(parts=(TextPart("t", "text"), ChartPart("c", "Revenue", png=b"\x89PNG")),
                    outcome=Outcome.DONE)
    stored = answer_to_dict(answer)
    stored["parts"].append({"kind": "hologram", "id": "x"})
    stored["parts"].append("not a part")
    back = answer_from_dict(stored)
    assert back.parts == (TextPart("t", "text"),)
    assert back.notice == CHARTS_LOST and back.outcome is Outcome.DONE

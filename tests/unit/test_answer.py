"""The normalized answer model: upsert by id, finishing, and snapshots."""

from adapters.answer import (
    Answer, ChartPart, ErrorPart, Finished, Outcome, PartUpsert, SessionAssigned, SqlPart,
    StatusPart, TextPart,
)
from adapters.text import unescape_literal
from bot.relay.snapshot import answer_to_dict


def test_part_with_same_id_replaces_in_place() -> None:
    a = Answer().apply(PartUpsert(TextPart("t", "partial")))
    a = a.apply(PartUpsert(SqlPart("s", "SELECT 1")))
    a = a.apply(PartUpsert(TextPart("t", "partial and more")))
    assert [p.id for p in a.parts] == ["t", "s"]
    assert a.text == "partial and more"


def test_session_and_finish() -> None:
    a = Answer().apply(SessionAssigned("sess", "run1"))
    a = a.apply(Finished(Outcome.FAILED, ErrorPart("error", "boom", code="X")))
    assert (a.session_id, a.run_id, a.outcome) == ("sess", "run1", Outcome.FAILED)
    assert a.errors[0].message == "boom"
    # nothing changes after the end
    assert a.apply(PartUpsert(TextPart("late", "x"))) is a


def test_latest_status_and_emptiness() -> None:
    a = Answer().apply(PartUpsert(StatusPart("status", "one")))
    assert a.is_empty and a.status.text == "one"
    a = a.apply(PartUpsert(StatusPart("status", "two")))
    assert a.status.text == "two" and len(a.parts) == 1


def test_snapshot_leaves_png_bytes_out() -> None:
    a = Answer().upsert(ChartPart("c", title="T", png=b"\x89PNG...")).finish(Outcome.DONE)
    d = answer_to_dict(a)
    assert d["outcome"] == "done"
    assert d["parts"][0]["has_png"] is True and "png" not in d["parts"][0]
    assert d["parts"][0]["kind"] == "chart"


def test_snapshot_keeps_a_chart_spec_without_its_data_rows() -> None:
    rows = [{"state": f"S{i}", "revenue": i} for i in range(1000)]
    spec = {"mark": "bar", "title": "Revenue", "data": {"values": rows},
            "encoding": {"x": {"field": "state"}, "y": {"field": "revenue"}}}
    d = answer_to_dict(Answer().upsert(ChartPart("c", vega_spec=spec)))
    part = d["parts"][0]
    assert part["vega_spec"] == {"mark": "bar", "title": "Revenue",
                                 "encoding": {"x": {"field": "state"}, "y": {"field": "revenue"}}}
    assert part["data_rows"] == 1000
    assert "S999" not in str(d)


def test_unescape_literal() -> None:
    assert unescape_literal("a\\nb \\\"q\\\" S\\u00e3o") == 'a\nb "q" São'
    assert unescape_literal("plain") == "plain"
    assert unescape_literal("bad \\x escape") == "bad \\x escape"
    assert unescape_literal(None) == ""

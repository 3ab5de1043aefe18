"""Poll items → parts: field lookup order, every documented dataType, malformed input."""

from __future__ import annotations

import json
import logging

import pytest

from adapters.answer import (
    ChartPart, CodePart, Column, KnowledgePart, MetricPart, Outcome, SqlPart, StatusPart, StepPart,
    TextPart,
)
from adapters.clickzetta.items import parse_columns, read_field, to_part, translate
from tests.fakes.clickzetta import CHART_SQL, FakeQuestion, default_script


def test_read_field_priority_top_then_modelres_then_rawres() -> None:
    item = {"a": "top", "modelRes": {"data": {"a": "model", "b": "model"}},
            "rawRes": json.dumps({"data": {"a": "raw", "b": "raw", "c": "raw"}})}
    assert read_field(item, "a") == "top"
    assert read_field(item, "b") == "model"
    assert read_field(item, "c") == "raw"
    assert read_field(item, "d") is None


def test_read_field_treats_empty_as_missing_and_tolerates_garbage() -> None:
    assert read_field({"message": "", "modelRes": {"data": {"message": "deep"}}}, "message") == "deep"
    assert read_field({"rawRes": "not json{", "modelRes": "also not json"}, "message") is None
    assert read_field({"rawRes": json.dumps([1, 2]), "modelRes": {"data": None}}, "message") is None
    assert read_field({"modelRes": json.dumps({"data": {"x": 1}})}, "x") == 1


@pytest.mark.parametrize("raw, expected", [
    ("District (STRING), Total Transaction Amount (10K CNY) (LONG)",
     (Column("District", "STRING"), Column("Total Transaction Amount (10K CNY)", "LONG"))),
    ("Amount (10K, CNY) (DECIMAL(10,2)), Month (DATE)",
     (Column("Amount (10K, CNY)", "DECIMAL(10,2)"), Column("Month", "DATE"))),
    ("Tags (ARRAY<STRING>), Price < 100 (LONG)",
     (Column("Tags", "ARRAY<STRING>"), Column("Price < 100", "LONG"))),
    ("district, Total (10K CNY)", (Column("district", ""), Column("Total (10K CNY)", ""))),
    ('[{"name": "d", "type": "string"}, "t (long)"]', (Column("d", "STRING"), Column("t", "LONG"))),
    ("", ()),
    (None, ()),
])
def test_parse_columns_takes_the_last_parenthesised_token_as_type(raw, expected) -> None:
    assert parse_columns(raw) == expected


def _final_items() -> list[dict]:
    question = FakeQuestion(1, 1, "q", default_script(1, "q"))
    while question.step < len(question.script):
        question.advance()
    return question.items


def test_default_script_maps_to_the_documented_parts() -> None:
    view = translate(_final_items())
    kinds = [type(p) for p in view.parts]
    assert kinds == [StatusPart, KnowledgePart, MetricPart, SqlPart, ChartPart, TextPart]
    status, knowledge, metric, sql, chart, text = view.parts
    assert status.text == "Thinking next step"
    assert knowledge.entries[0].title == "Beijing Second-hand Housing 10-year Transaction Data"
    assert knowledge.entries[0].detail == "If no time is explicitly specified in the question, use yesterday"
    assert metric.name == "Total Transaction Amount by District in the Past 6 Years"
    assert json.loads(metric.dsl)["metricDsl"]["metricId"]["id"] == 631
    assert "physicalMetricDsl" in json.loads(metric.dsl)
    assert sql.sql == CHART_SQL.replace(" FROM", "\nFROM")  # read from rawRes, literal \n unescaped
    assert sql.title == "Generated SQL"
    assert chart.title.startswith("Beijing Second-hand Housing")
    assert chart.chart_type == "ECHARTS"
    assert chart.columns[1] == Column("Total Transaction Amount (10K CNY)", "LONG")
    assert chart.sql == CHART_SQL
    assert "\n- Chaoyang District" in text.markdown and "\\n" not in text.markdown
    assert view.finished is not None and view.finished.outcome is Outcome.DONE
    assert len({p.id for p in view.parts}) == len(view.parts)


@pytest.mark.parametrize("data_type, outcome", [
    ("finish", Outcome.DONE), ("finish_stop", Outcome.STOPPED), ("error", Outcome.FAILED)])
def test_terminal_is_judged_by_the_last_item(data_type, outcome) -> None:
    items = [{"id": "1", "dataType": "notify", "message": "x"},
             {"id": "2", "dataType": data_type, "message": "Task execution failed"}]
    view = translate(items)
    assert view.finished.outcome is outcome
    if outcome is Outcome.FAILED:
        assert view.finished.error.message == "Task execution failed"
        assert view.finished.error.code == "analysis_error"
    # the same terminal type earlier in the list does not end the run
    assert translate(items + [{"id": "3", "dataType": "notify"}]).finished is None


def test_summary_falls_back_to_message_then_modelres_message() -> None:
    assert to_part({"id": "1", "dataType": "summary", "message": "plain"}, 0, last=False).markdown == "plain"
    item = {"id": "1", "dataType": "summary", "message": "",
            "modelRes": {"data": {"message": "line1\\nline2"}}}
    assert to_part(item, 0, last=False).markdown == "line1\nline2"


def test_unknown_types_and_garbage_are_progress_not_crashes(caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="adapters.clickzetta.items")
    items = ["not a dict", None,
             {"id": "a", "dataType": "brand_new_type", "rawRes": "not json{"},
             {"id": "b", "dataType": "thinking", "modelRes": {"data": {"message": "Hmm"}}},
             {"dataType": "message", "message": "Executing query"},
             {"id": "c", "dataType": "code", "codeType": "python", "code": "print(1)"},
             {"id": "d", "dataType": "code", "message": "Writing SQL"},
             {"id": "e", "dataType": "message", "knowledgeData": "not json"}]
    view = translate(items)
    assert view.finished is None
    unknown, thinking, log_line, python, empty_code, knowledge = view.parts
    assert isinstance(unknown, StatusPart) and unknown.text == "Working…"
    assert isinstance(thinking, StatusPart) and thinking.text == "Hmm"
    assert isinstance(log_line, StepPart) and log_line.title == "Executing query"
    assert log_line.id == "cz-at-2"  # no id: a stable position-based id
    assert isinstance(python, CodePart) and python.language == "python"
    assert isinstance(empty_code, StepPart)
    assert isinstance(knowledge, KnowledgePart)
    assert "brand_new_type" in caplog.text


# -- resGroupId: only the latest group's result -------------------------------------------------
def _grouped() -> list[dict]:
    from tests.fakes.clickzetta import grouped_script

    return grouped_script(1, "q")


def test_latest_group_only() -> None:
    from tests.fakes.clickzetta import (
        CHART_SQL, GROUPED_FINAL_SUMMARY, GROUPED_FIRST_SQL, GROUPED_FIRST_SUMMARY,
    )

    view = translate(_grouped())
    assert view.finished is not None and view.finished.outcome is Outcome.DONE
    texts = [p.markdown for p in view.parts if isinstance(p, TextPart)]
    assert texts == [GROUPED_FINAL_SUMMARY]
    assert GROUPED_FIRST_SUMMARY not in " ".join(texts)
    assert [p.sql for p in view.parts if isinstance(p, SqlPart)] == [CHART_SQL]
    assert [p.sql for p in view.parts if isinstance(p, ChartPart)] == [CHART_SQL]
    assert GROUPED_FIRST_SQL not in json.dumps([getattr(p, "sql", "") for p in view.parts])
    # what was consulted stays; the first pass's result and progress are withdrawn
    assert any(isinstance(p, KnowledgePart) for p in view.parts)
    assert set(view.withdrawn) == {"cz-101", "cz-103", "cz-104", "cz-105"}
    assert not {p.id for p in view.parts} & set(view.withdrawn)


def test_a_single_group_is_shown_whole() -> None:
    first = _grouped()[:5]  # only group 1 so far: it is the latest
    view = translate(first)
    assert [p.markdown for p in view.parts if isinstance(p, TextPart)] == ["First pass: counted deals per district."]
    assert view.withdrawn == ()
    assert view.finished is None


def test_group_ids_compare_as_values_and_ungrouped_items_stay() -> None:
    items = [
        {"id": "1", "dataType": "summary", "summaryData": "old", "resGroupId": 7},
        {"id": "2", "dataType": "notify", "message": "no group"},
        {"id": "3", "dataType": "summary", "summaryData": "new", "resGroupId": "8"},
        {"id": "4", "dataType": "finish", "resGroupId": 8},
    ]
    view = translate(items)
    assert [getattr(p, "markdown", None) for p in view.parts] == [None, "new"]
    assert isinstance(view.parts[0], StatusPart)
    assert view.withdrawn == ("cz-1",)
    same = translate([{**items[0], "resGroupId": "7"}, {**items[2], "resGroupId": 7}, {**items[3], "resGroupId": 7}])
    assert [p.markdown for p in same.parts if isinstance(p, TextPart)] == ["new"]


def test_only_the_last_summary_of_a_group_is_the_answer() -> None:
    items = [{"id": "1", "dataType": "summary", "summaryData": "draft"},
             {"id": "2", "dataType": "summary", "message": "final"},
             {"id": "3", "dataType": "finish"}]
    view = translate(items)
    assert [p.markdown for p in view.parts if isinstance(p, TextPart)] == ["final"]
    assert view.withdrawn == ("cz-1",)

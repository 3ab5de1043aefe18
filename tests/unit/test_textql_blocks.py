"""Block JSON → parts, without the network: the shapes the seed shows and the ones it leaves open."""

from __future__ import annotations

import pytest

from adapters.answer import (
    CodePart, ErrorPart, KnowledgePart, SqlPart, StatusPart, TablePart, TextPart,
)
from adapters.textql.blocks import BlockError, decode_block, translate_block
from adapters.textql.cells import asset_ref, markdown_table, translate_cell
from tests.fakes.textql import SEED_ROW, ontology_block, python_block


def parts_by_id(view):
    return {p.id: p for p in view.parts}


def test_text_block_part_id_is_derived_from_block_id():
    view = translate_block({"tag": "TextBlock", "contents": "Hello", "id": "abc123"}, fallback_id="x")
    assert view.parts == (TextPart("abc123:text", "Hello"),)


def test_ontology_block_seed_example():
    view = translate_block(ontology_block(), fallback_id="x")
    parts = parts_by_id(view)
    bid = "e0c4b91b-950a-48cc-a5e1-9d55753bf4d9"
    sql = parts[f"{bid}:sql"]
    assert isinstance(sql, SqlPart) and "TPCDS_SF100TCL.STORE" in sql.sql
    assert sql.title == "Stores ordered by size descending"
    table = parts[f"{bid}:table"]
    assert isinstance(table, TablePart)
    assert [c.name for c in table.columns][:2] == ["S_STORE_ID", "S_NUMBER_EMPLOYEES"]
    assert [c.type for c in table.columns][:2] == ["string", "number"]
    assert table.rows == (tuple(None if v == "null" else v for v in SEED_ROW),)
    assert table.total is None  # the seed's sqlResult gives no row count
    knowledge = parts[f"{bid}:knowledge"]
    assert isinstance(knowledge, KnowledgePart)
    assert knowledge.entries[0].title == "Object: Store"
    assert knowledge.entries[0].detail == "SNOWFLAKE_SAMPLE_DATA.TPCDS_SF100TCL.STORE"
    assert "S_STORE_NAME" in knowledge.entries[1].detail
    assert not any(isinstance(p, StatusPart) for p in view.parts)  # complete: no progress line


def test_ontology_oai_output_is_shown_as_text():
    """Seed: ``result.oai_output`` is the "Message for the user about the data loaded"."""
    bid = "e0c4b91b-950a-48cc-a5e1-9d55753bf4d9"
    view = translate_block(ontology_block(), fallback_id="x")
    assert parts_by_id(view)[f"{bid}:output"] == TextPart(
        f"{bid}:output", "Data from object Store loaded into DataFrame df1 ...")
    assert [p.id for p in view.parts][-1] == f"{bid}:output"  # after the table it describes
    assert not any(p.id.endswith(":output") for p in translate_block(
        ontology_block(complete=False), fallback_id="x").parts)  # none yet: nothing shown


def _rows(n):
    return [[f"S{i}", str(i), "null", "null", str(1000 - i), "1997-03-13", f"store {i}", str(i)]
            for i in range(n)]


def test_ontology_table_keeps_every_row_textql_sent():
    """Platforms decide how much to show (and attach the rest as CSV); the adapter cuts nothing.
    The seed's ``sqlResult`` carries no row count, so ``total`` stays unknown."""
    view = translate_block(ontology_block(rows=_rows(1000)), fallback_id="x")
    table = next(p for p in view.parts if isinstance(p, TablePart))
    assert len(table.rows) == 1000 and table.rows[999][0] == "S999"
    assert table.total is None


def test_ontology_table_column_types_from_the_seed():
    table = next(p for p in translate_block(ontology_block(), fallback_id="x").parts
                 if isinstance(p, TablePart))
    assert [(c.name, c.type) for c in table.columns] == [
        ("S_STORE_ID", "string"), ("S_NUMBER_EMPLOYEES", "number"), ("S_REC_END_DATE", "string"),
        ("S_CLOSED_DATE_SK", "string"), ("S_FLOOR_SPACE", "number"), ("S_REC_START_DATE", "date"),
        ("S_STORE_NAME", "string"), ("S_STORE_SK", "number")]


@pytest.mark.parametrize("where", ["sqlResult", "sqlResult.result"])
def test_ontology_table_total_when_textql_reports_one(where):
    """No count is documented; one under a usual name (``numRows`` as in RPC ``dataframe.info``)
    next to the rows or on ``sqlResult`` is taken as the full row count."""
    block = ontology_block(rows=_rows(3))
    sql_result = block["contents"]["result"]["sqlResult"]
    (sql_result if where == "sqlResult" else sql_result["result"])["numRows"] = 4321
    table = next(p for p in translate_block(block, fallback_id="x").parts if isinstance(p, TablePart))
    assert len(table.rows) == 3 and table.total == 4321


def test_ontology_preview_is_used_when_there_is_no_sql_result():
    """``preview`` ("Preview of the loaded data"; elided in the seed) in the ``sqlResult`` shape."""
    block = ontology_block()
    result = block["contents"]["result"]
    result["preview"] = {"result": result.pop("sqlResult")["result"]}
    table = next(p for p in translate_block(block, fallback_id="x").parts if isinstance(p, TablePart))
    assert table.rows[0][0] == "AAAAAAAANIBAAAAA" and table.columns[1].type == "number"


def test_ontology_table_with_rows_as_objects_and_no_types():
    block = ontology_block()
    block["contents"]["result"]["sqlResult"] = {"result": {
        "colNames": ["city", "n"], "resultVals": [{"city": "Oslo", "n": "3"}, {"city": "Bergen", "n": "null"}]}}
    table = next(p for p in translate_block(block, fallback_id="x").parts if isinstance(p, TablePart))
    assert [(c.name, c.type) for c in table.columns] == [("city", ""), ("n", "")]
    assert table.rows == (("Oslo", "3"), ("Bergen", None))


def test_ontology_in_progress_shows_what_is_queried():
    view = translate_block(ontology_block(complete=False), fallback_id="x")
    assert view.parts == (StatusPart("status", "Ana is querying the data warehouse: "
                                               "Stores ordered by size descending…"),)


def test_python_block_seed_shape_and_guessed_object_shape():
    seed = python_block("def456", "print(1)", [{"tag": "TextResult", "contents": "1"},
                                               {"tag": "ImageUrlResult", "contents": "https://x/a.png"}])
    guessed = {"tag": "PythonBlock", "id": "def456", "contents": {
        "code": "print(1)", "results": [{"TextResult": "1"}, {"ImageUrlResult": {"url": "https://x/a.png"}}]}}
    for block in (seed, guessed):
        view = translate_block(block, fallback_id="x")
        assert view.parts[0] == CodePart("def456:code", "print(1)", "python", "1")
        assert [(r.part_id, r.url) for r in view.images] == [("def456:image:0", "https://x/a.png")]


def test_python_block_without_results_is_running():
    view = translate_block(python_block("p1", "x = 1"), fallback_id="x")
    assert view.parts[0] == CodePart("p1:code", "x = 1", "python", "")
    assert isinstance(view.parts[1], StatusPart)


def test_error_block_without_id_uses_fallback():
    view = translate_block({"tag": "ErrorBlock", "contents": "boom"}, fallback_id="block:1")
    assert view.error == ErrorPart("block:1", "boom", code="ana_error")
    assert view.parts == (view.error,)


def test_unknown_tag_is_progress_not_crash():
    view = translate_block({"tag": "SqlBlock", "id": "q1", "contents": {"weird": [1, 2]}}, fallback_id="x")
    assert not view.known
    assert view.parts == (StatusPart("status", "Ana is working (sql)…"),)


@pytest.mark.parametrize("data", ['{"tag":"TextBlock","contents":"bro', "[1,2]", "42"])
def test_decode_block_rejects_non_objects(data):
    with pytest.raises(BlockError):
        decode_block(data)


def test_markdown_table_drops_pandas_index():
    md = "|    | region   |   revenue |\n|---:|:---------|----------:|\n|  0 | EMEA     |      1200 |"
    columns, rows, total = markdown_table(md)
    assert [c.name for c in columns] == ["region", "revenue"]
    assert rows == (("EMEA", "1200"),) and total is None  # a preview: the full count is not given
    assert markdown_table("not a table") is None


def test_markdown_table_keeps_every_row():
    md = "| city | n |\n|:-----|--:|\n" + "".join(f"| c{i} | {i} |\n" for i in range(250))
    columns, rows, _ = markdown_table(md)
    assert len(rows) == 250 and rows[-1] == ("c249", "249")
    view = translate_cell({"id": "c1", "type": "sql", "status": "completed", "query": "SELECT 1",
                           "dataframe_preview": md})
    table = next(p for p in view.parts if isinstance(p, TablePart))
    assert len(table.rows) == 250 and table.total is None


def test_v2_cells_and_assets():
    view = translate_cell({"id": "c1", "type": "sql", "status": "running", "query": "SELECT 1"})
    assert view.parts[0] == SqlPart("c1:sql", "SELECT 1")
    assert isinstance(view.parts[-1], StatusPart)
    ref, note = asset_ref({"name": "rev.png", "type": "image", "url": "https://s3/rev.png", "cell_id": "c2"})
    assert ref is not None and ref.part_id == "c2:asset:rev.png" and note is None
    ref, note = asset_ref({"name": "echarts_chart_rev.html", "type": "chart", "url": "https://s3/x.html"})
    assert ref is None and note is not None and note.png is None and "interactive" in note.note

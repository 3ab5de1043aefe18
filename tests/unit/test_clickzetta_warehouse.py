"""Chart SQL: the read-only guard, the SQLite warehouse, and the Vega-Lite spec builder."""

from __future__ import annotations

import datetime as dt
import sqlite3
from decimal import Decimal

import pytest
from sqlalchemy.exc import OperationalError

from adapters.answer import ChartPart, Column
from adapters.clickzetta.charts import NO_WAREHOUSE_NOTE, ChartMaker
from adapters.clickzetta.vega import NotChartable, build_spec
from adapters.clickzetta.warehouse import (
    NotReadOnly, QueryResult, Warehouse, WarehouseError, _Interrupter, ensure_read_only, plain,
)


# -- guard ------------------------------------------------------------------------------------
@pytest.mark.parametrize("sql, expected", [
    ("SELECT 1", "SELECT 1"),
    ("  select a from t;  ", "select a from t"),
    ("-- a comment\nWITH x AS (SELECT 1 AS a) SELECT a FROM x; -- done", "-- a comment\nWITH x AS (SELECT 1 AS a) SELECT a FROM x"),
    ("SELECT 'delete; drop table t' AS note, `update` FROM t", "SELECT 'delete; drop table t' AS note, `update` FROM t"),
    ("(SELECT 1)", "(SELECT 1)"),
    ("SELECT REPLACE(name, 'a', 'b') FROM t WHERE x = 'it''s'", "SELECT REPLACE(name, 'a', 'b') FROM t WHERE x = 'it''s'"),
])
def test_guard_accepts_one_select(sql, expected) -> None:
    assert ensure_read_only(sql) == expected


@pytest.mark.parametrize("sql, reason", [
    ("DELETE FROM t", "not a SELECT"),
    ("delete from t where 1=1", "not a SELECT"),
    ("SELECT 1; DELETE FROM t", "more than one statement"),
    ("SELECT 1; SELECT 2", "more than one statement"),
    ("WITH gone AS (DELETE FROM t RETURNING *) SELECT * FROM gone", "DELETE"),
    ("SELECT * INTO backup FROM t", "INTO"),
    ("SELECT 1 /* unterminated", "unterminated"),
    ("SELECT 'open", "unterminated"),
    ("PRAGMA writable_schema = 1", "not a SELECT"),
    ("", "empty"),
    ("  ;  ", "empty"),
])
def test_guard_rejects_everything_else(sql, reason) -> None:
    with pytest.raises(NotReadOnly, match=reason):
        ensure_read_only(sql)


def test_plain_values_are_json_safe() -> None:
    assert plain(Decimal("1.5")) == 1.5 and plain(Decimal("NaN")) is None
    assert plain(dt.date(2021, 1, 2)) == "2021-01-02" and plain(float("nan")) is None
    assert plain(b"\x00") is None and plain(True) is True


# -- SQLite warehouse -------------------------------------------------------------------------
@pytest.fixture
def sales_db(tmp_path):
    path = tmp_path / "sales.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE sales (region TEXT, month TEXT, amount REAL)")
        conn.executemany("INSERT INTO sales VALUES (?, ?, ?)",
                         [(f"r{i % 5}", f"2021-{i % 12 + 1:02d}-01", i * 1.5) for i in range(40)])
    return path


@pytest.mark.parametrize("scheme", ["sqlite", "sqlite+aiosqlite"])
async def test_fetch_caps_rows(sales_db, scheme) -> None:
    warehouse = Warehouse(f"{scheme}:///{sales_db}", row_cap=10, timeout=5)
    try:
        result = await warehouse.fetch("SELECT region, amount FROM sales ORDER BY amount;")
        assert result.columns == ("region", "amount")
        assert len(result.rows) == 10 and result.truncated
        small = await warehouse.fetch("SELECT count(*) AS n FROM sales")
        assert small.rows == ((40,),) and not small.truncated
    finally:
        await warehouse.aclose()


async def test_connection_itself_is_read_only(sales_db) -> None:
    """Even SQL that slipped past the guard cannot write: mode=ro plus query_only."""
    warehouse = Warehouse(f"sqlite:///{sales_db}")
    engine = warehouse._get_engine()
    try:
        with engine.connect() as conn, pytest.raises(OperationalError, match="readonly|read-only|query_only"):
            warehouse._execute(conn, "DELETE FROM sales", _Interrupter())
    finally:
        await warehouse.aclose()
    with sqlite3.connect(sales_db) as conn:
        assert conn.execute("SELECT count(*) FROM sales").fetchone() == (40,)


async def test_guard_runs_before_the_database(sales_db) -> None:
    warehouse = Warehouse(f"sqlite:///{sales_db}")
    with pytest.raises(NotReadOnly):
        await warehouse.fetch("DELETE FROM sales")
    with pytest.raises(NotReadOnly):
        await warehouse.fetch("SELECT 1; DROP TABLE sales")
    await warehouse.aclose()


async def test_slow_query_is_interrupted(sales_db) -> None:
    warehouse = Warehouse(f"sqlite:///{sales_db}", timeout=0.2)
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    try:
        with pytest.raises(WarehouseError, match="longer than 0.2 s"):
            await warehouse.fetch(endless)
        assert (await warehouse.fetch("SELECT 1")).rows == ((1,),)  # the pool is still usable
    finally:
        await warehouse.aclose()


async def test_missing_file_and_missing_dialect_are_explained(tmp_path) -> None:
    missing = tmp_path / "nope.db"
    with pytest.raises(WarehouseError, match="unable to open"):
        await Warehouse(f"sqlite:///{missing}").fetch("SELECT 1")
    assert not missing.exists()  # read-only mode never creates a database
    with pytest.raises(WarehouseError, match="clickzetta-sqlalchemy") as info:
        await Warehouse("clickzetta://user:hunter2@instance.api.clickzetta.com/ws").fetch("SELECT 1")
    assert "hunter2" not in str(info.value)
    with pytest.raises(WarehouseError, match="not a valid"):
        await Warehouse("::nonsense::").fetch("SELECT 1")


# -- chart maker ------------------------------------------------------------------------------
async def test_chart_maker_without_warehouse_adds_a_note() -> None:
    chart = ChartPart(id="c", title="t", sql="SELECT 1", chart_type="ECHARTS")
    made = await ChartMaker(None).complete(chart)
    assert made.note == NO_WAREHOUSE_NOTE and made.sql == "SELECT 1" and made.vega_spec is None


async def test_chart_maker_explains_rejected_sql(sales_db) -> None:
    maker = ChartMaker(Warehouse(f"sqlite:///{sales_db}"))
    made = await maker.complete(ChartPart(id="c", sql="DELETE FROM sales"))
    assert made.vega_spec is None and "not a SELECT" in made.note
    await maker.aclose()


# -- Vega-Lite --------------------------------------------------------------------------------
def _result(columns, rows) -> QueryResult:
    return QueryResult(columns=tuple(columns), rows=tuple(tuple(r) for r in rows))


def test_category_and_measure_make_a_bar() -> None:
    spec = build_spec("By district", (Column("District", "STRING"), Column("Total (10K CNY)", "LONG")),
                      _result(["district", "total"], [("A", 3), ("B", 2)]))
    assert spec["mark"]["type"] == "bar"
    assert spec["encoding"]["x"] == {"field": "c0", "type": "nominal", "title": "District", "sort": None,
                                     "axis": {"labelAngle": 0}}
    assert spec["encoding"]["y"]["title"] == "Total (10K CNY)"
    assert spec["data"]["values"] == [{"c0": "A", "c1": 3}, {"c0": "B", "c1": 2}]
    assert spec["title"] == "By district" and spec["width"] > 0 and spec["height"] > 0


def test_many_categories_make_horizontal_bars() -> None:
    rows = [(f"cat{i}", i) for i in range(30)]
    spec = build_spec("", (), _result(["name", "value"], rows))
    assert spec["encoding"]["y"]["field"] == "c0" and spec["encoding"]["x"]["field"] == "c1"
    assert "title" not in spec


def test_time_and_measure_make_a_line() -> None:
    spec = build_spec("Trend", (Column("Month", "DATE"), Column("Sales", "DOUBLE")),
                      _result(["m", "s"], [("2021-01-01", 1.0), ("2021-02-01", 2.0)]))
    assert spec["mark"]["type"] == "line" and spec["encoding"]["x"]["type"] == "temporal"
    untyped = build_spec("", (), _result(["m", "s"], [("2021-01", 1.0), ("2021-02", 2.0)]))
    assert untyped["mark"]["type"] == "line"
    years = build_spec("", (Column("Year", "LONG"), Column("Deals", "LONG")), _result(["y", "d"], [(2020, 1), (2021, 5)]))
    assert years["mark"]["type"] == "line" and years["encoding"]["x"]["type"] == "ordinal"


def test_two_measures_make_points_and_one_value_a_big_number() -> None:
    spec = build_spec("", (Column("Price", "DOUBLE"), Column("Area", "DOUBLE")),
                      _result(["p", "a"], [(1.0, 2.0), (3.0, 4.0)]))
    assert spec["mark"]["type"] == "point"
    big = build_spec("Total", (Column("Total", "LONG"),), _result(["t"], [(1234,)]))
    assert big["mark"]["type"] == "text" and big["encoding"]["text"]["field"] == "c0"
    column = build_spec("", (Column("Total", "LONG"),), _result(["t"], [(1,), (2,)]))
    assert column["mark"]["type"] == "bar"


def test_hints_and_several_measures() -> None:
    columns = (Column("Region", "STRING"), Column("Sales", "LONG"))
    pie = build_spec("", columns, _result(["r", "s"], [("A", 1), ("B", 2)]), chart_type="pie")
    assert pie["mark"]["type"] == "arc" and pie["encoding"]["theta"]["field"] == "c1"
    line = build_spec("", columns, _result(["r", "s"], [("A", 1), ("B", 2)]), chart_type="LINE_CHART")
    assert line["mark"]["type"] == "line"
    folded = build_spec("", (Column("Region", "STRING"), Column("Sales", "LONG"), Column("Cost", "LONG")),
                        _result(["r", "s", "c"], [("A", 1, 2)]))
    assert folded["data"]["values"] == [{"c0": "A", "series": "Sales", "value": 1},
                                        {"c0": "A", "series": "Cost", "value": 2}]
    assert folded["encoding"]["color"]["field"] == "series" and "xOffset" in folded["encoding"]


def test_not_chartable() -> None:
    with pytest.raises(NotChartable, match="no rows"):
        build_spec("", (), _result(["a"], []))
    with pytest.raises(NotChartable, match="numeric"):
        build_spec("", (Column("Name", "STRING"),), _result(["n"], [("x",)]))
    # a column declared as text stays a category even with numeric-looking values
    spec = build_spec("", (Column("Code", "STRING"), Column("N", "LONG")), _result(["c", "n"], [(101, 1)]))
    assert spec["encoding"]["x"]["type"] == "nominal"


def test_specs_render_with_vl_convert() -> None:
    vl_convert = pytest.importorskip("vl_convert")
    spec = build_spec("By district", (Column("District", "STRING"), Column("Total (10K CNY)", "LONG")),
                      _result(["district", "total"], [("A.b", 3), ("B[1]", 2)]))
    png = vl_convert.vegalite_to_png(spec)
    assert png.startswith(b"\x89PNG")

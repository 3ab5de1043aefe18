"""Turn an ``echarts_plus`` chart description into a drawable chart and a result table, once
per item.

Polls are cumulative, so the same chart item arrives on every poll after it first appears;
:class:`ChartMaker` remembers what it made for each distinct chart part and runs its SQL only
once. Without a warehouse, or when the query cannot run, the chart keeps its title, type,
columns and SQL and gets a ``note`` saying why there is no picture — a quiet remark, never a
failed run.

The rows fetched for the chart are also the answer's result table (``<chart id>:table``): the
agent itself returns no rows at all (chart metadata and SQL only), so without a warehouse there
is no table. The table is made even when the rows make no chart (no numeric column, no rows).
Columns take the chart's names and types from ``echarts_plus.columns`` when they line up with the
query's columns, else the query's own names.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from adapters.answer import ChartPart, Column, TablePart
from adapters.clickzetta.vega import NotChartable, build_spec
from adapters.clickzetta.warehouse import QueryResult, Warehouse, WarehouseError
from adapters.text import fix_surrogates

log = logging.getLogger(__name__)

NO_WAREHOUSE_NOTE = ("Chart not drawn: set CLICKZETTA_WAREHOUSE_URL so the bot can run the chart "
                     "SQL (read-only) and draw it.")


def table_id(chart_id: str) -> str:
    return f"{chart_id}:table"


def result_table(chart: ChartPart, result: QueryResult) -> TablePart:
    """The rows fetched for ``chart`` as its result table."""
    meta = chart.columns
    by_name = {c.name.lower(): c for c in meta}
    columns = []
    for i, name in enumerate(result.columns):
        column = meta[i] if len(meta) == len(result.columns) else by_name.get(name.lower())
        columns.append(Column(column.name, column.type) if column else Column(name))
    rows = tuple(tuple(fix_surrogates(v) if isinstance(v, str) else v for v in row)
                 for row in result.rows)
    return TablePart(table_id(chart.id), tuple(columns), rows,
                     total=None if result.truncated else len(rows), title=chart.title)


class ChartMaker:
    def __init__(self, warehouse: Warehouse | None, *, cache_size: int = 256) -> None:
        self._warehouse = warehouse
        self._made: dict[ChartPart, tuple[ChartPart, TablePart | None]] = {}
        self._cache_size = cache_size
        self.queries_run = 0  # observability for tests

    async def complete(self, chart: ChartPart) -> ChartPart:
        """``chart`` with ``vega_spec`` filled, or with a ``note`` explaining its absence."""
        return (await self.make(chart))[0]

    async def make(self, chart: ChartPart) -> tuple[ChartPart, TablePart | None]:
        """The completed chart, and the result table of its rows (``None`` without rows)."""
        made = self._made.get(chart)
        if made is None:
            made = await self._make(chart)
            if len(self._made) >= self._cache_size:
                self._made.pop(next(iter(self._made)))
            self._made[chart] = made
        return made

    async def _make(self, chart: ChartPart) -> tuple[ChartPart, TablePart | None]:
        if self._warehouse is None:
            return replace(chart, note=NO_WAREHOUSE_NOTE), None
        if not chart.sql:
            return replace(chart, note="Chart not drawn: ClickZetta sent no SQL for it."), None
        self.queries_run += 1
        try:
            result = await self._warehouse.fetch(chart.sql)
        except WarehouseError as exc:
            log.info("ClickZetta chart %s not drawn: %s", chart.id, exc)
            return replace(chart, note=f"Chart not drawn: {exc}."), None
        table = result_table(chart, result)
        try:
            spec = build_spec(chart.title, chart.columns, result, chart.chart_type)
        except NotChartable as exc:
            log.info("ClickZetta chart %s not drawn: %s", chart.id, exc)
            return replace(chart, note=f"Chart not drawn: {exc}."), table
        note = f"Showing the first {len(result.rows)} rows." if result.truncated else ""
        return replace(chart, vega_spec=spec, note=note), table

    async def aclose(self) -> None:
        if self._warehouse is not None:
            await self._warehouse.aclose()

"""Turn an ``echarts_plus`` chart description into a drawable chart, once per item.

Polls are cumulative, so the same chart item arrives on every poll after it first appears;
:class:`ChartMaker` remembers what it made for each distinct chart part and runs its SQL only
once. Without a warehouse, or when the query cannot run, the chart keeps its title, type,
columns and SQL and gets a ``note`` saying why there is no picture — a quiet remark, never a
failed run.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from adapters.answer import ChartPart
from adapters.clickzetta.vega import NotChartable, build_spec
from adapters.clickzetta.warehouse import Warehouse, WarehouseError

log = logging.getLogger(__name__)

NO_WAREHOUSE_NOTE = ("Chart not drawn: set CLICKZETTA_WAREHOUSE_URL so the bot can run the chart "
                     "SQL (read-only) and draw it.")


class ChartMaker:
    def __init__(self, warehouse: Warehouse | None, *, cache_size: int = 256) -> None:
        self._warehouse = warehouse
        self._made: dict[ChartPart, ChartPart] = {}
        self._cache_size = cache_size
        self.queries_run = 0  # observability for tests

    async def complete(self, chart: ChartPart) -> ChartPart:
        """``chart`` with ``vega_spec`` filled, or with a ``note`` explaining its absence."""
        made = self._made.get(chart)
        if made is None:
            made = await self._make(chart)
            if len(self._made) >= self._cache_size:
                self._made.pop(next(iter(self._made)))
            self._made[chart] = made
        return made

    async def _make(self, chart: ChartPart) -> ChartPart:
        if self._warehouse is None:
            return replace(chart, note=NO_WAREHOUSE_NOTE)
        if not chart.sql:
            return replace(chart, note="Chart not drawn: ClickZetta sent no SQL for it.")
        self.queries_run += 1
        try:
            result = await self._warehouse.fetch(chart.sql)
            spec = build_spec(chart.title, chart.columns, result, chart.chart_type)
        except (WarehouseError, NotChartable) as exc:
            log.info("ClickZetta chart %s not drawn: %s", chart.id, exc)
            return replace(chart, note=f"Chart not drawn: {exc}.")
        note = f"Showing the first {len(result.rows)} rows." if result.truncated else ""
        return replace(chart, vega_spec=spec, note=note)

    async def aclose(self) -> None:
        if self._warehouse is not None:
            await self._warehouse.aclose()

"""Result tables as Adaptive Card ``Table`` elements (card schema 1.5, on every current client).

A result shows at most :data:`~bot.delivery.tabular.SHOWN_ROWS` rows (the rule every platform
follows) and at most :data:`MAX_COLUMNS` columns; numbers are right-aligned (the column's
``horizontalCellContentAlignment``) and read as people write them: thousands separators and
sensible decimals (``bot/delivery/tabular.py``), except in columns that hold years, ids or
codes. Backends often hand numbers over as strings (TextQL's previews are Markdown); a column
whose every value reads as a number is a number column too.

A hundred rows do not fit in one Teams message (~28 KB of card JSON), so a table is cut into
chunks of whole rows, each a ``Table`` of its own that repeats the header row and stays under
:data:`CHUNK_BUDGET` bytes; the card packer puts as many chunks into a message as fit. Chunks
after the first say which rows they hold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from adapters.answer import TablePart
from bot.delivery.tabular import (
    SHOWN_ROWS, format_cell, numeric_columns, plain_integers,
)

Element = dict[str, Any]

MAX_COLUMNS = 8  # wider than that, a card table in Teams is unreadable; the CSV has them all
CELL_CHARS = 80
CHUNK_BUDGET = 11_000  # bytes of one Table element (two fit a card with some text around)


@dataclass(frozen=True)
class ResultTable:
    """A result made to fit a card: the Table chunks and what was left out."""

    chunks: list[list[Element]]  # each: a Table, after its caption when it is not the first
    shown_rows: int
    shown_columns: int
    total_columns: int
    rows_cut: bool  # rows the backend handed over were left out (the CSV would have them)

    @property
    def columns_cut(self) -> bool:
        return self.shown_columns < self.total_columns


def result_table(part: TablePart) -> ResultTable:
    headers = [c.name for c in part.columns][:MAX_COLUMNS]
    numeric = numeric_columns(part)[:MAX_COLUMNS]
    plain = [plain_integers(h) for h in headers]
    rows = [[format_cell(row[i] if i < len(row) else None, numeric=numeric[i], plain=plain[i])
             for i in range(len(headers))] for row in part.rows[:SHOWN_ROWS]]
    return ResultTable(chunks=adaptive_tables(headers, rows, right=numeric),
                       shown_rows=len(rows), shown_columns=len(headers),
                       total_columns=len(part.columns), rows_cut=len(part.rows) > SHOWN_ROWS)


def adaptive_tables(headers: list[str], rows: list[list[str]], *, right: list[bool],
                    budget: int = CHUNK_BUDGET) -> list[list[Element]]:
    """``rows`` (already formatted cell text) as one or more Tables of whole rows, each under
    ``budget`` bytes and each with the header row; chunks after the first come after a caption
    saying which rows they hold. Returns the chunks, each with its caption."""
    columns = [{"width": w} for w in _widths(headers, rows)]
    for column, is_right in zip(columns, right):
        if is_right:
            column["horizontalCellContentAlignment"] = "Right"
    header = {"type": "TableRow", "cells": [_table_cell(h, bold=True) for h in headers]}
    overhead = _bytes({"type": "Table", "columns": columns, "rows": [header],
                       "firstRowAsHeaders": True, "showGridLines": True})
    chunks: list[list[Element]] = [[]]
    used = overhead
    for row in rows:
        cells = (row + [""] * len(headers))[:len(headers)]
        table_row = {"type": "TableRow", "cells": [_table_cell(v) for v in cells]}
        size = _bytes(table_row) + 1
        if chunks[-1] and used + size > budget:
            chunks.append([])
            used = overhead
        chunks[-1].append(table_row)
        used += size
    out: list[list[Element]] = []
    first = 1
    for n, chunk in enumerate(chunks):
        group: list[Element] = []
        if n > 0:
            group.append({"type": "TextBlock", "text": f"Rows {first:,}–{first + len(chunk) - 1:,}",
                          "wrap": True, "isSubtle": True, "size": "Small", "spacing": "Medium"})
        group.append({"type": "Table", "columns": columns, "rows": [header] + chunk,
                      "firstRowAsHeaders": True, "showGridLines": True})
        out.append(group)
        first += len(chunk)
    return out


# -- cells -------------------------------------------------------------------------------------
def _table_cell(text: str, *, bold: bool = False) -> Element:
    text = " ".join(text.split())
    if len(text) > CELL_CHARS:
        text = text[: CELL_CHARS - 1] + "…"
    block: Element = {"type": "TextBlock", "text": text, "wrap": True}
    if bold:
        block["weight"] = "Bolder"
    return {"type": "TableCell", "items": [block]}


def _widths(headers: list[str], rows: list[list[str]]) -> list[int]:
    """Relative column widths from how long their text is (3 to 30 characters' worth)."""
    widths = []
    for i, header in enumerate(headers):
        longest = max([len(r[i]) for r in rows if i < len(r)] or [0])
        widths.append(max(3, min(30, max(len(header) // 2, longest))))
    return widths


def _bytes(node: Any) -> int:
    return len(json.dumps(node, ensure_ascii=False).encode("utf-8", "surrogatepass"))

"""Result tables in Slack: a ``data_table``, else a ``table`` block, else monospace text.

``data_table`` (2026-05) pages, sorts and filters up to 100 rows, with numeric sorting for
``raw_number`` cells; a workspace whose clients do not take it yet rejects the message, and the
answer is sent again with the plain ``table`` block (100 rows including the header, numbers
right-aligned through ``column_settings``), and if that is refused too, as an aligned monospace
table. Every style shows "Showing N of M rows" when the result is longer than what fits; the
renderer then attaches the whole result as CSV.

Limits kept (Slack's, enforced by the fake Slack too): at most 20 columns, 10,000 characters
across one table's cells — rows are dropped from the end until it fits, never cut mid-table —
and a cell is shortened to ``CELL_CHARS`` (the CSV has it whole).
"""

from __future__ import annotations

import enum
import re
from typing import Any

from adapters.answer import TablePart
from bot.delivery.mdtables import MarkdownTable
from bot.delivery.tables import monospace_table
from bot.delivery.tabular import (
    SHOWN_ROWS, as_number, format_cell, format_value, looks_numeric, number_value,
    numeric_columns, plain_integers, showing_line, written_numbers,
)
from bot.delivery.textsplit import shorten
from bot.slack.blocks import Block, code, context, mrkdwn_escape

MAX_COLUMNS = 20
CELLS_BUDGET = 9_500  # of Slack's 10,000 characters across a table's cells
CELL_CHARS = 200
PAGE_SIZE = 10
MONOSPACE_ROWS = 30
EMPTY = "—"  # raw_text cells may not be empty


class TableStyle(str, enum.Enum):
    DATA_TABLE = "data_table"
    TABLE = "table"
    MONOSPACE = "monospace"

    def plainer(self) -> "TableStyle | None":
        order = list(TableStyle)
        i = order.index(self)
        return order[i + 1] if i + 1 < len(order) else None


class Fitted:
    """A table made to fit: the blocks, and whether anything was left out (rows, columns or
    cell text) so the full result should be attached."""

    def __init__(self, blocks: list[Block], cut: bool) -> None:
        self.blocks = blocks
        self.cut = cut


def result_table(table: TablePart, style: TableStyle) -> Fitted:
    headers = [c.name for c in table.columns]
    numeric = numeric_columns(table)
    rows = [list(r) for r in table.rows[:SHOWN_ROWS]]
    title = table.title or "Result"
    fitted = _grid(headers, rows, numeric, style, caption=title,
                   plain=[plain_integers(h) for h in headers])
    shown = fitted.shown
    note = showing_line(table, shown)
    extra_columns = max(0, len(headers) - MAX_COLUMNS)
    if extra_columns:
        note += f" · {extra_columns} more column{'s' if extra_columns > 1 else ''} in the CSV"
    cut = shown < (table.total if table.total is not None else len(table.rows)) \
        or shown < len(table.rows) or bool(extra_columns) or fitted.shortened
    blocks = ([{"type": "section", "text": {"type": "mrkdwn", "text": f"*{mrkdwn_escape(title)}*"}}]
              if table.title and style is TableStyle.MONOSPACE else [])
    return Fitted(blocks + fitted.blocks + [context(note)], cut)


def markdown_table(md: MarkdownTable, style: TableStyle) -> list[Block]:
    """A table from the answer's own Markdown, with the alignment it asked for."""
    numeric = [written_numbers([r[i] for r in md.rows]) for i in range(len(md.headers))]
    fitted = _grid(md.headers, md.rows, numeric, style, caption="Table",
                   aligns=md.aligns, as_written=True)
    blocks = fitted.blocks
    if fitted.shown < len(md.rows):
        blocks.append(context(f"Showing {fitted.shown} of {len(md.rows)} rows of this table"))
    return blocks


class _Grid:
    def __init__(self, blocks: list[Block], shown: int, shortened: bool) -> None:
        self.blocks = blocks
        self.shown = shown
        self.shortened = shortened


def _grid(headers: list[str], rows: list[list[Any]], numeric: list[bool], style: TableStyle, *,
          caption: str, aligns: list[str] | None = None, plain: list[bool] | None = None,
          as_written: bool = False) -> _Grid:
    """``as_written``: the cells are text a person formatted (a Markdown table), shown as they
    are; otherwise they are values, and number columns are formatted here."""
    headers = headers[:MAX_COLUMNS]
    numeric = numeric[:MAX_COLUMNS]
    plain = (plain or [False] * len(headers))[:MAX_COLUMNS]
    if style is TableStyle.MONOSPACE:
        shown = rows[:MONOSPACE_ROWS]
        text = monospace_table(headers, [[format_value(v) if as_written else
                                          format_cell(v, numeric=numeric[i], plain=plain[i])
                                          for i, v in enumerate(r[:len(headers)])] for r in shown],
                               max_rows=MONOSPACE_ROWS)
        return _Grid(code(text), len(shown), False)
    limit = SHOWN_ROWS if style is TableStyle.DATA_TABLE else SHOWN_ROWS - 1  # header counts
    shortened = False
    body: list[list[Block]] = []
    used = sum(len(h) or 1 for h in headers)
    for row in rows[:limit]:
        cells = []
        for i in range(len(headers)):
            value = row[i] if i < len(row) else None
            cell, was_shortened = _cell(value, numeric[i], plain[i], as_written)
            shortened |= was_shortened
            cells.append(cell)
        size = sum(len(c.get("text", "")) for c in cells)
        if used + size > CELLS_BUDGET:
            break
        used += size
        body.append(cells)
    header = [{"type": "raw_text", "text": shorten(h, CELL_CHARS) or EMPTY} for h in headers]
    block: Block = {"type": style.value, "rows": [header] + body}
    if style is TableStyle.DATA_TABLE:
        block["caption"] = shorten(caption, 200)
        block["page_size"] = min(PAGE_SIZE, max(1, len(body)))
    else:
        block["column_settings"] = [_column_setting(numeric[i], (aligns or [])[i:i + 1])
                                    for i in range(len(headers))]
    if not body:  # a table needs a row under its header
        return _Grid([context("(no rows)")], 0, shortened)
    return _Grid([block], len(body), shortened)


def _cell(value: Any, numeric: bool, plain: bool, as_written: bool) -> tuple[Block, bool]:
    """A ``raw_number`` (sorts as a number) in a number column, else ``raw_text``."""
    if numeric:
        number = _formatted_number(value) if as_written else as_number(value)
        if number is not None:
            text = value.strip() if as_written else format_cell(number, numeric=True, plain=plain)
            return {"type": "raw_number", "value": number_value(number), "text": text}, False
    text = format_value(value)
    short = shorten(text, CELL_CHARS)
    return {"type": "raw_text", "text": short or EMPTY}, short != text


def _column_setting(numeric: bool, align: list[str]) -> dict[str, Any]:
    wanted = align[0] if align and align[0] else ("right" if numeric else "left")
    return {"align": wanted, "is_wrapped": not numeric}


def _formatted_number(text: Any) -> float | None:
    """The number in ``"$1,200"``, ``"-12%"``, ``"3.5 ms"`` (for sorting; the text is shown)."""
    if not isinstance(text, str) or not looks_numeric(text):
        return None
    core = re.sub(r"[^\d.eE+-]", "", text.strip().replace(",", ""))
    try:
        return float(core)
    except ValueError:
        return None

"""Query results for people: which columns are numbers, how a number reads, the CSV of it all.

Every platform shows a result table the same way — numbers right-aligned and formatted with
thousands separators and sensible decimals, at most a hundred rows with "Showing N of M rows",
and the whole result as a CSV when rows were cut — so those rules live here, not in a renderer.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import math
import re
from collections.abc import Sequence
from typing import Any

from adapters.answer import Column, TablePart

SHOWN_ROWS = 100  # what Slack's table blocks hold; Teams' cards use the same for one rule

_NUMERIC_TYPES = ("int", "integer", "bigint", "smallint", "tinyint", "long", "short", "float",
                  "double", "real", "decimal", "numeric", "number", "money", "quantitative")


_NUMBER_TEXT = re.compile(r"^[-+]?(\d+|\d{1,3}(,\d{3})+)(\.\d+)?([eE][-+]?\d+)?$")
_LEADING_ZERO = re.compile(r"^[-+]?0\d")  # "007", "01234": a code, not a number
_PLAIN_INTEGERS = re.compile(r"(^|[^a-z])(year|yr|id|code|zip|zipcode|postcode|sk|key)s?$",
                             re.IGNORECASE)
_MIDNIGHT = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ]00:00(:00(\.0+)?)?(Z|[+-]00:?00)?$")  # a date
_CAMEL_ID = re.compile(r"[a-z0-9](Id|ID|Year|Code|Key)$")


def is_number(value: Any) -> bool:
    return (isinstance(value, (int, float, decimal.Decimal)) and not isinstance(value, bool)
            and not (isinstance(value, float) and not math.isfinite(value)))


def number_text(value: Any) -> bool:
    """A number written as text, the way query results hand them over: ``"1234.5"``,
    ``"1,234"``, ``"-3e5"`` — but not ``"007"``, which is a code."""
    if not isinstance(value, str):
        return False
    text = value.strip()
    return bool(_NUMBER_TEXT.match(text)) and not _LEADING_ZERO.match(text)


def looks_numeric(text: str) -> bool:
    """A number as a person formats it in prose or Markdown: ``1,234.5``, ``-12%``, ``$1,200``,
    ``R$ 5,218,263``, ``12 ms``."""
    core = re.sub(r"^[^\d+-]{0,3}\s?|\s?(%|[a-zA-Z]{1,3})$", "", text.strip())
    return bool(_NUMBER_TEXT.match(core.replace(" ", "")))


def written_numbers(values: Sequence[str]) -> bool:
    """A column of a table a person wrote (Markdown): every non-empty cell is a number, as
    formatted as they like (:func:`looks_numeric`)."""
    filled = [v.strip() for v in values if v and v.strip()]
    return bool(filled) and all(looks_numeric(v) for v in filled)


def as_number(value: Any) -> int | float | decimal.Decimal | None:
    """A cell's number: itself when it is one, parsed when it is a number written as text."""
    if is_number(value):
        return value
    if number_text(value):
        try:
            return decimal.Decimal(value.strip().replace(",", ""))
        except decimal.InvalidOperation:
            return None
    return None


def plain_integers(name: str) -> bool:
    """Years, ids, keys and codes are numbers nobody writes with thousands separators (and
    nobody sums or ranks by)."""
    name = name.strip()
    return bool(_PLAIN_INTEGERS.search(name) or _CAMEL_ID.search(name))


def numeric_columns(table: TablePart) -> list[bool]:
    """Per column: does it hold numbers? By its declared type, else by every value in it —
    numbers, or numbers written as text (TextQL's previews are Markdown, CSV exports are text)."""
    out = []
    for i, column in enumerate(table.columns):
        declared = column.type.lower()
        if declared and any(t in declared for t in _NUMERIC_TYPES):
            out.append(True)
            continue
        values = [row[i] for row in table.rows if i < len(row) and row[i] not in (None, "")]
        out.append(bool(values) and all(as_number(v) is not None for v in values))
    return out


def format_cell(value: Any, *, numeric: bool, plain: bool = False) -> str:
    """A cell as shown: in a number column, the number formatted (ids and years without
    separators), text as it was when it is not a number after all; elsewhere :func:`format_value`."""
    if numeric:
        number = as_number(value)
        if number is not None:
            if plain and _integral(number):
                return str(int(number))
            return format_number(number)
    return format_value(value)


def _integral(value: int | float | decimal.Decimal) -> bool:
    if isinstance(value, int):
        return True
    if isinstance(value, decimal.Decimal):
        return value == value.to_integral_value()
    return value.is_integer() and abs(value) < 1e15


def format_number(value: Any) -> str:
    """1234567 → "1,234,567"; 1234.5678 → "1,234.57"; 0.012345 → "0.01235"; keeps the sign."""
    if isinstance(value, bool) or not is_number(value):
        return format_value(value)
    if isinstance(value, int) or (isinstance(value, decimal.Decimal) and value == value.to_integral()):
        return f"{int(value):,}"
    number = float(value)
    if number.is_integer() and abs(number) < 1e15:
        return f"{int(number):,}"
    magnitude = abs(number)
    if magnitude >= 1:
        return f"{number:,.2f}"
    if magnitude == 0:
        return "0"
    return f"{number:.4g}"


def format_value(value: Any) -> str:
    """Any other cell, as a person reads it (empty for a missing value)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if is_number(value):
        return format_number(value)
    text = " ".join(str(value).split())
    midnight = _MIDNIGHT.match(text)
    return midnight.group(1) if midnight else text


def number_value(value: Any) -> float | None:
    """The value of a numeric cell as a plain number (for platforms that sort by it)."""
    if not is_number(value):
        return None
    number = float(value)
    return int(number) if number.is_integer() and abs(number) < 2 ** 53 else number


def shown_rows(table: TablePart, limit: int = SHOWN_ROWS) -> Sequence[tuple[Any, ...]]:
    return table.rows[:limit]


def was_cut(table: TablePart, limit: int = SHOWN_ROWS) -> bool:
    return len(table.rows) > limit or (table.total is not None and table.total > len(table.rows))


def showing_line(table: TablePart, shown: int) -> str:
    """"Showing 100 of 2,000 rows" — or "2,000 rows" when all are shown."""
    total = table.total if table.total is not None else len(table.rows)
    if shown >= total:
        return f"{total:,} row{'s' if total != 1 else ''}"
    return f"Showing {shown:,} of {total:,} rows"


def to_csv(table: TablePart) -> bytes:
    """Every row the backend handed over, as UTF-8 CSV with a header (BOM for spreadsheets)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([c.name for c in table.columns])
    for row in table.rows:
        writer.writerow(["" if v is None else v for v in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8", "replace")


def csv_note(table: TablePart) -> str:
    """What the attached CSV holds, when it is less than the whole result."""
    if table.total is not None and table.total > len(table.rows):
        return (f"The attached CSV has the first {len(table.rows):,} of {table.total:,} rows "
                f"(what the backend returned).")
    return f"The attached CSV has all {len(table.rows):,} rows."


def columns_of(headers: Sequence[str]) -> tuple[Column, ...]:
    return tuple(Column(str(h)) for h in headers)

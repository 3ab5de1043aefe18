"""How a result table reads on every platform: which columns are numbers, how they are
written, what the "showing" line says, and the CSV of the whole result."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io

import pytest

from adapters.answer import Column, TablePart
from bot.delivery.tabular import (
    as_number, csv_note, format_cell, format_number, format_value, looks_numeric, number_text,
    numeric_columns, plain_integers, showing_line, to_csv,
)


@pytest.mark.parametrize("value, text", [
    (1234567, "1,234,567"), (-1234.5678, "-1,234.57"), (0.012345, "0.01235"), (0, "0"),
    (decimal.Decimal("1500.00"), "1,500"), (2.0, "2"), (float("nan"), "nan"),
])
def test_numbers_read_as_people_write_them(value, text) -> None:
    assert format_number(value) == text


def test_numbers_written_as_text_are_numbers_but_codes_are_not() -> None:
    assert [number_text(v) for v in ("1234.5", "1,234", "-3e5", " 42 ")] == [True] * 4
    assert [number_text(v) for v in ("007", "12-15", "1.2.3", "", 12)] == [False] * 5
    assert as_number("2000.5") == decimal.Decimal("2000.5") and as_number("N/A") is None
    assert [looks_numeric(v) for v in ("$1,200", "-12%", "R$ 5,218,263", "3.5 ms")] == [True] * 4
    assert not looks_numeric("about ten")


def test_columns_are_numbers_by_type_or_by_every_value() -> None:
    table = TablePart("t", (Column("state"), Column("revenue", "DECIMAL(18,2)"), Column("orders"),
                            Column("zip"), Column("mixed")),
                      (("CA", "10.5", "12", "02134", "1"), ("NY", "7", "1,300", "10001", "n/a"),
                       ("TX", None, "", "75001", "2")))
    assert numeric_columns(table) == [False, True, True, False, False]


def test_cells_in_number_columns_are_formatted_except_ids_and_years() -> None:
    assert format_cell("2000.5", numeric=True) == "2,000.50"
    assert format_cell("2024", numeric=True, plain=True) == "2024"
    assert format_cell(1234567, numeric=True, plain=True) == "1234567"
    assert format_cell("n/a", numeric=True) == "n/a"  # not a number after all: as it was
    assert format_cell("2000.5", numeric=False) == "2000.5"
    assert [plain_integers(n) for n in ("year", "order_year", "customerId", "s_store_sk", "zip")] \
        == [True] * 5
    assert [plain_integers(n) for n in ("revenue", "keyword_count", "idle")] == [False] * 3


def test_other_values() -> None:
    assert format_value(None) == "" and format_value(True) == "true"
    assert format_value(dt.date(2024, 3, 1)) == "2024-03-01"
    assert format_value("1997-03-13T00:00:00.000Z") == "1997-03-13"  # a date, not a timestamp
    assert format_value("1997-03-13T10:30:00Z") == "1997-03-13T10:30:00Z"
    assert format_value("two\nlines\t here") == "two lines here"


def test_showing_line_and_csv_note() -> None:
    def table(rows: int, total: int | None) -> TablePart:
        return TablePart("t", (Column("n"),), tuple((i,) for i in range(rows)), total=total)

    assert showing_line(table(1, None), 1) == "1 row"
    assert showing_line(table(2_000, None), 2_000) == "2,000 rows"
    assert showing_line(table(2_000, None), 100) == "Showing 100 of 2,000 rows"
    assert showing_line(table(100, 5_000), 100) == "Showing 100 of 5,000 rows"
    assert csv_note(table(500, 5_000)) == ("The attached CSV has the first 500 of 5,000 rows "
                                           "(what the backend returned).")
    assert csv_note(table(500, 500)) == "The attached CSV has all 500 rows."


def test_csv_has_every_row_with_a_header_and_opens_in_spreadsheets() -> None:
    rows = tuple((f"São Paulo {i}", i * 1.5, None, "a,\"quoted\"\nvalue") for i in range(250))
    table = TablePart("t", (Column("city"), Column("x"), Column("empty"), Column("note")), rows)
    data = to_csv(table)
    assert data.startswith(b"\xef\xbb\xbf")  # the BOM: Excel reads it as UTF-8
    read = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert read[0] == ["city", "x", "empty", "note"] and len(read) == 251
    assert read[250] == ["São Paulo 249", "373.5", "", "a,\"quoted\"\nvalue"]

"""Result and Markdown tables as Adaptive Card Tables: numbers, alignment, chunks, RTL text."""

from __future__ import annotations

import decimal
import json

from adapters.answer import Column, TablePart
from bot.teams.markdown import is_rtl, markdown_elements, markdown_groups
from bot.delivery.tabular import numeric_columns
from bot.teams.tables import CHUNK_BUDGET, adaptive_tables, result_table


def cells(table: dict) -> list[list[str]]:
    return [[c["items"][0]["text"] for c in row["cells"]] for row in table["rows"]]


def aligned_right(table: dict) -> list[bool]:
    return [c.get("horizontalCellContentAlignment") == "Right" for c in table["columns"]]


def test_numbers_read_as_people_write_them() -> None:
    part = TablePart("t", (Column("region"), Column("revenue", "DOUBLE"), Column("orders", "BIGINT"),
                           Column("share"), Column("order_year", "INTEGER"), Column("customerId"),
                           Column("zip")),
                     (("EMEA", 1234567.891, 1200, 0.012345, 2024, 1234567, "01234"),
                      ("APAC", decimal.Decimal("99.5"), -3, 0.5, 2025, 2, "10001"),
                      ("LATAM", None, 0, 1.0, 2026, 3, "99999")))
    view = result_table(part)
    [[table]] = view.chunks
    assert cells(table)[1] == ["EMEA", "1,234,567.89", "1,200", "0.01235", "2024", "1234567", "01234"]
    assert cells(table)[2] == ["APAC", "99.50", "-3", "0.5", "2025", "2", "10001"]
    assert cells(table)[3] == ["LATAM", "", "0", "1", "2026", "3", "99999"]
    # codes with a leading zero are text (left-aligned, as written); numbers are right-aligned
    assert aligned_right(table) == [False, True, True, True, True, True, False]


def test_numbers_sent_as_text_are_numbers_too() -> None:
    part = TablePart("t", (Column("region"), Column("revenue"), Column("code")),
                     (("EMEA", "1200", "007"), ("APAC", "-900.25", "010"), ("X", "", "123")))
    assert numeric_columns(part) == [False, True, False]
    [[table]] = result_table(part).chunks
    assert [r[1] for r in cells(table)[1:]] == ["1,200", "-900.25", ""]
    assert aligned_right(table) == [False, True, False]


def test_chunks_hold_whole_rows_under_the_budget_and_repeat_the_header() -> None:
    rows = [[f"name {i} " + "x" * 40, f"{i:,}"] for i in range(300)]
    groups = adaptive_tables(["name", "n"], rows, right=[False, True])
    assert len(groups) > 3
    seen = []
    for n, group in enumerate(groups):
        table = group[-1]
        assert table["type"] == "Table"
        assert len(json.dumps(table, ensure_ascii=False).encode()) <= CHUNK_BUDGET
        assert cells(table)[0] == ["name", "n"]
        seen += [r[1] for r in cells(table)[1:]]
        if n:
            first, last = group[0]["text"].removeprefix("Rows ").split("–")
            assert (first, last) == (f"{len(seen) - len(cells(table)) + 2:,}", f"{len(seen):,}")
        else:
            assert len(group) == 1  # the first chunk needs no caption
    assert seen == [f"{i:,}" for i in range(300)]


def test_a_result_shows_at_most_100_rows_and_8_columns() -> None:
    part = TablePart("t", tuple(Column(f"c{i}") for i in range(12)),
                     tuple(tuple(f"v{r}" for _ in range(12)) for r in range(250)))
    view = result_table(part)
    rows = [r for g in view.chunks for r in cells(g[-1])[1:]]
    assert len(rows) == 100 and all(len(r) == 8 for r in rows)
    assert view.rows_cut and view.columns_cut and view.shown_rows == 100


def test_markdown_tables_align_numbers_right_and_keep_100_rows() -> None:
    md = "| state | total | note |\n|:---|---:|:---|\n" + "\n".join(
        f"| S{i} | R$ {i * 1000:,} | {i} |" for i in range(130))
    groups = markdown_groups(md)
    tables = [e for g in groups for e in g if e["type"] == "Table"]
    assert aligned_right(tables[0]) == [False, True, False]  # ":---" keeps it left
    shown = [r for t in tables for r in cells(t)[1:]]
    assert len(shown) == 100 and shown[1] == ["S1", "R$ 1,000", "1"]
    assert groups[-1][-1]["text"] == "Showing 100 of 130 rows."
    assert groups[-1][-2]["type"] == "Table"  # the note stays with the last chunk
    plain = markdown_elements("| a | n |\n|---|---|\n| x | 12% |\n| y | -3.5 |")
    assert aligned_right(plain[0]) == [False, True]  # numbers without a ---: marker


def test_right_to_left_paragraphs_are_laid_out_from_the_right() -> None:
    md = "Sales by language:\n\nالعربية: المبيعات ارتفعت ١٢٪\n\nעברית: המכירות עלו\n\nSales rose 12% (العربية)"
    english, rtl, after = markdown_elements(md)
    assert english == {"type": "TextBlock", "text": "Sales by language:", "wrap": True}
    assert rtl == {"type": "Container", "rtl": True, "items": [{
        "type": "TextBlock", "text": "العربية: المبيعات ارتفعت ١٢٪\n\nעברית: המכירות עלו", "wrap": True}]}
    assert after["type"] == "TextBlock" and after["text"] == "Sales rose 12% (العربية)"
    assert markdown_elements("Only\n\nleft to right") == [
        {"type": "TextBlock", "text": "Only\n\nleft to right", "wrap": True}]
    assert is_rtl("  123 — שלום") and not is_rtl("📈 São Paulo — 北京") and not is_rtl("")

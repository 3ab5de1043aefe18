"""Markdown tables inside an answer's text are found, so platforms show them as tables."""

from __future__ import annotations

from bot.delivery.mdtables import MarkdownTable, split_tables


def test_prose_and_tables_in_order_with_alignment() -> None:
    text = ("Top states:\n\n| State | Revenue |\n|:------|--------:|\n| CA | $1,200 |\n| NY | 900 |\n"
            "\nThat is all.")
    pieces = split_tables(text)
    assert pieces[0] == "Top states:\n"
    assert pieces[1] == MarkdownTable(["State", "Revenue"], [["CA", "$1,200"], ["NY", "900"]],
                                      ["left", "right"])
    assert pieces[2].strip() == "That is all."


def test_tables_in_code_fences_stay_text_and_escaped_pipes_are_pipes() -> None:
    fenced = "```\n| a | b |\n|---|---|\n| 1 | 2 |\n```"
    assert split_tables(fenced) == [fenced]
    table, after = split_tables("a | b\n--- | ---\nx \\| y | 2\nz |\nno pipe: prose again")
    assert table.headers == ["a", "b"]
    assert table.rows == [["x | y", "2"], ["z", ""]]  # missing cells are empty
    assert after == "no pipe: prose again"


def test_a_pipe_in_prose_is_not_a_table() -> None:
    assert split_tables("use a | b to pipe\nnext line") == ["use a | b to pipe\nnext line"]

"""Markdown tables inside an answer's text, found so platforms can show them as real tables.

Agents often answer with a GitHub-flavoured Markdown table. Neither Slack's ``markdown`` block nor
Teams' text renders one, so the text is cut into prose and tables: ``split_tables`` returns the
pieces in order. Tables inside code fences stay text; a ``\\|`` inside a cell is a pipe, not a
column break.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_FENCE = re.compile(r"^\s*(```|~~~)")
_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{1,}:?\s*(\|\s*:?-{1,}:?\s*)*\|?\s*$")
_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


@dataclass
class MarkdownTable:
    headers: list[str]
    rows: list[list[str]]
    aligns: list[str] = field(default_factory=list)  # "left", "center", "right" or ""


def split_tables(text: str) -> list[str | MarkdownTable]:
    """Prose and tables of ``text``, in order (prose pieces keep their line breaks)."""
    lines = text.splitlines()
    out: list[str | MarkdownTable] = []
    prose: list[str] = []
    i, fenced = 0, False
    while i < len(lines):
        line = lines[i]
        if _FENCE.match(line):
            fenced = not fenced
        found = None if fenced else read_table(lines, i)
        if found is not None:
            if prose:
                out.append("\n".join(prose))
                prose = []
            out.append(found[0])
            i = found[1]
            continue
        prose.append(line)
        i += 1
    if prose:
        out.append("\n".join(prose))
    return [p for p in out if not (isinstance(p, str) and not p.strip())]


def read_table(lines: list[str], i: int) -> tuple[MarkdownTable, int] | None:
    """The table starting at ``lines[i]`` (a header row, then a separator row) and the index
    of the line after it; None when no table starts there."""
    if not ("|" in lines[i] and i + 1 < len(lines) and _SEPARATOR.match(lines[i + 1])
            and "|" in lines[i + 1]):
        return None
    headers = _cells(lines[i])
    aligns = [_align(c) for c in _cells(lines[i + 1])]
    rows: list[list[str]] = []
    j = i + 2
    while j < len(lines) and "|" in lines[j] and lines[j].strip():
        rows.append(_fit(_cells(lines[j]), len(headers)))
        j += 1
    return MarkdownTable(headers, rows, _fit(aligns, len(headers))), j


def _cells(line: str) -> list[str]:
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    return [c.strip().replace("\\|", "|") for c in _UNESCAPED_PIPE.split(line)]


def _align(cell: str) -> str:
    left, right = cell.startswith(":"), cell.endswith(":")
    return "center" if left and right else "right" if right else "left" if left else ""


def _fit(cells: list[str], width: int) -> list[str]:
    return (cells + [""] * width)[:width]

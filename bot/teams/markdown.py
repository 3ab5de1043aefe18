"""Backend Markdown → Adaptive Card elements.

A Teams ``TextBlock`` understands only a Markdown subset: bold, italic, bullet and numbered
lists, links. Headings, tables and code fences come out as literal symbols, so they are turned
into card elements of their own: a heading becomes a bold ``TextBlock``, a table an Adaptive
``Table``, a fence a ``CodeBlock`` (monospace text where a client lacks it). Long prose is
cut into several blocks so each card stays under Teams' message size (the cards are packed by
:mod:`bot.teams.cards`).
"""

from __future__ import annotations

import re
from typing import Any, Iterator

from bot.delivery.textsplit import split_text

Element = dict[str, Any]

TEXT_CHUNK = 4000  # characters per TextBlock
CODE_CHUNK = 5000
TABLE_ROWS = 20
TABLE_COLUMNS = 8
CELL_CHARS = 80

_FENCE = re.compile(r"^\s*(```|~~~)\s*([\w+#.-]*)\s*$")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_RULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")
_TABLE_SEP = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")

_CODE_LANGUAGES = {"sql": "sql", "python": "python", "py": "python", "json": "json",
                   "bash": "bash", "sh": "bash", "javascript": "javascript", "js": "javascript",
                   "typescript": "typescript", "ts": "typescript", "yaml": "plaintext"}


def text_block(text: str, **props: Any) -> Element:
    return {"type": "TextBlock", "text": text, "wrap": True, **props}


def code_block(code: str, language: str = "plaintext") -> list[Element]:
    """Teams' ``CodeBlock`` (syntax-highlighted, whitespace kept), monospace text where absent."""
    return [{"type": "CodeBlock", "codeSnippet": chunk, "language": language,
             "fallback": text_block(chunk, fontType="Monospace")}
            for chunk in code_chunks(code)]


def table(headers: list[str], rows: list[list[Any]], *, max_rows: int = TABLE_ROWS) -> Element:
    """An Adaptive ``Table`` (schema 1.5, on every current Teams client) of at most
    ``max_rows`` × 8, cells shortened so a card stays small."""
    headers = headers[:TABLE_COLUMNS]
    shown = [list(r)[:TABLE_COLUMNS] for r in rows[:max_rows]]

    def cell(value: Any, bold: bool = False) -> Element:
        text = "" if value is None else " ".join(str(value).split())
        if len(text) > CELL_CHARS:
            text = text[: CELL_CHARS - 1] + "…"
        block = text_block(text, size="Small")
        if bold:
            block["weight"] = "Bolder"
        return {"type": "TableCell", "items": [block]}

    table_rows = [{"type": "TableRow", "cells": [cell(h, bold=True) for h in headers]}]
    for row in shown:
        row = row + [""] * (len(headers) - len(row))
        table_rows.append({"type": "TableRow", "cells": [cell(v) for v in row[:len(headers)]]})
    return {"type": "Table", "columns": [{"width": 1} for _ in headers], "rows": table_rows,
            "firstRowAsHeaders": True, "showGridLines": True}


def markdown_elements(markdown: str) -> list[Element]:
    """Elements for one Markdown answer, in reading order."""
    elements: list[Element] = []
    for kind, payload in _segments(markdown):
        if kind == "code":
            code, language = payload
            elements.extend(code_block(code, _CODE_LANGUAGES.get(language.lower(), "plaintext")))
        elif kind == "heading":
            elements.append(text_block(payload, weight="Bolder", size="Medium"))
        elif kind == "table":
            headers, rows = payload
            elements.append(table(headers, rows))
            if len(rows) > TABLE_ROWS:
                elements.append(text_block(f"Showing {TABLE_ROWS} of {len(rows)} rows.",
                                           isSubtle=True, size="Small"))
        else:
            elements.extend(text_block(chunk) for chunk in split_text(payload, TEXT_CHUNK))
    return elements


def _segments(markdown: str) -> Iterator[tuple[str, Any]]:
    lines = markdown.replace("\r\n", "\n").split("\n")
    prose: list[str] = []
    i = 0

    def flush() -> Iterator[tuple[str, Any]]:
        text = "\n".join(prose).strip("\n")
        prose.clear()
        if text.strip():
            yield "prose", text

    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:
            yield from flush()
            marker, language = fence.group(1), fence.group(2)
            body: list[str] = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(marker):
                body.append(lines[i])
                i += 1
            i += 1  # the closing fence (or the end of the text)
            if "\n".join(body).strip():
                yield "code", ("\n".join(body), language)
            continue
        heading = _HEADING.match(line)
        if heading:
            yield from flush()
            yield "heading", heading.group(2)
            i += 1
            continue
        if _RULE.match(line):
            yield from flush()
            i += 1
            continue
        if "|" in line and i + 1 < len(lines) and _TABLE_SEP.match(lines[i + 1]) and "-" in lines[i + 1]:
            yield from flush()
            headers = _cells(line)
            rows: list[list[str]] = []
            i += 2
            while i < len(lines) and "|" in lines[i] and lines[i].strip():
                rows.append(_cells(lines[i]))
                i += 1
            yield "table", (headers, rows)
            continue
        prose.append(line)
        i += 1
    yield from flush()


def _cells(line: str) -> list[str]:
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)]


def code_chunks(code: str, size: int = CODE_CHUNK) -> list[str]:
    """Cut code at line ends into pieces of at most ``size`` characters."""
    code = code.strip("\n")
    if len(code) <= size:
        return [code] if code.strip() else []
    chunks: list[str] = []
    current: list[str] = []
    used = 0
    for line in code.split("\n"):
        if current and used + len(line) + 1 > size:
            chunks.append("\n".join(current))
            current, used = [], 0
        while len(line) > size:  # one enormous line (minified SQL): cut it hard
            chunks.append(line[:size])
            line = line[size:]
        current.append(line)
        used += len(line) + 1
    if current:
        chunks.append("\n".join(current))
    return chunks


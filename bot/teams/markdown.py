"""Backend Markdown → Adaptive Card elements.

A Teams ``TextBlock`` understands only a Markdown subset: bold, italic, bullet and numbered
lists, links. Headings, tables and code fences come out as literal symbols, so they are turned
into card elements of their own: a heading becomes a bold ``TextBlock``, a table an Adaptive
``Table`` (the same rendering as a result table: :mod:`bot.teams.tables`, numbers right-aligned,
at most a hundred rows), a fence a ``CodeBlock`` (monospace text where a client lacks it). Long
prose is cut into several blocks so each card stays under Teams' message size (the cards are
packed by :mod:`bot.teams.cards`).

Prose written in a right-to-left script (Arabic, Hebrew, …) goes into a ``Container`` with
``rtl`` set, so it is laid out from the right as its readers expect; the text itself is left as
it came (the client's bidi algorithm handles mixed runs inside a paragraph).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Iterator

from bot.delivery.tabular import SHOWN_ROWS
from bot.delivery.textsplit import split_text
from bot.delivery.mdtables import read_table
from bot.delivery.tabular import written_numbers
from bot.teams.tables import MAX_COLUMNS, adaptive_tables

Element = dict[str, Any]

TEXT_CHUNK = 4000  # characters per TextBlock
CODE_CHUNK = 5000
TABLE_ROWS = SHOWN_ROWS

_FENCE = re.compile(r"^\s*(```|~~~)\s*([\w+#.-]*)\s*$")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_RULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")

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


def table_groups(headers: list[str], rows: list[list[str]],
                 aligns: list[str] | None = None) -> list[list[Element]]:
    """A Markdown table as Adaptive ``Table`` chunks: at most :data:`TABLE_ROWS` rows and 8
    columns, right-aligned where the separator says ``---:`` or every cell is a number, and a
    "Showing N of M rows" line when rows were left out."""
    headers = headers[:MAX_COLUMNS]
    shown = [(list(r) + [""] * len(headers))[:len(headers)] for r in rows[:TABLE_ROWS]]
    aligns = (list(aligns or []) + [""] * len(headers))[:len(headers)]
    right = [aligns[i] == "right" or (aligns[i] != "left" and aligns[i] != "center"
                                      and written_numbers([r[i] for r in rows]))
             for i in range(len(headers))]
    groups = adaptive_tables(headers, shown, right=right)
    if len(rows) > TABLE_ROWS:
        groups[-1].append(text_block(f"Showing {TABLE_ROWS} of {len(rows):,} rows.",
                                     isSubtle=True, size="Small"))
    return groups


def markdown_elements(markdown: str) -> list[Element]:
    """Elements for one Markdown answer, in reading order."""
    return [e for group in markdown_groups(markdown) for e in group]


def markdown_groups(markdown: str) -> list[list[Element]]:
    """The same elements, grouped where they must stay in one card: a table chunk with its
    caption, the last chunk with the "Showing N of M rows" line."""
    groups: list[list[Element]] = []
    for kind, payload in _segments(markdown):
        if kind == "code":
            code, language = payload
            groups.extend([e] for e in code_block(code, _CODE_LANGUAGES.get(language.lower(), "plaintext")))
        elif kind == "heading":
            groups.append([text_block(payload, weight="Bolder", size="Medium")])
        elif kind == "table":
            headers, rows, aligns = payload
            groups.extend(table_groups(headers, rows, aligns))
        else:
            groups.extend([e] for chunk in split_text(payload, TEXT_CHUNK) for e in _prose(chunk))
    return groups


def _prose(text: str) -> list[Element]:
    """One TextBlock, or — when some paragraphs are right-to-left — one per run of paragraphs
    of the same direction, the right-to-left runs in an ``rtl`` Container."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    directions = [is_rtl(p) for p in paragraphs]
    if not any(directions):
        return [text_block(text)]
    out: list[Element] = []
    run: list[str] = []
    for i, paragraph in enumerate(paragraphs):
        run.append(paragraph)
        if i + 1 == len(paragraphs) or directions[i + 1] != directions[i]:
            block = text_block("\n\n".join(run))
            out.append({"type": "Container", "rtl": True, "items": [block]} if directions[i] else block)
            run = []
    return out


def is_rtl(text: str) -> bool:
    """Whether the first letter with a strong direction is right-to-left (the rule a Unicode
    paragraph follows, UAX #9 P2)."""
    for char in text:
        direction = unicodedata.bidirectional(char)
        if direction in ("R", "AL"):
            return True
        if direction == "L":
            return False
    return False


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
        table = read_table(lines, i)
        if table is not None:
            yield from flush()
            yield "table", (table[0].headers, table[0].rows, table[0].aligns)
            i = table[1]
            continue
        prose.append(line)
        i += 1
    yield from flush()


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


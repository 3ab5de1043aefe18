"""v2 ``cell`` and ``asset`` events → answer parts.

A v2 stream sends a cell when a step starts (with its SQL or code) and again when it finishes
(outputs, ``dataframe_preview``, timing), so, like legacy blocks, every part id derives from the
cell id and the second version replaces the first. ``markdown`` cells are skipped: the answer
text arrives as ``text`` deltas and would otherwise be shown twice.

Assets: ``image`` assets (and charts that are images) are downloaded like legacy images. A
``chart`` asset that is a pyecharts HTML page cannot be drawn here without a browser; it becomes
a chart part with a note. Other asset types are logged and left out.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from adapters.answer import (
    ChartPart, CodePart, Column, Part, SqlPart, StatusPart, StepPart, StepState, TablePart,
)
from adapters.textql.blocks import STATUS_ID, ImageRef, Table

log = logging.getLogger(__name__)

_QUERY_CELLS = {"sql": "SQL", "tableau_sql": "Tableau SQL", "metrics": "a metrics query",
                "ontology_query": "an ontology query"}
_CODE_CELLS = {"python": "Python", "javascript": "JavaScript", "bash": "a shell command"}
_SEPARATOR = re.compile(r"^\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?$")


@dataclass(frozen=True)
class CellView:
    parts: tuple[Part, ...]
    images: tuple[ImageRef, ...] = ()
    known: bool = True


def _label(kind: str, cell: dict[str, Any]) -> str:
    if kind in _QUERY_CELLS:
        return _QUERY_CELLS[kind]
    if kind in _CODE_CELLS:
        return _CODE_CELLS[kind]
    if kind == "web_search":
        return "a web search"
    if kind == "mcp_tool" and isinstance(cell.get("tool_name"), str):
        return cell["tool_name"]
    return kind.replace("_", " ") or "a step"


def translate_cell(cell: dict[str, Any]) -> CellView:
    cell_id = str(cell.get("id") or "cell")
    kind = str(cell.get("type") or "")
    status = str(cell.get("status") or "")
    parts: list[Part] = []
    known = True
    if kind == "markdown":
        return CellView(())
    if kind in _QUERY_CELLS:
        query = cell.get("query")
        if isinstance(query, str) and query.strip():
            parts.append(SqlPart(f"{cell_id}:sql", query))
    elif kind in _CODE_CELLS:
        output = cell.get("output")
        lines = [str(o) for o in output] if isinstance(output, list) else []
        parts.append(CodePart(f"{cell_id}:code", str(cell.get("code") or ""), kind,
                              "\n".join(lines).rstrip()))
    elif kind not in ("preview", "web_search", "mcp_tool"):
        known = False
    preview = cell.get("dataframe_preview")
    table = markdown_table(preview) if isinstance(preview, str) else None
    if table is not None:
        parts.append(TablePart(f"{cell_id}:table", table[0], table[1], total=table[2]))
    if status in ("running", "pending"):
        parts.append(StatusPart(STATUS_ID, f"Ana is running {_label(kind, cell)}…"))
    elif status == "failed":
        parts.append(StepPart(f"{cell_id}:step", f"Ana's {_label(kind, cell)} step failed",
                              StepState.ERROR, str(cell.get("error") or "")))
    images: list[ImageRef] = []
    for asset in cell.get("assets") or []:
        if isinstance(asset, dict):
            ref, note = asset_ref(asset, default_cell=cell_id)
            if ref is not None:
                images.append(ref)
            elif note is not None:
                parts.append(note)
    return CellView(tuple(parts), tuple(images), known)


def asset_ref(asset: dict[str, Any], *, default_cell: str = "") -> tuple[ImageRef | None, ChartPart | None]:
    """An image to fetch, or a chart note, or neither (assets we do not show)."""
    kind = str(asset.get("type") or "")
    name = str(asset.get("name") or "")
    url = asset.get("url")
    part_id = f"{asset.get('cell_id') or default_cell or 'asset'}:asset:{name or kind}"
    title = re.sub(r"\.[a-z0-9]+$", "", name).replace("_", " ").strip() or "Chart"
    if kind not in ("image", "chart") or not isinstance(url, str) or not url:
        log.debug("textql: %s asset not shown", kind or "untyped")
        return None, None
    if kind == "chart" and (name.lower().endswith((".html", ".htm"))
                            or url.split("?", 1)[0].lower().endswith((".html", ".htm"))):
        return None, ChartPart(part_id, title=title,
                               note="Ana drew an interactive chart; open the chat in TextQL to see it.")
    return ImageRef(part_id, url, title), None


def markdown_table(text: str) -> Table | None:
    """A pipe table (as pandas ``to_markdown`` writes it) → columns and every row.

    ``dataframe_preview`` is a *preview* of the result set and carries no row count, so the full
    count is unknown (None)."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if len(lines) < 2 or not lines[0].startswith("|") or not _SEPARATOR.match(lines[1]):
        return None

    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip().strip("|").split("|")]

    header = cells(lines[0])
    body = [cells(ln) for ln in lines[2:] if ln.startswith("|")]
    drop_index = bool(header) and header[0] == ""  # pandas' unnamed index column
    if drop_index:
        header = header[1:]
        body = [row[1:] for row in body]
    columns = tuple(Column(name) for name in header)
    rows = tuple(tuple(row[: len(header)]) for row in body)
    return columns, rows, None

"""Plain-text tables for chat messages (monospace code blocks)."""

from __future__ import annotations

from typing import Any, Sequence


def _cell(value: Any, width: int) -> str:
    text = "" if value is None else str(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def monospace_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *,
                    max_rows: int = 15, max_col_width: int = 24, max_width: int = 100) -> str:
    """Render rows as an aligned text table (no fence), at most ``max_rows`` rows."""
    shown = [list(r) for r in rows[:max_rows]]
    widths = [min(max_col_width, max([len(str(h))] + [len(_cell(r[i] if i < len(r) else "", 10_000))
                                                      for r in shown]))
              for i, h in enumerate(headers)]
    # drop columns that would push the table past max_width
    keep, total = [], 0
    for i, w in enumerate(widths):
        if keep and total + w + 2 > max_width:
            break
        keep.append(i)
        total += w + 2
    lines = ["  ".join(_cell(headers[i], widths[i]).ljust(widths[i]) for i in keep).rstrip(),
             "  ".join("-" * widths[i] for i in keep)]
    for row in shown:
        lines.append("  ".join(_cell(row[i] if i < len(row) else "", widths[i]).ljust(widths[i])
                               for i in keep).rstrip())
    if len(keep) < len(headers):
        lines.append(f"(+{len(headers) - len(keep)} more columns)")
    return "\n".join(lines)

"""Answer → JSON for the runs table (the final answer snapshot) and for history views.

What the chat already holds is left out, and so is the warehouse's bulk data: PNG bytes (uploaded
to the chat), a result table's rows beyond those the reply showed (``STORED_ROWS``; the CSV went to
the chat), and a chart spec's inline data rows — a Wren chart carries thousands, and turning them
into JSON on the event loop stalled every other run for tens of milliseconds. The spec's shape
(mark, encodings, title) is kept; ``data_rows`` and ``rows_stored`` say what was left out. Text
is stored as it was (unpaired surrogates, which cannot be encoded, become U+FFFD).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from adapters.answer import Answer, Part


STORED_ROWS = 100  # of a result table: what the reply showed (the CSV went to the chat)


def answer_to_dict(answer: Answer) -> dict[str, Any]:
    return {
        "outcome": answer.outcome.value,
        "session_id": answer.session_id,
        "run_id": answer.run_id,
        "notice": answer.notice,
        "stopped_by": answer.stopped_by,
        "elapsed": answer.elapsed,
        "parts": [_part(p) for p in answer.parts],
    }


def _part(part: Part) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(part):
        value = getattr(part, f.name)
        if f.name == "png":
            out["has_png"] = value is not None
            continue
        if f.name == "vega_spec" and isinstance(value, dict):
            out[f.name], out["data_rows"] = _without_data(value)
            continue
        if f.name == "rows" and isinstance(value, tuple) and len(value) > STORED_ROWS:
            out[f.name], out["rows_stored"] = _plain(value[:STORED_ROWS]), STORED_ROWS
            continue
        out[f.name] = _plain(value)
    return out


def _without_data(spec: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The spec's top level without inline data, and how many rows that data had."""
    rows = 0
    kept: dict[str, Any] = {}
    for key, value in spec.items():
        if key in ("data", "datasets"):
            rows += _count_rows(value)
            continue
        if key == "layer" and isinstance(value, list):
            kept[key] = [_without_data(v)[0] if isinstance(v, dict) else v for v in value]
            rows += sum(_count_rows(v.get("data")) for v in value if isinstance(v, dict))
            continue
        kept[key] = _plain(value)
    return kept, rows


def _count_rows(data: Any) -> int:
    if isinstance(data, dict):
        values = data.get("values")
        if isinstance(values, list):
            return len(values)
        return sum(_count_rows(v) for v in data.values() if isinstance(v, (dict, list)))
    if isinstance(data, list):
        return len(data)
    return 0


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "value") and not isinstance(value, (str, int, float, bool)):
        return value.value
    if isinstance(value, bytes):
        return None
    if isinstance(value, str):
        return _encodable(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return _encodable(str(value))


def _encodable(text: str) -> str:
    """``text`` as valid UTF-8 can hold it: a lone surrogate (half an emoji a backend escaped
    badly) would make storing the whole answer fail."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:  # pairs the surrogates that make a pair, replaces the rest
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")

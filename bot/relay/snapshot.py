"""Answer ↔ JSON for the runs table (the final answer snapshot) and for history views.

PNG bytes are left out (they were uploaded to the chat); everything else round-trips.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from adapters.answer import Answer, Part


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
        out[f.name] = _plain(value)
    return out


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
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)

"""Answer → JSON for the runs table (the final answer snapshot) and for history views.

What the chat already holds is left out, and so is the warehouse's bulk data: PNG bytes (uploaded
to the chat), a result table's rows beyond those the reply showed (``STORED_ROWS``; the CSV went to
the chat), and a chart spec's inline data rows — a Wren chart carries thousands, and turning them
into JSON on the event loop stalled every other run for tens of milliseconds. The spec's shape
(mark, encodings, title) is kept; ``data_rows`` and ``rows_stored`` say what was left out. Text
is stored as it was (unpaired surrogates, which cannot be encoded, become U+FFFD).

:func:`answer_from_dict` reads a stored snapshot back, for delivering a finished answer again
when its replica died between storing and showing it. What the snapshot left out stays out:
charts (their PNG went nowhere, their data was dropped) are replaced by a notice.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from adapters.answer import (
    Answer, CodePart, Column, ErrorPart, KnowledgeEntry, KnowledgePart, MetricPart,
    Outcome, Part, PartKind, SqlPart, StatusPart, StepPart, StepState, SuggestionsPart, TablePart,
    TextPart,
)


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


CHARTS_LOST = "The chart of this answer could not be delivered after a restart of the bot."


def answer_from_dict(data: dict[str, Any]) -> Answer:
    """The stored snapshot as an :class:`Answer` again (charts become a notice; see above).

    Parts of a kind this version does not know, or that do not parse, are skipped rather than
    failing the whole answer: what can be shown is shown.
    """
    parts: list[Part] = []
    charts = 0
    for raw in data.get("parts") or ():
        if not isinstance(raw, dict):
            continue
        if raw.get("kind") == PartKind.CHART.value:
            charts += 1
            continue
        part = _part_from(raw)
        if part is not None:
            parts.append(part)
    notice = str(data.get("notice") or "")
    if charts:
        notice = f"{notice} {CHARTS_LOST}".strip()
    try:
        outcome = Outcome(data.get("outcome"))
    except ValueError:
        outcome = Outcome.FAILED
    elapsed = data.get("elapsed")
    return Answer(parts=tuple(parts), outcome=outcome, session_id=data.get("session_id"),
                  run_id=data.get("run_id"), notice=notice, stopped_by=str(data.get("stopped_by") or ""),
                  elapsed=float(elapsed) if isinstance(elapsed, (int, float)) else None)


def _part_from(raw: dict[str, Any]) -> Part | None:
    kind, pid = raw.get("kind"), str(raw.get("id") or "")
    try:
        if kind == PartKind.STATUS.value:
            return StatusPart(pid, str(raw.get("text") or ""))
        if kind == PartKind.STEP.value:
            produces = raw.get("produces")
            return StepPart(pid, str(raw.get("title") or ""), StepState(raw.get("state", "complete")),
                            str(raw.get("detail") or ""), PartKind(produces) if produces else None)
        if kind == PartKind.TEXT.value:
            return TextPart(pid, str(raw.get("markdown") or ""))
        if kind == PartKind.SQL.value:
            return SqlPart(pid, str(raw.get("sql") or ""), str(raw.get("title") or ""))
        if kind == PartKind.KNOWLEDGE.value:
            return KnowledgePart(pid, tuple(KnowledgeEntry(str(e.get("title") or ""), str(e.get("detail") or ""))
                                            for e in raw.get("entries") or () if isinstance(e, dict)))
        if kind == PartKind.METRIC.value:
            return MetricPart(pid, str(raw.get("name") or ""), str(raw.get("description") or ""),
                              str(raw.get("dsl") or ""))
        if kind == PartKind.TABLE.value:
            total = raw.get("total")
            return TablePart(pid, _columns(raw.get("columns")),
                             tuple(tuple(row) for row in raw.get("rows") or () if isinstance(row, list)),
                             total if isinstance(total, int) else None, str(raw.get("title") or ""))
        if kind == PartKind.CODE.value:
            return CodePart(pid, str(raw.get("source") or ""), str(raw.get("language") or "python"),
                            str(raw.get("output") or ""))
        if kind == PartKind.ERROR.value:
            return ErrorPart(pid, str(raw.get("message") or ""), str(raw.get("code") or ""),
                             str(raw.get("reference") or ""))
        if kind == PartKind.SUGGESTIONS.value:
            return SuggestionsPart(pid, tuple(str(q) for q in raw.get("questions") or ()))
    except (ValueError, TypeError, AttributeError):
        return None
    return None


def _columns(raw: Any) -> tuple[Column, ...]:
    return tuple(Column(str(c.get("name") or ""), str(c.get("type") or ""))
                 for c in raw or () if isinstance(c, dict))

"""Poll items (``data.responses[]``) → answer parts.

The poll answer is cumulative: every call returns all items so far. Each item keeps its ``id``,
so each item becomes exactly one part with a stable part id and the relay's upsert-by-id rule
does the rest. Only the *last* item decides whether the run is over (vendor rule).

A business field can live in three places (vendor rule, in this order): the item itself,
``modelRes.data``, or the JSON *string* ``rawRes`` under ``data``. Any of them may be missing
or malformed; :func:`read_field` shrugs that off.

Answer groups: items may carry ``resGroupId`` (cz-cli, checked against the vendor's UAT, takes
the final answer from the latest group; the official pages do not mention it). When a later
group appears, the earlier groups' parts are *withdrawn* — their SQL, charts, summaries and
progress no longer belong to the answer — except the knowledge they consulted. Items without a
``resGroupId`` belong to no group and always stay. Within what is shown, the answer text is the
*last* ``summary`` item (cz-cli's rule too); earlier summary items are withdrawn.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from adapters.answer import (
    ChartPart, CodePart, Column, ErrorPart, Finished, KnowledgeEntry, KnowledgePart, MetricPart,
    Outcome, Part, SqlPart, StatusPart, StepPart, StepState, TextPart,
)
from adapters.text import unescape_literal

log = logging.getLogger(__name__)

TERMINAL = {"finish": Outcome.DONE, "finish_stop": Outcome.STOPPED, "error": Outcome.FAILED}


# -- reading fields ---------------------------------------------------------------------------
def _as_mapping(value: Any) -> Mapping[str, Any] | None:
    """A dict, or a JSON string holding one; anything else is ``None``."""
    if isinstance(value, Mapping):
        return value
    if isinstance(value, (str, bytes)) and value:
        try:
            parsed = json.loads(value)
        except (ValueError, TypeError):
            return None
        return parsed if isinstance(parsed, Mapping) else None
    return None


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def read_field(item: Mapping[str, Any], name: str) -> Any:
    """``item[name]`` → ``item.modelRes.data[name]`` → ``json(item.rawRes).data[name]``.

    Empty strings count as missing: items often carry ``message: ""`` at the top level while
    the text sits in ``modelRes.data``.
    """
    value = item.get(name)
    if not _empty(value):
        return value
    model = _as_mapping(item.get("modelRes"))
    if model is not None:
        data = _as_mapping(model.get("data"))
        if data is not None and not _empty(data.get(name)):
            return data.get(name)
    raw = _as_mapping(item.get("rawRes"))
    if raw is not None:
        data = _as_mapping(raw.get("data"))
        if data is not None and not _empty(data.get(name)):
            return data.get(name)
        if not _empty(raw.get(name)):
            return raw.get(name)
    return None


def read_text(item: Mapping[str, Any], *names: str) -> str:
    """The first non-empty field among ``names``, as text with literal ``\\n`` unescaped."""
    for name in names:
        value = read_field(item, name)
        if not _empty(value):
            return unescape_literal(value if isinstance(value, str) else str(value)).strip()
    return ""


def read_code(item: Mapping[str, Any], *names: str) -> str:
    """Like :func:`read_text` for SQL, which may hold backslashes of its own (``LIKE '%\\_%'``,
    regexes): unescape only code that arrived flattened onto one line with literal ``\\n``."""
    for name in names:
        value = read_field(item, name)
        if _empty(value):
            continue
        text = value if isinstance(value, str) else str(value)
        if "\\n" in text and "\n" not in text:
            text = unescape_literal(text)
        return text.strip()
    return ""


# -- columns ----------------------------------------------------------------------------------
_TYPE = re.compile(r"^[A-Za-z_][\w]*(?:\s*[(<].*[)>])?$")


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside parentheses or a type's angle brackets."""
    pieces, parens, angles, start = [], 0, 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            parens += 1
        elif ch == ")" and parens:
            parens -= 1
        elif ch == "<" and i and text[i - 1].isalnum():  # ARRAY<…>, MAP<K,V>; not "a < b"
            angles += 1
        elif ch == ">" and angles:
            angles -= 1
        elif ch == "," and parens == 0 and angles == 0:
            pieces.append(text[start:i])
            start = i + 1
    pieces.append(text[start:])
    return [p.strip() for p in pieces if p.strip()]


def _split_name_type(segment: str) -> Column:
    """``Total (10K CNY) (LONG)`` → name ``Total (10K CNY)``, type ``LONG``: the type is the
    *last* parenthesised token, and only if it looks like a type name."""
    if segment.endswith(")"):
        depth = 0
        for i in range(len(segment) - 1, -1, -1):
            if segment[i] == ")":
                depth += 1
            elif segment[i] == "(":
                depth -= 1
                if depth == 0:
                    inner, name = segment[i + 1:-1].strip(), segment[:i].strip()
                    if name and _TYPE.match(inner):
                        return Column(name=name, type=inner.upper())
                    break
    return Column(name=segment)


def parse_columns(raw: Any) -> tuple[Column, ...]:
    """Chart columns from ``"District (STRING), Total (10K CNY) (LONG)"`` or a list form."""
    if raw is None:
        return ()
    if isinstance(raw, str):
        parsed = None
        if raw.strip().startswith("["):
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
        if parsed is None:
            return tuple(_split_name_type(p) for p in _split_top_level(raw))
        raw = parsed
    if isinstance(raw, list):
        columns = []
        for entry in raw:
            if isinstance(entry, Mapping):
                name = entry.get("name") or entry.get("columnName") or entry.get("label")
                if name:
                    columns.append(Column(str(name), str(entry.get("type") or entry.get("dataType") or "").upper()))
            elif isinstance(entry, str) and entry.strip():
                columns.append(_split_name_type(entry.strip()))
        return tuple(columns)
    return ()


# -- one item → one part ----------------------------------------------------------------------
def item_id(item: Mapping[str, Any], index: int) -> str:
    raw = item.get("id")
    return f"cz-{raw}" if not _empty(raw) else f"cz-at-{index}"


def data_type(item: Mapping[str, Any]) -> str:
    value = read_field(item, "dataType")
    return str(value).strip() if value is not None else ""


def _knowledge_entries(item: Mapping[str, Any]) -> tuple[KnowledgeEntry, ...]:
    knowledge = _as_mapping(read_field(item, "knowledgeData")) or {}
    details = knowledge.get("detailItems")
    if isinstance(details, str):
        try:
            details = json.loads(details)
        except ValueError:
            details = None
    entries = []
    for detail in details if isinstance(details, list) else []:
        if not isinstance(detail, Mapping):
            continue
        keys = detail.get("keys")
        title = ", ".join(str(k) for k in keys) if isinstance(keys, list) else str(keys or "").strip()
        value = detail.get("value")
        parsed = _as_mapping(value)
        if parsed is not None:
            text = parsed.get("desc") or parsed.get("description") or parsed.get("content") or ""
            text = text if isinstance(text, str) else json.dumps(text, ensure_ascii=False)
        else:
            text = value if isinstance(value, str) else ""
        entries.append(KnowledgeEntry(title=unescape_literal(title) or "Knowledge entry",
                                      detail=unescape_literal(text).strip()))
    return tuple(entries)


def _dsl(item: Mapping[str, Any]) -> str:
    """Both DSLs in one JSON document; each parsed when it is a JSON string, kept raw otherwise."""
    kept: dict[str, Any] = {}
    for name in ("metricDsl", "physicalMetricDsl"):
        value = read_field(item, name)
        if _empty(value):
            continue
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        kept[name] = value
    return json.dumps(kept, ensure_ascii=False) if kept else ""


_METRIC_PREFIX = re.compile(r"^\s*(metric|指标)\s*[:：]\s*", re.IGNORECASE)


def _metric_name(item: Mapping[str, Any]) -> str:
    name = _METRIC_PREFIX.sub("", read_text(item, "message"))
    if not name:
        dsl = _as_mapping(read_field(item, "metricDsl")) or {}
        name = str(dsl.get("name") or "")
    return name or "Metric"


def to_part(item: Mapping[str, Any], index: int, *, last: bool) -> Part | None:
    """The part for one item, or ``None`` for items that only end the run."""
    pid = item_id(item, index)
    kind = data_type(item)
    if kind in TERMINAL and last:
        return None  # the run's end; see terminal()
    if kind == "notify":
        return StatusPart(id=pid, text=read_text(item, "message") or "Thinking…")
    if kind == "message":
        entries = _knowledge_entries(item)
        message = read_text(item, "message")
        if entries or read_field(item, "knowledgeData") is not None:
            return KnowledgePart(id=pid, entries=entries or (KnowledgeEntry(title=message or "Knowledge"),))
        return StepPart(id=pid, title=message, state=StepState.DONE) if message else None
    if kind == "metric":
        return MetricPart(id=pid, name=_metric_name(item), dsl=_dsl(item))
    if kind == "code":
        code = read_code(item, "code")
        code_type = str(read_field(item, "codeType") or "sql").strip().lower()
        title = read_text(item, "message")
        if not code:
            return StepPart(id=pid, title=title or "Writing code", state=StepState.RUNNING)
        if code_type in ("sql", ""):
            return SqlPart(id=pid, sql=code, title=title)
        return CodePart(id=pid, source=code, language=code_type)
    if kind == "echarts_plus":
        return ChartPart(id=pid, title=read_text(item, "message", "title"),
                         chart_type=str(read_field(item, "chartType") or ""),
                         columns=parse_columns(read_field(item, "columns")),
                         sql=read_code(item, "calculateSql", "sql"))
    if kind == "summary":
        text = read_text(item, "summaryData", "message")
        return TextPart(id=pid, markdown=text) if text else None
    if kind in TERMINAL:  # a terminal type that is not last: the vendor kept going
        message = read_text(item, "message")
        state = StepState.ERROR if kind == "error" else StepState.DONE
        return StepPart(id=pid, title=message or kind, state=state)
    # "thinking" (seen in cz-cli mocks) and anything new: progress, never a crash.
    if kind != "thinking":
        log.debug("unknown ClickZetta dataType %r shown as progress", kind)
    return StatusPart(id=pid, text=read_text(item, "message") or "Working…")


# -- a whole poll -----------------------------------------------------------------------------
@dataclass(frozen=True)
class PollView:
    """``parts`` to show (in item order); ``withdrawn``: ids of item parts that no longer belong
    to the answer (a superseded group, an earlier summary) — hide them if they were shown."""

    parts: tuple[Part, ...]
    finished: Finished | None
    withdrawn: tuple[str, ...] = ()


def group_of(item: Mapping[str, Any]) -> str | None:
    """The item's ``resGroupId`` as text (ids arrive as numbers or strings), or ``None``."""
    value = read_field(item, "resGroupId")
    if _empty(value) or isinstance(value, (dict, list)):
        return None
    return str(value).strip()


def terminal(items: list[Mapping[str, Any]]) -> Finished | None:
    """The run's end, judged by the last item only (vendor rule)."""
    if not items:
        return None
    index = len(items) - 1
    last = items[index]
    outcome = TERMINAL.get(data_type(last))
    if outcome is None:
        return None
    if outcome is Outcome.FAILED:
        message = read_text(last, "message", "errorMsg", "errMsg") or "ClickZetta could not complete the analysis"
        return Finished(outcome, ErrorPart(id=item_id(last, index), message=message, code="analysis_error"))
    return Finished(outcome)


def translate(items: Iterable[Any]) -> PollView:
    """Parts (in item order) of the latest group, the parts withdrawn, and the run's end, if the
    last item is terminal."""
    usable = [item for item in items if isinstance(item, Mapping)]
    groups = [group_of(item) for item in usable]
    latest = next((g for g in reversed(groups) if g is not None), None)
    candidates: list[tuple[Part, bool]] = []  # (part, superseded)
    for index, item in enumerate(usable):
        part = to_part(item, index, last=index == len(usable) - 1)
        if part is not None:
            superseded = groups[index] is not None and groups[index] != latest
            candidates.append((part, superseded and not isinstance(part, KnowledgePart)))
    # only ``summary`` items become text parts (see to_part)
    summaries = [p.id for p, gone in candidates if not gone and isinstance(p, TextPart)]
    answer_text = summaries[-1] if summaries else None
    parts: list[Part] = []
    withdrawn: list[str] = []
    for part, gone in candidates:
        if gone or (part.id in summaries and part.id != answer_text):
            withdrawn.append(part.id)
        else:
            parts.append(part)
    return PollView(parts=tuple(parts), finished=terminal(usable), withdrawn=tuple(withdrawn))

"""Fold ``/api/v1/stream/ask`` events into answer updates (backends.md §3.4, §3.9).

The stream has no event names and never repeats the final SQL or summary, so the folder keeps
what it has seen: the thread id announced by ``sql_generation_start`` (the one in
``message_stop`` is random for a new conversation that failed), the SQL from
``sql_generation_success``, and the raw (still JSON-escaped) text of each content block.
"""

from __future__ import annotations

import re
from typing import Any, Iterator

from adapters.answer import (
    PartKind, PartUpsert, SessionAssigned, SqlPart, StatusPart, StepPart, StepState, TextPart, Update,
)
from adapters.text import unescape_literal
from adapters.wren.client import StreamEvent, WrenApiError

# state -> (step key, title). Terminal states of SQL generation close the current step.
_STEPS: dict[str, tuple[str, str]] = {
    "sql_generation_start": ("understand", "Understanding your question"),
    "sql_generation_understanding": ("understand", "Understanding your question"),
    "sql_generation_searching": ("search", "Searching the data model"),
    "sql_generation_planning": ("plan", "Planning the query"),
    "sql_generation_generating": ("generate", "Writing SQL"),
    "sql_generation_correcting": ("correct", "Fixing the SQL"),
    "sql_execution_start": ("run", "Running the query"),
}
# step key -> the part it makes (shown as the step's output on a timeline)
_PRODUCES: dict[str, PartKind] = {"generate": PartKind.SQL, "correct": PartKind.SQL,
                                  "run": PartKind.TABLE, "summarize": PartKind.TEXT}
_BLOCK_PART = {"summary_generation": "summary", "explanation": "explanation"}
_TRAILING_ESCAPE = re.compile(r"(\\+)(u[0-9a-fA-F]{0,3})?$")
_TRAILING_HIGH_SURROGATE = re.compile(r"(\\+)u[dD][89abAB][0-9a-fA-F]{2}$")


def _held_back(raw: str, pattern: re.Pattern[str]) -> str | None:
    """``raw`` without its trailing escape matched by ``pattern``, if that escape is real (an odd
    run of backslashes starts it; an even run is escaped backslashes followed by plain text)."""
    match = pattern.search(raw)
    if match and len(match.group(1)) % 2 == 1:
        return raw[: match.end(1) - 1]
    return None


def display_text(raw: str) -> str:
    """Unescape text that may end inside an escape sequence (deltas split anywhere).

    An odd run of trailing backslashes means the last one starts an escape whose rest has not
    arrived yet; it is held back instead of flashing a stray ``\\`` at the reader. So is a
    trailing escaped high surrogate (the first half of an emoji): its low half may be in the
    next delta, and shown alone it would be a replacement character.
    """
    for pattern in (_TRAILING_ESCAPE, _TRAILING_HIGH_SURROGATE):
        cut = _held_back(raw, pattern)
        if cut is not None:
            raw = cut
    return unescape_literal(raw)


class StreamFolder:
    """Turns one stream's events into updates; read its fields when the stream ends."""

    def __init__(self, session_id: str | None) -> None:
        self.thread_id: str | None = session_id
        self._announced = False
        self.sql: str | None = None
        self.error: WrenApiError | None = None
        self.started = False  # any event seen: a 429 retry is no longer safe
        self.stopped = False  # message_stop seen
        self._texts: dict[str, str] = {}  # part id -> raw escaped text
        self._block: str | None = None
        self._step: tuple[str, str] | None = None  # running step (key, title)
        self._details: dict[str, str] = {}

    @property
    def has_answer(self) -> bool:
        return bool(self.sql) or any(display_text(t).strip() for t in self._texts.values())

    def feed(self, event: StreamEvent) -> Iterator[Update]:
        self.started = True
        kind = event.type
        if kind == "state":
            yield from self._state(event.data)
        elif kind == "content_block_start":
            block = event.payload.get("content_block") or {}
            name = block.get("name") if isinstance(block, dict) else None
            self._block = _BLOCK_PART.get(name or "", "summary")
            if self._block == "summary":
                yield from self._enter("summarize", "Writing the summary")
        elif kind == "content_block_delta":
            delta = event.payload.get("delta") or {}
            text = delta.get("text") if isinstance(delta, dict) else None
            if isinstance(text, str) and text:
                part_id = self._block or "summary"
                self._texts[part_id] = self._texts.get(part_id, "") + text
                yield PartUpsert(TextPart(part_id, display_text(self._texts[part_id])))
        elif kind == "content_block_stop":
            self._block = None
            yield from self._close(StepState.DONE)
        elif kind == "error":
            data = event.data
            extra = {k: v for k, v in data.items() if k not in {"error", "code"}}
            self.error = WrenApiError(200, code=str(data.get("code") or ""),
                                      error=str(data.get("error") or ""), extra=extra)
            yield from self._close(StepState.ERROR)
        elif kind == "message_stop":
            self.stopped = True
            yield from self._close(StepState.ERROR if self.error else StepState.DONE)
            thread_id = event.data.get("threadId")
            if not self._announced and self.error is None and isinstance(thread_id, str) and thread_id:
                yield from self._announce(thread_id)

    # -- helpers ------------------------------------------------------------------------------
    def _state(self, data: dict[str, Any]) -> Iterator[Update]:
        state = str(data.get("state") or "")
        if state == "sql_generation_start":
            thread_id = data.get("threadId")
            if isinstance(thread_id, str) and thread_id:
                yield from self._announce(thread_id)
        if state in _STEPS:
            key, title = _STEPS[state]
            self._note_details(key, data)
            yield from self._enter(key, title)
        elif state == "sql_generation_finished":
            yield from self._close(StepState.DONE)
        elif state in ("sql_generation_failed", "sql_generation_stopped"):
            yield from self._close(StepState.ERROR)
        elif state == "sql_generation_success":
            yield from self._close(StepState.DONE)
            sql = data.get("sql")
            if isinstance(sql, str) and sql.strip():
                self.sql = sql
                yield PartUpsert(SqlPart("sql", sql))
        elif state == "sql_execution_end":
            yield from self._close(StepState.DONE)

    def _announce(self, thread_id: str) -> Iterator[Update]:
        self._announced = True
        self.thread_id = thread_id
        yield SessionAssigned(session_id=thread_id)

    def _note_details(self, key: str, data: dict[str, Any]) -> None:
        detail = ""
        if key == "understand":
            detail = str(data.get("rephrasedQuestion") or data.get("intentReasoning") or "")
        elif key == "search":
            tables = data.get("retrievedTables")
            if isinstance(tables, list) and tables:
                detail = "Tables: " + ", ".join(str(t) for t in tables)
        elif key == "plan":
            detail = str(data.get("sqlGenerationReasoning") or "")
        elif key == "correct":
            detail = str(data.get("invalidSql") or "")
        if detail:
            self._details[key] = detail

    def _enter(self, key: str, title: str) -> Iterator[Update]:
        if self._step is not None and self._step[0] != key:
            yield from self._close(StepState.DONE)
        self._step = (key, title)
        yield PartUpsert(StepPart(f"step:{key}", title, StepState.RUNNING, self._details.get(key, ""),
                                  _PRODUCES.get(key)))
        yield PartUpsert(StatusPart("status", title + "…"))

    def _close(self, state: StepState) -> Iterator[Update]:
        if self._step is None:
            return
        key, title = self._step
        self._step = None
        yield PartUpsert(StepPart(f"step:{key}", title, state, self._details.get(key, ""),
                                  _PRODUCES.get(key)))

"""Follow-up questions built from the answer itself, when the backend proposes none.

Peers offer the next question a click away (Genie returns suggested questions with its result).
None of our three backends documents suggestions, so the relay builds a few from the result
table's columns: a time column gives "by month" and "compared to last year", a measure and a
category give "top 10", a second category gives "broken down by". They are plain questions,
asked in the same thread, so the backend keeps the context they refer to. An answer without a
table gets none: there is nothing to build them from honestly.
"""

from __future__ import annotations

import datetime as dt
import re

from adapters.answer import Answer, Column, Outcome, SuggestionsPart, TablePart
from bot.delivery.tabular import numeric_columns, plain_integers

PART_ID = "suggested"
MAX = 3

_TIME_TYPES = ("date", "time", "timestamp", "datetime", "temporal")
_TIME_NAMES = re.compile(r"(^|_|\b)(date|day|week|month|quarter|year|time|period|dt)(s)?($|_|\b)",
                         re.IGNORECASE)
_ISO_DATE = re.compile(r"^\d{4}-\d{2}(-\d{2})?")


def with_suggestions(answer: Answer) -> Answer:
    """``answer`` with built suggestions, unless it has some, did not finish, or has no table."""
    if answer.outcome is not Outcome.DONE or any(isinstance(p, SuggestionsPart) for p in answer.parts):
        return answer
    questions = suggest([p for p in answer.parts if isinstance(p, TablePart)])
    return answer.upsert(SuggestionsPart(PART_ID, tuple(questions))) if questions else answer


def suggest(tables: list[TablePart]) -> list[str]:
    if not tables:
        return []
    table = tables[0]
    numeric = numeric_columns(table)
    prefix = _shared_prefix([c.name for c in table.columns])
    words = lambda c: _words(c.name, prefix)  # noqa: E731 - a local naming rule
    # Ids, keys, codes and years are numbers nobody ranks or sums by, and no category either.
    keys = [plain_integers(c.name) for c in table.columns]
    time = [c for i, c in enumerate(table.columns)
            if (not numeric[i] or "year" in c.name.lower()) and _is_time(table, i, c)]
    measures = [c for i, c in enumerate(table.columns) if numeric[i] and not keys[i] and c not in time]
    categories = [c for i, c in enumerate(table.columns)
                  if not numeric[i] and not keys[i] and c not in time]
    measure = words(measures[0]) if measures else ""
    out: list[str] = []
    if time:
        if "month" not in words(time[0]):
            out.append(f"Show {measure or 'this'} by month")
        out.append(f"Compare {measure or 'this'} to the same period last year")
    if categories and measure:
        out.append(f"Top 10 {words(categories[0])} by {measure}")
    if len(categories) > 1:
        out.append(f"Break {measure or 'this'} down by {words(categories[1])}")
    elif categories and not time and measure:
        out.append(f"Show {measure} by {words(categories[0])} over the last 12 months")
    return out[:MAX]


def _is_time(table: TablePart, index: int, column: Column) -> bool:
    if any(t in column.type.lower() for t in _TIME_TYPES) or _TIME_NAMES.search(column.name):
        return True
    values = [r[index] for r in table.rows[:20] if index < len(r) and r[index] is not None]
    return bool(values) and all(isinstance(v, (dt.date, dt.datetime)) or
                                (isinstance(v, str) and _ISO_DATE.match(v)) for v in values)


def _shared_prefix(names: list[str]) -> str:
    """A short table prefix every column carries (TPC-DS's ``s_``, ``ss_``, ``c_``): it names
    the table, not the column, so questions read better without it."""
    first = re.match(r"^[A-Za-z]{1,3}_", names[0]) if names else None
    if first and len(names) > 1 and all(n.startswith(first.group(0)) for n in names):
        return first.group(0)
    return ""


def _words(name: str, prefix: str = "") -> str:
    """``customer_state`` → "customer state", ``totalRevenue`` → "total revenue"."""
    if prefix and name.startswith(prefix) and len(name) > len(prefix):
        name = name[len(prefix):]
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).replace("_", " ").replace("-", " ")
    return " ".join(spaced.lower().split())

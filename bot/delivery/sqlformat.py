"""Make backend SQL readable in a chat message.

Backends often return a whole query on one line; shown as-is in a code block it is a wall of
text. sqlparse re-indents it (one clause per line) without changing what it means; SQL that is
already laid out over several lines is left as the backend wrote it.

sqlparse is pure Python and slow: 10 ms for a short query, far more for a long one, and a reply
is rendered several times (each progress edit, the final answer). Done on the event loop, that is
lag for every other run. So results are cached, and :func:`format_ahead` formats new SQL in a
worker thread before a reply is rendered; rendering then only reads the cache.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable

import sqlparse


@functools.lru_cache(maxsize=1024)
def readable_sql(sql: str) -> str:
    sql = sql.strip()
    if not sql:
        return sql
    lines = sql.splitlines()
    if len(lines) > 1 and max(len(line) for line in lines) <= 120:
        return sql
    try:
        return sqlparse.format(sql, reindent=True, keyword_case="upper", indent_width=2).strip()
    except Exception:  # sqlparse is non-validating; never let formatting hide the SQL
        return sql


async def format_ahead(queries: Iterable[str]) -> None:
    """Fill the cache for ``queries`` off the event loop."""
    todo = [q for q in set(queries) if q and q.strip()]
    if todo:
        await asyncio.to_thread(lambda: [readable_sql(q) for q in todo])

"""Make backend SQL readable in a chat message.

Backends often return a whole query on one line; shown as-is in a code block it is a wall of
text. sqlparse re-indents it (one clause per line) without changing what it means; SQL that is
already laid out over several lines is left as the backend wrote it.
"""

from __future__ import annotations

import sqlparse


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

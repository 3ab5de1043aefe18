"""Run an ``echarts_plus`` item's SQL against the operator's warehouse, read-only.

ClickZetta sends chart *metadata* and SQL but no rows ("your application must execute the SQL
and render the chart"). The SQL is model-generated, so it is treated as untrusted:

* :func:`ensure_read_only` accepts exactly one ``SELECT``/``WITH`` statement and rejects
  data-changing keywords anywhere outside strings and comments;
* the connection is opened read-only where the dialect allows (SQLite ``mode=ro`` URI plus
  ``PRAGMA query_only``; ``SET TRANSACTION READ ONLY`` on PostgreSQL and MySQL);
* the statement runs inside a transaction that is always rolled back, with a row cap and a
  timeout that interrupts the driver.

The guard is a second line of defence; the first is a warehouse user that can only read.
Sync drivers run in a worker thread; async ones (``+asyncpg`` …) on an async engine.
``sqlite+aiosqlite`` is served by the sync ``sqlite`` driver on the same file (simpler, and its
queries can be interrupted).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

log = logging.getLogger(__name__)


class WarehouseError(Exception):
    """Why a chart query did not run; the text is safe to show (no URL, no password)."""


class NotReadOnly(WarehouseError):
    """The SQL is not a single read-only SELECT."""


# -- the read-only guard ----------------------------------------------------------------------
# Statements must start with SELECT/WITH, so only words that can smuggle a change *into* one
# matter: data-modifying CTEs (PostgreSQL), SELECT … INTO, and anything exotic besides.
_FORBIDDEN = frozenset("""
    INSERT UPDATE DELETE MERGE UPSERT INTO DROP CREATE ALTER TRUNCATE GRANT REVOKE COPY CALL
    EXEC EXECUTE ATTACH DETACH PRAGMA VACUUM LOCK COMMIT ROLLBACK SAVEPOINT BEGIN
""".split())
_WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")


def _scan(sql: str) -> list[tuple[str, str]]:
    """Split ``sql`` into statements as ``(original text, text with strings/comments blanked)``.

    Quotes: '…' (with '' and backslash escapes), "…" and `…` identifiers. An unterminated
    quote or comment is rejected: guessing there is how guards are bypassed.
    """
    statements: list[tuple[str, str]] = []
    clean: list[str] = []
    start, i, n = 0, 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end
            clean.append(" ")
            continue
        if ch == "/" and sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            if end < 0:
                raise NotReadOnly("the chart SQL has an unterminated comment")
            i = end + 2
            clean.append(" ")
            continue
        if ch in "'\"`":
            j = i + 1
            while True:
                if j >= n:
                    raise NotReadOnly("the chart SQL has an unterminated quote")
                if sql[j] == "\\" and ch == "'":
                    j += 2
                    continue
                if sql[j] == ch:
                    if j + 1 < n and sql[j + 1] == ch:  # doubled quote
                        j += 2
                        continue
                    break
                j += 1
            clean.append(" '' " if ch == "'" else ' "x" ')
            i = j + 1
            continue
        if ch == ";":
            statements.append((sql[start:i], "".join(clean)))
            clean, start = [], i + 1
            i += 1
            continue
        clean.append(ch)
        i += 1
    statements.append((sql[start:], "".join(clean)))
    return [(orig.strip(), cleaned) for orig, cleaned in statements if cleaned.strip()]


def ensure_read_only(sql: str) -> str:
    """Return the single statement (without its trailing ``;``) or raise :class:`NotReadOnly`."""
    statements = _scan(sql or "")
    if not statements:
        raise NotReadOnly("the chart SQL is empty")
    if len(statements) > 1:
        raise NotReadOnly("the chart SQL holds more than one statement")
    original, cleaned = statements[0]
    words = [w.upper() for w in _WORD.findall(cleaned)]
    if not words or words[0] not in ("SELECT", "WITH"):
        raise NotReadOnly("the chart SQL is not a SELECT")
    bad = sorted(set(words) & _FORBIDDEN)
    if bad:
        raise NotReadOnly(f"the chart SQL contains {bad[0]}, which is not allowed")
    return original


# -- results ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class QueryResult:
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    truncated: bool = False


def plain(value: Any) -> Any:
    """A JSON-safe value for a Vega-Lite inline dataset."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return None
    return str(value)


# -- the warehouse ----------------------------------------------------------------------------
class _Interrupter:
    """Holds the running DBAPI connection so a timeout can interrupt it from the event loop."""

    def __init__(self) -> None:
        self.connection: Any = None

    def __call__(self) -> None:
        conn = self.connection
        for name in ("interrupt", "cancel"):  # sqlite3 / psycopg2, psycopg
            method = getattr(conn, name, None)
            if callable(method) and not asyncio.iscoroutinefunction(method):
                try:
                    method()
                except Exception:  # best effort; the rollback still happens
                    log.debug("could not interrupt the chart query", exc_info=True)
                return


def _read_only_url(url: URL) -> URL:
    if url.get_backend_name() != "sqlite":
        return url
    if url.drivername == "sqlite+aiosqlite":
        url = url.set(drivername="sqlite")
    database = url.database or ""
    if not database or database == ":memory:":
        return url
    if not database.startswith("file:"):
        database = "file:" + database
    return url.set(database=database, query={**url.query, "mode": "ro", "uri": "true"})


class Warehouse:
    """Runs chart SQL read-only with a row cap and a timeout. Engines are made on first use."""

    def __init__(self, url: str, *, row_cap: int = 1000, timeout: float = 20.0) -> None:
        self._raw_url = url
        self._row_cap = row_cap
        self._timeout = timeout
        self._engine: Engine | AsyncEngine | None = None
        self._password = ""

    # -- engine ---------------------------------------------------------------------------
    def _safe(self, text: str) -> str:
        text = text.splitlines()[0] if text else ""
        if self._password:
            text = text.replace(self._password, "***")
        return text[:300]

    def _make_engine(self) -> Engine | AsyncEngine:
        try:
            url = make_url(self._raw_url)
        except ArgumentError:
            raise WarehouseError("CLICKZETTA_WAREHOUSE_URL is not a valid SQLAlchemy URL") from None
        self._password = url.password or ""
        url = _read_only_url(url)
        try:
            dialect = url.get_dialect()
        except NoSuchModuleError:
            hint = " (pip install clickzetta-sqlalchemy)" if url.get_backend_name() == "clickzetta" else ""
            raise WarehouseError(f"the SQLAlchemy dialect for {url.drivername!r} is not installed{hint}") from None
        try:
            if getattr(dialect, "is_async", False):
                return create_async_engine(url, pool_pre_ping=True)
            return create_engine(url, pool_pre_ping=True)
        except ImportError as exc:
            raise WarehouseError(f"the database driver for {url.drivername!r} is not installed "
                                 f"({self._safe(str(exc))})") from None

    def _get_engine(self) -> Engine | AsyncEngine:
        if self._engine is None:
            self._engine = self._make_engine()
        return self._engine

    # -- running --------------------------------------------------------------------------
    def _execute(self, conn: Connection, sql: str, interrupter: _Interrupter) -> QueryResult:
        """Runs in a worker thread (sync engines) or under ``run_sync`` (async engines)."""
        backend = conn.dialect.name
        interrupter.connection = conn.connection.driver_connection
        try:  # SQLAlchemy autobegins on the first statement; the rollback below ends it
            if backend == "sqlite":
                conn.exec_driver_sql("PRAGMA query_only = ON")
            elif backend in ("mysql", "mariadb"):
                conn.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
                conn.rollback()  # the next transaction is the read-only one
            elif backend == "postgresql":
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            result = conn.execution_options(no_parameters=True, stream_results=True).exec_driver_sql(sql)
            if not result.returns_rows:
                raise WarehouseError("the chart SQL returned no rows")
            columns = tuple(str(k) for k in result.keys())
            fetched = result.fetchmany(self._row_cap + 1)
            result.close()
        finally:
            conn.rollback()
        rows = tuple(tuple(plain(v) for v in row) for row in fetched[: self._row_cap])
        return QueryResult(columns=columns, rows=rows, truncated=len(fetched) > self._row_cap)

    def _run_sync(self, engine: Engine, sql: str, interrupter: _Interrupter) -> QueryResult:
        with engine.connect() as conn:
            return self._execute(conn, sql, interrupter)

    async def _run_async(self, engine: AsyncEngine, sql: str, interrupter: _Interrupter) -> QueryResult:
        async with engine.connect() as conn:
            return await conn.run_sync(self._execute, sql, interrupter)

    async def fetch(self, sql: str) -> QueryResult:
        """Rows of ``sql`` (capped); raises :class:`WarehouseError` with a showable reason."""
        statement = ensure_read_only(sql)
        engine = self._get_engine()
        interrupter = _Interrupter()
        if isinstance(engine, AsyncEngine):
            work = self._run_async(engine, statement, interrupter)
        else:
            work = asyncio.to_thread(self._run_sync, engine, statement, interrupter)
        try:
            return await asyncio.wait_for(work, self._timeout)
        except asyncio.TimeoutError:
            interrupter()
            raise WarehouseError(f"the chart query took longer than {self._timeout:g} s") from None
        except WarehouseError:
            raise
        except Exception as exc:  # driver errors: report the first line, never the URL
            raise WarehouseError(f"the chart query failed: {self._safe(str(exc)) or type(exc).__name__}") from None

    async def aclose(self) -> None:
        engine, self._engine = self._engine, None
        if isinstance(engine, AsyncEngine):
            await engine.dispose()
        elif engine is not None:
            await asyncio.to_thread(engine.dispose)

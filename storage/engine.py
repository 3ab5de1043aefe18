"""Async engine factory: one place that knows how each supported database must be set up.

Operators paste URLs in whatever form their provider hands out (``postgres://…?sslmode=require``,
``sqlite:///…``); we rewrite them to the async drivers we ship (asyncpg, aiosqlite) so a copied
URL just works. SQLite gets the per-connection settings that make it safe to share between
tasks and processes: WAL (readers don't block the writer), a busy timeout (writers queue
instead of failing with "database is locked") and enforced foreign keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

DEFAULT_URL = "sqlite+aiosqlite:///./data/insightbot.db"

SQLITE_BUSY_TIMEOUT_MS = 5000

_DRIVER_REWRITES = {
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
}


def normalize_url(url: str | URL) -> URL:
    """Return ``url`` with a sync or bare driver name replaced by its async driver.

    libpq's ``sslmode`` query parameter becomes asyncpg's ``ssl`` (which accepts the same mode
    names), because asyncpg rejects ``sslmode`` as an unknown keyword.
    """
    parsed = make_url(url) if isinstance(url, str) else url
    driver = _DRIVER_REWRITES.get(parsed.drivername)
    if driver is not None:
        parsed = parsed.set(drivername=driver)
    if parsed.drivername == "postgresql+asyncpg" and "sslmode" in parsed.query:
        query = dict(parsed.query)
        query.setdefault("ssl", query.pop("sslmode"))
        parsed = parsed.set(query=query)
    return parsed


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def _ensure_sqlite_parent(url: URL) -> None:
    """Create the database file's directory: SQLite creates the file but not its folder."""
    database = url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # busy_timeout first: switching to WAL needs a brief exclusive lock that a second
    # process may hold at the same moment.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def create_engine(url: str | URL = DEFAULT_URL, **kwargs: Any) -> AsyncEngine:
    """Create the service's :class:`AsyncEngine` for ``url`` (see :func:`normalize_url`).

    Extra keyword arguments go to :func:`sqlalchemy.ext.asyncio.create_async_engine`
    (tests use ``connect_args``; operators never need them).
    """
    parsed = normalize_url(url)
    kwargs.setdefault("pool_pre_ping", True)
    if is_sqlite(parsed):
        _ensure_sqlite_parent(parsed)
    engine = create_async_engine(parsed, **kwargs)
    if is_sqlite(parsed):
        event.listen(engine.sync_engine, "connect", _set_sqlite_pragmas)
    return engine

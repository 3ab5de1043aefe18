"""Engine factory: one place that knows how each supported database must be set up.

Operators paste URLs in whatever form their provider hands out (``postgres://…?sslmode=require``,
``sqlite:///…``); we rewrite them to the async drivers we ship (asyncpg, aiosqlite) so a copied
URL just works.

SQLite is one file with one write lock, and a burst of questions must never end in "database is
locked". Every SQLite connection made here (async or not) therefore gets:

* transactions that begin with ``BEGIN IMMEDIATE``. We take over transaction control
  (SQLAlchemy's documented recipe for pysqlite/aiosqlite: the driver's implicit ``BEGIN`` is
  switched off on "connect", the "begin" event emits ours), so a transaction holds the write
  lock from its first statement on and never has to upgrade a read lock — the upgrade that
  fails at once with SQLITE_BUSY, whatever the busy timeout, when another writer committed
  in between. Connections marked :data:`READ_ONLY` start no transaction at all: each of
  their statements reads its own snapshot, beside the writer (WAL);
* WAL, ``synchronous=NORMAL``, enforced foreign keys, and a busy timeout — the way to wait for a
  writer in *another* process on the same file.

The repository runs a SQLite file through :func:`create_sqlite_sync_engine` engines in worker
threads (:mod:`storage.runners`): one writer connection, so this process's writers queue instead
of contending for the lock, and each transaction runs whole inside one thread hop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

DEFAULT_URL = "sqlite+aiosqlite:///./data/insightbot.db"

SQLITE_BUSY_TIMEOUT_MS = 5000

# Execution option read by the SQLite "begin" hook: how a transaction starts ("IMMEDIATE",
# "DEFERRED", or "" for no transaction: each statement then stands alone).
SQLITE_BEGIN = "insightbot_sqlite_begin"
READ_ONLY: dict[str, Any] = {SQLITE_BEGIN: ""}

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


def is_sqlite_memory(url: URL) -> bool:
    """An in-memory database: every connection would see a different one."""
    database = url.database or ""
    return database in ("", ":memory:") or "mode=memory" in database or url.query.get("mode") == "memory"


def _ensure_sqlite_parent(url: URL) -> None:
    """Create the database file's directory: SQLite creates the file but not its folder."""
    database = url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # No implicit BEGIN from the driver: _on_sqlite_begin decides how a transaction starts.
    dbapi_connection.isolation_level = None
    # busy_timeout first: switching to WAL needs a brief exclusive lock that a second
    # process may hold at the same moment.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        # NORMAL under WAL: a commit no longer waits for an fsync of the WAL (0.6 → 0.05 ms per
        # commit on the CI machine); the WAL is synced at each checkpoint. The trade: a power
        # cut or OS crash can lose the last transactions committed before it. A crash of this
        # process loses nothing, and the file is never corrupted either way.
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _on_sqlite_begin(conn: Any) -> None:
    mode = conn.get_execution_options().get(SQLITE_BEGIN, "IMMEDIATE")
    if mode:
        conn.exec_driver_sql(f"BEGIN {mode}")


def _listen_sqlite(engine: Engine) -> None:
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", _on_sqlite_begin)


def create_engine(url: str | URL = DEFAULT_URL, **kwargs: Any) -> AsyncEngine:
    """Create an :class:`AsyncEngine` for ``url`` (see :func:`normalize_url`).

    Extra keyword arguments go to :func:`sqlalchemy.ext.asyncio.create_async_engine`
    (tests use ``connect_args``; operators never need them). Migrations and tests use it; the
    repository's SQLite queries use :func:`create_sqlite_sync_engine` engines instead.
    """
    parsed = normalize_url(url)
    sqlite = is_sqlite(parsed)
    # a pre-ping costs a round trip per checkout; a local file has no connection to go stale
    kwargs.setdefault("pool_pre_ping", not sqlite)
    if sqlite:
        _ensure_sqlite_parent(parsed)
    engine = create_async_engine(parsed, **kwargs)
    if sqlite:
        _listen_sqlite(engine.sync_engine)
    return engine


def create_sqlite_sync_engine(url: str | URL, *, connections: int, read_only: bool = False) -> Engine:
    """A blocking engine (stdlib ``sqlite3``) on the SQLite file of ``url``, for worker threads.

    Its pool holds ``connections`` and never times out (a thread holds one only while it runs
    a unit of work). ``read_only`` marks every connection :data:`READ_ONLY`. Unlike
    :func:`create_engine` it does not create the file's folder.
    """
    parsed = normalize_url(url).set(drivername="sqlite+pysqlite")
    options: dict[str, Any] = {"execution_options": READ_ONLY} if read_only else {}
    engine = create_sync_engine(parsed, pool_size=connections, max_overflow=0, pool_timeout=None,
                                **options)
    _listen_sqlite(engine)
    return engine

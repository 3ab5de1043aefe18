"""Apply Alembic migrations from code, with no ``alembic.ini`` needed at runtime.

``serve`` upgrades at start-up from inside its event loop, so :func:`upgrade` runs Alembic's
(synchronous) command API on the async engine's connection through ``run_sync`` and hands
that connection to ``env.py`` via ``config.attributes["connection"]`` (Alembic's asyncio
cookbook). On PostgreSQL a transaction-scoped advisory lock serialises replicas that start at
the same time: the first applies the migrations, the others then find the schema at head.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.engine import DEFAULT_URL, create_engine, normalize_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# An arbitrary constant shared by every replica: "insightbot migrations".
_PG_MIGRATION_LOCK_ID = 0x1E51_6B07


def make_config(url: str | None = None) -> Config:
    """An Alembic Config pointing at the packaged migrations (``url`` only for offline use)."""
    config = Config()
    # ConfigParser interpolates '%', which may occur in a path or a URL-encoded password.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if url is not None:
        rendered = normalize_url(url).render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def _upgrade_on(connection: Connection, revision: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_MIGRATION_LOCK_ID})
    config = make_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def upgrade(url_or_engine: str | AsyncEngine = DEFAULT_URL, revision: str = "head") -> None:
    """Upgrade the database to ``revision``; a no-op when it is already there.

    Given a URL, a temporary engine is created and disposed; given an engine, it is left open.
    """
    if isinstance(url_or_engine, AsyncEngine):
        engine, owned = url_or_engine, False
    else:
        engine, owned = create_engine(url_or_engine), True
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade_on, revision)
    finally:
        if owned:
            await engine.dispose()


def upgrade_sync(url: str = DEFAULT_URL, revision: str = "head") -> None:
    """Blocking :func:`upgrade` for the CLI (``insightbot db upgrade``); not for a running loop."""
    asyncio.run(upgrade(url, revision))

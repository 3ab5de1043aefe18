"""Alembic environment for insightbot, written for an async engine.

Two ways in:

* programmatic (``storage.migrate.upgrade``): the caller already holds a connection inside
  ``AsyncConnection.run_sync`` and passes it as ``config.attributes["connection"]``;
* the ``alembic`` CLI (``alembic -c storage/migrations/alembic.ini ...``, for developers writing
  new revisions): we create an async engine from ``DATABASE_URL`` and run through ``run_sync``.

SQLite cannot ALTER most things in place, so operations are rendered in batch mode there.
"""

from __future__ import annotations

import asyncio
import os
from logging.config import fileConfig
from typing import Any

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection

from storage.engine import DEFAULT_URL, create_engine, normalize_url
from storage.models import Base, UTCDateTime

config = context.config
target_metadata = Base.metadata

if config.config_file_name is not None and config.attributes.get("connection") is None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or os.environ.get("DATABASE_URL") or DEFAULT_URL


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | bool:
    """Render our UTC column type as the plain type it stores, so revisions need no import."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _options(dialect_name: str) -> dict[str, Any]:
    return {
        "target_metadata": target_metadata,
        "render_as_batch": dialect_name == "sqlite",
        "compare_type": True,
        "render_item": _render_item,
    }


def run_migrations_offline() -> None:
    url = normalize_url(_url())
    context.configure(
        url=url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **_options(url.get_backend_name()),
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, **_options(connection.dialect.name))
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    engine = create_engine(_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
    else:
        asyncio.run(run_async_migrations())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

"""Alembic environment: runs on the connection handed over by controller.store.migrate.

Running ``alembic`` by hand also works: the URL then comes from
``-x url=...`` or ``STREETLIGHT_DATABASE__URL``.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

import controller.store.tables  # noqa: F401 - registers the tables on SQLModel.metadata

target_metadata = SQLModel.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_standalone(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        await conn.run_sync(_configure)
        await conn.commit()
    await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    _configure(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get(
        "STREETLIGHT_DATABASE__URL", "sqlite+aiosqlite:///data/streetlight.db"
    )
    asyncio.run(_run_standalone(url))

"""Migrations run up and down on SQLite and PostgreSQL, and match the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import controller.store.tables  # noqa: F401 - the models
from controller.store import migrate
from controller.store.db import Database


async def test_schema_matches_models_and_downgrade_works(db: Database) -> None:
    def diff(conn: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(conn), SQLModel.metadata))

    async with db.engine.connect() as conn:
        assert await conn.run_sync(diff) == []
    assert await migrate.current_revision(db) == migrate.head_revision()
    await migrate.downgrade(db, "base")
    assert await migrate.current_revision(db) is None
    await migrate.upgrade(db)
    assert await migrate.current_revision(db) == migrate.head_revision()

"""The nightly housekeeping of the leader: old raw rows deleted, finished months rolled up."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import delete

from controller.config.settings import Settings
from controller.core.clock import Clock
from controller.energy.rollup import close_months
from controller.store.db import Database
from controller.store.tables import IngestBatch, ReadingRow

log = logging.getLogger(__name__)

INGEST_BATCH_RETENTION = timedelta(days=3)
"""Idempotency keys of ingested batches are kept this long (a retry never comes later)."""


class Housekeeping:
    """One ``nightly()`` run; failures are logged, never raised (they must not stop the loops)."""

    def __init__(self, settings: Settings, db: Database, clock: Clock) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock

    async def nightly(self) -> None:
        now = self.clock.now()
        cutoff = now - timedelta(days=self.settings.controller.reading_retention_days)
        try:
            async with self.db.engine.begin() as conn:
                await conn.execute(delete(ReadingRow).where(ReadingRow.at < cutoff))  # type: ignore[arg-type]
                old = now - INGEST_BATCH_RETENTION
                await conn.execute(delete(IngestBatch).where(IngestBatch.at < old))  # type: ignore[arg-type]
        except Exception as exc:  # housekeeping must not stop the controller
            log.warning("deleting old readings failed: %s", exc)
        try:  # the monthly energy rollup of the months that are over (docs/ioc.md)
            await close_months(db=self.db, site=self.settings.site.to_site(), now=self.clock.now())
        except Exception as exc:
            log.warning("closing the monthly energy rollup failed: %s", exc)

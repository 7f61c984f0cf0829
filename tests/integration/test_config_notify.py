"""Cluster config changes travel as PostgreSQL NOTIFY, saying whether only overrides changed."""

from __future__ import annotations

import asyncio
import contextlib

from controller.loop.cluster import OVERRIDES_ONLY, listen_config_changes, notify_config_changed
from controller.store.db import open_database
from tests.e2e.receivers import eventually


async def test_notify_carries_what_changed(pg_database_url: str) -> None:
    db = open_database(pg_database_url)
    heard: list[str] = []
    try:
        listener = asyncio.create_task(listen_config_changes(db, heard.append))
        try:
            # the listener subscribes asynchronously: notify until it hears the first one
            async def first_heard() -> bool:
                await notify_config_changed(db, OVERRIDES_ONLY)
                return bool(heard)

            await eventually(first_heard, 10, "the listener hears a NOTIFY")
            heard.clear()
            await notify_config_changed(db)
            await notify_config_changed(db, OVERRIDES_ONLY)

            async def both() -> bool:
                return len(heard) >= 2

            await eventually(both, 10, "both notices heard")
            assert heard == ["", OVERRIDES_ONLY]
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
    finally:
        await db.dispose()

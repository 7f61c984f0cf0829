"""Cluster config changes travel as PostgreSQL NOTIFY, saying whether only overrides changed."""

from __future__ import annotations

import asyncio
import contextlib

from controller.loop.cluster import OVERRIDES_ONLY, listen_config_changes, notify_config_changed
from controller.store.db import open_database
from tests.e2e.receivers import eventually

PROBE = "probe"


async def test_notify_carries_what_changed(pg_database_url: str) -> None:
    db = open_database(pg_database_url)
    heard: list[str] = []
    try:
        listener = asyncio.create_task(listen_config_changes(db, heard.append))
        try:
            # the listener subscribes asynchronously: probe until it hears one (a probe sent
            # just before may still arrive after, so probes are told apart by their payload)
            async def first_heard() -> bool:
                await notify_config_changed(db, PROBE)
                return bool(heard)

            await eventually(first_heard, 10, "the listener hears a NOTIFY")
            await notify_config_changed(db)
            await notify_config_changed(db, OVERRIDES_ONLY)

            async def both() -> bool:
                return len([w for w in heard if w != PROBE]) >= 2

            await eventually(both, 10, "both notices heard")
            assert [w for w in heard if w != PROBE] == ["", OVERRIDES_ONLY]
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
    finally:
        await db.dispose()

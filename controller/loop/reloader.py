"""Configuration reloads: coalesced requests, the target book, and the cluster's NOTIFY.

A change to the inventory, the schedules or the overrides (``request``) reloads the
:class:`controller.loop.targets.TargetBook` soon, once for a burst of changes; in a cluster
the other instances are told (PostgreSQL ``NOTIFY``) and reload too. The new book goes to a
:class:`BookUser` (the supervisor), which re-plans the wake-ups and, when the inventory may
have changed, connects new gateways, closes removed ones and reconnects changed ones.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from dataclasses import replace
from typing import Protocol

from controller.config.settings import Settings
from controller.core.clock import Clock
from controller.loop.cluster import OVERRIDES_ONLY, listen_config_changes, notify_config_changed
from controller.loop.targets import TargetBook, load_active_overrides, load_target_book
from controller.store.db import Database

log = logging.getLogger(__name__)

FREEZE_HEAP_FROM = 20_000
"""Luminaires from which a full reload ends with :func:`settle_heap` (below, it is not worth
the pause of a full collection)."""


def settle_heap() -> None:
    """After a reload: collect the old book's garbage once, then freeze what survives.

    At 100,000 luminaires the book and the loops' memory are a few million objects that
    live until the next reload. Left to the cyclic garbage collector, every full
    collection walks all of them again (a noticeable share of a core at rest, and pauses
    in the middle of a fan-out); frozen, they are skipped. They are still freed by
    reference counting when dropped; cyclic garbage among them waits for this function's
    next call (the next reload), which unfreezes and collects first.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class BookUser(Protocol):
    """Takes every newly loaded book (the supervisor)."""

    def book_loaded(self, book: TargetBook, *, inventory: bool) -> None:
        """``inventory``: gateways and luminaires were read again (they may have changed)."""
        ...


class Reloader:
    """Owns the current book; ``run()`` serves reload requests until cancelled."""

    def __init__(
        self, settings: Settings, db: Database, clock: Clock, *, user: BookUser, cluster: bool
    ) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self._user = user
        self._cluster = cluster
        self.book: TargetBook | None = None
        self._lock = asyncio.Lock()
        self._wanted = asyncio.Event()
        self._everything = False
        self._notify_wanted = asyncio.Event()
        self._notify_everything = False

    def request(self, *, overrides_only: bool = False) -> None:
        """Ask for a reload soon (coalesced); in a cluster every other instance is told too.

        ``overrides_only``: only overrides changed, so only they are read again (at
        100,000 luminaires a full reload takes seconds; an override for the whole city
        must not wait for it).
        """
        self.heard(overrides_only=overrides_only)
        if self._cluster:
            self._notify_everything |= not overrides_only
            self._notify_wanted.set()

    def heard(self, *, overrides_only: bool) -> None:
        """A change this instance must reload for (and need not tell anyone about)."""
        self._everything |= not overrides_only
        self._wanted.set()

    async def run(self) -> None:
        """Serve requests (and, in a cluster, send and hear NOTIFYs) until cancelled."""
        async with asyncio.TaskGroup() as tg:
            if self._cluster:
                tg.create_task(
                    listen_config_changes(
                        self.db, lambda what: self.heard(overrides_only=what == OVERRIDES_ONLY)
                    ),
                    name="cluster-config",
                )
                tg.create_task(self._run_notifier(), name="cluster-notify")
            tg.create_task(self._serve(), name="reloads")

    async def _serve(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            everything, self._everything = self._everything, False
            try:
                if everything or self.book is None:
                    await self.reload()
                else:
                    await self.reload_overrides()
            except Exception:  # a failed reload keeps the previous book
                log.exception("reloading the configuration failed; keeping the previous one")

    async def _run_notifier(self) -> None:
        while True:
            await self._notify_wanted.wait()
            self._notify_wanted.clear()
            everything, self._notify_everything = self._notify_everything, False
            try:
                await notify_config_changed(self.db, "" if everything else OVERRIDES_ONLY)
            except Exception as exc:  # the others reload by themselves at the daily plan
                log.warning("cluster: could not notify the other instances: %s", exc)

    async def reload(self) -> None:
        """Re-read schedules, overrides and inventory; hand the book on."""
        async with self._lock:
            async with self.db.sessions() as session:
                book = await load_target_book(
                    session=session, settings=self.settings, now=self.clock.now()
                )
            self.book = book
            self._user.book_loaded(book, inventory=True)
            if len(book.luminaires) >= FREEZE_HEAP_FROM:
                settle_heap()

    async def reload_overrides(self) -> None:
        """Re-read only the overrides (the inventory and schedules stay); hand the book on."""
        async with self._lock:
            assert self.book is not None
            async with self.db.sessions() as session:
                active = await load_active_overrides(session=session, now=self.clock.now())
            self.book = replace(self.book, overrides=active, _span=None)
            self._user.book_loaded(self.book, inventory=False)

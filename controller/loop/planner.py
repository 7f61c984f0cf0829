"""The wake-ups: APScheduler 3.11 jobs at every change instant, and the clock-jump watch.

Every loop is woken at each program step and override boundary, so lights change within a
second or two of the instant, not at the next poll. The day's jobs are re-planned at every
reload and every day at 00:05 local (the daily job, which also runs housekeeping); a clock
jump (NTP step, manual change) re-plans at once and makes every gateway send every target.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, time, timedelta, tzinfo
from typing import Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger

from controller.core.clock import Clock
from controller.loop.targets import TargetBook

log = logging.getLogger(__name__)

PLAN_HORIZON = timedelta(hours=36)
MISFIRE_GRACE_S = 120


class Wakeable(Protocol):
    """The gateway loops, as the planner sees them."""

    def wake_all(self, *, resend: bool = False) -> None:
        """Make every loop reconcile now (``resend``: send every target again)."""
        ...


class Planner:
    """Owns the scheduler; ``run()`` until cancelled, ``plan(book)`` after every reload."""

    def __init__(
        self,
        clock: Clock,
        tz: tzinfo,
        *,
        loops: Wakeable,
        daily: Callable[[], Awaitable[None]],
    ) -> None:
        self.clock = clock
        self.tz = tz
        self._loops = loops
        self._daily = daily
        self._scheduler: AsyncIOScheduler | None = None
        self._book: TargetBook | None = None
        self.scheduled_wakeups = 0
        self.clock_jumps = 0

    async def run(self) -> None:
        scheduler = AsyncIOScheduler(
            timezone=self.tz,
            job_defaults={"misfire_grace_time": MISFIRE_GRACE_S, "coalesce": True},
        )
        self._scheduler = scheduler
        scheduler.start()
        try:
            self._replan()
            await self._watch_clock()
        finally:
            scheduler.shutdown(wait=False)
            self._scheduler = None

    def plan(self, book: TargetBook) -> None:
        """(Re)build the jobs for ``book`` (kept, and planned once the scheduler runs)."""
        self._book = book
        self._replan()

    async def _watch_clock(self, every_s: float = 5.0, tolerance_s: float = 30.0) -> None:
        """Re-plan and reconcile at once when the clock jumps (NTP step, manual change).

        The scheduler's jobs sit at wall-clock instants; after a jump they would fire at the
        wrong moments or be dropped as misfires. Targets themselves are always computed from
        ``clock.now()``, so a re-plan and a wake-up put everything right.
        """
        loop = asyncio.get_running_loop()
        last_clock, last_mono = self.clock.now(), loop.time()
        while True:
            await asyncio.sleep(every_s)
            now, mono = self.clock.now(), loop.time()
            expected = (mono - last_mono) * self.clock.speed
            drift = (now - last_clock).total_seconds() - expected
            if abs(drift) > tolerance_s * self.clock.speed:
                log.warning("clock jumped by %+.0f s: re-planning and reconciling", drift)
                self.clock_jumps += 1
                self._replan()
                self._loops.wake_all(resend=True)
            last_clock, last_mono = now, mono

    def _replan(self) -> None:
        """(Re)build the day's jobs: a wake-up at every change instant, and the next re-plan."""
        scheduler = self._scheduler
        book = self._book
        if scheduler is None or book is None:
            return
        now = self.clock.now()
        for job in scheduler.get_jobs():
            if job.id.startswith("step-"):
                job.remove()
        for instant in book.change_instants(now, PLAN_HORIZON):
            scheduler.add_job(
                self._on_step,
                DateTrigger(run_date=self.clock.to_real(instant)),
                id=f"step-{instant.isoformat()}",
                replace_existing=True,
                misfire_grace_time=MISFIRE_GRACE_S,
            )
        local = now.astimezone(self.tz)
        next_plan = datetime.combine(local.date(), time(0, 5), tzinfo=self.tz)
        if next_plan <= local:
            next_plan += timedelta(days=1)
        scheduler.add_job(
            self._daily,
            DateTrigger(run_date=self.clock.to_real(next_plan)),
            id="daily-plan",
            replace_existing=True,
            misfire_grace_time=3600,
        )

    async def _on_step(self) -> None:
        self.scheduled_wakeups += 1
        self._loops.wake_all()

"""Clocks: the only place that reads the time.

Everything else takes the instant as an argument. Production uses
:class:`SystemClock`; the demo and tests use :class:`AcceleratedClock`, which
several processes (controller, fake fleet) can share by passing the same
``start``, ``speed`` and ``origin`` (a wall-clock epoch in seconds).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """A source of aware UTC instants and of (simulated) sleeps."""

    def now(self) -> datetime: ...

    @property
    def speed(self) -> float:
        """Simulated seconds per real second (1.0 for the real clock)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep for ``seconds`` of this clock's time."""
        ...

    def to_real(self, instant: datetime) -> datetime:
        """The wall-clock instant at which this clock will show ``instant``."""
        ...


class SystemClock:
    """Real time."""

    @property
    def speed(self) -> float:
        return 1.0

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def to_real(self, instant: datetime) -> datetime:
        return instant


class AcceleratedClock:
    """Simulated time: ``start`` at wall time ``origin``, running ``speed`` times faster."""

    def __init__(self, start: datetime, speed: float = 1.0, origin: float | None = None) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self._start = start.astimezone(UTC)
        self._speed = float(speed)
        self.origin = time.time() if origin is None else origin

    @property
    def start(self) -> datetime:
        return self._start

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> datetime:
        elapsed = (time.time() - self.origin) * self._speed
        return self._start + timedelta(seconds=elapsed)

    def jump(self, seconds: float) -> None:
        """Step the clock by ``seconds`` (as an NTP correction or a hand change would)."""
        self._start += timedelta(seconds=seconds)

    def real_seconds(self, simulated: float) -> float:
        """Real seconds that ``simulated`` seconds of this clock take."""
        return simulated / self._speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds / self._speed))

    def to_real(self, instant: datetime) -> datetime:
        offset = (instant - self._start).total_seconds() / self._speed
        return datetime.fromtimestamp(self.origin + offset, UTC)


class ManualClock:
    """A clock that moves only when told to (unit tests)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self._now = start.astimezone(UTC)

    @property
    def speed(self) -> float:
        return 1.0

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)

    def set(self, instant: datetime) -> None:
        self._now = instant.astimezone(UTC)

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        await asyncio.sleep(0)

    def to_real(self, instant: datetime) -> datetime:
        """A manual clock does not run: its instants are taken as wall-clock ones."""
        return instant

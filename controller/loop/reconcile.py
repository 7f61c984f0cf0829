"""Reconciliation as a diff: ``plan(targets, tracked, now) -> batches``.

Pure. The controller keeps, for every luminaire, three values (see DOMAIN.md):
the **target** (what schedules and overrides want now, with its source), the
**acknowledged** level (what the gateway accepted), and the **actual** level (what
the device last reported). ``plan`` returns the commands that close the gap,
batched per (source, fade) so one gateway gets one request per batch, never one
per luminaire. The next read verifies: a luminaire whose actual level disagrees
with an acknowledged target once its fade should be over is sent again, at most
``max_attempts`` times in a row (a broken lamp must not be spammed); a periodic
full refresh sends every target regardless and restarts the count. The budget is per
target value: a new target is always sent (after an override to 37 % that a failed lamp
never reached, the schedule's level still goes out when the override ends).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from controller.core.values import Address, CommandResult, CommandSource, Level, Reading

SETTLE_S = 5.0
"""Grace after a fade ends before a differing actual level counts as a miss."""
MAX_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Target:
    """What one luminaire should do now, and why."""

    level: Level
    source: CommandSource
    detail: str = ""
    """Which program step (``program:Đông Hà standard#2``) or override (``override:12``)."""
    fade_s: float = 0.0


@dataclass(slots=True)
class Tracked:
    """The controller's memory of one luminaire (owned by its gateway's loop)."""

    acked: Level | None = None
    acked_at: datetime | None = None
    fade_until: datetime | None = None
    actual: Level | None = None
    actual_at: datetime | None = None
    attempts: int = 0
    """Commands sent in a row for ``attempted`` without the device reporting it."""
    attempted: Level | None = None
    """The level the ``attempts`` were spent on (the retry budget is per target value)."""
    rejected: str | None = None


def _budget_spent(tracked: Tracked, level: Level, max_attempts: int) -> bool:
    return tracked.attempts >= max_attempts and tracked.attempted == level


@dataclass(frozen=True, slots=True)
class Batch:
    """One command for one gateway: many luminaires, one source, one fade."""

    source: CommandSource
    fade_s: float
    levels: Mapping[Address, Level] = field(default_factory=dict)


def _needs_send(target: Target, tracked: Tracked | None, now: datetime, max_attempts: int) -> bool:
    if tracked is None or tracked.acked is None:
        return True
    if _budget_spent(tracked, target.level, max_attempts):
        return False
    if tracked.acked != target.level:
        return True
    if tracked.actual is None or tracked.actual == target.level:
        return False
    settled = tracked.fade_until is None or now >= tracked.fade_until + timedelta(seconds=SETTLE_S)
    reported_after_settle = tracked.actual_at is not None and (
        tracked.fade_until is None or tracked.actual_at >= tracked.fade_until
    )
    return settled and reported_after_settle


def quiet_until(
    targets: Mapping[Address, Target],
    tracked: Mapping[Address, Tracked],
    now: datetime,
    *,
    max_attempts: int = MAX_ATTEMPTS,
) -> datetime | None:
    """After an empty :func:`plan` at ``now``: until when it stays empty by itself.

    With the same targets, no new reading and no command, ``plan`` can turn non-empty
    only when a fade's settle time passes for a luminaire that already reported a wrong
    level after its fade; this is the earliest such instant, or ``None`` when nothing
    changes without new input. Lets an idle gateway skip the diff entirely.
    """
    earliest: datetime | None = None
    for address, target in targets.items():
        state = tracked.get(address)
        if (
            state is None
            or state.acked is None
            or state.fade_until is None
            or _budget_spent(state, target.level, max_attempts)
            or state.acked != target.level
            or state.actual is None
            or state.actual == target.level
            or state.actual_at is None
            or state.actual_at < state.fade_until
        ):
            continue
        due = state.fade_until + timedelta(seconds=SETTLE_S)
        if due > now and (earliest is None or due < earliest):
            earliest = due
    return earliest


def plan(
    targets: Mapping[Address, Target],
    tracked: Mapping[Address, Tracked],
    now: datetime,
    *,
    refresh: bool = False,
    max_attempts: int = MAX_ATTEMPTS,
) -> list[Batch]:
    """The batches that bring every luminaire to its target (empty when all agree)."""
    groups: dict[tuple[CommandSource, float], dict[Address, Level]] = {}
    for address, target in targets.items():
        if refresh or _needs_send(target, tracked.get(address), now, max_attempts):
            groups.setdefault((target.source, target.fade_s), {})[address] = target.level
    return [
        Batch(source=src, fade_s=fade, levels=levels)
        for (src, fade), levels in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1]))
    ]


def record_sent(
    tracked: dict[Address, Tracked],
    batch: Batch,
    result: CommandResult,
    now: datetime,
    *,
    refresh: bool = False,
) -> list[Address]:
    """Update memory after a command; returns the addresses whose acknowledged level changed."""
    changed: list[Address] = []
    for address, level in batch.levels.items():
        state = tracked.setdefault(address, Tracked())
        if refresh or state.attempted != level:
            state.attempts = 0
        state.attempted = level
        state.attempts += 1
        if address in result.rejected:
            state.rejected = result.rejected[address]
            continue
        if address not in result.accepted:
            continue
        state.rejected = None
        if state.acked != level:
            changed.append(address)
        state.acked = level
        state.acked_at = now
        state.fade_until = now + timedelta(seconds=batch.fade_s)
    return changed


def record_readings(tracked: dict[Address, Tracked], readings: Iterable[Reading]) -> list[Address]:
    """Update actual levels from readings; returns the addresses whose actual level changed.

    A reading that matches the acknowledged level clears the retry count.
    """
    changed: list[Address] = []
    for reading in readings:
        state = tracked.setdefault(reading.address, Tracked())
        level = Level(reading.level_pct if reading.lamp_on or reading.level_pct == 0 else 0)
        if state.actual != level:
            changed.append(reading.address)
        state.actual = level
        state.actual_at = reading.at
        if state.acked is not None and level == state.acked:
            state.attempts = 0
    return changed

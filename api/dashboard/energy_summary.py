"""Energy today and this month, with savings, from the IOC energy reports.

The numbers come from :mod:`controller.energy.report` (the code behind
``GET /api/v1/energy``), so the overview and the IOC see the same figures: the baseline
counts only dark time telemetry covered, and ``coverage`` says how much of the inventory's
dark time so far that is (docs/ioc.md, "Coverage").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from controller.config.settings import Settings
from controller.energy.report import EnergyRow, GroupBy, Interval, energy_report, parse_range


@dataclass(frozen=True, slots=True)
class EnergyTotals:
    """Sums of report rows; coverage from the sums of covered and possible dark hours."""

    energy_kwh: float = 0.0
    baseline_kwh: float = 0.0
    co2_kg: float = 0.0
    cost_vnd: float = 0.0
    luminaires: int = 0
    covered_dark_hours: float = 0.0
    possible_dark_hours: float = 0.0  # dark hours x luminaires in the inventory

    @classmethod
    def of(cls, row: EnergyRow) -> EnergyTotals:
        return cls(
            row.energy_kwh, row.baseline_kwh, row.co2_kg, row.cost_vnd, row.luminaires,
            row.covered_dark_hours, row.dark_hours * row.luminaires_inventory,
        )  # fmt: skip

    @property
    def coverage(self) -> float | None:
        """Share (0..1) of the inventory's dark time that telemetry covered."""
        if self.possible_dark_hours <= 0:
            return None
        return min(1.0, self.covered_dark_hours / self.possible_dark_hours)

    @property
    def savings_kwh(self) -> float:
        return self.baseline_kwh - self.energy_kwh

    @property
    def savings_pct(self) -> float | None:
        if self.baseline_kwh <= 0:
            return None
        return self.savings_kwh / self.baseline_kwh * 100.0

    def __add__(self, other: EnergyTotals) -> EnergyTotals:
        return EnergyTotals(
            self.energy_kwh + other.energy_kwh,
            self.baseline_kwh + other.baseline_kwh,
            self.co2_kg + other.co2_kg,
            self.cost_vnd + other.cost_vnd,
            max(self.luminaires, other.luminaires),
            self.covered_dark_hours + other.covered_dark_hours,
            self.possible_dark_hours + other.possible_dark_hours,
        )


def totals(rows: list[EnergyRow]) -> EnergyTotals:
    out = EnergyTotals()
    for r in rows:
        out = out + EnergyTotals.of(r)
    return out


@dataclass(frozen=True, slots=True)
class EnergySummary:
    today: EnergyTotals
    month: EnergyTotals

    @property
    def has_data(self) -> bool:
        """A luminaire reported this month (its figures may all still be 0)."""
        return self.month.luminaires > 0


async def energy_summary(
    *, session: AsyncSession, settings: Settings, now: datetime
) -> EnergySummary:
    tz = settings.site.tz
    site = settings.site.to_site()
    today = now.astimezone(tz).date()
    out = []
    for interval, first in ((Interval.DAY, today), (Interval.MONTH, today.replace(day=1))):
        rng = parse_range(interval, first.isoformat(), today.isoformat(), tz)
        report = await energy_report(
            session=session, site=site, energy=settings.energy, rng=rng,
            group_by=GroupBy.TOTAL, limit=10, offset=0, now=now,
        )  # fmt: skip
        out.append(totals(report.items))
    return EnergySummary(today=out[0], month=out[1])

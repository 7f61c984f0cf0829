"""Coverage: which luminaire-time readings cover, cut by UTC hour and local day, and its dark part.

Đông Hà on 2026-06-21: sunrise 05:18:54, sunset 18:27:51 local (+07:00), as in
tests/api/test_energy.py.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.config.settings import SiteSettings, load_settings
from controller.core.errors import ConfigError
from controller.core.values import Address, Reading
from controller.energy.coverage import DEFAULT_MAX_GAP_S, covered_pieces
from controller.energy.report import dark_seconds
from controller.loop.telemetry import EnergyLedger, LuminaireRef
from schedules.sun import Site

DONG_HA = SiteSettings().to_site()
KOLKATA = Site("Kolkata", 22.57, 88.36, 0.0, "Asia/Kolkata")  # local midnight at 18:30 UTC


def local(text: str) -> datetime:
    return datetime.fromisoformat(text + "+07:00")


def test_a_span_in_daylight_is_covered_and_not_dark() -> None:
    (piece,) = covered_pieces(
        DONG_HA, local("2026-06-21T12:00:00"), local("2026-06-21T12:01:00"), 120
    )
    assert (piece.hour, piece.day, piece.seconds, piece.dark_s) == (
        datetime(2026, 6, 21, 5, tzinfo=UTC), date(2026, 6, 21), 60.0, 0.0,
    )  # fmt: skip


def test_a_span_over_sunset_counts_only_its_dark_part() -> None:
    (piece,) = covered_pieces(
        DONG_HA, local("2026-06-21T18:27:00"), local("2026-06-21T18:29:00"), 120
    )
    assert (piece.seconds, piece.dark_s) == (120.0, 98.0)  # from sunset, 18:27:22


def test_a_span_is_cut_at_the_hour() -> None:
    pieces = covered_pieces(
        DONG_HA, local("2026-06-21T19:59:30"), local("2026-06-21T20:00:30"), 120
    )
    assert [(p.hour.hour, p.seconds, p.dark_s) for p in pieces] == [
        (12, 30.0, 30.0),
        (13, 30.0, 30.0),
    ]


def test_a_span_is_cut_at_local_midnight_inside_an_hour() -> None:
    a = datetime(2026, 6, 21, 18, 29, tzinfo=UTC)
    pieces = covered_pieces(KOLKATA, a, a + timedelta(minutes=2), 120)
    assert [(p.hour.hour, p.day, p.seconds, p.dark_s) for p in pieces] == [
        (18, date(2026, 6, 21), 60.0, 60.0), (18, date(2026, 6, 22), 60.0, 60.0),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("gap_s", "covered"), [(120, True), (121, False), (0, False), (-10, False)]
)
def test_only_readings_at_most_the_gap_apart_cover(gap_s: int, covered: bool) -> None:
    a = local("2026-06-21T21:00:00")
    pieces = covered_pieces(DONG_HA, a, a + timedelta(seconds=gap_s), 120)
    assert bool(pieces) is covered


@settings(max_examples=200, deadline=None)
@given(
    start_s=st.integers(0, 366 * 86400),
    span_s=st.floats(0.001, 3600.0),
    site=st.sampled_from([DONG_HA, KOLKATA]),
)
def test_pieces_add_up_to_the_span_and_its_darkness(
    start_s: int, span_s: float, site: Site
) -> None:
    a = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=start_s)
    b = a + timedelta(seconds=span_s)
    pieces = covered_pieces(site, a, b, 3600.0)
    assert sum(p.seconds for p in pieces) == pytest.approx((b - a).total_seconds(), abs=1e-6)
    assert all(0 <= p.dark_s <= p.seconds for p in pieces)
    assert sum(p.dark_s for p in pieces) == pytest.approx(dark_seconds(site, a, b), abs=1e-6)
    assert len({(p.hour, p.day) for p in pieces}) == len(pieces)


def reading(at: datetime, energy_wh: int) -> Reading:
    return Reading(
        address=Address(1), at=at, lamp_on=True, level_pct=50, power_w=60.0, voltage_v=230.0,
        current_ma=280, power_factor=0.95, energy_wh=energy_wh, operating_hours=1,
        switch_on_count=1, temperature_c=30.0,
    )  # fmt: skip


def test_the_ledger_covers_consecutive_readings_and_not_a_gap() -> None:
    """60 W: a reading each minute 20:00-20:10, silence to 22:10, then 22:10-22:12."""
    ledger = EnergyLedger(DONG_HA, max_gap_s=120)
    ref = LuminaireRef(7, "Phường 1", 1)
    times = [
        local("2026-06-21T20:00:00") + timedelta(minutes=m) for m in [*range(11), 130, 131, 132]
    ]
    booked = [
        ledger.add(ref, reading(t, 1000 + round((t - times[0]).total_seconds() / 60)))
        for t in times
    ]
    assert booked[0] == 0.0  # the first reading of a run covers nothing
    hourly, daily = ledger.take()
    by_hour = {row["hour"].astimezone(UTC).hour: row for row in hourly}
    assert set(by_hour) == {13, 15}  # nothing booked in the silent 21:00 hour
    assert (by_hour[13]["covered_s"], by_hour[13]["covered_dark_s"]) == (600.0, 600.0)
    assert (by_hour[13]["energy_wh"], by_hour[13]["samples"]) == (10.0, 10)  # spans closed
    # the gap's 120 Wh (by counter) are booked with the reading after it, uncovered
    assert (by_hour[15]["covered_s"], by_hour[15]["energy_wh"]) == (120.0, 122.0)
    (day,) = daily
    assert (day["covered_s"], day["covered_dark_s"], day["energy_wh"]) == (720.0, 720.0, 132.0)


def test_a_gap_shorter_than_the_poll_is_refused(tmp_path: Path) -> None:
    assert load_settings(data_dir=tmp_path).energy.coverage_max_gap_s == DEFAULT_MAX_GAP_S
    with pytest.raises(ConfigError, match=r"energy.coverage_max_gap_s \(30\) must be at least"):
        load_settings(
            data_dir=tmp_path, energy={"coverage_max_gap_s": 30}, modbus={"poll_interval_s": 60}
        )
    with pytest.raises(ConfigError, match=r"energy\.coverage_max_gap_s"):
        load_settings(data_dir=tmp_path, energy={"coverage_max_gap_s": 0})

"""TargetBook.span: targets computed anywhere in a span hold for all of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.config.settings import SiteSettings
from controller.core.values import Address
from controller.loop.targets import ActiveOverride, LuminaireInfo, TargetBook
from controller.scheduling.data import ScheduleBook
from schedules.builtin import DONG_HA_STANDARD, FULL_NIGHT
from schedules.calendar import Calendar
from schedules.decision import Override

SITE = SiteSettings().to_site()
T0 = datetime(2026, 11, 28, 0, 0, tzinfo=UTC)


def book(overrides: list[ActiveOverride] | None = None) -> TargetBook:
    luminaires = {
        i: LuminaireInfo(i, f"L{i}", 1, Address(i), "Phường 1", "Lê Duẩn", 100.0) for i in (1, 2)
    }
    return TargetBook(
        site=SITE,
        default_level=0,
        book=ScheduleBook(
            programs={"std": DONG_HA_STANDARD, "full": FULL_NIGHT},
            calendars={1: Calendar(default_program="std"), 2: Calendar(default_program="full")},
            default_calendar_id=1,
        ),
        luminaires=luminaires,
        gateways={},
        calendar_of={1: 1, 2: 2},
        overrides=overrides or [],
    )


OVERRIDE = ActiveOverride(
    Override(7, 42, T0 + timedelta(hours=15, minutes=3), T0 + timedelta(hours=16), T0),
    frozenset({2}),
)


def test_span_ends_at_the_next_change_and_is_shared() -> None:
    b = book([OVERRIDE])
    at = T0 + timedelta(hours=14, minutes=30)
    start, end = b.span(at)
    assert start == at
    assert end == min(b.change_instants(at, timedelta(days=1)))
    assert b.span(at + (end - at) / 2) == (start, end)  # cached, not recomputed
    later = b.span(end)
    assert later[0] == end and later[1] > end
    # the clock going back leaves the span
    assert b.span(at - timedelta(seconds=1))[0] == at - timedelta(seconds=1)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 3 * 24 * 3600), st.floats(0.0, 1.0))
def test_targets_are_constant_within_a_span(offset_s: int, fraction: float) -> None:
    b = book([OVERRIDE])
    at = T0 + timedelta(seconds=offset_s)
    start, end = b.span(at)
    inside = start + (end - start - timedelta(microseconds=1)) * fraction
    assert b.targets(inside) == b.targets(start)

"""Which months the nightly rollup rebuilds, and up to which day (pure)."""

from __future__ import annotations

from datetime import date

import pytest

from controller.energy.rollup import MonthState, due, targets

d = date.fromisoformat


@pytest.mark.parametrize(
    ("first", "today", "want"),
    [
        # closed months up to their last day, the current one up to yesterday
        ("2026-05-28", "2026-08-02", {"2026-05-01": "2026-05-31", "2026-06-01": "2026-06-30",
                                      "2026-07-01": "2026-07-31", "2026-08-01": "2026-08-01"}),
        # on the 1st the current month has no complete day yet
        ("2026-06-10", "2026-08-01", {"2026-06-01": "2026-06-30", "2026-07-01": "2026-07-31"}),
        ("2026-08-01", "2026-08-01", {}),
        ("2026-08-01", "2026-08-31", {"2026-08-01": "2026-08-30"}),
        # a leap February, and across a year's end
        ("2028-02-29", "2028-03-01", {"2028-02-01": "2028-02-29"}),
        ("2026-12-31", "2027-01-02", {"2026-12-01": "2026-12-31", "2027-01-01": "2027-01-01"}),
        # energy only in the future (a clock set back): nothing
        ("2026-09-01", "2026-08-15", {}),
    ],
)  # fmt: skip
def test_targets(first: str, today: str, want: dict[str, str]) -> None:
    got = targets(d(first), d(today))
    assert {m.isoformat(): t.isoformat() for m, t in got.items()} == want


def test_due() -> None:
    current = MonthState(d("2026-07-31"), "site", stale=False)
    assert not due(current, d("2026-07-31"), "site")
    assert due(None, d("2026-07-31"), "site")
    assert due(MonthState(d("2026-07-31"), "site", stale=True), d("2026-07-31"), "site")
    assert due(current, d("2026-07-31"), "another site")
    assert due(MonthState(d("2026-07-15"), "site", stale=False), d("2026-07-31"), "site")

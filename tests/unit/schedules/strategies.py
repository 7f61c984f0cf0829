"""Hypothesis strategies for programs, overrides and nights."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import strategies as st

from schedules.decision import Override
from schedules.program import Program, Step, validate_program
from schedules.sun import SunEvent

NIGHTS = st.dates(date(2026, 1, 1), date(2027, 12, 31))

CLOCK_ANCHORS = st.builds(
    lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.sampled_from([0, 15, 30, 45, 59])
)
ANCHORS = st.sampled_from([event.value for event in SunEvent]) | CLOCK_ANCHORS

STEPS = st.builds(
    Step,
    anchor=ANCHORS,
    offset_min=st.integers(-720, 720),
    level=st.integers(0, 100),
    fade_s=st.none() | st.floats(0, 120),
)

VALID_PROGRAMS = st.builds(
    Program,
    name=st.just("random"),
    steps=st.lists(STEPS, min_size=1, max_size=7).map(tuple),
    default_level=st.integers(0, 100),
).filter(lambda program: not validate_program(program))


@st.composite
def overrides_in(draw: st.DrawFn, night: date, count: int = 3) -> list[Override]:
    """Up to ``count`` overrides overlapping the night's noon-to-noon window (UTC+7)."""
    start_of_night = datetime(night.year, night.month, night.day, 5, tzinfo=UTC)  # 12:00 +07
    made = []
    for index in range(draw(st.integers(0, count))):
        begin = start_of_night + timedelta(minutes=draw(st.integers(-120, 24 * 60)))
        length = timedelta(minutes=draw(st.integers(1, 8 * 60)))
        created = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=draw(st.integers(0, 3)))
        made.append(Override(index + 1, draw(st.integers(0, 100)), begin, begin + length, created))
    return made

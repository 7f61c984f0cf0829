"""The sun-event tables for the CLI and the API: CSV, JSON, text."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from schedules.almanac import (
    COLUMNS,
    MAX_DAYS,
    format_csv,
    format_json,
    format_text,
    tabulate_sun_events,
    to_records,
)
from schedules.sun import DONG_HA, Site, SunEvent, SunEvents, SunStatus
from tests.unit.schedules.reference_data import DONG_HA_SEA_LEVEL, spa_reference

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
ISO_LOCAL = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}")
TROMSO = Site("Tromsø", 69.6492, 18.9553, 0.0, "Europe/Oslo")


def _at(day: int, hour: int, minute: int, second: int) -> datetime:
    return datetime(2026, 6, day, hour, minute, second, tzinfo=HCM)


# Hand-made rows, so the formatting is checked independently of the sun computation.
SOLSTICE = SunEvents(
    date=date(2026, 6, 21),
    status=SunStatus.NORMAL,
    solar_noon=_at(21, 11, 53, 18),
    sunrise=_at(21, 5, 19, 33),
    sunset=_at(21, 18, 27, 21),
    civil_dawn=_at(21, 4, 55, 23),
    civil_dusk=_at(21, 18, 51, 19),
    nautical_dawn=_at(21, 4, 26, 59),
    nautical_dusk=_at(21, 19, 19, 43),
)
POLAR = SunEvents(
    date=date(2026, 6, 22),
    status=SunStatus.POLAR_DAY,
    solar_noon=_at(22, 11, 53, 30),
    sunrise=None,
    sunset=None,
    civil_dawn=None,
    civil_dusk=None,
    nautical_dawn=None,
    nautical_dusk=None,
)


def test_csv_has_exactly_the_agreed_header_and_iso_cells() -> None:
    assert format_csv([SOLSTICE, POLAR]) == (
        "date,sunrise,sunset,civil_dawn,civil_dusk,nautical_dawn,nautical_dusk\n"
        "2026-06-21,2026-06-21T05:19:33+07:00,2026-06-21T18:27:21+07:00,"
        "2026-06-21T04:55:23+07:00,2026-06-21T18:51:19+07:00,"
        "2026-06-21T04:26:59+07:00,2026-06-21T19:19:43+07:00\n"
        "2026-06-22,,,,,,\n"
    )


def test_json_is_a_list_of_objects_with_the_csv_keys_and_null_for_missing() -> None:
    parsed = json.loads(format_json([SOLSTICE, POLAR]))
    assert [list(item) for item in parsed] == [list(COLUMNS), list(COLUMNS)]
    assert parsed[0]["sunrise"] == "2026-06-21T05:19:33+07:00"
    assert parsed[0]["nautical_dusk"] == "2026-06-21T19:19:43+07:00"
    assert parsed[1] == {"date": "2026-06-22"} | dict.fromkeys(COLUMNS[1:])
    assert to_records([SOLSTICE]) == parsed[:1]


def test_text_table_shows_local_clock_times_and_dashes() -> None:
    lines = format_text([SOLSTICE, POLAR]).splitlines()
    assert lines[0] == "local times (UTC+07:00)"
    assert lines[1].split() == [*COLUMNS, "status"]
    assert lines[2].split() == [
        "2026-06-21",
        "05:19:33",
        "18:27:21",
        "04:55:23",
        "18:51:19",
        "04:26:59",
        "19:19:43",
        "normal",
    ]
    assert lines[3].split() == ["2026-06-22", *["-"] * 6, "polar_day"]
    assert len({len(line) for line in lines[1:3]}) == 1  # columns line up


def test_tabulated_dong_ha_csv_parses_back_and_matches_spa() -> None:
    rows = tabulate_sun_events(DONG_HA_SEA_LEVEL, date(2026, 12, 30), 5)
    parsed = list(csv.DictReader(io.StringIO(format_csv(rows))))
    assert [row["date"] for row in parsed] == [
        (date(2026, 12, 30) + timedelta(days=i)).isoformat() for i in range(5)
    ]
    reference = spa_reference()
    for row in parsed:
        for event in SunEvent:
            cell = row[event.value]
            assert ISO_LOCAL.fullmatch(cell), cell
            at = datetime.fromisoformat(cell)
            expected = reference[date.fromisoformat(row["date"])][event]
            assert abs((at - expected).total_seconds()) <= 30
            assert cell.endswith("+07:00")


def test_polar_day_rows_have_empty_cells() -> None:
    rows = tabulate_sun_events(TROMSO, date(2026, 6, 20), 2)
    lines = format_csv(rows).splitlines()
    assert lines[1:] == ["2026-06-20,,,,,,", "2026-06-21,,,,,,"]


@pytest.mark.parametrize("days", [0, -1, MAX_DAYS + 1])
def test_day_count_is_bounded(days: int) -> None:
    with pytest.raises(ValueError, match="days"):
        tabulate_sun_events(DONG_HA, date(2026, 1, 1), days)


@pytest.mark.parametrize(("start", "days"), [(date(2026, 1, 1), 1), (date(2028, 2, 27), 4)])
def test_tabulate_gives_consecutive_dates(start: date, days: int) -> None:
    rows = tabulate_sun_events(DONG_HA, start, days)
    assert [row.date for row in rows] == [start + timedelta(days=i) for i in range(days)]

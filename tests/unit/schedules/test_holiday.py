"""Vietnamese public holidays from the ``holidays`` package, under stable keys."""

from __future__ import annotations

from datetime import date

import pytest

from schedules.holiday import HolidayKey, classify, holidays_on, vietnam_holidays

K = HolidayKey

# Independent knowledge (lunar calendar tables, government announcements):
# Tết Bính Ngọ = Tue 17 Feb 2026, Tết Đinh Mùi = Sat 6 Feb 2027; Giỗ Tổ (10/3 lunar) =
# Sun 26 Apr 2026 and Fri 16 Apr 2027.
HOLIDAYS_2026_2027 = [
    (date(2026, 1, 1), K.NEW_YEAR, False),
    (date(2026, 2, 16), K.TET, False),  # Giao thừa
    (date(2026, 2, 17), K.TET, False),  # mùng 1
    (date(2026, 2, 18), K.TET, False),
    (date(2026, 2, 19), K.TET, False),
    (date(2026, 2, 20), K.TET, False),  # mùng 4
    (date(2026, 4, 26), K.HUNG_KINGS, False),
    (date(2026, 4, 27), K.HUNG_KINGS, True),  # in lieu of Sunday
    (date(2026, 4, 30), K.REUNIFICATION, False),
    (date(2026, 5, 1), K.LABOUR, False),
    (date(2026, 8, 31), K.DAY_OFF, True),  # swapped with Sat 22 Aug
    (date(2026, 9, 1), K.NATIONAL, False),
    (date(2026, 9, 2), K.NATIONAL, False),
    (date(2026, 11, 24), K.CULTURE, False),
    (date(2027, 1, 1), K.NEW_YEAR, False),
    (date(2027, 2, 4), K.TET, True),  # "29 Tết" bridge day
    (date(2027, 2, 5), K.TET, False),  # Giao thừa
    (date(2027, 2, 6), K.TET, False),  # mùng 1
    (date(2027, 2, 7), K.TET, False),
    (date(2027, 2, 8), K.TET, False),
    (date(2027, 2, 9), K.TET, False),
    (date(2027, 2, 10), K.TET, True),  # mùng 5, in lieu of the weekend
    (date(2027, 4, 16), K.HUNG_KINGS, False),
    (date(2027, 4, 30), K.REUNIFICATION, False),
    (date(2027, 5, 1), K.LABOUR, False),
    (date(2027, 5, 3), K.LABOUR, True),  # in lieu of Saturday
    (date(2027, 9, 2), K.NATIONAL, False),
    (date(2027, 9, 3), K.NATIONAL, False),
    (date(2027, 11, 24), K.CULTURE, False),
]


def test_2026_and_2027_holidays_are_exactly_the_known_ones() -> None:
    found = [(h.day, h.key, h.observed) for y in (2026, 2027) for h in vietnam_holidays(y)]
    assert found == HOLIDAYS_2026_2027


@pytest.mark.parametrize(
    ("day", "key"),
    [
        (date(2026, 2, 17), K.TET),
        (date(2027, 2, 6), K.TET),
        (date(2026, 4, 26), K.HUNG_KINGS),
        (date(2027, 4, 16), K.HUNG_KINGS),
    ],
)
def test_lunar_holidays_fall_on_their_known_dates(day: date, key: HolidayKey) -> None:
    assert [(h.key, h.observed) for h in holidays_on(day)] == [(key, False)]
    assert "Nguyên Đán" in holidays_on(day)[0].name or "Hùng Vương" in holidays_on(day)[0].name


@pytest.mark.parametrize("day", [date(2026, 2, 21), date(2026, 7, 14), date(2027, 12, 25)])
def test_ordinary_days_have_no_holiday(day: date) -> None:
    assert holidays_on(day) == ()


@pytest.mark.parametrize("year", range(2020, 2036))
def test_every_name_the_package_gives_maps_to_a_known_key(year: int) -> None:
    # Guards against a holidays release renaming a holiday: it would silently stop
    # matching calendar rules.
    unknown = [h for h in vietnam_holidays(year) if h.key is K.OTHER]
    assert unknown == []
    keys = {h.key for h in vietnam_holidays(year) if not h.observed}
    assert {K.NEW_YEAR, K.TET, K.HUNG_KINGS, K.REUNIFICATION, K.LABOUR, K.NATIONAL} <= keys


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Tết Dương lịch", (K.NEW_YEAR, False)),
        ("Giao thừa Tết Nguyên Đán", (K.TET, False)),
        ("Mùng bốn Tết Nguyên Đán", (K.TET, False)),
        ("Mùng năm Tết Nguyên Đán", (K.TET, True)),
        ("29 Tết", (K.TET, True)),
        ("Ngày Giỗ Tổ Hùng Vương (nghỉ bù)", (K.HUNG_KINGS, True)),
        ("Ngày Giỗ Tổ Hùng Vương (dự kiến)", (K.HUNG_KINGS, False)),
        ("Ngày Quốc tế Lao động (nghỉ bù, dự kiến)", (K.LABOUR, True)),
        ("Ngày Chiến thắng", (K.REUNIFICATION, False)),
        ("Quốc khánh", (K.NATIONAL, False)),
        ("Ngày nghỉ (thay cho ngày 22/08/2026)", (K.DAY_OFF, True)),
        ("Lunar New Year", (K.OTHER, False)),  # English names are never asked for
    ],
)
def test_classify(name: str, expected: tuple[HolidayKey, bool]) -> None:
    assert classify(name) == expected


@pytest.mark.parametrize("lang", ["C", "C.UTF-8", "en_US.UTF-8", "vi_VN.UTF-8", "th_TH.UTF-8"])
def test_names_do_not_depend_on_the_process_locale(
    lang: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without an explicit language the package translates by LANG; we always ask for vi.
    monkeypatch.setenv("LANG", lang)
    monkeypatch.setenv("LC_ALL", lang)
    vietnam_holidays.cache_clear()
    try:
        found = [(h.day, h.key, h.observed) for h in vietnam_holidays(2026)]
    finally:
        vietnam_holidays.cache_clear()
    assert found == [row for row in HOLIDAYS_2026_2027 if row[0].year == 2026]

"""Vietnamese public holidays, lunar ones included, under stable keys.

The dates come from the ``holidays`` package (``holidays.country_holidays("VN")``), which
knows the lunar calendar. Its holiday *names* are translated according to the process's
locale unless a language is given (under ``LANG=C.UTF-8`` they come back in English,
under ``LANG=C`` in Vietnamese), so this module always asks for ``language="vi"``, the
package's source language for Vietnam, and maps those names to :class:`HolidayKey`. The
tests check that every name the package gives for 2020-2035 maps to a known key, so a
renamed holiday in a later package version fails loudly instead of silently not matching.

Observed (in-lieu) days: when a holiday falls on a weekend the law gives a day off on a
working day instead (``"... (nghỉ bù)"``), the government sometimes swaps a working day
(``"Ngày nghỉ (thay cho ngày ...)"``), and around Tết extra bridge days are given
(``"29 Tết"``, ``"Mùng năm Tết Nguyên Đán"``...). Those are days off work, not days of
celebration, so they are marked ``observed=True`` and calendar rules ignore them unless
asked to (``include_observed``). The days the package lists under the holiday's own name
are the holiday itself: Tết is the New Year's Eve (Giao thừa, whose night holds the
turn of the year) and the first four days; National Day is 2 September plus the adjacent
day the law adds (1 or 3 September).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

import holidays

LANGUAGE = "vi"


class HolidayKey(StrEnum):
    """Stable keys for Vietnam's public holidays (independent of language)."""

    NEW_YEAR = "new_year"
    """Tết Dương lịch, 1 January."""
    TET = "tet"
    """Tết Nguyên Đán, the lunar new year: its eve and first days."""
    HUNG_KINGS = "hung_kings"
    """Giỗ Tổ Hùng Vương, 10th day of the 3rd lunar month."""
    REUNIFICATION = "reunification"
    """Ngày Chiến thắng / Reunification Day, 30 April."""
    LABOUR = "labour"
    """Ngày Quốc tế Lao động, 1 May."""
    NATIONAL = "national"
    """Quốc khánh, 2 September (and the adjacent day since 2021)."""
    CULTURE = "culture"
    """Ngày Văn hóa Việt Nam, 24 November (a public holiday from 2026)."""
    DAY_OFF = "day_off"
    """A working day swapped for a day off by government decision (always observed)."""
    OTHER = "other"
    """A name this module does not know (a newer ``holidays`` release)."""


@dataclass(frozen=True, slots=True)
class Holiday:
    """One public holiday date: its key, the package's Vietnamese name, and whether it is
    an observed / in-lieu / bridge day rather than the holiday itself."""

    day: date
    key: HolidayKey
    name: str
    observed: bool


# The package's Vietnamese names (its source strings) for each key.
_NAMES: dict[str, HolidayKey] = {
    "Tết Dương lịch": HolidayKey.NEW_YEAR,
    "Giao thừa Tết Nguyên Đán": HolidayKey.TET,
    "Tết Nguyên Đán": HolidayKey.TET,
    "Mùng hai Tết Nguyên Đán": HolidayKey.TET,
    "Mùng ba Tết Nguyên Đán": HolidayKey.TET,
    "Mùng bốn Tết Nguyên Đán": HolidayKey.TET,
    "Ngày Giỗ Tổ Hùng Vương": HolidayKey.HUNG_KINGS,
    "Ngày Chiến thắng": HolidayKey.REUNIFICATION,
    "Ngày Quốc tế Lao động": HolidayKey.LABOUR,
    "Quốc khánh": HolidayKey.NATIONAL,
    "Ngày Văn hóa Việt Nam": HolidayKey.CULTURE,
}
# Names that only ever appear as bridge / in-lieu days.
_OBSERVED_NAMES: dict[str, HolidayKey] = {
    "29 Tết": HolidayKey.TET,
    "Mùng năm Tết Nguyên Đán": HolidayKey.TET,
    "Mùng sáu Tết Nguyên Đán": HolidayKey.TET,
}
_OBSERVED_SUFFIXES = (" (nghỉ bù, dự kiến)", " (nghỉ bù)")
_ESTIMATED_SUFFIX = " (dự kiến)"
_DAY_OFF_PREFIX = "Ngày nghỉ (thay cho ngày"


def classify(name: str) -> tuple[HolidayKey, bool]:
    """Map one Vietnamese holiday name from the package to (key, observed)."""
    observed = False
    for suffix in _OBSERVED_SUFFIXES:
        if name.endswith(suffix):
            name, observed = name.removesuffix(suffix), True
            break
    name = name.removesuffix(_ESTIMATED_SUFFIX)
    if name.startswith(_DAY_OFF_PREFIX):
        return HolidayKey.DAY_OFF, True
    if name in _OBSERVED_NAMES:
        return _OBSERVED_NAMES[name], True
    return _NAMES.get(name, HolidayKey.OTHER), observed


@functools.lru_cache(maxsize=64)
def vietnam_holidays(year: int) -> tuple[Holiday, ...]:
    """Every public holiday date of Vietnam in ``year``, observed days included, by date."""
    table = holidays.country_holidays("VN", years=year, language=LANGUAGE)
    found: list[Holiday] = []
    for day in sorted(table):
        for name in table.get_list(day):
            key, observed = classify(name)
            found.append(Holiday(day=day, key=key, name=name, observed=observed))
    return tuple(found)


def holidays_on(day: date) -> tuple[Holiday, ...]:
    """The public holidays (and observed days) falling on ``day``; empty on other days."""
    return tuple(holiday for holiday in vietnam_holidays(day.year) if holiday.day == day)

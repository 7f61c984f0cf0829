"""The programs streetlight ships with, ready to assign in a calendar.

"Đông Hà standard" and "full night" follow the field rule of thumb (on no later than
10 min after sunset, off no earlier than 10 min before sunrise). "holiday" is lit from
civil dusk to civil dawn as the city asked: about 24 min after sunset to 24 min before
sunrise at Đông Hà, so it comes on later than the rule of thumb; pair it with an earlier
step if that matters.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from schedules.program import Program, Step

DONG_HA_STANDARD = Program(
    name="Đông Hà standard",
    steps=(
        Step("sunset", 0, 100),
        Step("22:00", 0, 70),
        Step("00:00", 0, 50),
        Step("04:30", 0, 70),
        Step("sunrise", -10, 0),
    ),
)
"""100 % from sunset to 22:00, 70 % to midnight, 50 % to 04:30, 70 % to sunrise-10, off."""

FULL_NIGHT = Program(
    name="full night",
    steps=(Step("sunset", 0, 100), Step("sunrise", 0, 0)),
)
"""100 % from sunset to sunrise, then off."""

HOLIDAY = Program(
    name="holiday",
    steps=(Step("civil_dusk", 0, 100), Step("civil_dawn", 0, 0)),
)
"""100 % from civil dusk to civil dawn, then off (no dimming on public holidays)."""

BUILTIN_PROGRAMS: Mapping[str, Program] = MappingProxyType(
    {program.name: program for program in (DONG_HA_STANDARD, FULL_NIGHT, HOLIDAY)}
)
"""The builtin programs by name (read-only)."""


# --- templates from Vietnamese practice ----------------------------------------------------
# Offered by the dashboard as "start from template" (docs/dashboard.md), not installed as
# programs: an operator copies one, adjusts it to the street, and saves it under its own
# name. Sources: /work/shared/notes/field.md section 6 (the "tiết giảm" table).

PHU_YEN = Program(
    name="Tiết giảm Phú Yên",
    steps=(
        Step("sunset", 0, 100),
        Step("22:00", 0, 70),
        Step("02:00", 0, 50),
        Step("sunrise", 0, 0),
    ),
)
"""Phú Yên (Tuy Hòa): 100 % to 22:00, 70 % to 02:00, then 50 %. The article gives 18 h and
05 h as the ends; on at sunset and off at sunrise here, since fixed 18:00 / 05:00 would
leave the street dark for up to an hour in winter. The article's "100 / 70 / 50 % of lamps"
becomes a level for dimmable luminaires (an alternate-lamp circuit is a group matter)."""

HA_NOI_70_30 = Program(
    name="Hà Nội 70/30",
    steps=(Step("sunset", 0, 70), Step("21:00", 0, 30), Step("sunrise", 0, 0)),
)
"""Hà Nội (Đại lộ Thăng Long trial): 70 % from switch-on (18:15 in the trial) to 21:00,
then 30 % to the morning."""

HCM_50_AFTER_22 = Program(
    name="TP HCM 50 % sau 22h",
    steps=(Step("sunset", 0, 100), Step("22:00", 0, 50), Step("sunrise", 0, 0)),
)
"""TP HCM (16/5-30/6/2023): 50 % power after 22:00 on low-traffic streets."""

LATE_ON_EARLY_OFF = Program(
    name="Bật muộn / tắt sớm 30 phút",
    steps=(Step("sunset", 30, 100), Step("sunrise", -30, 0)),
)
"""TP HCM 2023: traffic lighting on 30 min later and off 30 min earlier (astro offsets)."""

PROGRAM_TEMPLATES: Mapping[str, Program] = MappingProxyType(
    {
        program.name: program
        for program in (PHU_YEN, HA_NOI_70_30, HCM_50_AFTER_22, LATE_ON_EARLY_OFF)
    }
)
"""The templates by name (read-only); "start from template" on the dashboard's /programs."""

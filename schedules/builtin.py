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

"""Generate ``sun_dong_ha_spa.csv``: NREL SPA sun events for Đông Hà, 2026-2027.

This script is NOT run by the tests and pvlib is NOT a dependency of streetlight. It was
run once, in a throwaway virtualenv outside the repository, and only its output is
committed::

    python3.11 -m venv /tmp/pvlib && /tmp/pvlib/bin/pip install pvlib scipy
    /tmp/pvlib/bin/python tests/unit/schedules/reference/make_sun_reference.py \
        > tests/unit/schedules/reference/sun_dong_ha_spa.csv

(pvlib 0.16.1, numpy SPA; delta_t from ``pvlib.spa.calculate_deltat``, about 75 s.)

Every event column is the instant the SPA solar position,
``pvlib.solarposition.spa_python(...)["elevation"]`` (topocentric, geometric: no
refraction), crosses a target, found by bisection to 1 ms within 3 h of the event:

- ``sunrise``/``sunset``: -0.8333 deg, SPA's own rise/set altitude h0' (34' refraction plus
  16' semi-diameter, geocentric), i.e. -0.8357 deg topocentric. Observer at sea level.
- ``civil_*``/``nautical_*``: -6 deg / -12 deg.

``sunrise_rst``/``sunset_rst`` are the raw output of
``pvlib.solarposition.sun_rise_set_transit_spa`` for the local date, kept for the record.
Its sunset agrees with the crossing above to well under a second (checked below). Its
sunrise does NOT at this longitude: Đông Hà's sunrise (about 22:20 UT) falls before 00:00 UT
of the local date, pvlib wraps the day fraction m1 into [0, 1) to interpolate the sun's
right ascension and declination and only then subtracts the day, so it evaluates the sun
one day late. The SPA altitude at ``sunrise_rst`` ranges from -1.02 to -0.71 deg instead of
-0.8357, and ``sunrise_rst`` is off by the day-to-day change of sunrise (-47 s .. +35 s).
``sun_rise_set_transit_spa`` for the previous date plus 24 h is the true SPA sunrise; the
script checks that this agrees with the crossing to under a second. (Related pvlib threads
on day handling in this function: pvlib/pvlib-python#2238, #2833.)

Times are written in local time (+07:00) to the millisecond.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pvlib

LATITUDE = 16.8163
LONGITUDE = 107.1003
TIMEZONE = "Asia/Ho_Chi_Minh"
FIRST, LAST = "2026-01-01", "2027-12-31"
PARALLAX_DEG = 8.794 / 3600  # solar horizontal parallax: SPA's h0' is geocentric


def geometric_elevation(times: pd.DatetimeIndex, delta_t: np.ndarray) -> np.ndarray:
    position = pvlib.solarposition.spa_python(times, LATITUDE, LONGITUDE, delta_t=delta_t)
    return position["elevation"].to_numpy()


def crossing(
    low: pd.DatetimeIndex, high: pd.DatetimeIndex, target_deg: float, delta_t: np.ndarray
) -> pd.DatetimeIndex:
    """Bisect, element-wise, for the instant the elevation equals ``target_deg``.

    ``low`` and ``high`` bracket exactly one crossing; the sign of the elevation difference
    at ``low`` tells whether the sun is rising or setting through the bracket.
    Timestamps are handled as int64 nanoseconds since the epoch.
    """
    lo = low.asi8.astype(np.int64)
    hi = high.asi8.astype(np.int64)
    f_lo = geometric_elevation(low, delta_t) - target_deg
    f_hi = geometric_elevation(high, delta_t) - target_deg
    if np.any(np.sign(f_lo) == np.sign(f_hi)):
        raise SystemExit("a bracket does not contain a crossing")
    while np.max(hi - lo) > 1_000_000:  # 1 ms in ns
        mid = lo + (hi - lo) // 2
        f_mid = geometric_elevation(pd.DatetimeIndex(mid, tz="UTC"), delta_t) - target_deg
        same = np.sign(f_mid) == np.sign(f_lo)
        lo = np.where(same, mid, lo)
        f_lo = np.where(same, f_mid, f_lo)
        hi = np.where(same, hi, mid)
    return pd.DatetimeIndex(lo + (hi - lo) // 2, tz="UTC").tz_convert(TIMEZONE)


def main() -> None:
    days = pd.date_range(FIRST, LAST, freq="D", tz=TIMEZONE)
    # one extra day in front, to undo pvlib's sunrise day wrap (see the docstring)
    with_eve = pd.date_range(days[0] - pd.Timedelta(days=1), days[-1], freq="D", tz=TIMEZONE)
    delta_t_eve = np.array([pvlib.spa.calculate_deltat(d.year, d.month) for d in with_eve])
    delta_t = delta_t_eve[1:]
    rst = pvlib.solarposition.sun_rise_set_transit_spa(
        with_eve, LATITUDE, LONGITUDE, delta_t=delta_t_eve
    )
    rst_sunrise = pd.DatetimeIndex(rst["sunrise"]).tz_convert(TIMEZONE)
    rst_sunset = pd.DatetimeIndex(rst["sunset"]).tz_convert(TIMEZONE)[1:]
    unwrapped_sunrise = rst_sunrise[:-1] + pd.Timedelta(days=1)
    rst_sunrise = rst_sunrise[1:]

    three_h = pd.Timedelta(hours=3)
    horizon = -0.8333 - PARALLAX_DEG
    sunrise = crossing(unwrapped_sunrise - three_h, unwrapped_sunrise + three_h, horizon, delta_t)
    sunset = crossing(rst_sunset - three_h, rst_sunset + three_h, horizon, delta_t)
    for name, ours, theirs in (
        ("sunrise", sunrise, unwrapped_sunrise),
        ("sunset", sunset, rst_sunset),
    ):
        worst = np.max(np.abs((ours - theirs).total_seconds()))
        if worst > 1.0:
            raise SystemExit(f"{name}: crossing and sun_rise_set_transit_spa differ by {worst} s")

    columns = {
        "sunrise": sunrise,
        "sunset": sunset,
        "civil_dawn": crossing(sunrise - three_h, sunrise, -6.0, delta_t),
        "civil_dusk": crossing(sunset, sunset + three_h, -6.0, delta_t),
        "nautical_dawn": crossing(sunrise - three_h, sunrise, -12.0, delta_t),
        "nautical_dusk": crossing(sunset, sunset + three_h, -12.0, delta_t),
        "sunrise_rst": rst_sunrise,
        "sunset_rst": rst_sunset,
    }
    out = sys.stdout
    out.write(f"# NREL SPA via pvlib {pvlib.__version__}; see make_sun_reference.py\n")
    out.write("date," + ",".join(columns) + "\n")
    for i, day in enumerate(days):
        cells = [col[i].isoformat(timespec="milliseconds") for col in columns.values()]
        out.write(day.date().isoformat() + "," + ",".join(cells) + "\n")


if __name__ == "__main__":
    main()

"""Tables of sun events for the CLI (``streetlight sun``) and the API: CSV, JSON, text.

Pure formatting over :class:`schedules.sun.SunEvents`; the only computation is
:func:`tabulate_sun_events`, which asks :mod:`schedules.sun` for consecutive dates.

Times are ISO 8601 local time with the site's UTC offset, to the second
(``2026-06-21T05:19:33+07:00``). An event that does not happen on a date (polar day or
night, or a sun that never gets 6 or 12 degrees down) is an empty CSV cell, a JSON
``null`` and ``-`` in the text table.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta

from schedules.sun import Site, SunEvent, SunEvents, compute_sun_events

COLUMNS: tuple[str, ...] = (
    "date",
    "sunrise",
    "sunset",
    "civil_dawn",
    "civil_dusk",
    "nautical_dawn",
    "nautical_dusk",
)
"""CSV header and JSON keys, in this order."""

MAX_DAYS = 3660
"""Longest table :func:`tabulate_sun_events` builds (ten years), so a request stays cheap."""

_EVENTS: tuple[SunEvent, ...] = tuple(SunEvent(column) for column in COLUMNS[1:])

Record = dict[str, str | None]


def tabulate_sun_events(site: Site, start: date, days: int) -> tuple[SunEvents, ...]:
    """Sun events for ``days`` consecutive local dates from ``start`` (1..``MAX_DAYS``)."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be 1..{MAX_DAYS}, got {days}")
    return tuple(compute_sun_events(site, start + timedelta(days=i)) for i in range(days))


def to_records(rows: Iterable[SunEvents]) -> list[Record]:
    """One dict per date with the :data:`COLUMNS` keys; ISO strings, ``None`` if missing."""
    records: list[Record] = []
    for row in rows:
        record: Record = {"date": row.date.isoformat()}
        for event in _EVENTS:
            record[event.value] = _iso(row.get(event))
        records.append(record)
    return records


def format_csv(rows: Iterable[SunEvents]) -> str:
    """CSV text: the :data:`COLUMNS` header, one line per date, ``\\n`` line ends."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for record in to_records(rows):
        writer.writerow(["" if record[column] is None else record[column] for column in COLUMNS])
    return buffer.getvalue()


def format_json(rows: Iterable[SunEvents]) -> str:
    """A JSON array of :func:`to_records` objects (UTF-8 text, not ASCII-escaped)."""
    return json.dumps(to_records(rows), ensure_ascii=False, indent=2) + "\n"


def format_text(rows: Sequence[SunEvents]) -> str:
    """A fixed-width table for a terminal: local ``HH:MM:SS``, ``-`` if missing.

    The first line names the UTC offset(s) the times are in; a ``status`` column shows
    polar days and nights.
    """
    header = (*COLUMNS, "status")
    lines = [list(header)]
    offsets: list[str] = []
    for row in rows:
        cells = [row.date.isoformat()]
        for event in _EVENTS:
            at = row.get(event)
            cells.append("-" if at is None else at.strftime("%H:%M:%S"))
        lines.append([*cells, row.status.value])
        offset = row.solar_noon.strftime("%z")
        offset = f"UTC{offset[:3]}:{offset[3:]}"
        if offset not in offsets:
            offsets.append(offset)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [f"local times ({', '.join(offsets) or 'no dates'})"]
    text.extend(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )
    return "\n".join(text) + "\n"


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat(timespec="seconds")

"""The night's level changes for a subject: a luminaire, a group, or the site's default.

One function, :func:`subject_timeline`, for everything that shows "what will the lights do
tonight": ``GET /api/v1/{groups,luminaires}/{id}/timeline``, the dashboard's "tonight"
panels and ``streetlight timeline``, so they cannot disagree with each other or with the
controller (the calendar is chosen by :func:`controller.scheduling.data.luminaire_calendar_id`,
the controller's own rule).

- a **luminaire**: the calendar that drives it, and every override that targets it;
- a **group**: the group's own calendar (the site default if it has none), and the
  overrides on the whole group (naming it, or all luminaires);
- the **site**: the default calendar (what a luminaire in no group with a calendar
  follows), and the overrides on all luminaires.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from sqlalchemy import ColumnElement
from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from controller.config.settings import Settings
from controller.core.errors import FieldProblem, InvalidInput, NotFound
from controller.scheduling import data as scheduling
from controller.scheduling.overrides import (
    overlapping,
    overrides_for_group,
    overrides_for_luminaire,
    to_pure,
)
from controller.store.tables import Luminaire, LuminaireGroup
from schedules.decision import Change, Override
from schedules.program import night_bounds


class SubjectKind(StrEnum):
    LUMINAIRE = "luminaire"
    GROUP = "group"
    SITE = "site"


@dataclass(frozen=True, slots=True)
class Subject:
    """What a timeline is for: a luminaire or group by id, or the site (``id`` None)."""

    kind: SubjectKind
    id: int | None = None

    @classmethod
    def luminaire(cls, luminaire_id: int) -> Subject:
        return cls(SubjectKind.LUMINAIRE, luminaire_id)

    @classmethod
    def group(cls, group_id: int) -> Subject:
        return cls(SubjectKind.GROUP, group_id)

    @classmethod
    def site(cls) -> Subject:
        return cls(SubjectKind.SITE)


@dataclass(frozen=True, slots=True)
class SubjectTimeline:
    """One night of a subject: its calendar (``None``: the default level) and the changes."""

    subject: Subject
    night: date
    calendar_id: int | None
    calendar: str | None
    changes: tuple[Change, ...]


async def subject_timeline(
    *, session: AsyncSession, settings: Settings, subject: Subject, night: date
) -> SubjectTimeline:
    """Every level change of ``subject`` during ``night`` (see the module doc).

    Raises :class:`NotFound` for an unknown luminaire or group, :class:`InvalidInput`
    (field ``date``) for a night the schedules cannot evaluate (e.g. the year 9999).
    """
    site = settings.site.to_site()
    book = await scheduling.load_book(session=session, settings=settings)
    overrides: list[Override]
    if subject.kind is SubjectKind.GROUP:
        assert subject.id is not None
        calendar_id = await scheduling.group_calendar_id(
            session=session, group_id=subject.id, book=book
        )
        overrides = await overrides_for_group(
            session=session, group_id=subject.id, night=night, site=site
        )
    elif subject.kind is SubjectKind.LUMINAIRE:
        assert subject.id is not None
        calendar_id = await scheduling.luminaire_calendar_id(
            session=session, luminaire_id=subject.id, book=book
        )
        overrides = await overrides_for_luminaire(
            session=session, luminaire_id=subject.id, night=night, site=site
        )
    else:
        calendar_id = book.default_calendar_id
        overrides = await _overrides_for_all(session, settings, night)
    try:
        changes = scheduling.night_timeline(
            book, calendar_id, night, site, overrides, settings.schedule.default_level
        )
    except ValueError as exc:
        raise InvalidInput(
            "cannot evaluate the schedule", [FieldProblem("date", str(exc))]
        ) from exc
    names = await scheduling.calendar_names(session=session)
    return SubjectTimeline(
        subject=subject,
        night=night,
        calendar_id=calendar_id,
        calendar=names.get(calendar_id) if calendar_id is not None else None,
        changes=changes,
    )


async def find_subject(
    *, session: AsyncSession, kind: SubjectKind, name_or_id: str
) -> tuple[Subject, str]:
    """A luminaire or group named by an operator (its name, or its id in digits).

    Returns the subject and its name; :class:`NotFound` if there is none. ``kind`` is
    ``luminaire`` or ``group`` (the site has no name to look up: :meth:`Subject.site`).
    """
    if kind is SubjectKind.SITE:
        raise ValueError("the site is not looked up by name: use Subject.site()")
    key = int(name_or_id) if name_or_id.isdigit() else None
    found: tuple[int | None, str] | None
    if kind is SubjectKind.LUMINAIRE:
        cond: ColumnElement[bool] = col(Luminaire.name) == name_or_id
        if key is not None:
            cond = or_(cond, col(Luminaire.id) == key)
        lum = (await session.exec(select(Luminaire).where(cond))).first()
        found = None if lum is None else (lum.id, lum.name)
    else:
        cond = col(LuminaireGroup.name) == name_or_id
        if key is not None:
            cond = or_(cond, col(LuminaireGroup.id) == key)
        group = (await session.exec(select(LuminaireGroup).where(cond))).first()
        found = None if group is None else (group.id, group.name)
    if found is None or found[0] is None:
        raise NotFound(kind.value, name_or_id)
    return Subject(kind, found[0]), found[1]


async def _overrides_for_all(
    session: AsyncSession, settings: Settings, night: date
) -> list[Override]:
    start, end = night_bounds(settings.site.to_site(), night)
    return [
        to_pure(row)
        for row in await overlapping(session=session, start=start, end=end)
        if row.all_luminaires
    ]

"""NGSI-LD entities for the city's IOC: FIWARE Smart Data Models, normalized representation.

What is exported, and from what (docs/ioc.md has the attribute tables):

* ``Streetlight``: one per luminaire (inventory, lamp type, groups, stored history; live
  values only when the controller runs in this process);
* ``StreetlightGroup``: one per group with at least one current member (the schema requires a
  location and it is the members' positions, so an empty group has none to give);
* ``StreetlightModel``: one per lamp type, the target of ``refStreetlightModel``;
* ``StreetlightControlCabinet``: none. Cabinets (contactors, circuits, a meter) are not
  modelled yet, and a gateway is a communication device, not a cabinet: it has no working
  mode, no circuits, often no position. The type is accepted and its list is empty.

Identifiers: ``urn:ngsi-ld:<Type>:<site>:<local>``, with ``<site>`` the ASCII slug of the site
name (``dong-ha``) and ``<local>`` the pole code for a Streetlight (the name painted on the
pole, which survives a database rebuild or re-import; characters other than ``A-Z a-z 0-9
- . _ ~`` percent-encoded) and the database id for a group or a lamp type (their names are
free text that operators rename). Renaming a pole therefore changes its entity id.

Nothing is invented: an attribute whose value the system does not know is left out, with one
exception the schema forces: ``status`` is required, so a Streetlight always has one, and it
means "no defect known" unless the latest reading carries a lamp or control-gear failure
(``observedAt`` says when that reading was taken; without it no reading is known at all).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from sqlalchemy import Integer, literal, union_all
from sqlalchemy import select as core_select
from sqlalchemy.orm import aliased
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from controller.config.settings import SiteSettings
from controller.core.errors import FieldProblem, InvalidInput, NotFound
from controller.core.values import DeviceFlag
from controller.inventory.data import group_condition
from controller.inventory.schemas import MAX_DB_ID, GroupKind
from controller.store.tables import LampTypeRow, Luminaire, LuminaireGroup, ReadingRow, StateChange

if TYPE_CHECKING:
    from controller.loop.runtime import LuminaireState

SMART_DATA_MODELS_CONTEXT = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Streetlighting/master/"
    "context.jsonld"
)
"""The Streetlighting context, as the FIWARE examples give it."""
CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
CONTEXT: list[str] = [SMART_DATA_MODELS_CONTEXT, CORE_CONTEXT]
"""``@context`` of every entity: the data model's terms, then the NGSI-LD core (last, so the
core terms cannot be redefined)."""

Entity = dict[str, Any]
LiveLookup = Callable[[int], "LuminaireState | None"]
"""The controller's in-process state of a luminaire (``Controller.luminaire_state``)."""

DEFECT_FLAGS = frozenset({DeviceFlag.LAMP_FAILURE.value, DeviceFlag.DRIVER_FAILURE.value})
"""Reading flags that make a Streetlight's ``status`` ``defectiveLamp``."""

_COUNTRY_OF_ZONE = {"Asia/Ho_Chi_Minh": "VN", "Asia/Saigon": "VN"}
"""``addressCountry`` from the site's zone (an IANA zone lies in one country); a site in a zone
not listed here gets no ``addressCountry`` rather than a guess."""


class EntityType(StrEnum):
    """The NGSI-LD entity types this API serves (short names of the Smart Data Models)."""

    STREETLIGHT = "Streetlight"
    GROUP = "StreetlightGroup"
    MODEL = "StreetlightModel"
    CABINET = "StreetlightControlCabinet"


# --- identifiers -----------------------------------------------------------------------------


def site_slug(name: str) -> str:
    """``Đông Hà`` -> ``dong-ha``: ASCII letters and digits, words joined by ``-``."""
    decomposed = unicodedata.normalize("NFKD", name.replace("đ", "d").replace("Đ", "D"))
    ascii_only = decomposed.encode("ascii", "ignore").decode().lower()
    words = "".join(ch if ch.isalnum() else " " for ch in ascii_only).split()
    return "-".join(words) or "site"


def entity_id(entity_type: EntityType, slug: str, local: str | int) -> str:
    """The URN of an entity (``local`` percent-encoded outside the URN-safe characters)."""
    return f"urn:ngsi-ld:{entity_type.value}:{slug}:{quote(str(local), safe='')}"


def parse_entity_id(text: str, slug: str) -> tuple[EntityType, str]:
    """Split one of our URNs into its type and local part.

    :class:`InvalidInput` (400) when ``text`` is not a URI at all; :class:`NotFound` (404)
    when it is a URI that cannot name one of our entities.
    """
    scheme, sep, _ = text.partition(":")
    if not sep or not scheme or not scheme.replace("+", "").replace("-", "").isalnum():
        raise InvalidInput(
            "the entity id is not a URI", [FieldProblem("id", f"{text!r} is not a URI")]
        )
    parts = text.split(":", 4)
    if len(parts) != 5 or parts[0].lower() != "urn" or parts[1] != "ngsi-ld" or parts[3] != slug:
        raise NotFound("entity", text)
    try:
        entity_type = EntityType(parts[2])
    except ValueError:
        raise NotFound("entity", text) from None
    return entity_type, unquote(parts[4])


# --- attribute helpers -----------------------------------------------------------------------


def _utc(at: datetime) -> str:
    """ISO 8601 in UTC with ``Z`` (what NGSI-LD brokers return)."""
    value = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return value.isoformat(timespec="seconds").replace("+00:00", "Z")


def prop(value: Any, *, observed_at: datetime | None = None, unit: str | None = None) -> Entity:
    """A Property; ``unit`` is a UN/CEFACT common code (WTT watt, VLT volt, AMP ampere)."""
    out: Entity = {"type": "Property", "value": value}
    if observed_at is not None:
        out["observedAt"] = _utc(observed_at)
    if unit is not None:
        out["unitCode"] = unit
    return out


def date_time(at: datetime, *, observed_at: datetime | None = None) -> Entity:
    """A Property holding a DateTime, typed as NGSI-LD requires."""
    return prop({"@type": "DateTime", "@value": _utc(at)}, observed_at=observed_at)


def relationship(target: str | list[str]) -> Entity:
    return {"type": "Relationship", "object": target}


def geo(geometry: Entity) -> Entity:
    return {"type": "GeoProperty", "value": geometry}


def to_key_values(entity: Entity) -> Entity:
    """The simplified (``keyValues``) representation: each attribute reduced to its value."""
    out: Entity = {}
    for name, attr in entity.items():
        if name in {"id", "type", "@context"} or not isinstance(attr, dict):
            out[name] = attr
        elif attr.get("type") == "Relationship":
            out[name] = attr["object"]
        else:
            value = attr.get("value")
            if isinstance(value, dict) and "@value" in value:
                value = value["@value"]
            out[name] = value
    return out


def with_context(entity: Entity) -> Entity:
    return {**entity, "@context": CONTEXT}


# --- live values -----------------------------------------------------------------------------


def power_state(level: int) -> str:
    """``off`` at 0 %, ``on`` at 100 %, ``low`` in between (dimmed)."""
    if level <= 0:
        return "off"
    return "on" if level >= 100 else "low"


def lamp_status(flags: Iterable[str]) -> str:
    """``defectiveLamp`` when a lamp or control-gear failure is flagged, else ``ok``."""
    return "defectiveLamp" if DEFECT_FLAGS & set(flags) else "ok"


def _live_attributes(state: LuminaireState | None) -> Entity:
    """powerState, illuminanceLevel and the latest measurements, when the luminaire answers."""
    if state is None or not state.online or state.reading is None:
        return {}
    r = state.reading
    out: Entity = {}
    if state.actual is not None:
        out["powerState"] = prop(power_state(state.actual), observed_at=r.at)
        out["illuminanceLevel"] = prop(round(state.actual / 100.0, 2), observed_at=r.at)
    out["powerConsumption"] = prop(r.power_w, observed_at=r.at, unit="WTT")
    out["voltage"] = prop(r.voltage_v, observed_at=r.at, unit="VLT")
    out["current"] = prop(round(r.current_ma / 1000.0, 3), observed_at=r.at, unit="AMP")
    out["powerFactor"] = prop(r.power_factor, observed_at=r.at)
    return out


# --- Streetlight -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _History:
    reading_at: datetime | None = None
    reading_flags: tuple[str, ...] = ()
    switched_on: datetime | None = None
    switched_off: datetime | None = None


def _actual_at(table: Any, agg: Any, *conditions: Any) -> Any:
    """``agg(at)`` of the luminaire's 'actual' state changes meeting ``conditions``."""
    return (
        core_select(agg(table.at))
        .where(table.luminaire_id == Luminaire.id, table.kind == "actual", *conditions)
        .correlate(Luminaire)
        .scalar_subquery()
    )


def _switched(to_on: bool) -> Any:
    """When the luminaire last switched on (``to_on``) or off, from the state history.

    A switch on is an 'actual' record above 0 % whose previous record was 0 % (and the
    reverse for off): the first record of the latest run at the new state, where the run
    must follow a record at the other state (the first record ever is not a switch).
    """
    a, b, c = (aliased(StateChange) for _ in range(3))

    def at_state(t: Any, on: bool) -> Any:
        return t.level > 0 if on else t.level == 0

    latest = _actual_at(a, func.max, at_state(a, to_on))
    before = _actual_at(b, func.max, at_state(b, not to_on), b.at < latest)
    return _actual_at(c, func.min, at_state(c, to_on), c.at > before)


async def _histories(session: AsyncSession, ids: Sequence[int]) -> dict[int, _History]:
    if not ids:
        return {}
    r = aliased(ReadingRow)
    latest = (
        core_select(col(r.at))
        .where(col(r.luminaire_id) == col(Luminaire.id))
        .order_by(col(r.at).desc())
        .limit(1)
        .correlate(Luminaire)
        .scalar_subquery()
    )
    flags = (
        core_select(col(r.flags))
        .where(col(r.luminaire_id) == col(Luminaire.id))
        .order_by(col(r.at).desc())
        .limit(1)
        .correlate(Luminaire)
        .scalar_subquery()
    )
    stmt = core_select(col(Luminaire.id), latest, flags, _switched(True), _switched(False)).where(
        col(Luminaire.id).in_(ids)
    )
    rows = (await session.exec(stmt)).all()  # type: ignore[call-overload]
    return {row[0]: _History(row[1], tuple(row[2] or ()), row[3], row[4]) for row in rows}


async def _first_groups(session: AsyncSession, ids: Sequence[int]) -> dict[int, int]:
    """luminaire id -> its group of highest priority (ties: lowest id), as calendars pick."""
    groups = (
        await session.exec(
            select(LuminaireGroup).order_by(
                col(LuminaireGroup.priority).desc(), col(LuminaireGroup.id)
            )
        )
    ).all()
    if not ids or not groups:
        return {}
    parts: list[Any] = [
        core_select(literal(rank, Integer).label("rank"), literal(g.id, Integer).label("gid"),
                    col(Luminaire.id).label("lid"))
        .where(group_condition(g), col(Luminaire.id).in_(ids))
        for rank, g in enumerate(groups)
    ]  # fmt: skip
    found = (await session.exec(union_all(*parts))).all()  # type: ignore[call-overload]
    best: dict[int, tuple[int, int]] = {}
    for rank, gid, lid in found:
        if lid not in best or rank < best[lid][0]:
            best[lid] = (rank, gid)
    return {lid: gid for lid, (_, gid) in best.items()}


def _streetlight(
    lum: Luminaire,
    lamp: LampTypeRow,
    group_id: int | None,
    history: _History,
    state: LuminaireState | None,
    site: SiteSettings,
    slug: str,
) -> Entity:
    assert lum.id is not None
    address: Entity = {
        "streetAddress": lum.street,
        "district": lum.ward,
        "addressLocality": site.name,
    }
    country = _COUNTRY_OF_ZONE.get(site.timezone)
    if country is not None:
        address["addressCountry"] = country
    reading = state.reading if state is not None else None
    if reading is not None:
        status = prop(lamp_status(f.value for f in reading.flags), observed_at=reading.at)
    elif history.reading_at is not None:
        status = prop(lamp_status(history.reading_flags), observed_at=history.reading_at)
    else:
        status = prop("ok")
    out: Entity = {
        "id": entity_id(EntityType.STREETLIGHT, slug, lum.name),
        "type": EntityType.STREETLIGHT.value,
        "name": prop(lum.name),
        "location": geo({"type": "Point", "coordinates": [lum.longitude, lum.latitude]}),
        "address": prop(address),
        "status": status,
        "controllingMethod": prop("individual"),
        "powerRating": prop(lamp.rated_power_w, unit="WTT"),
        "refStreetlightModel": relationship(entity_id(EntityType.MODEL, slug, lamp.id or 0)),
    }
    if group_id is not None:
        out["refStreetlightGroup"] = relationship(entity_id(EntityType.GROUP, slug, group_id))
    if lum.installed_on is not None:
        out["dateServiceStarted"] = date_time(_local_midnight(lum.installed_on, site))
    if history.switched_on is not None:
        out["dateLastSwitchingOn"] = date_time(history.switched_on)
    if history.switched_off is not None:
        out["dateLastSwitchingOff"] = date_time(history.switched_off)
    out.update(_live_attributes(state))
    return out


def _local_midnight(day: date, site: SiteSettings) -> datetime:
    return datetime.combine(day, time(0), tzinfo=site.tz)


async def _streetlights(
    session: AsyncSession,
    rows: Sequence[tuple[Luminaire, LampTypeRow]],
    site: SiteSettings,
    live: LiveLookup | None,
) -> list[Entity]:
    ids = [lum.id for lum, _ in rows if lum.id is not None]
    histories = await _histories(session, ids)
    groups = await _first_groups(session, ids)
    slug = site_slug(site.name)
    out = []
    for lum, lamp in rows:
        assert lum.id is not None
        state = live(lum.id) if live is not None else None
        out.append(
            _streetlight(lum, lamp, groups.get(lum.id), histories.get(lum.id, _History()),
                         state, site, slug)
        )  # fmt: skip
    return out


def _luminaires_with_lamp() -> Any:
    return (
        select(Luminaire, LampTypeRow)
        .join(LampTypeRow, col(LampTypeRow.id) == col(Luminaire.lamp_type_id))
        .order_by(col(Luminaire.id))
    )


# --- StreetlightGroup ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Member:
    id: int
    name: str
    latitude: float
    longitude: float


async def _members(session: AsyncSession, group: LuminaireGroup) -> list[_Member]:
    rows = (
        await session.exec(
            select(Luminaire.id, Luminaire.name, Luminaire.latitude, Luminaire.longitude)
            .where(group_condition(group))
            .order_by(col(Luminaire.id))
        )
    ).all()
    return [_Member(int(i or 0), n, lat, lon) for i, n, lat, lon in rows]


def _common(values: Iterable[Any]) -> Any:
    """The one value all items share, or ``None`` (also when one is missing)."""
    seen = set()
    for value in values:
        if value is None:
            return None
        seen.add(value)
        if len(seen) > 1:
            return None
    return seen.pop() if seen else None


def _group(
    group: LuminaireGroup,
    members: Sequence[_Member],
    live: LiveLookup | None,
    slug: str,
) -> Entity:
    assert group.id is not None
    out: Entity = {
        "id": entity_id(EntityType.GROUP, slug, group.id),
        "type": EntityType.GROUP.value,
        "name": prop(group.name),
    }
    if group.description:
        out["description"] = prop(group.description)
    if group.kind in (GroupKind.WARD, GroupKind.STREET) and group.selector:
        out["areaServed"] = prop(group.selector)
    out["location"] = geo(
        {"type": "MultiPoint", "coordinates": [[m.longitude, m.latitude] for m in members]}
    )
    out["refStreetlight"] = relationship(
        [entity_id(EntityType.STREETLIGHT, slug, m.name) for m in members]
    )
    if live is not None:
        states = [live(m.id) for m in members]
        answering = [s for s in states if s is not None and s.online and s.reading is not None]
        if len(answering) == len(members):
            level = _common(s.actual for s in answering)
            observed = max(s.reading.at for s in answering if s.reading is not None)
            if level is not None:
                out["powerState"] = prop(power_state(level), observed_at=observed)
                out["illuminanceLevel"] = prop(round(level / 100.0, 2), observed_at=observed)
    return out


async def _groups_with_members(
    session: AsyncSession, only: int | None = None
) -> list[tuple[LuminaireGroup, int]]:
    """Groups (ordered by id) with their current member count, empty ones left out."""
    stmt = select(LuminaireGroup).order_by(col(LuminaireGroup.id))
    if only is not None:
        stmt = stmt.where(LuminaireGroup.id == only)
    groups = (await session.exec(stmt)).all()
    out = []
    for group in groups:
        count = (
            await session.exec(
                select(func.count()).select_from(Luminaire).where(group_condition(group))
            )
        ).one()
        if count:
            out.append((group, count))
    return out


# --- StreetlightModel ------------------------------------------------------------------------


def _model(lamp: LampTypeRow, slug: str) -> Entity:
    assert lamp.id is not None
    out: Entity = {
        "id": entity_id(EntityType.MODEL, slug, lamp.id),
        "type": EntityType.MODEL.value,
        "name": prop(lamp.name),
        "powerConsumption": prop(lamp.rated_power_w, unit="WTT"),
    }
    if lamp.description:
        out["description"] = prop(lamp.description)
    return out


# --- queries ---------------------------------------------------------------------------------


async def list_entities(
    *,
    session: AsyncSession,
    site: SiteSettings,
    entity_type: EntityType,
    limit: int,
    offset: int,
    live: LiveLookup | None = None,
) -> tuple[list[Entity], int]:
    """One page of entities of a type (ordered by database id) and how many there are."""
    slug = site_slug(site.name)
    if entity_type is EntityType.STREETLIGHT:
        total = (await session.exec(select(func.count()).select_from(Luminaire))).one()
        stmt = _luminaires_with_lamp().offset(offset).limit(limit)
        rows = (await session.exec(stmt)).all()
        return await _streetlights(session, rows, site, live), total
    if entity_type is EntityType.GROUP:
        groups = await _groups_with_members(session)
        page = groups[offset : offset + limit]
        entities = [_group(g, await _members(session, g), live, slug) for g, _ in page]
        return entities, len(groups)
    if entity_type is EntityType.MODEL:
        total = (await session.exec(select(func.count()).select_from(LampTypeRow))).one()
        lamps = (
            await session.exec(
                select(LampTypeRow).order_by(col(LampTypeRow.id)).offset(offset).limit(limit)
            )
        ).all()
        return [_model(lamp, slug) for lamp in lamps], total
    return [], 0  # StreetlightControlCabinet: not modelled (module doc)


async def get_entity(
    *,
    session: AsyncSession,
    site: SiteSettings,
    entity: str,
    live: LiveLookup | None = None,
) -> Entity:
    """One entity by its URN; :class:`NotFound` when it names nothing we export."""
    slug = site_slug(site.name)
    entity_type, local = parse_entity_id(entity, slug)
    if entity_type is EntityType.STREETLIGHT:
        rows = (await session.exec(_luminaires_with_lamp().where(Luminaire.name == local))).all()
        if rows:
            return (await _streetlights(session, rows, site, live))[0]
    elif (
        entity_type in (EntityType.GROUP, EntityType.MODEL)
        and local.isdigit()
        and 1 <= int(local) <= MAX_DB_ID
    ):
        if entity_type is EntityType.GROUP:
            found = await _groups_with_members(session, only=int(local))
            if found:
                group = found[0][0]
                return _group(group, await _members(session, group), live, slug)
        else:
            lamp = await session.get(LampTypeRow, int(local))
            if lamp is not None:
                return _model(lamp, slug)
    raise NotFound("entity", entity)

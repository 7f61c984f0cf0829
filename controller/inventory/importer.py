"""Bulk import of luminaires (and optionally gateways and lamp types) from CSV or GeoJSON.

All or nothing: every row is validated first; if any row is bad nothing is
written and every problem is reported with its row, field and reason. Rows are
numbered as a spreadsheet shows them for CSV (the header is row 1) and from 1
for GeoJSON features. See docs/api.md for the formats.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import ValidationError
from sqlalchemy import insert
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from controller.access import audit
from controller.access.auth import Principal
from controller.core.changes import ConfigChange, note_change
from controller.core.errors import FieldProblem, InvalidInput
from controller.inventory.schemas import (
    GatewayCreate,
    LampTypeCreate,
    LuminaireCreate,
    gateway_capacity,
)
from controller.store.tables import GatewayRow, LampTypeRow, Luminaire

CSV_COLUMNS = (
    "name",
    "gateway",
    "address",
    "lamp_type",
    "latitude",
    "longitude",
    "street",
    "ward",
    "installed_on",
)
REQUIRED_COLUMNS = frozenset(CSV_COLUMNS) - {"installed_on"}
MAX_PROBLEMS = 1000


class ImportFormat(StrEnum):
    CSV = "csv"
    GEOJSON = "geojson"


@dataclass(frozen=True, slots=True)
class ImportResult:
    luminaires: int
    gateways_created: int
    gateways_updated: int
    lamp_types_created: int


@dataclass(frozen=True, slots=True)
class _Row:
    number: int
    values: dict[str, Any]


def detect_format(filename: str | None, content_type: str | None) -> ImportFormat:
    """Pick the format from a filename or content type; CSV unless it looks like JSON."""
    name = (filename or "").lower()
    ctype = (content_type or "").lower()
    if name.endswith((".geojson", ".json")) or "json" in ctype:
        return ImportFormat.GEOJSON
    return ImportFormat.CSV


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            "the file is not UTF-8 text",
            [FieldProblem("file", f"byte {exc.start} is not valid UTF-8")],
        ) from exc


def _csv_rows(text: str) -> Iterator[_Row]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = sorted(REQUIRED_COLUMNS - set(header))
    unknown = sorted(set(header) - set(CSV_COLUMNS))
    problems = [FieldProblem(c, "required column is missing", row=1) for c in missing]
    problems += [FieldProblem(c, "unknown column", row=1) for c in unknown]
    if problems:
        raise InvalidInput("the CSV header is wrong", problems)
    reader.fieldnames = header
    for index, raw in enumerate(reader, start=2):
        if None in raw:
            raise InvalidInput(
                "a row has more cells than the header",
                [FieldProblem("row", "more cells than columns", row=index)],
            )
        values = {k: (v.strip() if isinstance(v, str) else v) for k, v in raw.items()}
        if not any(values.values()):
            continue  # blank line
        if values.get("installed_on") == "":
            values["installed_on"] = None
        yield _Row(index, values)


@dataclass(frozen=True, slots=True)
class _GeoJson:
    rows: list[_Row]
    gateways: list[dict[str, Any]]
    lamp_types: list[dict[str, Any]]


def _geojson(text: str) -> _GeoJson:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            "the file is not valid JSON",
            [FieldProblem("file", f"line {exc.lineno} column {exc.colno}: {exc.msg}")],
        ) from exc
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise InvalidInput(
            "expected a GeoJSON FeatureCollection",
            [FieldProblem("type", "must be 'FeatureCollection'")],
        )
    features = doc.get("features")
    if not isinstance(features, list):
        raise InvalidInput("features missing", [FieldProblem("features", "must be a list")])
    rows: list[_Row] = []
    problems: list[FieldProblem] = []
    for number, feature in enumerate(features, start=1):
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            problems.append(FieldProblem("type", "must be a GeoJSON Feature", row=number))
            continue
        geometry = feature.get("geometry") or {}
        coords = geometry.get("coordinates") if isinstance(geometry, dict) else None
        if (
            not isinstance(geometry, dict)
            or geometry.get("type") != "Point"
            or not isinstance(coords, list)
            or len(coords) < 2
        ):
            problems.append(FieldProblem("geometry", "must be a Point [lon, lat]", row=number))
            continue
        props = feature.get("properties") or {}
        if not isinstance(props, dict):
            problems.append(FieldProblem("properties", "must be an object", row=number))
            continue
        values = {k: props.get(k) for k in CSV_COLUMNS if k not in ("latitude", "longitude")}
        values["longitude"], values["latitude"] = coords[0], coords[1]
        unknown = sorted(set(props) - set(CSV_COLUMNS))
        problems += [FieldProblem(k, "unknown property", row=number) for k in unknown]
        rows.append(_Row(number, values))
    if problems:
        raise InvalidInput(f"{len(problems)} feature(s) are malformed", problems[:MAX_PROBLEMS])
    gateways = doc.get("gateways", [])
    lamp_types = doc.get("lamp_types", [])
    if not isinstance(gateways, list) or not isinstance(lamp_types, list):
        raise InvalidInput(
            "gateways and lamp_types must be lists",
            [FieldProblem("gateways", "must be a list of gateway objects")],
        )
    return _GeoJson(rows=rows, gateways=gateways, lamp_types=lamp_types)


def _validate_many(
    items: Iterable[dict[str, Any]], model: type[GatewayCreate] | type[LampTypeCreate], what: str
) -> list[Any]:
    out: list[Any] = []
    problems: list[FieldProblem] = []
    for number, item in enumerate(items, start=1):
        try:
            out.append(model.model_validate(item))
        except ValidationError as exc:
            for err in exc.errors():
                field = ".".join(str(p) for p in err["loc"]) or what
                problems.append(FieldProblem(f"{what}.{field}", err["msg"], row=number))
    if problems:
        raise InvalidInput(f"invalid {what}", problems)
    return out


async def import_inventory(
    *,
    session: AsyncSession,
    data: bytes,
    fmt: ImportFormat,
    actor: Principal,
) -> ImportResult:
    """Validate every row, then write all of it in one transaction, or nothing."""
    text = _decode(data)
    gateway_specs: list[GatewayCreate] = []
    lamp_specs: list[LampTypeCreate] = []
    if fmt is ImportFormat.CSV:
        rows = list(_csv_rows(text))
    else:
        doc = _geojson(text)
        rows = doc.rows
        gateway_specs = _validate_many(doc.gateways, GatewayCreate, "gateways")
        lamp_specs = _validate_many(doc.lamp_types, LampTypeCreate, "lamp_types")
    if not rows and not gateway_specs:
        raise InvalidInput("nothing to import", [FieldProblem("file", "no rows")])

    existing_gateways = {g.name: g for g in (await session.exec(select(GatewayRow))).all()}
    existing_lamps = {t.name: t for t in (await session.exec(select(LampTypeRow))).all()}

    # Gateways and lamp types in the file are created, or updated when the name exists.
    gateways_created = gateways_updated = lamps_created = 0
    for spec in gateway_specs:
        current = existing_gateways.get(spec.name)
        if current is None:
            gw_row = GatewayRow(**spec.model_dump(mode="json"))
            session.add(gw_row)
            existing_gateways[spec.name] = gw_row
            gateways_created += 1
        else:
            for key, value in spec.model_dump(mode="json").items():
                setattr(current, key, value)
            session.add(current)
            gateways_updated += 1
    for lamp_spec in lamp_specs:
        if lamp_spec.name not in existing_lamps:
            lamp_row = LampTypeRow(**lamp_spec.model_dump())
            session.add(lamp_row)
            existing_lamps[lamp_spec.name] = lamp_row
            lamps_created += 1
    await session.flush()

    taken_names = set((await session.exec(select(Luminaire.name))).all())
    taken_addresses = {
        (gid, addr)
        for gid, addr in (await session.exec(select(Luminaire.gateway_id, Luminaire.address))).all()
    }
    problems: list[FieldProblem] = []
    records: list[dict[str, Any]] = []
    for row in rows:
        if len(problems) >= MAX_PROBLEMS:
            break
        values = dict(row.values)
        gateway = existing_gateways.get(str(values.get("gateway") or ""))
        lamp = existing_lamps.get(str(values.get("lamp_type") or ""))
        row_problems: list[FieldProblem] = []
        if gateway is None:
            row_problems.append(
                FieldProblem("gateway", f"unknown gateway {values.get('gateway')!r}", row.number)
            )
        if lamp is None:
            row_problems.append(
                FieldProblem(
                    "lamp_type", f"unknown lamp type {values.get('lamp_type')!r}", row.number
                )
            )
        values["gateway_id"] = gateway.id if gateway is not None else 1
        values["lamp_type_id"] = lamp.id if lamp is not None else 1
        values.pop("gateway", None)
        values.pop("lamp_type", None)
        try:
            item = LuminaireCreate.model_validate(values)
        except ValidationError as exc:
            for err in exc.errors():
                field = ".".join(str(p) for p in err["loc"]) or "row"
                row_problems.append(FieldProblem(field, err["msg"], row.number))
            problems += row_problems
            continue
        if gateway is not None:
            capacity = gateway_capacity(gateway.protocol, gateway.unit_ids)
            if item.address >= capacity:
                row_problems.append(
                    FieldProblem(
                        "address",
                        f"gateway {gateway.name!r} serves addresses 0..{capacity - 1}",
                        row.number,
                    )
                )
            slot = (item.gateway_id, item.address)
            if slot in taken_addresses:
                row_problems.append(
                    FieldProblem(
                        "address",
                        f"address {item.address} on gateway {gateway.name!r} is already taken",
                        row.number,
                    )
                )
            taken_addresses.add(slot)
        if item.name in taken_names:
            row_problems.append(
                FieldProblem("name", f"a luminaire named {item.name!r} already exists", row.number)
            )
        taken_names.add(item.name)
        if row_problems:
            problems += row_problems
        else:
            records.append(item.model_dump())
    if problems:
        await session.rollback()
        bad_rows = len({p.row for p in problems})
        raise InvalidInput(
            f"{bad_rows} row(s) are invalid; nothing was imported", problems[:MAX_PROBLEMS]
        )
    if records:
        await session.exec(insert(Luminaire), params=records)
    audit.record(
        session=session,
        actor=actor,
        action="import",
        entity="luminaire",
        entity_id=None,
        extra={
            "format": fmt.value,
            "luminaires": len(records),
            "gateways_created": gateways_created,
            "gateways_updated": gateways_updated,
            "lamp_types_created": lamps_created,
        },
    )
    await session.commit()
    note_change(session, ConfigChange.CONFIGURATION)
    return ImportResult(
        luminaires=len(records),
        gateways_created=gateways_created,
        gateways_updated=gateways_updated,
        lamp_types_created=lamps_created,
    )


async def export_bundle(*, session: AsyncSession) -> dict[str, Any]:
    """The whole inventory as an import bundle (GeoJSON with gateways and lamp types)."""
    gateways = (await session.exec(select(GatewayRow))).all()
    lamps = (await session.exec(select(LampTypeRow))).all()
    gw_name = {g.id: g.name for g in gateways}
    lamp_name = {t.id: t.name for t in lamps}
    gateway_fields = set(GatewayCreate.model_fields)
    lamp_fields = set(LampTypeCreate.model_fields)
    return {
        "type": "FeatureCollection",
        "gateways": [
            {k: v for k, v in g.model_dump(mode="json").items() if k in gateway_fields}
            for g in gateways
        ],
        "lamp_types": [
            {k: v for k, v in t.model_dump(mode="json").items() if k in lamp_fields} for t in lamps
        ],
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [lum.longitude, lum.latitude]},
                "properties": {
                    "name": lum.name,
                    "gateway": gw_name[lum.gateway_id],
                    "address": lum.address,
                    "lamp_type": lamp_name[lum.lamp_type_id],
                    "street": lum.street,
                    "ward": lum.ward,
                    "installed_on": lum.installed_on.isoformat() if lum.installed_on else None,
                },
            }
            for lum in (await session.exec(select(Luminaire).order_by(Luminaire.id))).all()  # type: ignore[arg-type]
        ],
    }

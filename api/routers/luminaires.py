"""Luminaires: the inventory of lanterns, plus bulk import."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from pydantic import BaseModel
from starlette.datastructures import UploadFile

from api.deps import IdPath, IdQuery, PageDep, PrincipalDep, SessionDep, require
from controller.access.auth import Permission, Principal
from controller.core.errors import FieldProblem, InvalidInput
from controller.core.page import Page
from controller.inventory import data as inventory
from controller.inventory.importer import ImportFormat, detect_format, import_inventory
from controller.inventory.schemas import LuminaireCreate, LuminairePublic, LuminaireUpdate

router = APIRouter(prefix="/luminaires", tags=["luminaires"])
Writer = Annotated[Principal, Depends(require(Permission.INVENTORY_WRITE, "change luminaires"))]
MAX_IMPORT_BYTES = 50 * 1024 * 1024


class ImportSummary(BaseModel):
    imported: int
    gateways_created: int
    gateways_updated: int
    lamp_types_created: int


@router.get("", summary="List luminaires, with filters and text search")
async def list_luminaires(
    session: SessionDep,
    _: PrincipalDep,
    page: PageDep,
    ward: str | None = None,
    street: str | None = None,
    gateway_id: IdQuery = None,
    group_id: IdQuery = None,
    q: Annotated[str | None, Query(description="Search name, street and ward")] = None,
) -> Page[LuminairePublic]:
    return await inventory.list_luminaires(
        session=session,
        limit=page.limit,
        offset=page.offset,
        ward=ward,
        street=street,
        gateway_id=gateway_id,
        group_id=group_id,
        q=q,
    )


@router.post(
    "/import",
    summary="Import luminaires from CSV or GeoJSON, all or nothing",
    openapi_extra={
        "requestBody": {
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/geo+json": {"schema": {"type": "object"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                },
            },
            "required": True,
        }
    },
)
async def import_luminaires(
    request: Request,
    session: SessionDep,
    who: Writer,
    fmt: Annotated[
        ImportFormat | None,
        Query(alias="format", description="csv or geojson; guessed from the upload if absent"),
    ] = None,
) -> ImportSummary:
    content_type = request.headers.get("content-type", "")
    filename: str | None = None
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInput("no file", [FieldProblem("file", "send the file in field 'file'")])
        filename = upload.filename
        data = await upload.read(MAX_IMPORT_BYTES + 1)
        content_type = upload.content_type or ""
    else:
        data = await request.body()
    if len(data) > MAX_IMPORT_BYTES:
        raise InvalidInput(
            "file too large", [FieldProblem("file", f"at most {MAX_IMPORT_BYTES} bytes")]
        )
    result = await import_inventory(
        session=session,
        data=data,
        fmt=fmt or detect_format(filename, content_type),
        actor=who,
    )
    return ImportSummary(
        imported=result.luminaires,
        gateways_created=result.gateways_created,
        gateways_updated=result.gateways_updated,
        lamp_types_created=result.lamp_types_created,
    )


@router.get("/{luminaire_id}", summary="Get one luminaire")
async def get_luminaire(
    luminaire_id: IdPath, session: SessionDep, _: PrincipalDep
) -> LuminairePublic:
    return await inventory.get_luminaire(session=session, luminaire_id=luminaire_id)


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a luminaire")
async def create_luminaire(
    data: LuminaireCreate, session: SessionDep, who: Writer
) -> LuminairePublic:
    return await inventory.create_luminaire(session=session, data=data, actor=who)


@router.patch("/{luminaire_id}", summary="Update a luminaire (partial)")
async def update_luminaire(
    luminaire_id: IdPath, data: LuminaireUpdate, session: SessionDep, who: Writer
) -> LuminairePublic:
    return await inventory.update_luminaire(
        session=session, luminaire_id=luminaire_id, data=data, actor=who
    )


@router.delete(
    "/{luminaire_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a luminaire"
)
async def delete_luminaire(luminaire_id: IdPath, session: SessionDep, who: Writer) -> Response:
    await inventory.delete_luminaire(session=session, luminaire_id=luminaire_id, actor=who)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

"""NGSI-LD for the IOC: FIWARE Streetlighting entities under ``/ngsi-ld/v1``.

Read-only subset of the NGSI-LD API (ETSI GS CIM 009): ``GET /entities?type=`` and
``GET /entities/{id}``, normalized or ``options=keyValues``, ``application/ld+json`` (the
``@context`` in the body) or ``application/json`` (the context in a ``Link`` header). Errors are
NGSI-LD problem details (``type``, ``title``, ``detail``), not this API's usual error shape, so
every error raised while serving these routes, authentication included, is translated here.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel

from api.deps import MAX_ID, PrincipalDep, SessionDep, SettingsDep
from api.errors import NGSI_LD_ERRORS, json_error_doc, validation_fields
from controller.core.errors import (
    FieldProblem,
    Forbidden,
    InvalidInput,
    LightingError,
    NotAuthenticated,
    NotFound,
)
from controller.export import ngsi
from controller.loop.runtime import Controller

ERRORS = NGSI_LD_ERRORS
LD_JSON = "application/ld+json"
TYPE_IRI = "https://smartdatamodels.org/dataModel.Streetlighting/"
"""What the Streetlighting context expands the type names to; accepted as well."""
LINK = (
    f'<{ngsi.SMART_DATA_MODELS_CONTEXT}>; rel="http://www.w3.org/ns/json-ld#context"; '
    'type="application/ld+json"'
)


class NotAcceptable(LightingError):
    """The client accepts neither application/ld+json nor application/json."""


class LdJsonResponse(JSONResponse):
    media_type = LD_JSON


def problem(
    status: int, kind: str, title: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An NGSI-LD ProblemDetails response; ``kind`` is an NGSI-LD error type or a URI."""
    body = {"type": kind if ":" in kind else ERRORS + kind, "title": title, "detail": detail}
    return JSONResponse(body, status_code=status, headers=headers)


class NgsiRoute(APIRoute):
    """Serves a route and turns every expected failure into NGSI-LD problem details."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                fields = validation_fields(exc.errors())
                detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
                return problem(400, "BadRequestData", "Invalid request", detail)
            except InvalidInput as exc:
                detail = "; ".join(f"{p.field}: {p.message}" for p in exc.errors) or str(exc)
                return problem(400, "BadRequestData", "Invalid request", detail)
            except NotFound as exc:
                return problem(404, "ResourceNotFound", "Entity not found", str(exc))
            except NotAuthenticated as exc:
                headers = {"WWW-Authenticate": "Bearer"}
                return problem(401, "about:blank", "Unauthorized", str(exc), headers)
            except Forbidden as exc:
                return problem(403, "about:blank", "Forbidden", str(exc))
            except NotAcceptable as exc:
                return problem(406, "about:blank", "Not Acceptable", str(exc))

        return guarded


class ProblemDetails(BaseModel):
    """An NGSI-LD error (ETSI GS CIM 009, 5.5.3): every error of these routes has this shape."""

    type: str
    title: str
    detail: str


def _problem_doc(description: str) -> dict[str, Any]:
    # errors are application/json, unlike the routes' application/ld+json: given as
    # ``content``, since a ``model`` would be documented under the route's media type
    schema = ProblemDetails.model_json_schema()
    return {"description": description, "content": {"application/json": {"schema": schema}}}


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _problem_doc("Invalid query (BadRequestData): `detail` names the parameter"),
    401: _problem_doc("No key, or an unknown or revoked key"),
    403: _problem_doc("The key's role may not read entities"),
    404: _problem_doc("No such entity (ResourceNotFound)"),
    406: _problem_doc("The client accepts neither application/ld+json nor application/json"),
    429: json_error_doc("Too many failed authentications from this address"),
}

router = APIRouter(tags=["ngsi-ld"], route_class=NgsiRoute, responses=PROBLEM_RESPONSES)


def _wants_ld(request: Request) -> bool:
    """True for application/ld+json (the default), False for application/json."""
    accept = request.headers.get("accept", "")
    types = {part.split(";")[0].strip().lower() for part in accept.split(",") if part.strip()}
    if not types or types & {LD_JSON, "*/*", "application/*"}:
        return True
    if "application/json" in types:
        return False
    raise NotAcceptable(f"cannot answer {accept!r}: use {LD_JSON} or application/json")


def _key_values(options: str | None) -> bool:
    chosen = {o.strip() for o in (options or "").split(",") if o.strip()}
    unknown = chosen - {"keyValues", "normalized"}
    if unknown or chosen == {"keyValues", "normalized"}:
        raise InvalidInput(
            "bad options",
            [FieldProblem("options", "one of keyValues or normalized")],
        )
    return "keyValues" in chosen


def _entity_type(value: str | None) -> ngsi.EntityType:
    if not value:
        raise InvalidInput(
            "type is required", [FieldProblem("type", "give the entity type to list")]
        )
    name = value.removeprefix(TYPE_IRI)
    try:
        return ngsi.EntityType(name)
    except ValueError:
        known = ", ".join(t.value for t in ngsi.EntityType)
        raise InvalidInput(
            "unknown type", [FieldProblem("type", f"{value!r} is not one of: {known}")]
        ) from None


def _live(request: Request) -> ngsi.LiveLookup | None:
    controller: Controller | None = getattr(request.app.state, "controller", None)
    if controller is None or controller.book is None:
        return None
    return controller.luminaire_state


def _render(entities: list[ngsi.Entity], *, ld: bool, key_values: bool) -> list[ngsi.Entity]:
    out = [ngsi.to_key_values(e) if key_values else e for e in entities]
    return [ngsi.with_context(e) for e in out] if ld else out


def _respond(content: Any, ld: bool, headers: dict[str, str] | None = None) -> Response:
    headers = dict(headers or {})
    if ld:
        return LdJsonResponse(content, headers=headers)
    headers["Link"] = LINK
    return JSONResponse(content, headers=headers)


@router.get(
    "/entities",
    summary="NGSI-LD entities of one type (Streetlight, StreetlightGroup, StreetlightModel, "
    "StreetlightControlCabinet)",
    response_class=LdJsonResponse,
)
async def query_entities(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _: PrincipalDep,
    type_: Annotated[str | None, Query(alias="type", description="Entity type")] = None,
    limit: Annotated[int, Query(ge=0, description="Page size (0 with count=true)")] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    count: Annotated[bool, Query(description="Total in the NGSILD-Results-Count header")] = False,
    options: Annotated[str | None, Query(description="keyValues or normalized")] = None,
) -> Response:
    ld = _wants_ld(request)
    key_values = _key_values(options)
    entity_type = _entity_type(type_)
    if limit > settings.api.page_size_max:
        raise InvalidInput(
            "page too large",
            [FieldProblem("limit", f"must be at most {settings.api.page_size_max}")],
        )
    entities, total = await ngsi.list_entities(
        session=session,
        site=settings.site,
        entity_type=entity_type,
        limit=limit,
        offset=offset,
        live=_live(request),
    )
    headers = {"NGSILD-Results-Count": str(total)} if count else None
    return _respond(_render(entities, ld=ld, key_values=key_values), ld, headers)


@router.get(
    "/entities/{entity_id:path}",
    summary="One NGSI-LD entity by its URN",
    response_class=LdJsonResponse,
)
async def retrieve_entity(
    entity_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _: PrincipalDep,
    options: Annotated[str | None, Query(description="keyValues or normalized")] = None,
) -> Response:
    ld = _wants_ld(request)
    key_values = _key_values(options)
    entity = await ngsi.get_entity(
        session=session, site=settings.site, entity=entity_id, live=_live(request)
    )
    return _respond(_render([entity], ld=ld, key_values=key_values)[0], ld)

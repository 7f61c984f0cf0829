"""One place that maps domain errors to HTTP responses.

Every error body has the same shape::

    {"error": "validation_error", "message": "...", "fields": [{"field": "steps.2.level",
     "message": "...", "row": 7}]}

``fields`` is present when specific fields (or import rows) are at fault.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from controller.core.errors import (
    CommandRejected,
    ConfigError,
    Conflict,
    FieldProblem,
    Forbidden,
    GatewayUnavailable,
    InvalidInput,
    LightingError,
    NotAuthenticated,
    NotFound,
    ProtocolViolation,
)

log = logging.getLogger(__name__)


class FieldError(BaseModel):
    field: str
    message: str
    row: int | None = None


class ErrorBody(BaseModel):
    """The one shape of every error answer."""

    error: str
    message: str
    fields: list[FieldError] | None = None


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No key, or an unknown or revoked key"},
    403: {"model": ErrorBody, "description": "The key's role may not do this"},
    404: {"model": ErrorBody, "description": "No such entity"},
    409: {"model": ErrorBody, "description": "Conflicts with existing data"},
    422: {"model": ErrorBody, "description": "Invalid input; `fields` names each problem"},
    429: {"model": ErrorBody, "description": "Too many failed authentications from this address"},
}
"""Documented on every /api/v1 operation (OpenAPI), so clients see the real error shape."""


def json_error_doc(description: str) -> dict[str, Any]:
    """An error answer documented as ``application/json`` :class:`ErrorBody` on a route whose
    own media type is another (text/plain, application/ld+json)."""
    schema = {"$ref": "#/components/schemas/ErrorBody"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


NGSI_LD_PREFIX = "/ngsi-ld/"
NGSI_LD_ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"

_STATUS: list[tuple[type[LightingError], int, str]] = [
    (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
    (InvalidInput, 422, "validation_error"),
    (NotAuthenticated, 401, "not_authenticated"),
    (Forbidden, 403, "forbidden"),
    (GatewayUnavailable, 503, "gateway_unavailable"),
    (CommandRejected, 409, "command_rejected"),
    (ProtocolViolation, 502, "protocol_violation"),
    (ConfigError, 500, "config_error"),
]


def error_body(code: str, message: str, fields: list[dict[str, Any]] | None = None) -> Any:
    body: dict[str, Any] = {"error": code, "message": message}
    if fields:
        body["fields"] = fields
    return body


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    elif parts and parts[0] in {"query", "path", "header"}:
        parts = [*parts[1:], f"({parts[0]})"]
        return " ".join([".".join(parts[:-1]), parts[-1]]).strip()
    return ".".join(parts) or "body"


def validation_fields(errors: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for err in errors:
        msg = str(err.get("msg", "invalid"))
        if err.get("type") == "extra_forbidden":
            msg = "unknown field"
        out.append({"field": _field_name(err.get("loc", ())), "message": msg})
    return out


def install_error_handlers(app: FastAPI) -> None:
    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        fields = validation_fields(exc.errors())
        summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5])
        return JSONResponse(
            error_body("validation_error", f"invalid request: {summary}", fields), status_code=422
        )

    async def on_domain(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, LightingError)
        status, code = next(
            ((st, cd) for kind, st, cd in _STATUS if isinstance(exc, kind)), (400, "error")
        )
        fields: list[dict[str, Any]] | None = None
        if isinstance(exc, InvalidInput):
            fields = [p.as_dict() for p in exc.errors]
        elif isinstance(exc, Conflict) and exc.field:
            fields = [FieldProblem(exc.field, str(exc)).as_dict()]
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if status >= 500:
            log.warning("request failed: %s", exc)
        return JSONResponse(error_body(code, str(exc), fields), status_code=status, headers=headers)

    async def on_integrity(_: Request, exc: Exception) -> JSONResponse:
        log.info("integrity error turned into 409: %s", exc)
        return JSONResponse(
            error_body("conflict", "the change conflicts with existing data"), status_code=409
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404 and request.url.path.startswith(NGSI_LD_PREFIX):
            # an NGSI-LD client gets its own error shape, also for a path no route matches
            body = {"type": NGSI_LD_ERRORS + "ResourceNotFound", "title": "Not found",
                    "detail": f"no resource at {request.url.path}"}  # fmt: skip
            return JSONResponse(body, status_code=404)
        if exc.status_code == 400:  # FastAPI could not read the body (not UTF-8 JSON)
            fields = [{"field": "body", "message": str(exc.detail)}]
            return JSONResponse(
                error_body("validation_error", f"invalid request: body: {exc.detail}", fields),
                status_code=422,
            )
        code = {404: "not_found", 405: "method_not_allowed", 401: "not_authenticated"}.get(
            exc.status_code, "http_error"
        )
        return JSONResponse(
            error_body(code, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(LightingError, on_domain)
    app.add_exception_handler(IntegrityError, on_integrity)
    app.add_exception_handler(StarletteHTTPException, on_http)

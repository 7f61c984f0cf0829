"""What API keys and the audit trail look like at the edges: roles and public models."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict


class Role(StrEnum):
    """What an API key may do (see docs/api.md for the matrix)."""

    ADMIN = "admin"
    OPERATOR = "operator"
    MAINTENANCE = "maintenance"
    VIEWER = "viewer"


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ApiKeyPublic(_Out):
    id: int
    name: str
    role: Role
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class AuditPublic(_Out):
    id: int
    at: datetime
    actor: str
    role: str
    action: str
    entity: str
    entity_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None

"""API keys and roles.

Keys are random 256-bit tokens (``sl_`` + urlsafe base64); only their SHA-256
is stored, so a leaked database does not leak usable keys. A slow password hash
buys nothing for tokens of this entropy and would cost every request.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from controller.access.schemas import ApiKeyPublic, Role
from controller.core.errors import Conflict, Forbidden, NotAuthenticated, NotFound
from controller.store.tables import ApiKey

KEY_PREFIX = "sl_"
MIN_KEY_LENGTH = 16


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's name and role."""

    name: str
    role: Role


class Permission:
    """Which roles may do what (reads need any valid key)."""

    INVENTORY_WRITE = frozenset({Role.ADMIN, Role.OPERATOR})
    SCHEDULE_WRITE = frozenset({Role.ADMIN, Role.OPERATOR})
    OVERRIDE_WRITE = frozenset({Role.ADMIN, Role.OPERATOR})
    FAULT_WRITE = frozenset({Role.ADMIN, Role.MAINTENANCE})
    WORK_ORDER_WRITE = frozenset({Role.ADMIN, Role.OPERATOR, Role.MAINTENANCE})
    AUDIT_READ = frozenset({Role.ADMIN})
    KEYS_ADMIN = frozenset({Role.ADMIN})


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_role(principal: Principal, allowed: frozenset[Role], action: str) -> None:
    """Raise :class:`Forbidden` unless the principal's role is in ``allowed``."""
    if principal.role not in allowed:
        roles = ", ".join(sorted(r.value for r in allowed))
        raise Forbidden(f"role {principal.role.value!r} may not {action} (needs one of: {roles})")


async def authenticate(*, session: AsyncSession, key: str | None) -> Principal:
    """Resolve a presented key to its principal, or raise :class:`NotAuthenticated`."""
    if not key:
        raise NotAuthenticated("missing API key: send 'Authorization: Bearer <key>'")
    row = (await session.exec(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))).one_or_none()
    if row is None or row.revoked_at is not None:
        raise NotAuthenticated("invalid or revoked API key")
    return Principal(name=row.name, role=Role(row.role))


async def create_key(
    *, session: AsyncSession, name: str, role: Role, key: str | None = None
) -> tuple[str, ApiKeyPublic]:
    """Store a new key (generated unless given) and return it in clear, once."""
    name = name.strip()
    if not name:
        raise ValueError("a key needs a name")
    if key is not None and len(key) < MIN_KEY_LENGTH:
        raise ValueError(f"a key must be at least {MIN_KEY_LENGTH} characters")
    clear = key or generate_key()
    existing = (await session.exec(select(ApiKey).where(ApiKey.name == name))).one_or_none()
    if existing is not None:
        raise Conflict(f"an API key named {name!r} already exists", field="name")
    row = ApiKey(name=name, role=role.value, prefix=clear[:10], key_hash=hash_key(clear))
    session.add(row)
    await session.commit()
    await session.refresh(row)
    return clear, ApiKeyPublic.model_validate(row)


async def ensure_key(*, session: AsyncSession, name: str, role: Role, key: str) -> ApiKeyPublic:
    """Make ``key`` valid under ``name`` (idempotent; used for the demo's admin key)."""
    digest = hash_key(key)
    row = (await session.exec(select(ApiKey).where(ApiKey.key_hash == digest))).one_or_none()
    if row is not None:
        if row.revoked_at is not None or row.role != role.value:
            row.revoked_at = None
            row.role = role.value
            session.add(row)
            await session.commit()
        return ApiKeyPublic.model_validate(row)
    taken = (await session.exec(select(ApiKey).where(ApiKey.name == name))).one_or_none()
    if taken is not None:
        name = f"{name}-{digest[:6]}"
    _, public = await create_key(session=session, name=name, role=role, key=key)
    return public


async def list_keys(*, session: AsyncSession) -> list[ApiKeyPublic]:
    rows = (await session.exec(select(ApiKey).order_by(col(ApiKey.id)))).all()
    return [ApiKeyPublic.model_validate(r) for r in rows]


async def revoke_key(*, session: AsyncSession, name_or_id: str) -> ApiKeyPublic:
    """Revoke by name or numeric id; revoking twice is harmless."""
    stmt = select(ApiKey).where(ApiKey.name == name_or_id)
    if name_or_id.isdigit():
        stmt = select(ApiKey).where(
            or_(col(ApiKey.name) == name_or_id, col(ApiKey.id) == int(name_or_id))
        )
    row = (await session.exec(stmt)).first()
    if row is None:
        raise NotFound("api key", name_or_id)
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        session.add(row)
        await session.commit()
    return ApiKeyPublic.model_validate(row)

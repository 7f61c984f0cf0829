"""Data models at the edges: what clients send (``*Create``, ``*Update``) and get (``*Public``).

These validate; the table models in :mod:`controller.store.tables` do not.
Cross-field rules (a Modbus gateway needs a host, port and unit ids) live here
too, so the REST API, the bulk import and the CLI refuse the same things.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Self, TypeAlias, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from controller.core.values import MAX_LUMINAIRES_PER_UNIT, ProtocolKind
from protocols.mqtt_topics import MAX_GATEWAY_ID_LEN, check_gateway_id

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]
MAX_DB_ID = 2**31 - 1
DbId = Annotated[int, Field(ge=1, le=MAX_DB_ID)]
"""A reference to a database row: a positive 32-bit integer (larger ones are refused)."""


MqttId = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_GATEWAY_ID_LEN),
    AfterValidator(check_gateway_id),
]
"""A gateway's id in the MQTT topic tree, one topic level: 1 to 128 characters, none of
``/``, ``+``, ``#`` or control characters (docs/protocol/mqtt.md). EUI-64, MAC and LoRaWAN
ids (``00-80-E1-15-00-0A-12-34``, ``b8:27:eb:12:34:56``, ``eui-0080e1...``) all fit."""

F = TypeVar("F")


def _refuse_null(value: object) -> object:
    if value is None:
        raise ValueError("may not be null; leave the field out to keep its value")
    return value


if TYPE_CHECKING:
    Omittable: TypeAlias = F | None
else:
    Omittable = Annotated[F, BeforeValidator(_refuse_null)]
"""A field of a partial update that may be left out but may not be null (its value is
required): ``None`` only means "not sent". The published schema does not allow null."""


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --- gateways -----------------------------------------------------------------------------


class GatewayFields(_In):
    protocol: ProtocolKind
    host: str | None = Field(default=None, max_length=255)
    port: int | None = Field(default=None, ge=1, le=65535)
    unit_ids: list[Annotated[int, Field(ge=1, le=247)]] = Field(default_factory=list)
    mqtt_id: MqttId | None = None
    ward: Name | None = None
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    enabled: bool = True

    @model_validator(mode="after")
    def _connection(self) -> Self:
        check_gateway_connection(self.protocol, self.host, self.port, self.unit_ids, self.mqtt_id)
        return self


def check_gateway_connection(
    protocol: ProtocolKind,
    host: str | None,
    port: int | None,
    unit_ids: list[int],
    mqtt_id: str | None,
) -> None:
    """Raise ValueError when the connection parameters do not fit the protocol."""
    if protocol is ProtocolKind.MODBUS:
        missing = [n for n, v in (("host", host), ("port", port)) if v in (None, "")]
        if missing:
            raise ValueError(f"a modbus gateway needs {' and '.join(missing)}")
        if not unit_ids:
            raise ValueError("a modbus gateway needs at least one unit id in unit_ids")
        if len(set(unit_ids)) != len(unit_ids):
            raise ValueError("unit_ids must not repeat")
        if mqtt_id:
            raise ValueError("mqtt_id is only for mqtt gateways")
    else:
        if not mqtt_id:
            raise ValueError("an mqtt gateway needs mqtt_id (its topic id)")
        if unit_ids:
            raise ValueError("unit_ids are only for modbus gateways")


class GatewayCreate(GatewayFields):
    name: Name


class GatewayUpdate(_In):
    """Partial update; the merged result is validated as a whole."""

    name: Omittable[Name] = None
    protocol: Omittable[ProtocolKind] = None
    host: str | None = Field(default=None, max_length=255)
    port: int | None = Field(default=None, ge=1, le=65535)
    unit_ids: Omittable[list[Annotated[int, Field(ge=1, le=247)]]] = None
    mqtt_id: MqttId | None = None
    ward: Name | None = None
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    enabled: Omittable[bool] = None


class GatewayPublic(_Out):
    id: int
    name: str
    protocol: ProtocolKind
    host: str | None
    port: int | None
    unit_ids: list[int]
    mqtt_id: str | None
    ward: str | None
    latitude: float | None
    longitude: float | None
    enabled: bool
    capacity: int = Field(description="How many luminaire addresses this gateway can serve")
    created_at: datetime
    updated_at: datetime


def gateway_capacity(protocol: str, unit_ids: list[int]) -> int:
    """Addresses a gateway can serve: 64 per Modbus unit id; MQTT is not bounded here."""
    if protocol == ProtocolKind.MODBUS:
        return MAX_LUMINAIRES_PER_UNIT * len(unit_ids)
    return 65536


# --- lamp types ---------------------------------------------------------------------------


class LampTypeCreate(_In):
    name: Name
    rated_power_w: float = Field(100.0, gt=0, le=2000, description="Power at 100 %, W")
    power_tolerance_pct: float = Field(15.0, gt=0, le=100)
    min_dim_level_pct: int = Field(10, ge=0, le=100)
    nominal_voltage_v: float = Field(220.0, gt=0, le=1000)
    description: str | None = Field(default=None, max_length=500)


class LampTypeUpdate(_In):
    name: Omittable[Name] = None
    rated_power_w: Omittable[Annotated[float, Field(gt=0, le=2000)]] = None
    power_tolerance_pct: Omittable[Annotated[float, Field(gt=0, le=100)]] = None
    min_dim_level_pct: Omittable[Annotated[int, Field(ge=0, le=100)]] = None
    nominal_voltage_v: Omittable[Annotated[float, Field(gt=0, le=1000)]] = None
    description: str | None = Field(default=None, max_length=500)


class LampTypePublic(_Out):
    id: int
    name: str
    rated_power_w: float
    power_tolerance_pct: float
    min_dim_level_pct: int
    nominal_voltage_v: float
    description: str | None
    created_at: datetime
    updated_at: datetime


# --- luminaires ---------------------------------------------------------------------------


class LuminaireCreate(_In):
    name: Name = Field(description="Pole number or name, unique")
    gateway_id: int = Field(ge=1, le=MAX_DB_ID)
    address: int = Field(ge=0, le=65535, description="Index on the gateway (0-based)")
    lamp_type_id: int = Field(ge=1, le=MAX_DB_ID)
    latitude: Latitude
    longitude: Longitude
    street: Text
    ward: Name
    installed_on: date | None = None


class LuminaireUpdate(_In):
    name: Omittable[Name] = None
    gateway_id: Omittable[DbId] = None
    address: Omittable[Annotated[int, Field(ge=0, le=65535)]] = None
    lamp_type_id: Omittable[DbId] = None
    latitude: Omittable[Latitude] = None
    longitude: Omittable[Longitude] = None
    street: Omittable[Text] = None
    ward: Omittable[Name] = None
    installed_on: date | None = None


class LuminairePublic(_Out):
    id: int
    name: str
    gateway_id: int
    address: int
    lamp_type_id: int
    latitude: float
    longitude: float
    street: str
    ward: str
    installed_on: date | None
    created_at: datetime
    updated_at: datetime


# --- groups -------------------------------------------------------------------------------


class GroupKind(StrEnum):
    """How a group's members are chosen."""

    EXPLICIT = "explicit"
    WARD = "ward"
    STREET = "street"
    GATEWAY = "gateway"


class GroupCreate(_In):
    name: Name
    description: str | None = Field(default=None, max_length=500)
    kind: GroupKind = GroupKind.EXPLICIT
    selector: str | None = Field(
        default=None,
        max_length=200,
        description="The ward, street or gateway id for rule-based groups",
    )
    members: list[DbId] = Field(default_factory=list, description="Luminaire ids (explicit)")
    priority: int = Field(0, ge=-1000, le=1000, description="Higher wins when groups overlap")
    calendar_id: int | None = Field(
        default=None, ge=1, le=MAX_DB_ID, description="The calendar this group's luminaires follow"
    )

    @model_validator(mode="after")
    def _selector(self) -> Self:
        check_group_rule(self.kind, self.selector, self.members)
        return self


def check_group_rule(kind: GroupKind, selector: str | None, members: list[int]) -> None:
    """Raise ValueError when selector/members do not fit the group kind."""
    if kind is GroupKind.EXPLICIT:
        if selector:
            raise ValueError("an explicit group takes members, not a selector")
        return
    if not selector:
        raise ValueError(f"a {kind.value} group needs a selector (the {kind.value} to follow)")
    if members:
        raise ValueError(f"a {kind.value} group's members follow the inventory; do not list them")
    if kind is GroupKind.GATEWAY and not selector.isdigit():
        raise ValueError("a gateway group's selector is the gateway id")


class GroupUpdate(_In):
    name: Omittable[Name] = None
    description: str | None = Field(default=None, max_length=500)
    kind: Omittable[GroupKind] = None
    selector: str | None = Field(default=None, max_length=200)
    members: Omittable[list[DbId]] = None
    priority: Omittable[Annotated[int, Field(ge=-1000, le=1000)]] = None
    calendar_id: int | None = Field(default=None, ge=1, le=MAX_DB_ID)


class GroupPublic(_Out):
    id: int
    name: str
    description: str | None
    kind: GroupKind
    selector: str | None
    priority: int
    calendar_id: int | None
    member_count: int
    created_at: datetime
    updated_at: datetime

"""The one settings object, built once in ``main()`` and passed down.

Sources, highest priority first: explicit arguments, environment variables
(prefix ``STREETLIGHT_``, nested with ``__``, e.g. ``STREETLIGHT_DATABASE__URL``),
then an optional TOML file (``--config``). Unknown keys in the file are refused,
so a typo never silently falls back to a default.
"""

from __future__ import annotations

import contextvars
import socket
from pathlib import Path
from typing import Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from controller.core.errors import ConfigError
from controller.core.fault_types import FaultType
from schedules.sun import Site

_CONFIG_FILE: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "streetlight_config_file", default=None
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteSettings(_Section):
    """Where the lights are: drives sun events and local time at the edges."""

    name: str = "Đông Hà"
    latitude: float = Field(16.8163, ge=-90, le=90)
    longitude: float = Field(107.1003, ge=-180, le=180)
    elevation_m: float = Field(
        10.0, ge=0, le=9000, description="Observer height above the terrain, m"
    )
    timezone: str = "Asia/Ho_Chi_Minh"
    horizon_dip: bool = Field(
        False,
        description=(
            "Lower the sunrise/sunset horizon by the dip seen from elevation_m (off: the "
            "standard definition, as almanacs publish it)"
        ),
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def to_site(self) -> Site:
        """The pure schedules' view of the site."""
        return Site(
            self.name,
            self.latitude,
            self.longitude,
            self.elevation_m,
            self.timezone,
            horizon_dip=self.horizon_dip,
        )


class ScheduleSettings(_Section):
    """What luminaires without a calendar of their own follow."""

    default_calendar: str = Field(
        "Đông Hà default",
        description="Calendar (by name) for luminaires in no group with a calendar",
    )
    default_level: int = Field(0, ge=0, le=100, description="Level when no program applies")


class DatabaseSettings(_Section):
    """``url`` empty means a SQLite file ``streetlight.db`` under the data directory."""

    url: str = ""
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        if value and not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "must start with sqlite+aiosqlite:// or postgresql+asyncpg:// (async drivers only)"
            )
        return value


class MqttSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    tls: bool = False
    ca_file: Path | None = None
    prefix: str = Field("streetlight", min_length=1)
    client_id: str = Field("streetlight-controller", min_length=1)
    protocol: Literal["3.1.1", "5"] = "5"
    keepalive_s: int = Field(30, ge=5, le=3600)

    @field_validator("prefix")
    @classmethod
    def _topic_safe(cls, value: str) -> str:
        if any(ch in value for ch in "+#") or value.startswith("/") or value.endswith("/"):
            raise ValueError("must not contain + or # nor start or end with /")
        return value


class ModbusSettings(_Section):
    timeout_s: float = Field(1.0, gt=0, le=30)
    retries: int = Field(1, ge=0, le=5)
    poll_interval_s: float = Field(10.0, gt=0, le=3600)
    reconnect_max_s: float = Field(30.0, gt=0, le=600)


class ControllerSettings(_Section):
    """The reconcile loops and telemetry ingest (times in clock seconds)."""

    resend_interval_s: float = Field(
        300.0, gt=0, description="Send every target again this often, to heal missed commands"
    )
    mqtt_read_interval_s: float = Field(
        10.0, gt=0, description="How often an MQTT gateway's latest state is taken in"
    )
    telemetry_buffer: int = Field(200_000, ge=1000, description="Readings held for the database")
    store_raw_readings: bool = True
    reading_retention_days: int = Field(30, ge=1, description="Raw readings older are deleted")
    mqtt_ack_timeout_s: float = Field(5.0, gt=0, le=120)
    mqtt_stale_after_s: float = Field(
        120.0,
        gt=0,
        description="An MQTT gateway's state older than this counts as silence; make it a few "
        "times the gateways' own state interval",
    )


class FaultSettings(_Section):
    """Site-wide fault thresholds and debounce (per lamp type: rated power and tolerance)."""

    voltage_high_pct: float = Field(10.0, gt=0, le=50, description="Above nominal x (1 + %)")
    voltage_low_pct: float = Field(15.0, gt=0, lt=100, description="Below nominal x (1 - %)")
    pf_min: float = Field(0.85, ge=0, le=1, description="Minimum power factor at 100 %")
    pf_check_min_level_pct: int = Field(50, ge=0, le=100)
    warmup_s: float = Field(60.0, ge=0, description="No power checks this long after switch-on")
    settle_grace_s: float = Field(10.0, ge=0, description="No checks until a fade ends + this")
    cycling_window_s: float = Field(600.0, gt=0)
    cycling_min_flips: int = Field(6, ge=2)
    over_temperature_c: float = Field(85.0, gt=0)
    raise_count: int = Field(3, ge=1, description="Observations before a fault opens")
    raise_s: float = Field(60.0, ge=0, description="...and seconds the condition held")
    clear_count: int = Field(3, ge=1, description="Observations without it before it resolves")
    clear_s: float = Field(120.0, ge=0)
    severities: dict[str, Literal["warning", "critical"]] = Field(
        default_factory=dict, description="Per fault type, e.g. powerFactorTooLow = critical"
    )

    @field_validator("severities")
    @classmethod
    def _known_types(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - {t.value for t in FaultType})
        if unknown:
            raise ValueError(f"unknown fault type(s) {unknown}")
        return value


class WebhookSettings(_Section):
    """One webhook receiver and which alerts it wants (empty list = all)."""

    name: str = Field(min_length=1, max_length=100)
    url: str = Field(pattern=r"^https?://", description="http:// or https:// URL")
    secret: SecretStr = Field(description="Shared secret for the HMAC-SHA256 signature")
    wards: list[str] = Field(default_factory=list)
    severities: list[Literal["warning", "critical"]] = Field(default_factory=list)
    types: list[str] = Field(default_factory=list)


class EmailRule(_Section):
    """Who gets which alerts by email: one message per alert, or a periodic digest."""

    name: str = Field(min_length=1, max_length=100)
    to: list[str] = Field(min_length=1, description="Recipient addresses")
    wards: list[str] = Field(default_factory=list)
    severities: list[Literal["warning", "critical"]] = Field(default_factory=list)
    types: list[str] = Field(default_factory=list)
    mode: Literal["each", "digest"] = "each"
    digest_interval_min: int = Field(60, ge=1, le=1440)

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        bad = [a for a in value if "@" not in a or a.startswith("@") or a.endswith("@")]
        if bad:
            raise ValueError(f"not e-mail addresses: {bad}")
        return value


class EmailSettings(_Section):
    """SMTP server for alert e-mails (optional: no host, no e-mail)."""

    host: str | None = None
    port: int = Field(587, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = True
    tls: bool = False
    sender: str = "streetlight@localhost"
    rules: list[EmailRule] = Field(default_factory=list)


class AlertSettings(_Section):
    """Where fault alerts go."""

    language: Literal["vi", "en"] = "vi"
    mqtt: bool = Field(True, description="Publish alerts on {prefix}/alerts/{ward}/{severity}")
    webhooks: list[WebhookSettings] = Field(default_factory=list)
    email: EmailSettings = EmailSettings()
    max_attempts: int = Field(10, ge=1, le=100, description="Webhook delivery attempts")
    retry_base_s: float = Field(10.0, gt=0, description="First retry delay; doubles each time")


class IocSettings(_Section):
    """Push to the city's IOC: NGSI-LD upserts to a context broker, and/or MQTT (docs/ioc.md,
    Push). Off unless ``ngsi_ld_url`` is set or ``mqtt`` is on."""

    ngsi_ld_url: str | None = Field(
        None,
        pattern=r"^https?://[^\s]+$",
        description="Context broker base URL (e.g. http://orion:1026); the publisher posts to "
        "{url}/ngsi-ld/v1/entityOperations/upsert. Unset: no NGSI-LD push",
    )
    tenant: str | None = Field(
        None, min_length=1, max_length=100, description="NGSILD-Tenant header, when the broker "
        "is multi-tenant"
    )  # fmt: skip
    token: SecretStr | None = Field(None, description="Bearer token for the broker")
    context_url: str = Field(
        "https://raw.githubusercontent.com/smart-data-models/dataModel.Streetlighting/master/"
        "context.jsonld",
        pattern=r"^https?://[^\s]+$",
        description="The @context of the entities (the Streetlighting data model's)",
    )
    context_in_body: bool = Field(
        True,
        description="true: application/ld+json with @context in each entity; false: "
        "application/json with the context in a Link header",
    )
    debounce_s: float = Field(
        15.0,
        ge=0.05,
        le=3600,
        description="Changes are gathered this long, then pushed: an entity is sent at most "
        "once per period, at most about this long after it changed",
    )
    full_refresh_s: float = Field(
        3600.0, ge=1, le=86_400 * 7, description="Every entity is pushed again this often"
    )
    batch_size: int = Field(100, ge=1, le=100, description="Entities per upsert request")
    timeout_s: float = Field(10.0, gt=0, le=120, description="HTTP timeout of one request")
    retry_base_s: float = Field(
        5.0, gt=0, le=600, description="First retry delay after a failure; doubles each time"
    )
    retry_max_s: float = Field(300.0, gt=0, le=3600, description="Longest retry delay")
    mqtt: bool = Field(
        False,
        description="Also publish every entity, retained, QoS 1, on "
        "{mqtt.prefix}/ngsi/{type}/{id} (normalized NGSI-LD, no @context)",
    )

    @property
    def enabled(self) -> bool:
        return self.ngsi_ld_url is not None or self.mqtt

    @model_validator(mode="after")
    def _retry_bounds(self) -> Self:
        if self.retry_base_s > self.retry_max_s:
            raise ValueError("retry_base_s must be at most retry_max_s")
        return self


class ClusterSettings(_Section):
    """Several controller processes on one PostgreSQL: gateways are shared out by leases."""

    enabled: bool = Field(False, description="Needs PostgreSQL; one instance otherwise")
    instance_id: str = Field(
        default_factory=socket.gethostname,
        min_length=1,
        max_length=100,
        description="Stable per instance: a restarted instance takes its leases back at once",
    )
    lease_ttl_s: float = Field(15.0, ge=3, le=300)
    renew_interval_s: float = Field(5.0, gt=0, le=100)

    @model_validator(mode="after")
    def _renew_before_expiry(self) -> Self:
        if self.renew_interval_s * 2 > self.lease_ttl_s:
            raise ValueError("renew_interval_s must be at most half of lease_ttl_s")
        return self


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    cors_origins: list[str] = Field(default_factory=list)
    page_size_max: int = Field(1000, ge=10, le=100_000)


class EnergySettings(_Section):
    """Factors for the energy reports (docs/ioc.md); both change by decree, so both are settings."""

    co2_t_per_mwh: float = Field(
        0.6592,
        ge=0,
        le=2,
        description="Grid emission factor, tCO2/MWh (= kg CO2/kWh). Default: Vietnam's grid "
        "factor for 2023, 0.6592, published by the Department of Climate Change (MONRE)",
    )
    tariff_vnd_per_kwh: float = Field(
        2226.0,
        ge=0,
        le=100_000,
        description="Energy price, VND/kWh, VAT excluded. Default: EVN retail tariff for public "
        "lighting and public administrative units below 6 kV (Chiếu sáng công cộng; đơn vị hành "
        "chính sự nghiệp, cấp điện áp dưới 6 kV), 2,226 VND/kWh from 10 May 2025 "
        "(Decision 1279/QĐ-BCT of 9 May 2025)",
    )
    coverage_max_gap_s: float = Field(
        120.0,
        gt=0,
        le=3600,
        description="Two consecutive readings of a luminaire at most this far apart cover the "
        "time between them; only covered dark time counts in the baseline (docs/ioc.md, "
        "Coverage). At least the Modbus poll and MQTT read intervals; the default is the "
        "default controller.mqtt_stale_after_s",
    )


class SecuritySettings(_Section):
    """What ``streetlight serve`` refuses in production, and the API's protections.

    Every ``allow_*`` switch lifts one refusal of the production checks
    (``controller/app/startup_checks.py``, docs/operations.md): turn one on only with a reason
    written next to it in the config file.
    """

    allow_anonymous_broker: bool = Field(
        False, description="Allow an MQTT broker without username and password"
    )
    allow_plaintext_broker: bool = Field(
        False, description="Allow MQTT without TLS to a broker that is not on loopback"
    )
    allow_insecure_database: bool = Field(
        False, description="Allow PostgreSQL without ssl=require to a host that is not local"
    )
    allow_sqlite: bool = Field(False, description="Allow SQLite in production (a small site)")
    behind_tls_proxy: bool = Field(
        False,
        description="A TLS-terminating reverse proxy is in front of the API: allows api.host "
        "other than loopback",
    )
    auth_failures_per_minute: int = Field(
        10, ge=1, le=10_000, description="Failed authentications per client address per minute"
    )
    auth_tracked_addresses: int = Field(
        10_000, ge=100, le=1_000_000, description="Client addresses remembered (bounded memory)"
    )
    hsts: bool = Field(False, description="Send Strict-Transport-Security (only behind HTTPS)")
    hsts_max_age_s: int = Field(31_536_000, ge=0)
    content_security_policy: str | None = Field(
        None, description="Replace the default Content-Security-Policy of every page but /docs"
    )


class Settings(BaseSettings):
    """Everything configurable, validated at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="STREETLIGHT_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    data_dir: Path = Path("data")
    admin_key: SecretStr | None = None
    site: SiteSettings = SiteSettings()
    database: DatabaseSettings = DatabaseSettings()
    mqtt: MqttSettings = MqttSettings()
    modbus: ModbusSettings = ModbusSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    controller: ControllerSettings = ControllerSettings()
    alerts: AlertSettings = AlertSettings()
    faults: FaultSettings = FaultSettings()
    cluster: ClusterSettings = ClusterSettings()
    api: ApiSettings = ApiSettings()
    energy: EnergySettings = EnergySettings()
    ioc: IocSettings = IocSettings()
    security: SecuritySettings = SecuritySettings()

    @model_validator(mode="after")
    def _coverage_gap_spans_a_poll(self) -> Self:
        """A gap shorter than the poll would leave every luminaire-hour uncovered."""
        poll_s = max(self.modbus.poll_interval_s, self.controller.mqtt_read_interval_s)
        if self.energy.coverage_max_gap_s < poll_s:
            raise ValueError(
                f"energy.coverage_max_gap_s ({self.energy.coverage_max_gap_s:g}) must be at "
                f"least modbus.poll_interval_s and controller.mqtt_read_interval_s ({poll_s:g})"
            )
        return self

    @property
    def database_url(self) -> str:
        """The effective database URL (a SQLite file under ``data_dir`` by default)."""
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'streetlight.db').as_posix()}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = _CONFIG_FILE.get()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


def _describe(error: Any) -> str:
    loc = ".".join(str(part) for part in error.get("loc", ())) or "(settings)"
    msg = str(error.get("msg", "invalid"))
    if error.get("type") == "extra_forbidden":
        msg = "unknown setting"
    value = error.get("input")
    shown = "" if isinstance(value, dict) or value is None else f" (got {value!r})"
    return f"{loc}: {msg}{shown}"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings from arguments, environment and an optional TOML file.

    Raises :class:`ConfigError` with one line per invalid field, naming it.
    """
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"config file {config_file} does not exist")
    token = _CONFIG_FILE.set(config_file)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = "; ".join(_describe(err) for err in exc.errors())
        raise ConfigError(f"invalid settings: {lines}") from exc
    except ValueError as exc:  # e.g. a TOML syntax error
        raise ConfigError(f"invalid settings file {config_file}: {exc}") from exc
    finally:
        _CONFIG_FILE.reset(token)

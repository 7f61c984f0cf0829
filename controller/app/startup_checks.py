"""What ``streetlight serve`` refuses to start with: pure checks over the settings and keys.

Each rule returns a :class:`Problem` naming the setting at fault and what to do about it;
:func:`refuse` turns all of them into one :class:`ConfigError`, one line per problem, so an
operator fixes everything in one go. The rules (docs/operations.md, "Security checklist"):

1. ``admin_key`` (``STREETLIGHT_ADMIN_KEY``) set: it is the demo's shortcut; production keys
   are created with ``streetlight apikey create`` and only their hash is stored.
2. An active API key from the demo (named ``demo-admin...``) or one of the example keys of
   the documentation, in the database (:func:`key_problems`).
3. MQTT without ``mqtt.username``/``mqtt.password``, unless ``security.allow_anonymous_broker``.
4. MQTT without ``mqtt.tls`` to a broker that is not on loopback, unless
   ``security.allow_plaintext_broker``; with TLS, a ``mqtt.ca_file`` that does not exist.
5. PostgreSQL to a host that is not local without ``ssl=require`` (or ``verify-ca``,
   ``verify-full``) in the URL, unless ``security.allow_insecure_database``; ``sslmode=`` in
   the URL always (SQLAlchemy hands it to ``asyncpg.connect``, which has no such argument).
6. SQLite, unless ``security.allow_sqlite``.
7. The API bound to anything but loopback, unless ``security.behind_tls_proxy`` says a
   TLS-terminating reverse proxy is in front (the API speaks plain HTTP; keys would cross
   the network in clear).
8. ``api.cors_origins`` containing ``*``.

The demo (``streetlight demo``) runs none of this: it is meant to run on defaults.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from controller.access.auth import hash_key
from controller.config.settings import Settings
from controller.core.errors import ConfigError
from controller.store.db import connect
from controller.store.tables import ApiKey

DEMO_KEY_NAME_PREFIX = "demo-admin"
"""``streetlight demo`` names its admin key ``demo-admin`` or ``demo-admin-<random>``."""

EXAMPLE_KEYS = ("my-long-demo-key-123",)
"""Keys printed in the documentation (README): known to everyone, so never valid in production."""

DATABASE_URL = "database.url"

SECURE_SSL_MODES = frozenset({"require", "verify-ca", "verify-full"})
"""asyncpg ``ssl=`` modes that never fall back to plain text (``prefer`` and ``allow`` do)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason not to start: the setting at fault and what to do."""

    setting: str
    message: str

    def __str__(self) -> str:
        return f"{self.setting}: {self.message}"


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1 (a name other than localhost is not assumed local)."""
    name = host.strip().strip("[]").lower()
    if name in {"localhost", "localhost.localdomain", "ip6-localhost"}:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def settings_problems(
    settings: Settings,
    *,
    api_host: str | None = None,
    file_exists: Callable[[Path], bool] = Path.is_file,
) -> list[Problem]:
    """Every rule over the settings alone, in a fixed order; empty means fit to serve.

    ``api_host`` is the bind address actually used (``serve --host``), default
    ``api.host``. ``file_exists`` is how ``mqtt.ca_file`` is looked for (a test passes
    its own).
    """
    return [
        *_admin_key(settings),
        *_mqtt(settings, file_exists),
        *_database(settings),
        *_api(settings, api_host if api_host is not None else settings.api.host),
    ]


def _admin_key(settings: Settings) -> list[Problem]:
    if settings.admin_key is None:
        return []
    return [
        Problem(
            "admin_key",
            "set (STREETLIGHT_ADMIN_KEY); it is for the demo only: unset it and create keys "
            "with 'streetlight apikey create --role admin --name NAME'",
        )
    ]


def _mqtt(settings: Settings, file_exists: Callable[[Path], bool]) -> list[Problem]:
    mqtt, security = settings.mqtt, settings.security
    out: list[Problem] = []
    if (not mqtt.username or mqtt.password is None) and not security.allow_anonymous_broker:
        missing = " and ".join(
            name
            for name, value in (("mqtt.username", mqtt.username), ("mqtt.password", mqtt.password))
            if not value
        )
        out.append(
            Problem(
                missing,
                "not set: the broker must require credentials (mosquitto password_file, "
                "allow_anonymous false); or set security.allow_anonymous_broker = true",
            )
        )
    if not mqtt.tls and not is_loopback(mqtt.host) and not security.allow_plaintext_broker:
        out.append(
            Problem(
                "mqtt.tls",
                f"off for the broker {mqtt.host}, which is not on loopback: credentials and "
                "commands would cross the network in clear; set mqtt.tls = true (and "
                "mqtt.ca_file), or security.allow_plaintext_broker = true",
            )
        )
    if mqtt.tls and mqtt.ca_file is not None and not file_exists(mqtt.ca_file):
        out.append(Problem("mqtt.ca_file", f"{mqtt.ca_file} does not exist"))
    return out


def _database(settings: Settings) -> list[Problem]:
    security = settings.security
    try:
        url = make_url(settings.database_url)
    except ArgumentError as exc:  # the settings validated the prefix, not the rest
        return [Problem(DATABASE_URL, f"not a database URL: {exc}")]
    if url.get_backend_name() == "sqlite":
        if security.allow_sqlite:
            return []
        return [
            Problem(
                DATABASE_URL,
                "SQLite (the default) in production: use PostgreSQL "
                "(postgresql+asyncpg://...), or set security.allow_sqlite = true for a small site",
            )
        ]
    out: list[Problem] = []
    query = {k.lower(): _last(v) for k, v in url.query.items()}
    if "sslmode" in query:
        out.append(
            Problem(
                DATABASE_URL,
                "sslmode= is not understood by the asyncpg driver (connect() fails); "
                "write ssl=require (or ssl=verify-full) instead",
            )
        )
    encrypted = query.get("ssl", "").lower() in SECURE_SSL_MODES
    if not (encrypted or _local_database(url.host, query) or security.allow_insecure_database):
        out.append(
            Problem(
                DATABASE_URL,
                f"PostgreSQL on {url.host} without TLS: add ?ssl=require (or ssl=verify-full "
                "with the server's CA), or set security.allow_insecure_database = true",
            )
        )
    return out


def _last(value: str | tuple[str, ...]) -> str:
    """A URL query value (SQLAlchemy gives a tuple for a repeated key: the last one wins)."""
    if isinstance(value, str):
        return value
    return value[-1] if value else ""


def _local_database(host: str | None, query: dict[str, str]) -> bool:
    """No host (a Unix socket), a socket directory in ``?host=/path``, or loopback."""
    if query.get("host", "").startswith("/"):
        return True
    return not host or is_loopback(host)


def _api(settings: Settings, host: str) -> list[Problem]:
    out: list[Problem] = []
    if not is_loopback(host) and not settings.security.behind_tls_proxy:
        out.append(
            Problem(
                "api.host",
                f"{host} is reachable from the network, but the API speaks plain HTTP and keys "
                "would cross it in clear: bind to 127.0.0.1 behind a TLS reverse proxy and set "
                "security.behind_tls_proxy = true",
            )
        )
    if "*" in settings.api.cors_origins:
        out.append(
            Problem(
                "api.cors_origins",
                "'*' lets every web page call the API: list the dashboard's origins",
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class StoredKey:
    """What the key rule needs of a stored API key."""

    name: str
    key_hash: str
    revoked: bool


def demo_key_problems(
    keys: Iterable[StoredKey], example_keys: Iterable[str] = EXAMPLE_KEYS
) -> list[Problem]:
    """Active keys left by the demo or equal to a key printed in the documentation."""
    known = {hash_key(k) for k in example_keys}
    bad = sorted(
        k.name
        for k in keys
        if not k.revoked and (k.name.startswith(DEMO_KEY_NAME_PREFIX) or k.key_hash in known)
    )
    if not bad:
        return []
    names = ", ".join(repr(n) for n in bad)
    return [
        Problem(
            "api keys (database)",
            f"demo or example key(s) still active: {names}; revoke them with "
            "'streetlight apikey revoke NAME'",
        )
    ]


async def key_problems(*, session: AsyncSession) -> list[Problem]:
    """:func:`demo_key_problems` over the keys stored in the database (none before the
    first migration)."""
    connection = await session.connection()
    has_keys = await connection.run_sync(lambda sync: inspect(sync).has_table(ApiKey.__tablename__))
    if not has_keys:
        return []
    rows = (await session.exec(select(ApiKey).order_by(col(ApiKey.id)))).all()
    return demo_key_problems(
        StoredKey(name=r.name, key_hash=r.key_hash, revoked=r.revoked_at is not None) for r in rows
    )


async def check_service(settings: Settings, *, api_host: str | None = None) -> None:
    """Refuse (:class:`ConfigError`) unless ``settings`` and the database are fit to serve.

    Runs before anything else of ``streetlight serve``: the keys are read before the
    migrations run, and the database is not opened at all when its URL is itself a
    problem (it would send the password in clear).
    """
    problems = settings_problems(settings, api_host=api_host)
    if not any(p.setting == DATABASE_URL for p in problems):
        try:
            async with connect(settings.database_url) as db, db.sessions() as session:
                problems += await key_problems(session=session)
        except (OSError, SQLAlchemyError) as exc:
            problems.append(Problem(DATABASE_URL, f"cannot read the API keys: {exc}"))
    refuse(problems)


def refuse(problems: Iterable[Problem]) -> None:
    """Raise :class:`ConfigError` listing every problem, one per line; nothing if none."""
    lines = [str(p) for p in problems]
    if lines:
        listed = "\n".join(f"  - {line}" for line in lines)
        raise ConfigError(
            f"refusing to start in production ({len(lines)} problem(s)):\n{listed}\n"
            "(docs/operations.md, 'Security checklist')"
        )

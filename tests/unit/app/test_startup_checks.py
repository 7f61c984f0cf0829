"""What ``streetlight serve`` refuses: every rule of controller/app/startup_checks.py, both ways."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from controller.access import auth
from controller.access.schemas import Role
from controller.app.cli import app
from controller.app.startup_checks import (
    DATABASE_URL,
    EXAMPLE_KEYS,
    Problem,
    StoredKey,
    check_service,
    demo_key_problems,
    is_loopback,
    key_problems,
    refuse,
    settings_problems,
)
from controller.config.settings import Settings, load_settings
from controller.core.errors import ConfigError
from controller.store.db import Database, connect

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"

GOOD: dict[str, Any] = {
    "database": {"url": "postgresql+asyncpg://streetlight:pw@db.internal/streetlight?ssl=require"},
    "mqtt": {
        "host": "broker.internal",
        "port": 8883,
        "username": "streetlight",
        "password": "a long broker password",
        "tls": True,
        "ca_file": "/etc/streetlight/ca.pem",
    },
    "api": {"host": "127.0.0.1"},
}


@pytest.fixture(autouse=True)
def _no_streetlight_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rules are about these settings, not the environment the tests run in."""
    for name in list(os.environ):
        if name.startswith("STREETLIGHT_"):
            monkeypatch.delenv(name)


def make(**changes: Any) -> Settings:
    """The good production settings with ``changes`` merged in, one section deep."""
    merged: dict[str, Any] = {k: dict(v) for k, v in GOOD.items()}
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merged[key] | value
        else:
            merged[key] = value
    return load_settings(**merged)


def problems(settings: Settings, **kwargs: Any) -> list[Problem]:
    kwargs.setdefault("file_exists", lambda _: True)
    return settings_problems(settings, **kwargs)


def settings_at_fault(settings: Settings, **kwargs: Any) -> list[str]:
    return [p.setting for p in problems(settings, **kwargs)]


def test_good_production_settings_have_no_problem() -> None:
    assert problems(make()) == []


# (changes, the setting named, the switch that allows it or None)
REFUSED: list[tuple[str, dict[str, Any], str, dict[str, Any] | None]] = [
    ("admin key", {"admin_key": "a-long-demo-admin-key"}, "admin_key", None),
    (
        "no username",
        {"mqtt": {"username": None}},
        "mqtt.username",
        {"allow_anonymous_broker": True},
    ),
    (
        "no password",
        {"mqtt": {"password": None}},
        "mqtt.password",
        {"allow_anonymous_broker": True},
    ),
    (
        "anonymous",
        {"mqtt": {"username": None, "password": None}},
        "mqtt.username and mqtt.password",
        {"allow_anonymous_broker": True},
    ),
    (
        "plain MQTT to another host",
        {"mqtt": {"tls": False}},
        "mqtt.tls",
        {"allow_plaintext_broker": True},
    ),
    (
        "plain PostgreSQL to another host",
        {"database": {"url": "postgresql+asyncpg://sl:pw@db.internal/streetlight"}},
        DATABASE_URL,
        {"allow_insecure_database": True},
    ),
    (
        "ssl=prefer falls back to plain text",
        {"database": {"url": "postgresql+asyncpg://sl:pw@10.0.0.7/streetlight?ssl=prefer"}},
        DATABASE_URL,
        {"allow_insecure_database": True},
    ),
    (
        "ssl=disable",
        {"database": {"url": "postgresql+asyncpg://sl:pw@db.internal/streetlight?ssl=disable"}},
        DATABASE_URL,
        {"allow_insecure_database": True},
    ),
    ("SQLite", {"database": {"url": ""}}, DATABASE_URL, {"allow_sqlite": True}),
    (
        "SQLite file",
        {"database": {"url": "sqlite+aiosqlite:////var/lib/streetlight/streetlight.db"}},
        DATABASE_URL,
        {"allow_sqlite": True},
    ),
    ("API on every address", {"api": {"host": "0.0.0.0"}}, "api.host", {"behind_tls_proxy": True}),
    ("API on IPv6 any", {"api": {"host": "::"}}, "api.host", {"behind_tls_proxy": True}),
    ("API on a LAN address", {"api": {"host": "10.1.2.3"}}, "api.host", {"behind_tls_proxy": True}),
    ("CORS for everyone", {"api": {"cors_origins": ["*"]}}, "api.cors_origins", None),
]


@pytest.mark.parametrize(
    ("changes", "setting", "switch"),
    [pytest.param(c, s, w, id=name) for name, c, s, w in REFUSED],
)
def test_each_rule_refuses_and_its_switch_allows(
    changes: dict[str, Any], setting: str, switch: dict[str, Any] | None
) -> None:
    assert settings_at_fault(make(**changes)) == [setting]
    if switch is not None:
        assert problems(make(**changes, security=switch)) == []


def test_a_switch_allows_only_its_own_rule() -> None:
    everything = make(
        mqtt={"username": None, "password": None, "tls": False},
        database={"url": ""},
        api={"host": "0.0.0.0"},
        security={"allow_sqlite": True},
    )
    assert settings_at_fault(everything) == [
        "mqtt.username and mqtt.password",
        "mqtt.tls",
        "api.host",
    ]


ALLOWED: list[tuple[str, dict[str, Any]]] = [
    ("plain MQTT on loopback", {"mqtt": {"tls": False, "host": "127.0.0.1"}}),
    ("plain MQTT on 127.0.0.2", {"mqtt": {"tls": False, "host": "127.0.0.2"}}),
    ("plain MQTT on localhost", {"mqtt": {"tls": False, "host": "localhost"}}),
    ("plain MQTT on ::1", {"mqtt": {"tls": False, "host": "::1"}}),
    ("TLS with the system CAs", {"mqtt": {"ca_file": None}}),
    ("PostgreSQL on loopback", {"database": {"url": "postgresql+asyncpg://sl@127.0.0.1/sl"}}),
    ("PostgreSQL on localhost", {"database": {"url": "postgresql+asyncpg://sl@localhost:5432/sl"}}),
    ("PostgreSQL on a Unix socket", {"database": {"url": "postgresql+asyncpg://sl@/sl"}}),
    (
        "PostgreSQL socket directory",
        {"database": {"url": "postgresql+asyncpg://sl@/sl?host=/run/postgresql"}},
    ),
    (
        "PostgreSQL verify-full",
        {"database": {"url": "postgresql+asyncpg://sl:pw@db.internal/sl?ssl=verify-full"}},
    ),
    ("PostgreSQL ssl=REQUIRE", {"database": {"url": "postgresql+asyncpg://sl@db/sl?ssl=REQUIRE"}}),
    ("API on localhost", {"api": {"host": "localhost"}}),
    ("API on ::1", {"api": {"host": "::1"}}),
    ("named CORS origins", {"api": {"cors_origins": ["https://ioc.dongha.gov.vn"]}}),
]


@pytest.mark.parametrize("changes", [pytest.param(c, id=name) for name, c in ALLOWED])
def test_safe_variants_are_not_refused(changes: dict[str, Any]) -> None:
    assert problems(make(**changes)) == []


def test_sslmode_in_the_url_is_refused_even_on_loopback() -> None:
    local = make(database={"url": "postgresql+asyncpg://sl@127.0.0.1/sl?sslmode=require"})
    found = problems(local)
    assert [p.setting for p in found] == [DATABASE_URL]
    assert "ssl=require" in found[0].message
    # the switch for plain PostgreSQL does not make a URL the driver rejects work
    remote = make(
        database={"url": "postgresql+asyncpg://sl@db.internal/sl?sslmode=require"},
        security={"allow_insecure_database": True},
    )
    assert settings_at_fault(remote) == [DATABASE_URL]


def test_the_bind_address_of_serve_host_is_the_one_checked() -> None:
    settings = make()
    assert settings_at_fault(settings, api_host="0.0.0.0") == ["api.host"]
    assert settings_at_fault(make(api={"host": "0.0.0.0"}), api_host="127.0.0.1") == []


def test_a_missing_ca_file_is_refused_and_an_existing_one_is_not(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    settings = make(mqtt={"ca_file": str(ca)})
    assert [p.setting for p in settings_problems(settings)] == ["mqtt.ca_file"]
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    assert settings_problems(settings) == []
    assert settings_problems(make(mqtt={"ca_file": str(tmp_path), "tls": True})) != []


def test_problem_messages_name_the_way_out() -> None:
    found = problems(
        make(
            admin_key="a-long-demo-admin-key",
            mqtt={"username": None, "password": None, "tls": False},
            database={"url": "postgresql+asyncpg://sl:s3cr3t@db.internal/sl"},
            api={"host": "0.0.0.0"},
        )
    )
    text = "\n".join(map(str, found))
    for remedy in (
        "streetlight apikey create",
        "security.allow_anonymous_broker",
        "security.allow_plaintext_broker",
        "ssl=require",
        "security.allow_insecure_database",
        "security.behind_tls_proxy",
    ):
        assert remedy in text
    assert "s3cr3t" not in text  # never the password


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("broker.internal", False),
        ("localhost.evil.example", False),
        ("", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_refuse_lists_every_problem_on_its_own_line() -> None:
    refuse([])  # nothing to refuse
    with pytest.raises(ConfigError) as caught:
        refuse([Problem("a.b", "first"), Problem("c", "second")])
    lines = str(caught.value).splitlines()
    assert "2 problem(s)" in lines[0]
    assert lines[1:3] == ["  - a.b: first", "  - c: second"]


# --- keys ---------------------------------------------------------------------------------


def stored(
    name: str, key: str = "sl_some-random-key-0123456789", revoked: bool = False
) -> StoredKey:
    return StoredKey(name=name, key_hash=auth.hash_key(key), revoked=revoked)


@pytest.mark.parametrize(
    ("keys", "refused"),
    [
        ([stored("ops-admin"), stored("ioc-viewer")], []),
        ([stored("demo-admin")], ["demo-admin"]),
        ([stored("demo-admin-Ab3xYz"), stored("ops")], ["demo-admin-Ab3xYz"]),
        ([stored("demo-admin", revoked=True)], []),
        ([stored("ops-admin", key=EXAMPLE_KEYS[0])], ["ops-admin"]),
        ([stored("ops-admin", key=EXAMPLE_KEYS[0], revoked=True)], []),
        ([], []),
    ],
)
def test_demo_and_example_keys_are_refused_while_active(
    keys: list[StoredKey], refused: list[str]
) -> None:
    found = demo_key_problems(keys)
    if not refused:
        assert found == []
        return
    assert len(found) == 1
    for name in refused:
        assert repr(name) in found[0].message
    assert "streetlight apikey revoke" in found[0].message


async def test_key_problems_reads_the_database(db: Database) -> None:
    async with db.sessions() as session:
        assert await key_problems(session=session) == []
        await auth.create_key(session=session, name="ops-admin", role=Role.ADMIN)
        await auth.ensure_key(
            session=session, name="demo-admin", role=Role.ADMIN, key="a-long-demo-admin-key"
        )
        found = await key_problems(session=session)
        assert len(found) == 1
        assert "'demo-admin'" in found[0].message
        await auth.revoke_key(session=session, name_or_id="demo-admin")
        assert await key_problems(session=session) == []


async def test_a_database_never_migrated_has_no_key_problem(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    async with connect(url) as db, db.sessions() as session:
        assert await key_problems(session=session) == []


# --- check_service (what run_service calls first) -------------------------------------------


def sqlite_ok(path: Path, **changes: Any) -> Settings:
    return make(
        database={"url": f"sqlite+aiosqlite:///{path}"},
        mqtt={"ca_file": None},
        security={"allow_sqlite": True},
        **changes,
    )


async def test_check_service_passes_fit_settings_and_refuses_a_demo_key(tmp_path: Path) -> None:
    from controller.store import migrate

    settings = sqlite_ok(tmp_path / "sl.db")
    await check_service(settings)  # not migrated yet: no keys, nothing to refuse
    async with connect(settings.database_url) as db:
        await migrate.upgrade(db)
        async with db.sessions() as session:
            await auth.create_key(session=session, name="demo-admin-x1", role=Role.ADMIN)
    with pytest.raises(ConfigError) as caught:
        await check_service(settings, api_host="0.0.0.0")
    message = str(caught.value)
    assert "api.host: 0.0.0.0" in message
    assert "'demo-admin-x1'" in message


async def test_check_service_does_not_open_a_database_it_refuses(tmp_path: Path) -> None:
    # 192.0.2.0/24 is TEST-NET-1: a connection attempt would hang, then fail; the refusal
    # must come first and alone.
    settings = make(database={"url": "postgresql+asyncpg://sl:pw@192.0.2.1:5432/sl"})
    with pytest.raises(ConfigError) as caught:
        await check_service(settings)
    assert "cannot read the API keys" not in str(caught.value)
    assert "database.url: PostgreSQL on 192.0.2.1 without TLS" in str(caught.value)


# --- the command line ----------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STREETLIGHT_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def test_serve_on_defaults_refuses_and_names_each_setting(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREETLIGHT_ADMIN_KEY", "my-long-demo-key-123")
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 1, result.output
    out = result.output
    assert "refusing to start in production (4 problem(s))" in out
    for setting in ("admin_key", "mqtt.username and mqtt.password", "database.url", "api.host"):
        assert f"  - {setting}: " in out
    assert "my-long-demo-key-123" not in out  # the refusal does not print the key either


async def test_run_service_refuses_before_it_opens_anything(tmp_path: Path) -> None:
    from controller.app.service import run_service

    settings = load_settings(data_dir=tmp_path / "data", admin_key="a-long-demo-admin-key")
    with pytest.raises(ConfigError, match="admin_key"):
        await run_service(settings, host=None, port=None)
    assert not (tmp_path / "data").exists()  # no database was created, nothing migrated


# --- the shipped example ---------------------------------------------------------------------


def test_the_example_production_config_passes_with_its_secrets_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STREETLIGHT_MQTT__PASSWORD", "from-the-environment")
    settings = load_settings(DEPLOY / "streetlight.toml")
    assert settings_problems(settings, file_exists=lambda _: True) == []
    assert settings.mqtt.tls
    assert settings.database_url.startswith("postgresql+asyncpg://")


def test_the_compose_environment_passes_with_its_documented_switches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """deploy/compose.yaml: the controller's environment, secrets from deploy/env.example."""
    import re

    import yaml

    secrets = dict(
        line.split("=", 1)
        for line in (DEPLOY / "env.example").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    )
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    env: dict[str, str] = compose["services"]["controller"]["environment"]
    assert "STREETLIGHT_ADMIN_KEY" not in env
    for name, value in env.items():
        value = re.sub(r"\$\{(\w+):\?[^}]*\}", lambda m: secrets[m.group(1)], str(value))
        if name.startswith("STREETLIGHT_"):
            monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings_problems(settings, api_host="0.0.0.0") == []
    assert settings.mqtt.password is not None
    assert settings.security.behind_tls_proxy

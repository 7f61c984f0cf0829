"""MQTT over TLS with username and password, against a real mosquitto TLS listener; and the
shipped broker configuration (deploy/mosquitto/) enforcing its passwords and ACL.

The certificates are made here with the ``openssl`` command: a test CA, a server
certificate for 127.0.0.1 (subjectAltName IP), one for another name, and a second CA that
signed nothing the broker uses (an "untrusted" CA for the client). Passwords are hashed
into mosquitto's password file with ``mosquitto_passwd -b``. The broker runs with
``allow_anonymous false``. In CI a missing mosquitto, mosquitto_passwd or openssl fails
the tests; elsewhere they skip, saying which one is missing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from controller.config.settings import MqttSettings
from controller.core.errors import GatewayUnavailable
from controller.core.values import Address, CommandSource, Level
from fake_luminaires.model import FakeGateway
from fake_luminaires.mqtt_front import FakeMqttFleet
from protocols.mqtt import MqttLink
from tests.conftest import find_mosquitto, free_port, require_service
from tests.integration.conftest import HOST, MosquittoBroker, MqttVersion

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[2]
PASSWORDS = {"controller": "c0ntroller-Pa55", "gw-1": "gateway-one-Pa55", "streetlight": "sl-Pa55"}
CONNECT_WAIT_S = 3.0
FAIL_WAIT_S = 2.0


def tool(name: str) -> str:
    found = shutil.which(name) or next(
        (p for p in (f"/usr/bin/{name}", f"/usr/sbin/{name}") if os.access(p, os.X_OK)), None
    )
    if found is None:
        require_service(name, "not found (apt-get install mosquitto openssl)")
        raise AssertionError("unreachable")  # require_service skips or fails
    return found


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run([tool("openssl"), *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(directory: Path, name: str) -> None:
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
        "-subj", f"/CN=streetlight test {name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip


def make_server_cert(directory: Path, name: str, san: str, ca: str = "ca") -> None:
    (directory / f"{name}.ext").write_text(
        f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
        cwd=directory,
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext",
        cwd=directory,
    )  # fmt: skip


def password_file(path: Path, users: dict[str, str]) -> None:
    binary = tool("mosquitto_passwd")
    path.unlink(missing_ok=True)
    path.touch(mode=0o600)
    for user, password in users.items():
        subprocess.run(
            [binary, "-b", str(path), user, password], check=True, capture_output=True, timeout=30
        )


class ConfiguredMosquitto(MosquittoBroker):
    """The fixtures' mosquitto (start, stop, wait for the port), with a config of our own."""

    def __init__(self, binary: str, workdir: Path, port: int, config: list[str]) -> None:
        super().__init__(binary, workdir)
        self.port = port
        lines = list(config)
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to 'mosquitto', who cannot read our files
        self.config_file.write_text("\n".join(lines) + "\n")


@dataclass(frozen=True)
class TlsBroker:
    port: int
    """TLS, a certificate for 127.0.0.1 signed by ``ca``."""
    wrong_name_port: int
    """TLS, a certificate for ``wrong.example`` signed by ``ca``."""
    ca: Path
    untrusted_ca: Path
    log_file: Path

    def settings(self, prefix: str, **changes: Any) -> MqttSettings:
        values: dict[str, Any] = {
            "host": HOST,
            "port": self.port,
            "prefix": prefix,
            "client_id": f"ctl-{prefix}",
            "tls": True,
            "ca_file": self.ca,
            "username": "controller",
            "password": PASSWORDS["controller"],
        }
        return MqttSettings(**(values | changes))


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    binary = find_mosquitto()
    if binary is None:
        require_service("mosquitto", "binary not found (apt-get install mosquitto)")
        raise AssertionError("unreachable")
    work = tmp_path_factory.mktemp("mosquitto-tls")
    make_ca(work, "ca")
    make_ca(work, "rogue-ca")
    make_server_cert(work, "server", "IP:127.0.0.1")
    make_server_cert(work, "wrong-name", "DNS:wrong.example")
    password_file(work / "passwd", PASSWORDS)
    port, wrong_name_port = free_port(), free_port()
    config = [
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {work / 'passwd'}",
        "persistence false",
        f"log_dest file {work / 'mosquitto.log'}",
        "log_type all",
        f"listener {port} {HOST}",
        f"cafile {work / 'ca.pem'}",
        f"certfile {work / 'server.pem'}",
        f"keyfile {work / 'server.key'}",
        f"listener {wrong_name_port} {HOST}",
        f"cafile {work / 'ca.pem'}",
        f"certfile {work / 'wrong-name.pem'}",
        f"keyfile {work / 'wrong-name.key'}",
    ]
    broker = ConfiguredMosquitto(binary, work, port, config)
    broker.start_sync()
    try:
        yield TlsBroker(
            port=port,
            wrong_name_port=wrong_name_port,
            ca=work / "ca.pem",
            untrusted_ca=work / "rogue-ca.pem",
            log_file=work / "mosquitto.log",
        )
    finally:
        broker.stop_sync()


@pytest.fixture
def prefix() -> str:
    return f"tls-{uuid.uuid4().hex[:10]}"


@contextlib.asynccontextmanager
async def link_and_fleet(
    link_settings: MqttSettings, fleet_settings: MqttSettings, *gateway_ids: str
) -> AsyncIterator[tuple[MqttLink, FakeMqttFleet]]:
    now = datetime.now(UTC)
    models = [FakeGateway(gw, 10, start=now, seed=i) for i, gw in enumerate(gateway_ids)]
    link = MqttLink(link_settings, ack_timeout_s=FAIL_WAIT_S, reconnect_min_s=0.1)
    fleet = FakeMqttFleet(models, fleet_settings, interval_s=1.0)
    async with link:
        await link.wait_connected(CONNECT_WAIT_S)
        async with fleet:
            yield link, fleet


async def test_link_and_fake_gateway_round_trip_over_tls_with_passwords(
    tls_broker: TlsBroker, prefix: str, mqtt_version: MqttVersion
) -> None:
    settings = tls_broker.settings(prefix, protocol=mqtt_version)
    async with link_and_fleet(settings, settings, "gw-1") as (link, fleet):
        await fleet.wait_online(CONNECT_WAIT_S)
        result = await link.gateway("gw-1").apply(
            {Address(0): Level(70), Address(3): Level(0)}, source=CommandSource.OVERRIDE
        )
        assert result.accepted == {Address(0), Address(3)}
        assert fleet.model("gw-1").luminaires[Address(0)].commanded_level == 70
        assert link.stats.connect_failures == 0


@pytest.fixture(params=["3.1.1", "5"])
def mqtt_version(request: pytest.FixtureRequest) -> MqttVersion:
    version: MqttVersion = request.param
    return version


async def refused(
    settings: MqttSettings, caplog: pytest.LogCaptureFixture
) -> tuple[GatewayUnavailable, str]:
    """The link's error when it cannot connect, and the reason it logged (once)."""
    caplog.set_level(logging.WARNING, logger="protocols.mqtt")
    async with MqttLink(settings, reconnect_min_s=0.1, reconnect_max_s=0.5) as link:
        with pytest.raises(GatewayUnavailable) as caught:
            await link.wait_connected(FAIL_WAIT_S)
        with pytest.raises(GatewayUnavailable, match="not connected to the broker"):
            await link.gateway("gw-1").apply({Address(0): Level(50)})
        assert link.stats.connect_failures >= 1
        assert not link.connected
    reasons = [r.getMessage() for r in caplog.records if r.name == "protocols.mqtt"]
    assert len(reasons) == 1, reasons  # logged once for the outage, not once per attempt
    return caught.value, reasons[0]


async def test_a_wrong_password_is_refused(
    tls_broker: TlsBroker, prefix: str, mqtt_version: MqttVersion, caplog: pytest.LogCaptureFixture
) -> None:
    settings = tls_broker.settings(prefix, protocol=mqtt_version, password="not-the-password")
    error, reason = await refused(settings, caplog)
    assert f"{HOST}:{tls_broker.port} not reached" in str(error)
    assert "cannot connect to" in reason
    assert any(word in reason.lower() for word in ("not authori", "bad user name or password"))
    assert "not-the-password" not in caplog.text


async def test_no_credentials_are_refused(
    tls_broker: TlsBroker, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    _, reason = await refused(tls_broker.settings(prefix, username=None, password=None), caplog)
    assert "not authori" in reason.lower()


async def test_an_untrusted_ca_is_refused(
    tls_broker: TlsBroker, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    _, reason = await refused(tls_broker.settings(prefix, ca_file=tls_broker.untrusted_ca), caplog)
    assert "certificate verify failed" in reason.lower()
    assert PASSWORDS["controller"] not in caplog.text  # nothing was sent to that server


async def test_a_certificate_for_another_name_is_refused(
    tls_broker: TlsBroker, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = tls_broker.settings(prefix, port=tls_broker.wrong_name_port)
    _, reason = await refused(settings, caplog)
    assert "certificate verify failed" in reason.lower()
    assert "mismatch" in reason.lower()


async def test_plain_mqtt_to_the_tls_port_does_not_connect(
    tls_broker: TlsBroker, prefix: str
) -> None:
    """The broker resets the connection; the client then waits out its own connect timeout
    (10 s), so no reason is logged within the wait here: only that it is not connected."""
    async with MqttLink(tls_broker.settings(prefix, tls=False), reconnect_min_s=0.1) as link:
        with pytest.raises(GatewayUnavailable, match="not reached"):
            await link.wait_connected(FAIL_WAIT_S)
        assert link.stats.connects == 0


# --- the shipped broker configuration --------------------------------------------------------


@pytest.fixture(scope="module")
def deploy_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """mosquitto with deploy/mosquitto/mosquitto.conf and its ACL, paths and port moved here."""
    binary = find_mosquitto()
    if binary is None:
        require_service("mosquitto", "binary not found (apt-get install mosquitto)")
        raise AssertionError("unreachable")
    work = tmp_path_factory.mktemp("mosquitto-deploy")
    (work / "data").mkdir()
    password_file(
        work / "passwd",
        {"streetlight": PASSWORDS["streetlight"], "gw-1": PASSWORDS["gw-1"]},
    )
    shipped = (ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text(encoding="utf-8")
    port = free_port()
    config = []
    for line in shipped.splitlines():
        line = line.replace("/mosquitto/passwd/passwd", str(work / "passwd"))
        line = line.replace("/mosquitto/config/acl", str(ROOT / "deploy" / "mosquitto" / "acl"))
        line = line.replace("/mosquitto/data/", f"{work / 'data'}/")
        if line == "listener 1883":
            line = f"listener {port} {HOST}"
        if line == "log_dest stdout":
            line = f"log_dest file {work / 'mosquitto.log'}"
        config.append(line)
    assert f"listener {port} {HOST}" in config, "the shipped config has no 'listener 1883'"
    broker = ConfiguredMosquitto(binary, work, port, config)
    broker.start_sync()
    try:
        yield port
    finally:
        broker.stop_sync()


def deploy_settings(port: int, user: str | None, **changes: Any) -> MqttSettings:
    values: dict[str, Any] = {
        "host": HOST,
        "port": port,
        "prefix": "streetlight",  # the ACL is written for the default prefix
        "client_id": f"{user}-{uuid.uuid4().hex[:6]}",
        "username": user,
        "password": PASSWORDS.get(user or ""),
    }
    return MqttSettings(**(values | changes))


async def test_the_shipped_broker_config_lets_the_controller_and_its_gateway_talk(
    deploy_broker: int,
) -> None:
    controller = deploy_settings(deploy_broker, "streetlight")
    gateway = deploy_settings(deploy_broker, "gw-1")
    async with link_and_fleet(controller, gateway, "gw-1") as (link, fleet):
        await fleet.wait_online(CONNECT_WAIT_S)
        result = await link.gateway("gw-1").apply({Address(1): Level(40)})
        assert result.accepted == {Address(1)}


async def test_the_shipped_acl_keeps_a_gateway_to_its_own_topics(deploy_broker: int) -> None:
    """User gw-1 serving gw-2: it gets none of gw-2's commands, and its state is dropped."""
    controller = deploy_settings(deploy_broker, "streetlight")
    impostor = deploy_settings(deploy_broker, "gw-1")
    async with link_and_fleet(controller, impostor, "gw-2") as (link, _):
        with pytest.raises(GatewayUnavailable, match="not acknowledged"):
            await link.gateway("gw-2").apply({Address(1): Level(40)})
        with pytest.raises(GatewayUnavailable, match="has not reported"):
            await link.gateway("gw-2").read()


async def test_the_shipped_broker_config_refuses_anonymous_clients(
    deploy_broker: int, caplog: pytest.LogCaptureFixture
) -> None:
    _, reason = await refused(deploy_settings(deploy_broker, None), caplog)
    assert "not authori" in reason.lower()

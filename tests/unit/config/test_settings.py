"""Settings: defaults, environment, TOML file, and refusals that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.config.settings import load_settings
from controller.core.errors import ConfigError


def test_defaults_are_dong_ha_and_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREETLIGHT_DATA_DIR", raising=False)
    s = load_settings(data_dir=tmp_path)
    assert (s.site.latitude, s.site.longitude, s.site.elevation_m) == (16.8163, 107.1003, 10.0)
    assert s.site.timezone == "Asia/Ho_Chi_Minh" and s.site.name == "Đông Hà"
    assert s.database_url == f"sqlite+aiosqlite:///{tmp_path.as_posix()}/streetlight.db"
    assert s.mqtt.prefix == "streetlight" and s.api.port == 8000


def test_environment_and_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "streetlight.toml"
    config.write_text(
        '[site]\nname = "Huế"\nlatitude = 16.46\nlongitude = 107.59\n'
        '[database]\nurl = "postgresql+asyncpg://u@db/streetlight"\n[api]\nport = 9000\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("STREETLIGHT_API__PORT", "9100")
    s = load_settings(config)
    assert s.site.name == "Huế" and s.site.latitude == 16.46
    assert s.database_url == "postgresql+asyncpg://u@db/streetlight"
    assert s.api.port == 9100  # the environment wins over the file


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[site]\nlatitude = 123\n", "site.latitude: Input should be less than or equal to 90"),
        ('[site]\ntimezone = "Mars/Olympus"\n', "site.timezone: Value error, unknown IANA"),
        ('[database]\nurl = "mysql://x"\n', "database.url: Value error, must start with"),
        ("[mqtt]\nprot = 1\n", "mqtt.prot: unknown setting"),
        ('[mqtt]\nprefix = "a/#"\n', "mqtt.prefix"),
        ("[api]\nport = 0\n", "api.port"),
        ("colour = 1\n", "colour: unknown setting"),
    ],
)
def test_invalid_settings_name_the_field(tmp_path: Path, toml: str, expected: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[site\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid settings"):
        load_settings(broken)


def test_bad_environment_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREETLIGHT_MODBUS__TIMEOUT_S", "-1")
    with pytest.raises(ConfigError, match=r"modbus.timeout_s: Input should be greater than 0"):
        load_settings()


def test_fault_thresholds_come_from_the_settings(tmp_path: Path) -> None:
    from controller.alerts.monitor import FaultMonitor
    from controller.faults.rules import FaultType, Severity
    from controller.store.db import open_database

    config = tmp_path / "faults.toml"
    config.write_text(
        "[faults]\nvoltage_high_pct = 5\nraise_count = 5\nraise_s = 30\n"
        '[faults.severities]\npowerFactorTooLow = "critical"\n',
        encoding="utf-8",
    )
    monitor = FaultMonitor.from_settings(
        load_settings(config), open_database("sqlite+aiosqlite://")
    )
    assert monitor.thresholds.voltage_limits_v(220.0)[1] == pytest.approx(231.0)
    debounce = monitor.tracker.config.debounce_for(FaultType.LAMP_FAILURE)
    assert (debounce.raise_count, debounce.raise_s) == (5, 30.0)
    assert monitor.tracker.config.severity_of(FaultType.POWER_FACTOR_TOO_LOW) is Severity.CRITICAL
    bad = tmp_path / "bad.toml"
    bad.write_text('[faults.severities]\nlampMelted = "critical"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"faults\.severities: Value error, unknown fault type"):
        load_settings(bad)


def test_the_horizon_dip_is_opt_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the standard definition of sunrise/sunset by default; the dip only when asked for
    assert not load_settings(data_dir=tmp_path).site.to_site().horizon_dip
    monkeypatch.setenv("STREETLIGHT_SITE__HORIZON_DIP", "true")
    site = load_settings(data_dir=tmp_path).site.to_site()
    assert site.horizon_dip and site.elevation_m == 10.0
    assert site.horizon_deg == pytest.approx(-0.8333 - 0.1016, abs=1e-3)

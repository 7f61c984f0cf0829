"""The command line: help, settings errors, import, keys, seeding."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from controller.app.cli import app

COMMANDS = ("demo", "serve", "import", "seed-demo", "db", "apikey")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STREETLIGHT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("STREETLIGHT_DATABASE__URL", raising=False)
    return tmp_path


def test_help_lists_every_command_with_a_description() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        line = next(ln for ln in result.output.splitlines() if f" {command} " in ln)
        assert len(line.split(command, 1)[1].strip(" │")) > 10, line


def test_invalid_settings_refuse_to_start(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREETLIGHT_SITE__LONGITUDE", "500")
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 2
    assert "site.longitude" in result.output


def test_upgrade_seed_keys_and_import(env: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "database at revision" in result.output
    result = runner.invoke(app, ["seed-demo"])
    assert result.exit_code == 0 and "seeded 500 luminaires on 10 gateways" in result.output
    result = runner.invoke(app, ["seed-demo"])
    assert "nothing seeded" in result.output
    result = runner.invoke(app, ["apikey", "create", "--role", "viewer", "--name", "ioc"])
    assert result.exit_code == 0
    key = result.stdout.strip().splitlines()[0]
    assert key.startswith("sl_")
    listing = runner.invoke(app, ["apikey", "list"])
    assert "ioc" in listing.output and "viewer" in listing.output and key[:10] in listing.output
    assert key not in listing.output
    assert runner.invoke(app, ["apikey", "revoke", "ioc"]).exit_code == 0
    assert "revoked" in runner.invoke(app, ["apikey", "list"]).output
    result = runner.invoke(app, ["apikey", "create", "--role", "boss", "--name", "x"])
    assert result.exit_code == 2

    bad = env / "bad.csv"
    bad.write_text(
        "name,gateway,address,lamp_type,latitude,longitude,street,ward\n"
        "N-1,gw-p1-le-duan,60,LED 100 W,16.8,107.1,Lê Duẩn,Phường 1\n"
        "N-2,gw-p1-le-duan,61,LED 100 W,x,107.1,Lê Duẩn,Phường 1\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["import", str(bad)])
    assert result.exit_code == 1
    assert "row 3: latitude" in result.output
    good = env / "good.csv"
    good.write_text(
        "name,gateway,address,lamp_type,latitude,longitude,street,ward\n"
        "N-1,gw-p1-le-duan,60,LED 100 W,16.8,107.1,Lê Duẩn,Phường 1\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["import", str(good)])
    assert result.exit_code == 0 and "imported 1 luminaire" in result.output


def test_sun_csv_has_the_exact_header_and_iso_times(env: Path) -> None:
    result = CliRunner().invoke(
        app, ["sun", "--from", "2026-06-21", "--days", "2", "--format", "csv"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "date,sunrise,sunset,civil_dawn,civil_dusk,nautical_dawn,nautical_dusk"
    assert len(lines) == 3
    cells = lines[1].split(",")
    assert cells[0] == "2026-06-21"
    assert all(
        len(c) == len("2026-06-21T05:19:33+07:00") and c.endswith("+07:00") for c in cells[1:]
    )


def test_sun_for_another_place_and_polar_night(env: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["sun", "--from", "2026-12-21", "--lat", "69.65", "--lon", "18.96", "--tz",
         "Europe/Oslo", "--format", "json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert '"sunrise": null' in result.output
    bad = CliRunner().invoke(app, ["sun", "--lat", "95"])
    assert bad.exit_code == 2
    assert "latitude" in bad.output


def test_timeline_for_a_seeded_group(env: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["seed-demo"]).exit_code == 0
    result = runner.invoke(app, ["timeline", "--group", "Ward Phường 1", "--date", "2026-06-21"])
    assert result.exit_code == 0, result.output
    assert "calendar Đông Hà default" in result.output
    # steps are numbered from 1, as on the dashboard: 22:00 is the second step
    assert "2026-06-21 22:00:00+0700   70 %  program Đông Hà standard step 2" in result.output
    by_id = runner.invoke(app, ["timeline", "--luminaire", "1", "--date", "2026-06-21"])
    assert by_id.exit_code == 0, by_id.output
    assert by_id.output.startswith("luminaire ") and "night of 2026-06-21" in by_id.output
    missing = runner.invoke(app, ["timeline", "--group", "nope"])
    assert missing.exit_code == 1
    assert "group 'nope' not found" in missing.output


def test_rollup_once(env: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["db", "rollup"])
    assert result.exit_code == 0, result.output
    assert "months rebuilt: none, all current (0 rows" in result.output
    assert runner.invoke(app, ["db", "rollup", "--rebuild"]).exit_code == 0


def test_sun_follows_the_standard_definition_unless_the_dip_is_asked_for(env: Path) -> None:
    def sunrise(*extra: str) -> str:
        result = CliRunner().invoke(app, ["sun", "--from", "2026-06-21", "--format", "csv", *extra])
        assert result.exit_code == 0, result.output
        return result.output.splitlines()[1].split(",")[1]

    assert sunrise() == "2026-06-21T05:19:22+07:00"  # SPA: 05:19:20.7 (reference table)
    assert sunrise("--horizon-dip") < sunrise()
    assert sunrise("--horizon-dip", "--elevation", "0") == sunrise()

"""The dashboard in a real browser against the whole system, time-lapsed.

Debian's Chromium, driven by Playwright, against uvicorn on a free loopback port in this
process, serving the app with the controller, a fake fleet of both protocols (real
Modbus TCP servers, a real mosquitto) and SQLite, on one accelerated clock (60x, from
20:00 local when the lights are at 100 %). Screenshots go to ``test-artifacts/dashboard``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import uvicorn
from sqlmodel import func, select

from api.app import create_app
from controller.access import auth
from controller.access.schemas import Role
from controller.config.settings import load_settings
from controller.core.clock import AcceleratedClock
from controller.core.values import Address
from controller.demo.seed import demo_inventory
from controller.inventory import data as inventory
from controller.inventory.importer import ImportFormat, import_inventory
from controller.inventory.schemas import GroupCreate, GroupKind
from controller.loop.runtime import Controller
from controller.store import migrate
from controller.store.db import Database, open_database
from controller.store.tables import EnergyDaily, FaultRow, Luminaire
from fake_luminaires.fleet import Fleet, specs_from_bundle
from tests.browser.conftest import ARTIFACTS, CHROMIUM_FLAGS, chromium_path
from tests.conftest import free_port
from tests.e2e.receivers import eventually
from tests.integration.conftest import MqttBroker

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

pytestmark = pytest.mark.slow

SPEED = 60.0
START = datetime(2026, 6, 21, 13, 0, tzinfo=UTC)  # 20:00 local: lights at 100 %
PER_GATEWAY = 6
ADMIN = auth.Principal(name="browser-test", role=Role.ADMIN)
OVERRIDE_GW, OVERRIDE_ADDRESS = "gw-dl-hung-vuong", 1  # MQTT
FAULT_GW, FAULT_ADDRESS = "gw-p1-le-duan", 2  # Modbus


def bundle() -> dict[str, Any]:
    """The demo's ten streets (five Modbus and five MQTT gateways), six poles each."""
    inventory_ = demo_inventory()
    inventory_["features"] = [
        f for f in inventory_["features"] if f["properties"]["address"] < PER_GATEWAY
    ]
    return inventory_


@dataclass
class LiveSystem:
    base_url: str
    db: Database
    fleet: Fleet
    clock: AcceleratedClock
    keys: dict[Role, str]
    ids: dict[str, int]

    def name_of(self, gateway: str, address: int) -> str:
        return next(
            f["properties"]["name"]
            for f in bundle()["features"]
            if f["properties"]["gateway"] == gateway and f["properties"]["address"] == address
        )


async def _seed(
    db: Database, fleet: Fleet, inv: dict[str, Any]
) -> tuple[dict[Role, str], dict[str, int]]:
    """Inventory as the fleet serves it, a ward group, a key per role, a week of energy."""
    async with db.sessions() as session:
        await import_inventory(
            session=session, data=json.dumps(fleet.inventory(inv)).encode(),
            fmt=ImportFormat.GEOJSON, actor=ADMIN,
        )  # fmt: skip
        await inventory.create_group(
            session=session,
            data=GroupCreate(name="Ward Phường 1", kind=GroupKind.WARD, selector="Phường 1"),
            actor=ADMIN,
        )
        keys = {}
        for role in Role:
            keys[role], _ = await auth.create_key(session=session, name=f"ui-{role}", role=role)
        lums = (await session.exec(select(Luminaire))).all()
        local_today = (START + timedelta(hours=7)).date()
        for lum in lums:  # a week of history for the energy charts
            for back in range(1, 8):
                session.add(
                    EnergyDaily(
                        luminaire_id=lum.id or 0, day=local_today - timedelta(days=back),
                        ward=lum.ward, gateway_id=lum.gateway_id,
                        energy_wh=650.0 + 15 * back + (lum.id or 0) % 7 * 10,
                        burning_s=11.5 * 3600, samples=69,
                    )
                )  # fmt: skip
        await session.commit()
        ids = {lum.name: lum.id or 0 for lum in lums}
    return keys, ids


@asynccontextmanager
async def live_system(
    tmp_path: Path, broker: MqttBroker, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[LiveSystem]:
    monkeypatch.setenv("STREETLIGHT_DASHBOARD_MAP_POLL_S", "1")
    settings = load_settings(
        data_dir=tmp_path,
        mqtt=broker.settings(prefix).model_dump(),
        modbus={"poll_interval_s": 10, "timeout_s": 0.3, "retries": 0},
        controller={"mqtt_read_interval_s": 10, "mqtt_ack_timeout_s": 1.0},
    )
    db = open_database(f"sqlite+aiosqlite:///{tmp_path / 'browser.db'}")
    await migrate.prepare(db)
    clock = AcceleratedClock(START, SPEED, time.time())
    inv = bundle()
    fleet = Fleet(specs_from_bundle(inv), clock=clock, mqtt=settings.mqtt, seed=5,
                  state_interval_s=10)  # fmt: skip
    try:
        async with fleet, asyncio.TaskGroup() as tg:
            keys, ids = await _seed(db, fleet, inv)
            controller = Controller(settings, db, clock)
            loops = tg.create_task(controller.run(), name="controller")
            await controller.wait_ready()
            app = create_app(settings, db, controller=controller)
            port = free_port()
            server = uvicorn.Server(
                uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                               lifespan="off")
            )  # fmt: skip
            serving = tg.create_task(server.serve(), name="uvicorn")

            async def started() -> bool:
                return server.started

            await eventually(started, 10, "uvicorn started")
            try:
                yield LiveSystem(f"http://127.0.0.1:{port}", db, fleet, clock, keys, ids)
            finally:
                server.should_exit = True
                await serving
                loops.cancel()
    finally:
        await db.dispose()


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    path = chromium_path()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=path, headless=True, args=list(CHROMIUM_FLAGS)
        )
        try:
            yield browser
        finally:
            await browser.close()


@asynccontextmanager
async def page_for(browser: Browser, system: LiveSystem) -> AsyncIterator[Page]:
    context = await browser.new_context(
        base_url=system.base_url, viewport={"width": 1280, "height": 900}, locale="vi-VN"
    )
    page = await context.new_page()
    page.set_default_timeout(15_000)
    try:
        yield page
    finally:
        await context.close()


async def sign_in(page: Page, system: LiveSystem, role: Role, shot: str | None = None) -> None:
    await page.goto("/")
    assert "/login" in page.url
    await page.fill("#key", system.keys[role])
    if shot:
        await screenshot(page, shot)
    await page.click("form[action='/login'] button[type=submit]")
    await page.wait_for_url(f"{system.base_url}/")
    assert await page.get_attribute(".who", "data-role") == role.value


async def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture
def system_args(
    tmp_path: Path, mqtt_broker: MqttBroker, mqtt_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, MqttBroker, str, pytest.MonkeyPatch]:
    chromium_path()  # fail (CI) or skip before starting anything
    return tmp_path, mqtt_broker, mqtt_prefix, monkeypatch


async def test_sign_in_map_pages_and_sign_out(
    system_args: tuple[Path, MqttBroker, str, pytest.MonkeyPatch],
) -> None:
    async with (
        live_system(*system_args) as system,
        chromium() as browser,
        page_for(browser, system) as page,
    ):
        await sign_in(page, system, Role.VIEWER, shot="01-login")
        await page.wait_for_selector("#counts")
        await screenshot(page, "02-overview")
        assert await page.locator(".flash-ok").count() == 1
        assert await page.locator("svg.chart-night polyline.level-line").count() == 1

        await page.click("header nav a[href='/map']")
        await page.wait_for_selector("svg#map circle.marker")
        async with system.db.sessions() as session:
            in_db = (await session.exec(select(func.count()).select_from(Luminaire))).one()
        assert await page.locator("svg#map circle.marker").count() == in_db == 60

        async def lit() -> bool:  # every light on at 20:00 once the first readings are in
            await page.reload()
            return await page.locator("svg#map circle.marker.m-on").count() == in_db

        await eventually(lit, 20, "every marker on")
        await screenshot(page, "03-map")

        marker = page.locator("svg#map circle.marker").first
        lid = await marker.get_attribute("data-id")
        await page.locator("svg#map a.marker-link").first.click()
        await page.wait_for_url(f"{system.base_url}/luminaires/{lid}")
        await page.wait_for_selector("#three-states")
        assert await page.locator("#state-target .level").inner_text() == "100"
        assert await page.locator("#override-read-only").count() == 1  # a viewer
        assert await page.locator("#override-form").count() == 0
        await screenshot(page, "04-luminaire-viewer")

        await page.click("header nav a[href='/groups']")
        await page.click("text=Ward Phường 1")
        await page.wait_for_selector("svg.chart-group-energy")
        assert await page.locator("#h-members").count() == 1
        await screenshot(page, "04b-group")

        await page.goto("/?lang=en")
        assert await page.locator("html").get_attribute("lang") == "en"
        assert await page.locator("h1").inner_text() == "Overview"
        await page.goto("/faults")  # the choice is remembered
        assert await page.locator("h1").inner_text() == "Faults"
        await screenshot(page, "05-faults-en")

        await page.click("#logout")
        await page.wait_for_url("**/login?bye=1")
        await page.goto("/map")
        assert "/login" in page.url


async def test_an_override_from_the_ui_reaches_the_light_and_the_map(
    system_args: tuple[Path, MqttBroker, str, pytest.MonkeyPatch],
) -> None:
    async with live_system(*system_args) as system, chromium() as browser:
        lid = system.ids[system.name_of(OVERRIDE_GW, OVERRIDE_ADDRESS)]
        fake = system.fleet.models[OVERRIDE_GW].luminaires[Address(OVERRIDE_ADDRESS)]
        async with page_for(browser, system) as page:
            await sign_in(page, system, Role.OPERATOR)
            await page.goto(f"/map?focus={lid}")
            marker = page.locator(f"#m-{lid}")

            async def on() -> bool:
                await page.reload()
                return await marker.get_attribute("data-state") == "on"

            await eventually(on, 20, "the light is on before the override")
            await page.goto(f"/luminaires/{lid}")
            await page.fill("#override-form input[name=level]", "40")
            await page.fill("#override-form input[name=duration_min]", "120")
            await page.fill("#override-form input[name=reason]", "Sự kiện phố đi bộ")
            await page.click("#override-form button[type=submit]")
            await page.wait_for_selector(".flash-ok")
            assert "40%" in await page.locator(".flash-ok").inner_text()

            async def commanded() -> bool:
                return fake.commanded_level == 40

            await eventually(commanded, 15, "the fake luminaire commanded to 40 %")
            others = {
                lum.commanded_level
                for name, model in system.fleet.models.items()
                for a, lum in model.luminaires.items()
                if (name, int(a)) != (OVERRIDE_GW, OVERRIDE_ADDRESS)
            }
            assert others == {100}  # the override is on this light only
            await page.reload()
            assert await page.locator("#state-target .level").inner_text() == "40"
            assert "override" in (await page.locator("#state-target").inner_text()).lower() or (
                "thủ công" in await page.locator("#state-target").inner_text()
            )

            await page.goto(f"/map?focus={lid}")  # the map's own refresh turns it dimmed
            await page.wait_for_selector(f"#m-{lid}.m-dimmed", timeout=20_000)
            await screenshot(page, "06-map-after-override")
            await page.goto(f"/luminaires/{lid}")
            await page.wait_for_selector("svg.chart-telemetry polyline.line-power")
            await screenshot(page, "07-luminaire-override")

            # a 422 from the same code path: its fields are listed next to the form
            await page.evaluate("document.getElementById('override-form').noValidate = true")
            await page.fill("#override-form input[name=level]", "140")
            await page.fill("#override-form input[name=reason]", "thử")
            await page.click("#override-form button[type=submit]")
            await page.wait_for_selector("#form-errors li[data-field=level]")
            assert await page.locator("input[name=level][aria-invalid=true]").count() == 1
            await screenshot(page, "08-override-422")


async def test_a_fault_acknowledged_in_the_ui(
    system_args: tuple[Path, MqttBroker, str, pytest.MonkeyPatch],
) -> None:
    async with live_system(*system_args) as system, chromium() as browser:
        lid = system.ids[system.name_of(FAULT_GW, FAULT_ADDRESS)]
        await asyncio.sleep(2)  # two simulated minutes: lamps lit and warmed up
        await system.fleet.inject(FAULT_GW, "lamp_failure", FAULT_ADDRESS)

        async def opened() -> FaultRow | None:
            async with system.db.sessions() as session:
                return (
                    await session.exec(
                        select(FaultRow).where(
                            FaultRow.luminaire_id == lid, FaultRow.fault_type == "lampFailure"
                        )
                    )
                ).first()

        async def is_open() -> bool:
            return await opened() is not None

        await eventually(is_open, 30, "a lampFailure fault opened")
        fault = await opened()
        assert fault is not None and fault.state == "open"
        async with page_for(browser, system) as page:
            await sign_in(page, system, Role.MAINTENANCE)
            await page.goto("/faults?type=lampFailure")
            row = page.locator(f"#fault-{fault.id}")
            await row.wait_for()
            assert await row.get_attribute("data-state") == "open"
            await screenshot(page, "09-faults-open")
            await row.locator("input[name=note]").fill("Đội 2 đang đến")
            await row.locator("button.ack").click()
            await page.wait_for_selector(".flash-ok")
            assert await page.locator(f"#fault-{fault.id}").get_attribute("data-state") == (
                "acknowledged"
            )
            await screenshot(page, "10-faults-acknowledged")
            async with system.db.sessions() as session:
                stored = await session.get(FaultRow, fault.id)
            assert stored is not None
            assert (stored.state, stored.acknowledged_by, stored.acknowledged_note) == (
                "acknowledged", "ui-maintenance", "Đội 2 đang đến",
            )  # fmt: skip
            await page.goto(f"/map?focus={lid}")
            await page.wait_for_selector(f"#m-{lid}.m-faulty")
            await page.goto(f"/luminaires/{lid}")
            assert await page.locator("#override-read-only").count() == 1  # not an operator


async def test_the_energy_charts_render(
    system_args: tuple[Path, MqttBroker, str, pytest.MonkeyPatch],
) -> None:
    async with (
        live_system(*system_args) as system,
        chromium() as browser,
        page_for(browser, system) as page,
    ):
        await sign_in(page, system, Role.VIEWER)
        await page.click("header nav a[href='/energy']")
        chart = page.locator("svg.chart-energy-daily")
        await chart.wait_for()
        bars = chart.locator("rect.bar")
        assert await bars.count() >= 7 * 9  # a week of nine wards, stacked
        heights = [float(h or 0) for h in await bars.evaluate_all(
            "rs => rs.map(r => r.getAttribute('height'))"
        )]  # fmt: skip
        assert min(heights) > 0
        assert await page.locator("svg.chart-energy-wards rect.bar").count() > 0
        assert await page.locator("#ward-table tbody tr").count() == 9
        await screenshot(page, "11-energy")
        link = page.locator("a.csv[data-group-by=ward][data-interval=day]")
        async with page.expect_download() as download_info:
            await link.click()
        download = await download_info.value
        saved = ARTIFACTS / "energy-day-ward.csv"
        await download.save_as(str(saved))
        lines = saved.read_text("utf-8").strip().splitlines()
        assert lines[0].startswith("period,period_start,period_end,key,name,energy_kwh")
        assert len(lines) >= 1 + 7 * 9

"""``/work``, the crews' phone page: over HTTP in-process (both databases), then in
Chromium on a 360×740 viewport from an open fault to a verified work order.

Faults are opened and resolved as the loop does it: transitions recorded by
``record_transitions``; the verification is the one that function makes.
"""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest
import uvicorn
from sqlmodel import select

from api.app import create_app
from api.dashboard import STATIC
from api.dashboard.i18n import STRINGS
from api.dashboard.work_pages import WARD_COOKIE, distance_m
from controller.access import auth
from controller.access.schemas import Role
from controller.alerts.messages import SubjectInfo
from controller.config.settings import AlertSettings, Settings
from controller.demo.seed import seed_demo
from controller.faults.data import AlertContext, record_transitions
from controller.faults.rules import Evidence, FaultType, Quantity, Severity
from controller.faults.tracker import Subject, Transition, TransitionKind
from controller.faults.work_order_schemas import MOVES, WorkState
from controller.store import migrate
from controller.store.db import Database, open_database
from controller.store.tables import Luminaire, WorkOrder
from tests.browser.conftest import ARTIFACTS, CHROMIUM_FLAGS, Dash, chromium_path
from tests.conftest import free_port
from tests.e2e.receivers import eventually

if TYPE_CHECKING:
    from playwright.async_api import Page

PAGE_LIMIT_BYTES = 100_000
T0 = datetime(2026, 6, 21, 13, 30, tzinfo=UTC)
CTX = AlertContext(AlertSettings(), "streetlight", ZoneInfo("Asia/Ho_Chi_Minh"))


async def lights(db: Database, ward: str, n: int) -> list[Luminaire]:
    async with db.sessions() as session:
        rows = await session.exec(
            select(Luminaire).where(Luminaire.ward == ward).order_by(Luminaire.id).limit(n)  # type: ignore[arg-type]
        )
        return list(rows.all())


async def record(
    db: Database, kind: TransitionKind, lums: list[Luminaire], fault: FaultType, at: datetime
) -> None:
    """Transitions as the controller's loop records them."""
    severity = Severity.CRITICAL if fault is FaultType.LAMP_FAILURE else Severity.WARNING
    transitions = [
        Transition(
            kind=kind, subject=Subject.luminaire(lum.id or 0), fault_type=fault,
            severity=severity, at=at, since=at, last_seen=at, count=3,
            evidence=Evidence(Quantity.POWER_W, measured=0.4, expected=100.0),
            gateway_id=lum.gateway_id,
        )
        for lum in lums
    ]  # fmt: skip
    infos = {
        Subject.luminaire(lum.id or 0): SubjectInfo(name=lum.name, street=lum.street, ward=lum.ward)
        for lum in lums
    }
    async with db.sessions() as session:
        await record_transitions(session=session, transitions=transitions, subjects=infos, ctx=CTX)


def fault_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'id="wfault-(\d+)"', html)]


# --- over HTTP, in-process ------------------------------------------------------------------


async def test_faults_by_ward_sorted_by_severity_then_age_and_remembered(dash: Dash) -> None:
    p1 = await lights(dash.db, "Phường 1", 3)
    dl = await lights(dash.db, "Đông Lễ", 1)
    await record(dash.db, TransitionKind.OPENED, p1[:1], FaultType.LAMP_POWER_TOO_HIGH, T0)
    later = T0 + timedelta(hours=1)
    await record(dash.db, TransitionKind.OPENED, p1[1:2], FaultType.LAMP_POWER_TOO_HIGH, later)
    await record(dash.db, TransitionKind.OPENED, p1[2:], FaultType.LAMP_FAILURE, later)
    await record(dash.db, TransitionKind.OPENED, dl, FaultType.LAMP_FAILURE, T0)
    crew = await dash.signed_in(Role.MAINTENANCE)
    page = await crew.get("/work", params={"ward": "Phường 1"})
    assert page.status_code == 200
    names = re.findall(r'<strong class="pole">([^<]+)</strong>', page.text)
    # the critical lamp failure first, then the warnings, oldest first
    assert names == [p1[2].name, p1[0].name, p1[1].name]
    assert "Hỏng đèn" in page.text  # the TALQ fault name, in Vietnamese
    lum = p1[2]
    assert f'href="geo:{lum.latitude:.6f},{lum.longitude:.6f}"' in page.text
    assert WARD_COOKIE in page.headers["set-cookie"]
    remembered = await crew.get("/work")  # the cookie keeps the ward
    assert re.findall(r'<strong class="pole">([^<]+)</strong>', remembered.text) == names
    everywhere = await crew.get("/work", params={"ward": ""})  # an empty choice: all wards
    assert len(fault_ids(everywhere.text)) == 4
    assert len(fault_ids((await crew.get("/work")).text)) == 4


async def test_near_me_computes_the_distance_on_the_server(dash: Dash) -> None:
    p1 = await lights(dash.db, "Phường 1", 1)
    dl = await lights(dash.db, "Đông Lễ", 1)
    await record(dash.db, TransitionKind.OPENED, p1 + dl, FaultType.LAMP_FAILURE, T0)
    crew = await dash.signed_in(Role.MAINTENANCE)
    here = p1[0]
    page = await crew.get("/work", params={"lat": here.latitude, "lon": here.longitude + 0.001})
    expected = distance_m(here.latitude, here.longitude, here.latitude, here.longitude + 0.001)
    assert 100 < expected < 110  # 0.001° of longitude at 16.8° N
    far = distance_m(here.latitude, here.longitude, dl[0].latitude, dl[0].longitude)
    names = re.findall(r'<strong class="pole">([^<]+)</strong>', page.text)
    assert names == ([here.name, dl[0].name] if far <= 2000 else [here.name])
    assert f"{expected / 1000:.2f}".replace(".", ",") + " km" in page.text
    bad = await crew.get("/work", params={"lat": "95", "lon": "107"})
    assert bad.status_code == 422 and "<strong>lat (query)</strong>" in bad.text
    half = await crew.get("/work", params={"lat": "16.8"})
    assert half.status_code == 422 and "<strong>lon</strong>: lat and lon go together" in half.text


async def test_pages_stay_small(dash: Dash) -> None:
    lums = await lights(dash.db, "Phường 1", 100)
    await record(dash.db, TransitionKind.OPENED, lums, FaultType.LAMP_FAILURE, T0)
    crew = await dash.signed_in(Role.MAINTENANCE)
    page = await crew.get("/work", params={"ward": ""})
    assert len(fault_ids(page.text)) == 100  # the most a page lists
    assets = ["dashboard.css", "dashboard.js", "work.css", "work.js", "favicon.svg"]
    total = len(page.content) + sum((STATIC / a).stat().st_size for a in assets)
    assert total < PAGE_LIMIT_BYTES, total
    taken = await crew.post("/work/orders", {"only": str(fault_ids(page.text)[0])})
    order = await crew.get(taken.headers["location"])
    assert len(order.content) < PAGE_LIMIT_BYTES


async def test_take_move_note_and_refusals(dash: Dash) -> None:
    lums = await lights(dash.db, "Phường 1", 2)
    await record(dash.db, TransitionKind.OPENED, lums, FaultType.LAMP_FAILURE, T0)
    viewer = await dash.signed_in(Role.VIEWER)
    page = await viewer.get("/work")
    assert 'id="work-read-only"' in page.text and 'name="fault_id"' not in page.text
    ids = fault_ids(page.text)
    assert (await viewer.post("/work/orders", {"only": str(ids[0])})).status_code == 403
    crew = await dash.signed_in(Role.MAINTENANCE)
    none = await crew.post("/work/orders", {})
    assert none.headers["location"] == "/work"
    assert "Hãy chọn ít nhất một sự cố." in (await crew.get("/work")).text
    taken = await crew.client.post(
        "/work/orders", data={"csrf": crew.csrf, "fault_id": [str(i) for i in ids]}
    )
    assert taken.status_code == 303
    path = taken.headers["location"]
    order = await crew.get(path)
    assert 'data-state="assigned"' in order.text and "web-maintenance" in order.text
    r = await crew.post(f"{path}/move", {"to": "fixed"})
    flashed = html.unescape((await crew.get(path)).text)
    assert "'assigned': it cannot go to 'fixed'" in flashed and 'data-state="assigned"' in flashed
    await crew.post(f"{path}/move", {"to": "on_site"})
    await crew.post(f"{path}/note", {"text": "thay bóng", "minutes": "25"})
    r = await crew.post(f"{path}/note", {"text": "x", "minutes": "-3"})
    assert r.status_code == 303
    page = (await crew.get(path)).text
    assert "minutes" in page  # the refused note's field, flashed
    assert 'data-state="on_site"' in page and "thay bóng" in page and "25 phút" in page
    listing = await crew.get("/work")
    assert 'id="my-orders"' in listing.text and "Tại hiện trường" in listing.text
    async with dash.db.sessions() as session:
        row = (await session.exec(select(WorkOrder))).one()
    assert (row.state, row.assignee, row.minutes_spent) == ("on_site", "web-maintenance", 25)


def test_every_state_and_move_has_its_words() -> None:
    for state in WorkState:
        assert f"wstate_{state.value}" in STRINGS, state
    for target in {to for moves in MOVES.values() for to in moves}:
        assert f"wmove_{target.value}" in STRINGS, target


async def test_only_the_work_page_may_ask_for_the_position(dash: Dash) -> None:
    crew = await dash.signed_in(Role.MAINTENANCE)
    work = await crew.get("/work")
    assert work.headers["permissions-policy"].startswith("geolocation=(self)")
    faults = await crew.get("/faults")
    assert faults.headers["permissions-policy"].startswith("geolocation=()")


# --- in Chromium, on a phone ----------------------------------------------------------------


@asynccontextmanager
async def served(tmp_path: Path, settings: Settings) -> AsyncIterator[tuple[str, Database, str]]:
    """The app (no controller) on a loopback port over a seeded SQLite database."""
    db = open_database(f"sqlite+aiosqlite:///{tmp_path / 'work.db'}")
    await migrate.prepare(db)
    async with db.sessions() as session:
        await seed_demo(session=session)
        key, _ = await auth.create_key(session=session, name="to-van-an", role=Role.MAINTENANCE)
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, db), host="127.0.0.1", port=free_port(),
                       log_level="warning", lifespan="off")
    )  # fmt: skip
    try:
        async with asyncio.TaskGroup() as tg:
            serving = tg.create_task(server.serve(), name="uvicorn")

            async def started() -> bool:
                return server.started

            await eventually(started, 10, "uvicorn started")
            try:
                yield f"http://127.0.0.1:{server.config.port}", db, key
            finally:
                server.should_exit = True
                await serving
    finally:
        await db.dispose()


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def no_sideways_scroll(page: Page) -> None:
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, f"the page is {width} px wide on a 360 px screen"


@pytest.mark.slow
async def test_a_crew_member_takes_a_fault_to_verified_on_a_phone(
    tmp_path: Path, settings: Settings
) -> None:
    path = chromium_path()
    from playwright.async_api import async_playwright

    async with served(tmp_path, settings) as (base_url, db, key), async_playwright() as pw:
        lums = await lights(db, "Phường 1", 2)
        # the app has no controller: its clock is the system's, and so are the transitions'
        opened = datetime.now(UTC) - timedelta(hours=2)
        await record(db, TransitionKind.OPENED, lums, FaultType.LAMP_FAILURE, opened)
        browser = await pw.chromium.launch(
            executable_path=path, headless=True, args=list(CHROMIUM_FLAGS)
        )
        try:
            context = await browser.new_context(
                base_url=base_url, viewport={"width": 360, "height": 740}, locale="vi-VN",
                is_mobile=True, has_touch=True, device_scale_factor=2,
                geolocation={"latitude": lums[0].latitude, "longitude": lums[0].longitude},
                permissions=["geolocation"],
            )  # fmt: skip
            page = await context.new_page()
            page.set_default_timeout(15_000)
            await page.goto("/login?next=/work")
            await page.fill("#key", key)
            await page.click("form[action='/login'] button[type=submit]")
            await page.wait_for_url(f"{base_url}/work")
            # near me: the page's script asks for the position, the server measures
            await page.click("#near-me")
            await page.wait_for_url(re.compile(r"/work\?lat="))
            first = page.locator(f"#wfault-{(await fault_id_of(db, lums[0]))}")
            await first.locator(".dist").wait_for()
            assert await first.locator(".dist").inner_text() == "0,00 km"
            assert await first.locator("a.maps").get_attribute("href") == (
                f"geo:{lums[0].latitude:.6f},{lums[0].longitude:.6f}"
            )
            await no_sideways_scroll(page)
            await shot(page, "20-work-near-me-phone")
            # both poles of the street in one order
            for lum in lums:
                await page.check(f"#wfault-{await fault_id_of(db, lum)} input[name=fault_id]")
            await page.click("#take-selected")
            await page.wait_for_url(re.compile(r"/work/orders/\d+$"))
            assert await page.get_attribute("#work-order", "data-state") == "assigned"
            await page.click("#move-on_site")
            await page.wait_for_selector("#work-order[data-state=on_site]")
            await page.fill("#note-text", "Thay bóng LED và chấn lưu")
            await page.fill("#note-minutes", "40")
            await page.click("#add-note")
            await page.wait_for_selector("#order-notes li")
            await page.click("#move-fixed")
            await page.wait_for_selector("#work-order[data-state=fixed]")
            assert await page.is_visible("#waiting-verify")
            await no_sideways_scroll(page)
            await shot(page, "21-work-order-fixed-phone")
            # the lights come back: the tracker resolves both faults, the order is verified
            await record(db, TransitionKind.RESOLVED, lums, FaultType.LAMP_FAILURE,
                         datetime.now(UTC))  # fmt: skip
            await page.reload()
            assert await page.get_attribute("#work-order", "data-state") == "verified"
            assert "telemetry" in await page.inner_text("#order-verified")
            assert await page.inner_text("#order-minutes") == "40 phút"
            assert not await page.is_visible("#order-moves")
            await no_sideways_scroll(page)
            await shot(page, "22-work-order-verified-phone")
            await context.close()
        finally:
            await browser.close()


async def fault_id_of(db: Database, lum: Luminaire) -> int:
    from controller.store.tables import FaultRow

    async with db.sessions() as session:
        row = (await session.exec(select(FaultRow).where(FaultRow.luminaire_id == lum.id))).one()
    assert row.id is not None
    return row.id

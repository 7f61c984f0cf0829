"""The operators' pages (issue 16): programs, calendars, audit, keys.

In-process over ASGI for the forms and JSON, and in Debian's Chromium (Playwright) against
uvicorn on a loopback port for the live step editor, the calendar preview, a revoked key
and the audit diff. No controller: the pages read and write the database only.
Screenshots go to ``test-artifacts/dashboard``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import pytest
import uvicorn
from sqlmodel import select

from api.app import create_app
from api.dashboard.admin_pages import field_diff
from controller.access.schemas import Role
from controller.config.settings import Settings
from controller.scheduling.data import DEFAULT_CALENDAR_NAME, ensure_builtins
from controller.store.db import Database
from controller.store.tables import AuditEntry, CalendarRow, ProgramRow
from schedules.builtin import PROGRAM_TEMPLATES
from tests.browser.conftest import ARTIFACTS, CHROMIUM_FLAGS, Dash, chromium_path
from tests.conftest import free_port

if TYPE_CHECKING:
    from playwright.async_api import Page

TET_2027 = "2027-02-06"  # Tết Nguyên Đán 2027 (lunar new year's day)
ORDINARY = "2027-03-10"


def _form(name: str, levels: list[tuple[str, str]]) -> dict[str, str]:
    out = {"name": name, "default_level": "0", "night": ORDINARY}
    for i, (anchor, level) in enumerate(levels):
        out |= {f"steps.{i}.anchor": anchor, f"steps.{i}.offset_min": "0",
                f"steps.{i}.level": level, f"steps.{i}.fade_s": ""}  # fmt: skip
    return out


async def _default_calendar(db: Database) -> int:
    """The shipped default calendar (installed as ``streetlight migrate`` does)."""
    async with db.sessions() as session:
        await ensure_builtins(session=session)
        row = (
            await session.exec(select(CalendarRow).where(CalendarRow.name == DEFAULT_CALENDAR_NAME))
        ).one()
    assert row.id is not None
    return row.id


def test_field_diff_names_each_changed_leaf() -> None:
    before = {"name": "a", "steps": [{"level": 70}, {"level": 0}], "updated_at": "x"}
    after = {"name": "a", "steps": [{"level": 30}, {"level": 0}, {"level": 5}], "updated_at": "y"}
    assert [(d.path, d.before, d.after) for d in field_diff(before, after)] == [
        ("steps.0.level", "70", "30"),
        ("steps.2.level", None, "5"),
    ]


def test_templates_are_valid_programs() -> None:
    from schedules.program import validate_program

    assert set(PROGRAM_TEMPLATES) == {
        "Tiết giảm Phú Yên",
        "Hà Nội 70/30",
        "TP HCM 50 % sau 22h",
        "Bật muộn / tắt sớm 30 phút",
    }
    for program in PROGRAM_TEMPLATES.values():
        assert validate_program(program) == ()


async def test_preview_answers_curve_errors_and_warnings(dash: Dash) -> None:
    op = await dash.signed_in(Role.OPERATOR)
    good = await op.post("/programs/preview", _form("x", [("sunset", "100"), ("sunrise", "0")]))
    assert good.status_code == 200
    answer = good.json()
    assert answer["errors"] == [] and answer["curve"]["points"]
    dimmed = await op.post("/programs/preview", _form("x", [("sunset", "40"), ("sunrise", "0")]))
    assert dimmed.json()["curve"]["points"] != answer["curve"]["points"]
    bad = await op.post("/programs/preview", _form("x", [("sunset", "140"), ("sunrise", "0")]))
    assert {"field": "steps.0.level", "message": bad.json()["errors"][0]["message"]} in bad.json()[
        "errors"
    ]
    assert bad.json()["curve"] is None
    swap = await op.post("/programs/preview", _form("x", [("sunset", "100"), ("22:00", "50"),
                                                          ("sunset+240", "70")]))  # fmt: skip
    assert swap.json()["errors"], "sunset+240 is not an anchor: the API's 422 names it"
    order = _form("x", [("sunset", "100"), ("22:00", "50"), ("sunset", "70"), ("sunrise", "0")])
    order["steps.2.offset_min"] = "240"
    warned = await op.post("/programs/preview", order)
    assert any(w["code"] == "order_swap" for w in warned.json()["warnings"])
    tet = await op.post("/programs/preview", {**_form("x", [("sunset", "100")]), "night": TET_2027})
    assert tet.json()["curve"]["holidays"]


async def test_program_create_copy_delete_and_viewer_refused(dash: Dash, db: Database) -> None:
    op = await dash.signed_in(Role.OPERATOR)
    created = await op.post(
        "/programs/new", _form("Phố mới", [("sunset", "100"), ("sunrise", "0")])
    )
    assert created.status_code == 303, created.text
    async with db.sessions() as session:
        row = (await session.exec(select(ProgramRow).where(ProgramRow.name == "Phố mới"))).one()
    invalid = await op.post(f"/programs/{row.id}", _form("Phố mới", [("sunset", "140")]))
    assert invalid.status_code == 422
    assert 'data-error-for="steps.0.level"' in invalid.text
    copied = await op.post(f"/programs/{row.id}/copy")
    assert copied.status_code == 303
    page = await op.get("/programs")
    assert "Phố mới (bản sao)" in page.text
    assert "Tiết giảm Phú Yên" in page.text
    viewer = await dash.signed_in(Role.VIEWER)
    refused = await viewer.post("/programs/new", _form("v", [("sunset", "100")]))
    assert refused.status_code == 403
    deleted = await op.post(f"/programs/{row.id}/delete")
    assert deleted.status_code == 303
    for path in ("/programs", "/programs/new?template=H%C3%A0%20N%E1%BB%99i%2070%2F30",
                 f"/programs/{row.id + 1}", "/calendars", "/calendars/new",
                 f"/calendars/{await _default_calendar(db)}?subject=group:1",
                 f"/calendars/{await _default_calendar(db)}?subject=luminaire:1"):  # fmt: skip
        assert (await op.get(path)).status_code == 200, path


async def test_audit_and_keys_are_admin_only(dash: Dash) -> None:
    op = await dash.signed_in(Role.OPERATOR)
    assert (await op.get("/audit")).status_code == 403
    assert (await op.get("/keys")).status_code == 403
    admin = await dash.signed_in(Role.ADMIN)
    keys = await admin.get("/keys")
    assert keys.status_code == 200
    sign_ins = keys.text.split('id="sign-ins"', 1)[1].split("</table>", 1)[0]
    assert "web-operator" in sign_ins  # its sign-in above is in the trail
    audit = await admin.get("/audit?entity=dashboard")
    assert 'data-action="sign_in"' in audit.text
    for path in ("/audit", "/keys", "/programs", "/programs/new", "/calendars", "/calendars/new"):
        english = await admin.get(path + "?lang=en")
        assert english.status_code == 200 and 'lang="en"' in english.text, path


# --- in Chromium ----------------------------------------------------------------------------


@asynccontextmanager
async def serve(settings: Settings, db: Database) -> AsyncIterator[str]:
    app = create_app(settings, db)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    async with asyncio.TaskGroup() as tg:
        serving = tg.create_task(server.serve(), name="uvicorn")
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.05)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            await serving


@asynccontextmanager
async def browser_page(base_url: str) -> AsyncIterator[Page]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=list(CHROMIUM_FLAGS)
        )
        context = await browser.new_context(base_url=base_url,
                                            viewport={"width": 1280, "height": 900})  # fmt: skip
        page = await context.new_page()
        page.set_default_timeout(15_000)
        try:
            yield page
        finally:
            await browser.close()


async def sign_in(page: Page, key: str) -> None:
    await page.goto("/login")
    await page.fill("#key", key)
    await page.click("form[action='/login'] button[type=submit]")
    await page.wait_for_url("**/")


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture
def chromium() -> None:
    chromium_path()  # fail (CI) or skip before starting anything


@pytest.mark.slow
@pytest.mark.usefixtures("chromium")
async def test_operator_flows_in_chromium(
    settings: Settings, db: Database, seeded: dict[Role, str]
) -> None:
    async with serve(settings, db) as base, browser_page(base) as page:
        await sign_in(page, seeded[Role.OPERATOR])
        # a program from a template; editing a level redraws tonight's curve
        await page.goto("/programs")
        await page.click("#program-templates a:has-text('Hà Nội 70/30')")
        await page.fill("input[name=name]", "Hà Nội thử")
        line = page.locator("#curve-line")
        first = await line.get_attribute("points")
        assert first
        await page.fill("input[name='steps.1.level']", "10")
        await page.wait_for_function(
            "p => document.getElementById('curve-line').getAttribute('points') !== p", arg=first
        )
        changed = await line.get_attribute("points")
        assert changed and changed != first
        await shot(page, "program-editor")
        # an invalid step: its error beside it, the curve withdrawn
        await page.fill("input[name='steps.0.level']", "140")
        error = page.locator("[data-error-for='steps.0.level']")
        await error.wait_for(state="visible")
        assert await error.inner_text()
        assert await page.get_attribute("input[name='steps.0.level']", "aria-invalid") == "true"
        await shot(page, "program-invalid-step")
        await page.fill("input[name='steps.0.level']", "70")
        await page.wait_for_function(
            "() => !document.querySelector(\"[data-error-for='steps.0.level']\").textContent"
        )
        # add a step, move it up, save
        await page.click("#step-add")
        await page.fill("input[name='steps.3.anchor']", "02:00")
        await page.fill("input[name='steps.3.level']", "20")
        await page.click("tr.step-row[data-index='3'] button[data-move='up']")
        assert await page.input_value("input[name='steps.2.anchor']") == "02:00"
        await page.click("#program-save")
        await page.wait_for_url("**/programs/*")
        async with db.sessions() as session:
            saved = (
                await session.exec(select(ProgramRow).where(ProgramRow.name == "Hà Nội thử"))
            ).one()
        assert [s["level"] for s in saved.steps] == [70, 10, 20, 0]
        # edit it again (level 10 -> 25) for the audit trail
        await page.fill("input[name='steps.1.level']", "25")
        await page.click("#program-save")
        await page.wait_for_url("**/programs/*")

        # a holiday rule on the default calendar changes the Tết preview
        calendar_id = await _default_calendar(db)
        preview = f"/calendars/{calendar_id}?date={TET_2027}&subject=group:1"
        await page.goto(preview)
        old = await page.get_attribute("#preview-programs", "data-programs")
        await page.click("#rule-add")
        await page.select_option("select[name='rules.0.kind']", "holiday")
        await page.select_option("select[name='rules.0.program_id']", label="Hà Nội thử")
        await page.select_option("select[name='rules.0.holiday']", "tet")
        await page.click("#calendar-save")
        await page.wait_for_url(f"**/calendars/{calendar_id}")
        await page.goto(preview)
        new = await page.get_attribute("#preview-programs", "data-programs")
        assert new == "Hà Nội thử" and new != old
        await shot(page, "calendar-holiday-preview")

        # an admin revokes the operator's key: signing in with it then fails
        await page.click("#logout")
        await sign_in(page, seeded[Role.ADMIN])
        await page.goto("/audit?entity=program")
        entry = page.locator(f".audit-entry[data-entity-id='{saved.id}'][data-action='update']")
        await entry.first.wait_for()
        row = entry.first.locator("tr[data-path='steps.1.level']")
        assert await row.locator(".before").inner_text() == "10"
        assert await row.locator(".after").inner_text() == "25"
        await shot(page, "audit-program-diff")
        await page.goto("/keys")
        await page.click("tr[data-key='web-operator'] button")
        await page.wait_for_url("**/keys")
        assert "web-operator" in await page.locator("#sign-ins").inner_text()
        await shot(page, "keys-revoked")
        await page.click("#logout")
        await page.goto("/login")
        await page.fill("#key", seeded[Role.OPERATOR])
        await page.click("form[action='/login'] button[type=submit]")
        await page.wait_for_load_state()
        assert "/login" in page.url
        assert await page.locator("text=Khóa API không hợp lệ").count() == 1
    async with db.sessions() as session:
        revoked = (
            await session.exec(select(AuditEntry).where(AuditEntry.action == "revoke"))
        ).all()
    assert [r.entity_id for r in revoked] and revoked[0].actor == "web-admin"


async def test_calendar_form_names_the_rule_and_assigns_groups(dash: Dash, db: Database) -> None:
    calendar_id = await _default_calendar(db)
    op = await dash.signed_in(Role.OPERATOR)
    page = await op.get(f"/calendars/{calendar_id}")
    program_id = re.search(r'name="rules\.0\.program_id">.*?<option value="(\d+)"', page.text,
                           re.S)  # fmt: skip
    assert program_id is not None
    bad = await op.post(f"/calendars/{calendar_id}", {
        "name": "Đông Hà default", "rules.0.kind": "date",
        "rules.0.program_id": program_id.group(1),
    })  # fmt: skip
    assert bad.status_code == 422
    assert 'data-error-for="rules.0.date"' in bad.text
    moved = await op.post(f"/calendars/{calendar_id}", {
        "name": "x", "rules.0.kind": "date", "rules.1.kind": "holiday", "edit": "up:1",
    })  # fmt: skip
    assert moved.status_code == 200 and 'id="unsaved"' in moved.text
    assert moved.text.index('value="holiday" selected') < moved.text.index('value="date" selected')
    assigned = await op.post(f"/calendars/{calendar_id}/assign", {"group_id": "1"})
    assert assigned.status_code == 303
    page = await op.get(f"/calendars/{calendar_id}?date=9999-12-31&subject=luminaire:999999")
    assert page.status_code == 200
    assert 'id="preview-error"' in page.text
    assert 'href="/groups/1"' in page.text.split('id="assigned"', 1)[1].split("</ul>", 1)[0]
    gone = await op.post(f"/calendars/{calendar_id}/assign", {"group_id": "1", "unassign": "1"})
    assert gone.status_code == 303
    far = await op.post("/programs/preview", {**_form("x", [("sunset", "100")]),
                                              "night": "9999-12-31"})  # fmt: skip
    assert far.status_code == 200 and far.json()["curve"] is not None


async def test_a_new_key_is_shown_once_and_signs_in(dash: Dash) -> None:
    admin = await dash.signed_in(Role.ADMIN)
    created = await admin.post("/keys", {"name": "Đội 3", "role": "maintenance"})
    assert created.status_code == 200
    found = re.search(r'<code id="new-key">(sl_[^<]+)</code>', created.text)
    assert found is not None
    key = found.group(1)
    assert key not in (await admin.get("/keys")).text
    crew = dash.anonymous()
    assert (await crew.post("/login", data={"key": key, "next": "/"})).status_code == 303
    again = await admin.post("/keys", {"name": "Đội 3", "role": "viewer"})
    assert again.status_code == 409
    trail = await admin.get("/audit?entity=api_key")
    assert 'data-action="create"' in trail.text and "Đội 3" in trail.text

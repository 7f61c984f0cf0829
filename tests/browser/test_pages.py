"""The dashboard over HTTP, without a browser: sign-in, roles, forms, errors, languages.

The app runs in-process without a controller (on SQLite and PostgreSQL); what needs
the running system and a real browser is in ``test_dashboard.py``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import col, func, select

from api.dashboard import TEMPLATES
from api.dashboard.charts import nice_max, nice_step
from api.dashboard.config import load_config
from api.dashboard.geo import MapPoint, build_map, convex_hull, walking_order
from api.dashboard.i18n import STRINGS, Lang, Translator
from api.dashboard.sessions import SESSION_COOKIE, SessionStore
from api.dashboard.status import StateWord
from controller.access import auth
from controller.access.schemas import Role
from controller.config.settings import Settings
from controller.core.errors import ConfigError
from controller.core.values import CommandSource
from controller.faults.rules import FaultType
from controller.inventory.schemas import GroupKind
from controller.store.db import Database
from controller.store.tables import EnergyDaily, FaultRow, Luminaire, OverrideRow
from tests.browser.conftest import Dash

PAGES = ("/", "/map", "/luminaires", "/luminaires/1", "/groups", "/groups/1", "/faults",
         "/import", "/energy", "/luminaires?ward=Ph%C6%B0%E1%BB%9Dng%201&page=2")  # fmt: skip


async def test_pages_need_a_session(dash: Dash) -> None:
    client = dash.anonymous()
    response = await client.get("/map")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fmap"
    login = await client.get("/login")
    assert login.status_code == 200
    assert "Đăng nhập" in login.text  # Vietnamese by default
    assert 'lang="vi"' in login.text


async def test_sign_in_sets_an_opaque_http_only_cookie(dash: Dash) -> None:
    client = dash.anonymous()
    bad = await client.post("/login", data={"key": "sl_not-a-key", "next": "/map"})
    assert bad.status_code == 401
    assert "Khóa API không hợp lệ" in bad.text
    key = dash.keys[Role.OPERATOR]
    good = await client.post("/login", data={"key": key, "next": "/map"})
    assert good.status_code == 303
    assert good.headers["location"] == "/map"
    cookie = good.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "httponly" in cookie.lower()
    assert "samesite=lax" in cookie.lower()
    token = cookie.split(";")[0].split("=", 1)[1]
    assert key not in cookie and auth.hash_key(key) not in cookie
    assert len(token) >= 40
    page = await client.get("/map")
    assert page.status_code == 200
    assert "web-operator" in page.text


async def test_next_must_be_a_local_path(dash: Dash) -> None:
    client = dash.anonymous()
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil"):
        response = await client.post("/login", data={"key": dash.keys[Role.VIEWER], "next": target})
        assert response.headers["location"] == "/", target


async def test_every_page_renders_for_every_role(dash: Dash) -> None:
    for role in Role:
        browser = await dash.signed_in(role)
        for path in PAGES:
            response = await browser.get(path)
            assert response.status_code == 200, (role, path, response.text[:500])
            assert "Content-Security-Policy" in response.headers
    page = await (await dash.signed_in(Role.VIEWER)).get("/")
    assert "Bộ điều khiển không chạy" in page.text  # no controller in this process


async def test_english_switch_is_remembered(dash: Dash) -> None:
    browser = await dash.signed_in(Role.VIEWER)
    english = await browser.get("/faults?lang=en")
    assert 'lang="en"' in english.text
    assert "Faults" in english.text
    assert "sl_lang=en" in english.headers["set-cookie"]
    again = await browser.get("/faults")
    assert 'lang="en"' in again.text
    back = await browser.get("/faults?lang=vi")
    assert "Sự cố" in back.text


async def test_map_has_one_marker_per_luminaire(dash: Dash) -> None:
    browser = await dash.signed_in(Role.VIEWER)
    page = await browser.get("/map")
    async with dash.db.sessions() as session:
        count = (await session.exec(select(func.count()).select_from(Luminaire))).one()
    assert count == 500
    assert len(re.findall(r'<circle id="m-\d+" class="marker m-unknown', page.text)) == count
    assert "<polyline" in page.text  # streets drawn from the poles: no tiles needed
    state = await browser.get("/map/state.json")
    assert state.json()["states"] == {}
    anonymous = await dash.anonymous().get("/map/state.json")
    assert anonymous.status_code == 401


async def test_a_tile_server_is_used_when_configured(
    settings: Settings, db: Database, seeded: dict[Role, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "STREETLIGHT_DASHBOARD_TILE_URL", "https://tiles.example:8443/{z}/{x}/{y}.png"
    )
    monkeypatch.setenv("STREETLIGHT_DASHBOARD_TILE_ATTRIBUTION", "© OpenStreetMap contributors")
    tiled = Dash(settings, db, seeded)
    try:
        page = await (await tiled.signed_in(Role.VIEWER)).get("/map")
    finally:
        await tiled.close()
    assert 'data-tile-url="https://tiles.example:8443/{z}/{x}/{y}.png"' in page.text
    assert "© OpenStreetMap contributors" in page.text
    assert (
        "img-src 'self' data: https://tiles.example:8443;"
        in page.headers["content-security-policy"]
    )
    assert 'class="wards"' not in page.text  # the tiles replace the drawn outline


async def test_override_form_by_role(dash: Dash) -> None:
    form = {"level": "40", "duration_min": "30", "reason": "lễ hội"}
    for role in (Role.VIEWER, Role.MAINTENANCE):
        browser = await dash.signed_in(role)
        page = await browser.get("/luminaires/3")
        assert 'id="override-form"' not in page.text
        refused = await browser.post("/luminaires/3/override", form)
        assert refused.status_code == 403
        assert "text/html" in refused.headers["content-type"]
        assert "không có quyền" in refused.text
    operator = await dash.signed_in(Role.OPERATOR)
    page = await operator.get("/luminaires/3")
    assert 'id="override-form"' in page.text
    done = await operator.post("/luminaires/3/override", form)
    assert done.status_code == 303
    async with dash.db.sessions() as session:
        rows = (await session.exec(select(OverrideRow))).all()
    assert [(r.level, r.luminaire_ids, r.reason, r.created_by) for r in rows] == [
        (40, [3], "lễ hội", "web-operator")
    ]
    shown = await operator.get("/luminaires/3")
    assert "Đã đặt mức 40% trong 30 phút" in shown.text
    assert "Kết thúc ngay" in shown.text
    ended = await operator.post(f"/overrides/{rows[0].id}/end", {"next": "/luminaires/3"})
    assert ended.status_code == 303
    async with dash.db.sessions() as session:
        row = await session.get(OverrideRow, rows[0].id)
    assert row is not None and row.cancelled_at is not None


async def test_group_override_targets_the_group(dash: Dash) -> None:
    operator = await dash.signed_in(Role.OPERATOR)
    done = await operator.post(
        "/groups/2/override", {"level": "0", "duration_min": "15", "reason": "bảo trì"}
    )
    assert done.status_code == 303
    async with dash.db.sessions() as session:
        row = (await session.exec(select(OverrideRow))).one()
    assert row.group_ids == [2] and row.luminaire_ids == [] and row.level == 0


async def test_invalid_override_lists_the_fields_next_to_the_form(dash: Dash) -> None:
    operator = await dash.signed_in(Role.OPERATOR)
    response = await operator.post(
        "/luminaires/3/override", {"level": "150", "duration_min": "0", "reason": "x"}
    )
    assert response.status_code == 422
    assert 'id="form-errors"' in response.text
    assert 'data-field="level"' in response.text
    assert 'data-field="duration_min"' in response.text
    assert "Phải nhỏ hơn hoặc bằng 100" in response.text
    assert 'aria-invalid="true"' in response.text
    assert 'value="150"' in response.text  # what was typed stays in the form
    missing = await operator.post("/luminaires/3/override", {"level": "", "duration_min": "5"})
    assert missing.status_code == 422
    assert 'data-field="reason"' in missing.text and "Bắt buộc" in missing.text
    async with dash.db.sessions() as session:
        assert (await session.exec(select(func.count()).select_from(OverrideRow))).one() == 0


async def test_forms_need_the_csrf_token(dash: Dash) -> None:
    operator = await dash.signed_in(Role.OPERATOR)
    operator.csrf = "forged"
    response = await operator.post(
        "/luminaires/3/override", {"level": "40", "duration_min": "5", "reason": "x"}
    )
    assert response.status_code == 403
    assert "Biểu mẫu đã hết hạn" in response.text


async def _a_fault(dash: Dash) -> int:
    now = datetime.now(UTC)
    async with dash.db.sessions() as session:
        row = FaultRow(
            subject_kind="luminaire", subject_id=7, luminaire_id=7, gateway_id=1,
            fault_type="lampFailure", severity="critical", state="open", ward="Phường 1",
            street="Lê Duẩn", since=now - timedelta(minutes=5), last_seen=now,
        )  # fmt: skip
        session.add(row)
        await session.commit()
        assert row.id is not None
        return row.id


async def test_faults_are_handled_by_maintenance_only(dash: Dash) -> None:
    fault_id = await _a_fault(dash)
    operator = await dash.signed_in(Role.OPERATOR)
    listing = await operator.get("/faults")
    assert f'id="fault-{fault_id}"' in listing.text
    assert 'class="ack"' not in listing.text
    refused = await operator.post(f"/faults/{fault_id}/ack", {"note": "x"})
    assert refused.status_code == 403
    crew = await dash.signed_in(Role.MAINTENANCE)
    listing = await crew.get("/faults?state=open&severity=critical&type=lampFailure")
    assert 'class="ack"' in listing.text
    acked = await crew.post(
        f"/faults/{fault_id}/ack", {"note": "đội 2 đang đến", "next": "/faults?state=all"}
    )
    assert acked.status_code == 303 and acked.headers["location"] == "/faults?state=all"
    again = await crew.post(f"/faults/{fault_id}/ack", {"next": "/faults"})
    assert again.status_code == 303  # a conflict comes back as a message, not a 500
    shown = await crew.get("/faults?state=all")
    assert "already acknowledged" in shown.text
    resolved = await crew.post(f"/faults/{fault_id}/resolve", {"note": "thay đèn"})
    assert resolved.status_code == 303
    async with dash.db.sessions() as session:
        row = await session.get(FaultRow, fault_id)
    assert row is not None
    assert (row.state, row.acknowledged_note, row.resolved_note) == (
        "resolved", "đội 2 đang đến", "thay đèn",
    )  # fmt: skip
    filtered = await crew.get("/faults?state=open")
    assert f'id="fault-{fault_id}"' not in filtered.text


async def test_logout_and_revocation_end_the_session(dash: Dash) -> None:
    browser = await dash.signed_in(Role.VIEWER)
    out = await browser.post("/logout")
    assert out.status_code == 303 and out.headers["location"] == "/login?bye=1"
    assert (await browser.get("/")).status_code == 303
    other = await dash.signed_in(Role.MAINTENANCE)
    assert (await other.get("/")).status_code == 200
    async with dash.db.sessions() as session:
        await auth.revoke_key(session=session, name_or_id="web-maintenance")
    assert (await other.get("/")).status_code == 303


async def test_api_and_docs_are_untouched(dash: Dash) -> None:
    client = dash.anonymous()
    assert (await client.get("/docs")).status_code == 200
    assert (await client.get("/api/v1/health")).json()["status"] == "ok"
    missing_api = await client.get("/api/v1/nothing-here")
    assert missing_api.status_code == 404 and missing_api.json()["error"] == "not_found"
    missing_page = await client.get("/nothing-here")
    assert missing_page.status_code == 404 and "<html" in missing_page.text
    unauth = await client.get("/api/v1/faults")
    assert unauth.status_code == 401 and unauth.json()["error"] == "not_authenticated"
    openapi = (await client.get("/openapi.json")).json()
    pages = {"/", "/login", "/map", "/faults", "/energy", "/luminaires", "/groups", "/import"}
    assert not pages & set(openapi["paths"])
    css = await client.get("/static/dashboard.css")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]


async def test_unknown_things_give_html_errors(dash: Dash) -> None:
    browser = await dash.signed_in(Role.VIEWER)
    missing = await browser.get("/luminaires/99999")
    assert missing.status_code == 404 and "Lỗi 404" in missing.text
    bad = await browser.get("/luminaires/abc")
    assert bad.status_code == 422 and "<html" in bad.text
    bad_filter = await browser.get("/faults?state=nonsense")
    assert bad_filter.status_code == 422
    for path in ("/luminaires/9223372036854775808", "/groups/2147483648", "/faults?page=10**9"):
        response = await browser.get(path.replace("10**9", str(10**9)))
        assert response.status_code == 422, path  # refused before the database
    huge = await browser.get("/faults?luminaire=99999999999999999999")
    assert huge.status_code == 200


async def test_import_page_reports_rows_and_imports(dash: Dash) -> None:
    viewer = await dash.signed_in(Role.VIEWER)
    files = {"file": ("x.csv", b"name\n", "text/csv")}
    refused = await viewer.client.post("/import", data={"csrf": viewer.csrf}, files=files)
    assert refused.status_code == 403
    operator = await dash.signed_in(Role.OPERATOR)
    bad_csv = (
        "name,gateway,address,lamp_type,latitude,longitude,street,ward\n"
        "NEW-001,gw-p1-le-duan,63,LED 150 W,16.82,107.10,Lê Duẩn,Phường 1\n"
        "NEW-002,gw-p1-le-duan,62,LED 150 W,999,107.10,Lê Duẩn,Phường 1\n"
    )
    files = {"file": ("new.csv", bad_csv.encode(), "text/csv")}
    response = await operator.client.post("/import", data={"csrf": operator.csrf}, files=files)
    assert response.status_code == 422
    assert "dòng" in response.text  # the failing row is named
    good = bad_csv.replace(",999,", ",16.83,")
    files = {"file": ("new.csv", good.encode(), "text/csv")}
    response = await operator.client.post("/import", data={"csrf": operator.csrf}, files=files)
    assert response.status_code == 303, response.text
    page = await operator.get("/import")
    assert "Đã nhập 2 đèn" in page.text
    async with dash.db.sessions() as session:
        names = (
            await session.exec(select(Luminaire.name).where(col(Luminaire.name).like("NEW-%")))
        ).all()
    assert sorted(names) == ["NEW-001", "NEW-002"]


async def test_energy_page_charts_and_csv(dash: Dash) -> None:
    today = datetime.now(UTC).astimezone(ZoneInfo("Asia/Ho_Chi_Minh")).date()
    async with dash.db.sessions() as session:
        lums = (await session.exec(select(Luminaire).where(col(Luminaire.id) <= 120))).all()
        for lum in lums:
            for back in (1, 2, 3):
                session.add(
                    EnergyDaily(
                        luminaire_id=lum.id or 0, day=today - timedelta(days=back),
                        ward=lum.ward, gateway_id=lum.gateway_id, energy_wh=700.0 + back,
                        burning_s=11 * 3600, samples=60,
                    )
                )  # fmt: skip
        await session.commit()
    wards = {lum.ward for lum in lums}
    browser = await dash.signed_in(Role.VIEWER)
    page = await browser.get("/energy")
    assert page.status_code == 200
    bars = re.findall(r'<rect class="bar"[^>]*data-series="([^"]+)"', page.text)
    assert set(bars) >= wards and len(bars) >= 3 * len(wards)  # 3 days stacked by ward
    assert 'class="chart chart-energy-wards"' in page.text
    links = re.findall(r'href="(/energy/report\.csv\?[^"]+)"', page.text)
    assert len(links) == 4
    csv = await browser.get(links[0].replace("&amp;", "&"))
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv.headers["content-disposition"]
    lines = csv.text.strip().splitlines()
    assert lines[0].startswith("period,period_start,period_end,key,name,energy_kwh")
    assert len(lines) == 1 + 3 * len(wards)
    overview = await browser.get("/")
    assert "Điện năng tháng này" in overview.text
    too_long = await browser.get("/energy?from=2026-01-01&to=2026-12-31")
    assert too_long.status_code == 422 and 'data-field="to"' in too_long.text
    bad = await browser.get("/energy?from=yesterday&to=2026-12-31")
    assert bad.status_code == 422 and 'data-field="from"' in bad.text


# --- pure parts ----------------------------------------------------------------------------


def test_every_template_string_exists_in_both_languages() -> None:
    used: set[str] = set()
    for path in Path(TEMPLATES).glob("*.html"):
        text = path.read_text("utf-8")
        used.update(re.findall(r"""\bt\(\s*['"]([a-z0-9_]+)['"]\s*[,)]""", text))
    assert len(used) > 50, "no t('...') found: the pattern is wrong"
    missing = sorted(k for k in used if k not in STRINGS)
    assert not missing
    # keys built in templates: t('state_' ~ word) and the like
    families = {
        "state_": [s.value for s in StateWord],
        "fstate_": ["active", "open", "acknowledged", "resolved"],
        "sev_": ["warning", "critical"],
        "kind_": [k.value for k in GroupKind],
        "role_": [r.value for r in Role],
        "source_": [s.value for s in CommandSource],
        "field_": ["level", "duration_min", "reason"],
        "nav_": ["overview", "map", "luminaires", "groups", "faults", "energy", "import"],
    }
    dynamic = [f"{prefix}{v}" for prefix, values in families.items() for v in values]
    assert not [k for k in dynamic if k not in STRINGS]
    for key, (vi, en) in STRINGS.items():
        assert vi and en, key
        assert re.findall(r"{\w+}", vi) == re.findall(r"{\w+}", en) or sorted(
            re.findall(r"{\w+}", vi)
        ) == sorted(re.findall(r"{\w+}", en)), key
    for fault in FaultType:
        assert f"ft_{fault.value}" in STRINGS, fault


def test_numbers_and_times_follow_the_language() -> None:
    zone = ZoneInfo("Asia/Ho_Chi_Minh")
    vi, en = Translator(Lang.VI, zone), Translator(Lang.EN, zone)
    at = datetime(2026, 6, 21, 11, 5, tzinfo=UTC)
    assert vi.num(1234.5, 1) == "1.234,5" and en.num(1234.5, 1) == "1,234.5"
    assert vi.hm(at) == "18:05" and vi.when(at) == "18:05 21/06/2026"
    assert en.when(at) == "18:05 2026-06-21"
    assert vi.fault_type("lampFailure") == "Hỏng đèn" and en.fault_type("x") == "x"


def test_sessions_expire_and_are_capped() -> None:
    now = [0.0]
    store = SessionStore(idle_s=60, max_age_s=300, max_sessions=2, clock=lambda: now[0])
    token, _ = store.create(key_hash="h", name="a", role=Role.VIEWER)
    now[0] = 50
    assert store.get(token) is not None
    now[0] = 105
    assert store.get(token) is not None  # touched at 50: idle for 55 s
    now[0] = 170
    assert store.get(token) is None  # idle for 65 s
    first, _ = store.create(key_hash="h", name="a", role=Role.VIEWER)
    for step in range(6):
        now[0] += 50
        assert store.get(first) is not None, step
    now[0] += 50
    assert store.get(first) is None  # older than 300 s although used
    a, _ = store.create(key_hash="x", name="a", role=Role.VIEWER)
    b, _ = store.create(key_hash="y", name="b", role=Role.VIEWER)
    c, _ = store.create(key_hash="y", name="b", role=Role.VIEWER)
    assert len(store) == 2 and store.get(a) is None
    assert store.drop_key("y") == 2 and store.get(b) is None and store.get(c) is None


def test_config_comes_from_the_environment_and_is_checked() -> None:
    assert load_config({}).tile_url is None
    config = load_config(
        {
            "STREETLIGHT_DASHBOARD_TILE_URL": "https://tiles.example/{z}/{x}/{y}.png",
            "STREETLIGHT_DASHBOARD_SESSION_IDLE_MIN": "30",
        }
    )
    assert config.tile_origin == "https://tiles.example"
    assert config.session_idle_s == 1800
    with pytest.raises(ConfigError, match="STREETLIGHT_DASHBOARD_TILE_URL"):
        load_config({"STREETLIGHT_DASHBOARD_TILE_URL": "https://tiles.example/{z}.png"})
    with pytest.raises(ConfigError, match="SESSION_IDLE_MIN"):
        load_config({"STREETLIGHT_DASHBOARD_SESSION_IDLE_MIN": "soon"})


def test_map_geometry() -> None:
    assert convex_hull([(0, 0), (2, 0), (1, 1), (2, 2), (0, 2)]) == [
        (0, 0), (2, 0), (2, 2), (0, 2),
    ]  # fmt: skip
    line = [(0.0, 0.0), (3.0, 0.0), (1.0, 0.0), (2.0, 0.0), (50.0, 0.0), (51.0, 0.0)]
    runs = walking_order(line)
    assert [[line[i][0] for i in run] for run in runs] == [[0, 1, 2, 3], [50, 51]]
    points = [
        MapPoint(i, f"P{i}", 16.81 + i * 1e-4, 107.10 + i * 1e-4, "Phường 1", "Lê Duẩn")
        for i in range(10)
    ]
    geo = build_map(points, (16.8163, 107.1003))
    assert len(geo.markers) == 10 and len(geo.streets) == 1 and len(geo.wards) == 1
    x, y, w, h = geo.view
    assert all(x <= m.x <= x + w and y <= m.y <= y + h for m in geo.markers)
    assert max(w, h) <= 1000 * 1.2
    assert build_map([], (16.8163, 107.1003)).markers == ()


def test_chart_steps() -> None:
    assert nice_step(100) == 20 and nice_step(7) == 2 and nice_step(0) == 1
    assert nice_max(113) == 125 and nice_max(96) == 100 and nice_max(0) == 1

"""Every visible string of the dashboard, in Vietnamese (the default) and English.

``STRINGS`` maps a key to ``(vi, en)``, so a string cannot exist in one language only;
``tests/browser/test_pages.py`` checks that every key a template uses is here. Numbers
follow the language (``1.234,5`` / ``1,234.5``); times are the site's local time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, tzinfo
from enum import StrEnum
from typing import Any

from controller.alerts.messages import Lang as AlertLang
from controller.alerts.messages import format_number


class Lang(StrEnum):
    VI = "vi"
    EN = "en"


DEFAULT_LANG = Lang.VI

STRINGS: Mapping[str, tuple[str, str]] = {
    # --- frame
    "app_name": ("Chiếu sáng thông minh", "Smart street lighting"),
    "skip_to_content": ("Chuyển đến nội dung", "Skip to content"),
    "nav_label": ("Điều hướng chính", "Main navigation"),
    "nav_overview": ("Tổng quan", "Overview"),
    "nav_map": ("Bản đồ", "Map"),
    "nav_luminaires": ("Đèn", "Luminaires"),
    "nav_groups": ("Nhóm đèn", "Groups"),
    "nav_faults": ("Sự cố", "Faults"),
    "nav_energy": ("Năng lượng", "Energy"),
    "nav_import": ("Nhập dữ liệu", "Import"),
    "language": ("Ngôn ngữ", "Language"),
    "signed_in_as": ("Đăng nhập: {name}", "Signed in: {name}"),
    "sign_out": ("Đăng xuất", "Sign out"),
    "footer_api": (
        "API cho IOC: /api/v1 (tài liệu: /docs)",
        "API for the IOC: /api/v1 (docs: /docs)",
    ),
    "clock_now": ("Giờ hệ thống: {time}", "System time: {time}"),
    "busy": ("Đang xử lý…", "Working…"),
    "none": ("—", "—"),
    "yes": ("có", "yes"),
    "no": ("không", "no"),
    "back": ("Quay lại", "Back"),
    "details": ("Chi tiết", "Details"),
    "page_of": ("Trang {page}/{pages} ({total} mục)", "Page {page} of {pages} ({total} items)"),
    "prev_page": ("‹ Trang trước", "‹ Previous"),
    "next_page": ("Trang sau ›", "Next ›"),
    "filter": ("Lọc", "Filter"),
    "all": ("Tất cả", "All"),
    "search": ("Tìm", "Search"),
    "search_placeholder": ("Tên cột, đường, phường", "Pole, street, ward"),
    "data_table": ("Bảng số liệu", "Data table"),
    # --- roles
    "role_admin": ("quản trị", "admin"),
    "role_operator": ("vận hành", "operator"),
    "role_maintenance": ("bảo trì", "maintenance"),
    "role_viewer": ("chỉ xem", "viewer"),
    # --- sign in
    "login_title": ("Đăng nhập", "Sign in"),
    "login_intro": (
        "Nhập khóa API do quản trị viên cấp cho bạn.",
        "Enter the API key your administrator gave you.",
    ),
    "login_key": ("Khóa API", "API key"),
    "login_submit": ("Đăng nhập", "Sign in"),
    "login_failed": ("Khóa API không hợp lệ hoặc đã bị thu hồi.", "Invalid or revoked API key."),
    "login_missing": ("Vui lòng nhập khóa API.", "Please enter an API key."),
    "login_expired": (
        "Phiên đăng nhập đã hết hạn, vui lòng đăng nhập lại.",
        "Your session has expired; please sign in again.",
    ),
    "signed_out": ("Bạn đã đăng xuất.", "You have signed out."),
    "welcome": ("Xin chào {name}.", "Welcome, {name}."),
    # --- errors
    "error_title": ("Lỗi {status}", "Error {status}"),
    "error_403": ("Bạn không có quyền thực hiện thao tác này.", "You are not allowed to do this."),
    "error_404": ("Không tìm thấy trang hoặc đối tượng.", "Page or item not found."),
    "error_409": (
        "Không thể thực hiện: trạng thái đã thay đổi.",
        "Cannot do this: the state has changed.",
    ),
    "error_422": ("Dữ liệu không hợp lệ.", "Invalid input."),
    "error_503": ("Dịch vụ tạm thời không sẵn sàng.", "Service temporarily unavailable."),
    "error_csrf": (
        "Biểu mẫu đã hết hạn. Vui lòng tải lại trang và thử lại.",
        "The form has expired. Please reload the page and try again.",
    ),
    "error_server_said": ("Máy chủ trả lời: {message}", "The server said: {message}"),
    "form_errors": ("Vui lòng sửa các mục sau:", "Please correct the following:"),
    "field_other": ("Khác", "Other"),
    "field_required": ("Bắt buộc phải nhập", "Required"),
    "v_less_than_equal": ("Phải nhỏ hơn hoặc bằng {le}", "Must be at most {le}"),
    "v_greater_than_equal": ("Phải lớn hơn hoặc bằng {ge}", "Must be at least {ge}"),
    "v_int_parsing": ("Phải là số nguyên", "Must be a whole number"),
    "v_int_from_float": ("Phải là số nguyên", "Must be a whole number"),
    "v_string_too_long": ("Tối đa {max_length} ký tự", "At most {max_length} characters"),
    "v_string_too_short": ("Bắt buộc phải nhập", "Required"),
    # --- states
    "state_on": ("Bật", "On"),
    "state_dimmed": ("Giảm sáng", "Dimmed"),
    "state_off": ("Tắt", "Off"),
    "state_offline": ("Mất kết nối", "Offline"),
    "state_faulty": ("Có sự cố", "Faulty"),
    "state_unknown": ("Không rõ", "Unknown"),
    "total": ("Tổng", "Total"),
    "no_controller": (
        "Bộ điều khiển không chạy trong tiến trình này: không có trạng thái trực tiếp của đèn.",
        "The controller is not running in this process: no live luminaire state.",
    ),
    # --- sources
    "source_default": ("mặc định", "default"),
    "source_program": ("chương trình", "program"),
    "source_override": ("điều khiển thủ công", "manual override"),
    "source_failsafe": ("an toàn (failsafe)", "failsafe"),
    "detail_program": ("chương trình {name}, bước {step}", "program {name}, step {step}"),
    "detail_program_default": (
        "chương trình {name} (mức mặc định)",
        "program {name} (default level)",
    ),
    "detail_override": ("lệnh thủ công #{id}", "override #{id}"),
    # --- overview
    "overview_title": ("Tổng quan", "Overview"),
    "lights_now": ("Đèn lúc này", "Lights now"),
    "gateways_status": (
        "Gateway: {online} trực tuyến, {offline} mất kết nối",
        "Gateways: {online} online, {offline} offline",
    ),
    "per_ward": ("Theo phường", "By ward"),
    "ward": ("Phường", "Ward"),
    "open_faults": ("Sự cố đang mở", "Open faults"),
    "open_faults_counts": (
        "{critical} nghiêm trọng, {warning} cảnh báo ({acknowledged} đã tiếp nhận)",
        "{critical} critical, {warning} warning ({acknowledged} acknowledged)",
    ),
    "no_open_faults": ("Không có sự cố đang mở.", "No open faults."),
    "all_faults": ("Xem tất cả sự cố", "See all faults"),
    "tonight": ("Đêm nay ({date})", "Tonight ({date})"),
    "tonight_of": ("Lịch: {calendar}", "Calendar: {calendar}"),
    "no_calendar": ("không có lịch (mức mặc định)", "no calendar (default level)"),
    "timeline_for": ("Xem lịch của", "Show the schedule of"),
    "default_calendar": ("Lịch mặc định", "Default calendar"),
    "show": ("Xem", "Show"),
    "sunset": ("Mặt trời lặn", "Sunset"),
    "civil_dusk": ("Chạng vạng tối", "Civil dusk"),
    "civil_dawn": ("Rạng đông", "Civil dawn"),
    "sunrise": ("Mặt trời mọc", "Sunrise"),
    "now": ("Bây giờ", "Now"),
    "program_steps": ("Các bước trong đêm", "Steps tonight"),
    "time": ("Thời điểm", "Time"),
    "level": ("Mức sáng", "Level"),
    "source": ("Nguồn", "Source"),
    "no_steps": ("Không có thay đổi nào trong đêm.", "No changes tonight."),
    "step_chart_label": ("Mức sáng theo lịch trong đêm", "Scheduled level through the night"),
    "energy_today": ("Điện năng hôm nay", "Energy today"),
    "energy_month": ("Điện năng tháng này", "Energy this month"),
    "savings_of": ("tiết kiệm {kwh} kWh ({pct})", "saved {kwh} kWh ({pct})"),
    "co2_cost": ("{co2} kg CO₂ · {cost} đồng", "{co2} kg CO₂ · {cost} VND"),
    "coverage_of": (
        "so với {pct} thời gian tối có số liệu đo",
        "against the {pct} of dark time with telemetry",
    ),
    "no_energy": ("Chưa có số liệu năng lượng.", "No energy data yet."),
    "energy_details": ("Báo cáo năng lượng", "Energy report"),
    # --- map
    "map_title": ("Bản đồ đèn", "Luminaire map"),
    "map_label": (
        "Bản đồ {count} đèn, màu theo trạng thái",
        "Map of {count} luminaires, coloured by state",
    ),
    "map_help": (
        "Cuộn hoặc dùng nút +/− để phóng to, kéo để di chuyển, bấm vào đèn để xem chi tiết.",
        "Scroll or use +/− to zoom, drag to pan, click a light for its page.",
    ),
    "map_count": ("{count} đèn", "{count} luminaires"),
    "zoom_in": ("Phóng to", "Zoom in"),
    "zoom_out": ("Thu nhỏ", "Zoom out"),
    "zoom_reset": ("Toàn cảnh", "Fit all"),
    "map_offline_outline": (
        "Nền bản đồ vẽ từ vị trí các cột đèn (không cần Internet).",
        "Background drawn from the pole positions (no Internet needed).",
    ),
    "legend": ("Chú giải", "Legend"),
    "map_updated": ("Cập nhật lúc {time}", "Updated at {time}"),
    "map_list_link": ("Danh sách đèn (dạng bảng)", "List of luminaires (table)"),
    # --- luminaires
    "luminaires_title": ("Danh sách đèn", "Luminaires"),
    "name": ("Tên", "Name"),
    "street": ("Đường", "Street"),
    "gateway": ("Gateway", "Gateway"),
    "address": ("Địa chỉ", "Address"),
    "lamp_type": ("Loại đèn", "Lamp type"),
    "position": ("Tọa độ", "Position"),
    "installed_on": ("Ngày lắp", "Installed on"),
    "state": ("Trạng thái", "State"),
    "no_luminaires": ("Không có đèn nào.", "No luminaires."),
    "three_states": ("Ba giá trị trạng thái", "The three states"),
    "target": ("Mục tiêu", "Target"),
    "target_help": ("Bộ điều khiển muốn gì lúc này", "What the controller wants now"),
    "commanded": ("Đã ra lệnh", "Commanded"),
    "commanded_help": ("Gateway đã xác nhận", "What the gateway acknowledged"),
    "actual": ("Thực tế", "Actual"),
    "actual_help": ("Đèn báo về", "What the luminaire reports"),
    "at_time": ("lúc {time}", "at {time}"),
    "power": ("Công suất", "Power"),
    "voltage": ("Điện áp", "Voltage"),
    "power_factor": ("Hệ số công suất", "Power factor"),
    "temperature": ("Nhiệt độ", "Temperature"),
    "flags": ("Cờ báo", "Flags"),
    "online": ("Trực tuyến", "Online"),
    "gateway_online": ("Gateway trực tuyến", "Gateway online"),
    "rejected": ("Lệnh bị từ chối: {reason}", "Command rejected: {reason}"),
    "tonight_timeline": ("Lịch đêm nay", "Tonight's timeline"),
    "telemetry": ("Số liệu đo gần đây", "Recent telemetry"),
    "telemetry_hours": ("{hours} giờ qua", "last {hours} h"),
    "telemetry_label": (
        "Công suất (W, trục trái) và mức sáng (%, trục phải)",
        "Power (W, left axis) and level (%, right axis)",
    ),
    "no_readings": ("Không có số liệu trong khoảng thời gian này.", "No readings in this period."),
    "readings_count": ("{count} lần đo", "{count} readings"),
    "faults_of": ("Sự cố của đèn", "Faults of this luminaire"),
    "no_faults": ("Không có sự cố.", "No faults."),
    "show_on_map": ("Xem trên bản đồ", "Show on the map"),
    # --- overrides
    "override_title": ("Điều khiển thủ công", "Manual override"),
    "override_intro": (
        "Đặt mức sáng trong một khoảng thời gian; hết thời gian đèn tự trở về lịch.",
        "Set a level for a while; the lights return to their schedule by themselves.",
    ),
    "override_level": ("Mức sáng (%)", "Level (%)"),
    "override_duration": ("Thời gian (phút)", "Duration (minutes)"),
    "override_reason": ("Lý do", "Reason"),
    "override_reason_hint": ("Ví dụ: sự kiện, sự cố, bảo trì", "E.g. event, incident, maintenance"),
    "override_submit": ("Áp dụng", "Apply"),
    "override_done": (
        "Đã đặt mức {level}% trong {minutes} phút (lệnh #{id}).",
        "Set {level}% for {minutes} minutes (override #{id}).",
    ),
    "override_active": ("Lệnh thủ công đang có hiệu lực", "Overrides in force"),
    "override_until": (
        "{level}% đến {until} — {reason} ({who})",
        "{level}% until {until} — {reason} ({who})",
    ),
    "override_end": ("Kết thúc ngay", "End now"),
    "override_ended": ("Đã kết thúc lệnh thủ công #{id}.", "Override #{id} ended."),
    "override_read_only": (
        "Chỉ vai trò vận hành (hoặc quản trị) được điều khiển thủ công.",
        "Only operators (or admins) may set overrides.",
    ),
    "field_level": ("Mức sáng", "Level"),
    "field_duration_min": ("Thời gian", "Duration"),
    "field_reason": ("Lý do", "Reason"),
    "field_end": ("Thời điểm kết thúc", "End"),
    "field_targets": ("Đèn áp dụng", "Targets"),
    # --- groups
    "groups_title": ("Nhóm đèn", "Groups"),
    "group_kind": ("Loại nhóm", "Kind"),
    "group_members": ("Số đèn", "Luminaires"),
    "group_calendar": ("Lịch", "Calendar"),
    "kind_explicit": ("danh sách", "explicit list"),
    "kind_ward": ("theo phường", "by ward"),
    "kind_street": ("theo đường", "by street"),
    "kind_gateway": ("theo gateway", "by gateway"),
    "no_groups": ("Chưa có nhóm nào.", "No groups yet."),
    "members": ("Các đèn trong nhóm", "Members"),
    "members_shown": ("Hiển thị {shown}/{total} đèn.", "Showing {shown} of {total} luminaires."),
    "group_energy": ("Điện năng theo giờ (24 giờ qua)", "Energy per hour (last 24 h)"),
    "group_energy_label": ("Điện năng mỗi giờ, kWh", "Energy per hour, kWh"),
    "faults_of_group": ("Sự cố đang mở trong nhóm", "Open faults in this group"),
    # --- faults
    "faults_title": ("Sự cố", "Faults"),
    "fault_type": ("Loại sự cố", "Fault type"),
    "severity": ("Mức độ", "Severity"),
    "subject": ("Đối tượng", "Subject"),
    "since": ("Từ lúc", "Since"),
    "last_seen": ("Ghi nhận gần nhất", "Last seen"),
    "count": ("Số lần", "Count"),
    "handled": ("Xử lý", "Handling"),
    "note": ("Ghi chú", "Note"),
    "note_hint": ("Ví dụ: đội 2 đang đến", "E.g. crew 2 on its way"),
    "fault_ack": ("Tiếp nhận", "Acknowledge"),
    "fault_resolve": ("Đã xử lý xong", "Resolve"),
    "fault_acked": ("Đã tiếp nhận sự cố #{id}.", "Fault #{id} acknowledged."),
    "fault_resolved": ("Đã đóng sự cố #{id}.", "Fault #{id} resolved."),
    "fault_by": ("{who} lúc {time}", "{who} at {time}"),
    "faults_read_only": (
        "Chỉ vai trò bảo trì (hoặc quản trị) được tiếp nhận và đóng sự cố.",
        "Only maintenance (or admins) may acknowledge and resolve faults.",
    ),
    "fstate_active": ("Chưa xử lý xong", "Not resolved"),
    "fstate_open": ("Mới", "Open"),
    "fstate_acknowledged": ("Đã tiếp nhận", "Acknowledged"),
    "fstate_resolved": ("Đã xử lý", "Resolved"),
    "sev_warning": ("Cảnh báo", "Warning"),
    "sev_critical": ("Nghiêm trọng", "Critical"),
    "subject_luminaire": ("Đèn {name}", "Light {name}"),
    "subject_gateway": ("Gateway {name}", "Gateway {name}"),
    "ft_lampFailure": ("Hỏng đèn", "Lamp failure"),
    "ft_controlGearFailure": ("Hỏng bộ nguồn (driver)", "Driver failure"),
    "ft_controlGearCommFailure": ("Mất liên lạc", "Not answering"),
    "ft_lampUnexpectedOn": ("Sáng ban ngày", "Burning by day"),
    "ft_lampUnexpectedOff": ("Không sáng", "Out at night"),
    "ft_lampPowerTooHigh": ("Công suất quá cao", "Power too high"),
    "ft_lampPowerTooLow": ("Công suất quá thấp", "Power too low"),
    "ft_supplyVoltageTooHigh": ("Điện áp nguồn quá cao", "Supply voltage too high"),
    "ft_supplyVoltageTooLow": ("Điện áp nguồn quá thấp", "Supply voltage too low"),
    "ft_powerFactorTooLow": ("Hệ số công suất thấp", "Power factor too low"),
    "ft_cyclingFailure": ("Chập chờn", "Cycling on and off"),
    "ft_controlGearThermalDerating": ("Bộ nguồn quá nhiệt", "Driver overheating"),
    "ft_supplyLoss": ("Mất điện nguồn", "Supply lost"),
    "ft_gatewayOffline": ("Gateway mất kết nối", "Gateway offline"),
    # --- energy
    "energy_title": ("Năng lượng", "Energy"),
    "energy_intro": (
        "Mức cơ sở: cùng các đèn sáng 100% từ lúc mặt trời lặn đến lúc mọc. "
        "Tiết kiệm = cơ sở − thực tế.",
        "Baseline: the same luminaires at 100 % from sunset to sunrise. "
        "Savings = baseline − actual.",
    ),
    "from_date": ("Từ ngày", "From"),
    "to_date": ("Đến ngày", "To"),
    "make_report": ("Lập báo cáo", "Make report"),
    "report_busy": ("Đang lập báo cáo…", "Making the report…"),
    "energy_kwh": ("Điện năng (kWh)", "Energy (kWh)"),
    "baseline_kwh": ("Mức cơ sở (kWh)", "Baseline (kWh)"),
    "savings_kwh": ("Tiết kiệm (kWh)", "Savings (kWh)"),
    "savings_pct": ("Tiết kiệm (%)", "Savings (%)"),
    "coverage": ("Độ phủ số liệu (%)", "Coverage (%)"),
    "co2_kg": ("CO₂ (kg)", "CO₂ (kg)"),
    "cost_vnd": ("Chi phí (đồng)", "Cost (VND)"),
    "luminaires_reporting": ("Số đèn có số liệu", "Luminaires reporting"),
    "daily_by_ward": ("Điện năng hằng ngày theo phường", "Daily energy by ward"),
    "daily_by_ward_label": (
        "Điện năng hằng ngày (kWh), chồng theo phường",
        "Daily energy (kWh), stacked by ward",
    ),
    "ward_savings": ("Điện năng và mức cơ sở theo phường", "Energy and baseline by ward"),
    "ward_savings_label": (
        "Điện năng thực tế và mức cơ sở theo phường (kWh)",
        "Actual energy and baseline by ward (kWh)",
    ),
    "period_total": ("Cả kỳ", "Whole period"),
    "csv_download": ("Tải về CSV", "Download CSV"),
    "csv_day_ward": ("Theo ngày và phường", "Per day and ward"),
    "csv_day_total": ("Theo ngày, toàn thành phố", "Per day, whole city"),
    "csv_month_ward": ("Theo tháng và phường", "Per month and ward"),
    "csv_day_luminaire": ("Theo ngày và từng đèn", "Per day and luminaire"),
    "date": ("Ngày", "Date"),
    "range_too_long": (
        "Biểu đồ chỉ hiển thị tối đa {days} ngày; hãy chọn khoảng ngắn hơn.",
        "Charts cover at most {days} days; choose a shorter range.",
    ),
    "csv_too_many": (
        "Báo cáo có hơn {rows} dòng; hãy chọn khoảng ngắn hơn.",
        "The report has more than {rows} rows; choose a shorter range.",
    ),
    "field_from": ("Từ ngày", "From"),
    "field_to": ("Đến ngày", "To"),
    "energy_period": ("Cả kỳ {first} – {last}", "Period {first} – {last}"),
    "energy_factors": (
        "Hệ số phát thải {co2} tCO₂/MWh; giá điện {tariff} đồng/kWh.",
        "Emission factor {co2} tCO₂/MWh; tariff {tariff} VND/kWh.",
    ),
    # --- import
    "import_title": ("Nhập danh sách đèn", "Import luminaires"),
    "import_intro": (
        "Tệp CSV hoặc GeoJSON (có gateways và lamp_types); nhập tất cả hoặc không nhập gì.",
        "A CSV or GeoJSON file (with gateways and lamp_types); all or nothing.",
    ),
    "import_file": ("Tệp", "File"),
    "import_format": ("Định dạng", "Format"),
    "import_auto": ("Tự nhận biết", "Detect"),
    "import_submit": ("Nhập", "Import"),
    "import_busy": ("Đang tải lên và kiểm tra…", "Uploading and checking…"),
    "import_done": (
        "Đã nhập {imported} đèn; gateway: {gw_new} mới, {gw_upd} cập nhật; loại đèn mới: {lamps}.",
        "Imported {imported} luminaires; gateways: {gw_new} new, {gw_upd} updated; "
        "new lamp types: {lamps}.",
    ),
    "import_failed": ("Không nhập được tệp.", "The file was not imported."),
    "import_row": ("dòng {row}", "row {row}"),
    "import_max": ("Kích thước tối đa {mb} MB.", "At most {mb} MB."),
    "import_no_file": ("Vui lòng chọn một tệp.", "Please choose a file."),
    "import_too_large": ("Tệp quá lớn (tối đa {mb} MB).", "File too large (at most {mb} MB)."),
    "import_read_only": (
        "Chỉ vai trò vận hành (hoặc quản trị) được nhập dữ liệu.",
        "Only operators (or admins) may import.",
    ),
    # --- programs (issue 16)
    "nav_programs": ("Chương trình", "Programs"),
    "nav_calendars": ("Lịch", "Calendars"),
    "nav_audit": ("Nhật ký", "Audit"),
    "nav_keys": ("Khóa API", "API keys"),
    "actions": ("Thao tác", "Actions"),
    "delete": ("Xóa", "Delete"),
    "save": ("Lưu", "Save"),
    "description": ("Mô tả", "Description"),
    "programs_intro": (
        "Chương trình chiếu sáng một đêm: các bước theo mặt trời hoặc giờ cố định.",
        "A night's lighting program: steps anchored to the sun or to a clock time.",
    ),
    "program_steps_count": ("Số bước", "Steps"),
    "program_builtin": ("Có sẵn", "Built in"),
    "program_copy": ("Sao chép", "Copy"),
    "program_copy_name": ("{name} (bản sao)", "{name} (copy)"),
    "program_copy_name_n": ("{name} (bản sao {n})", "{name} (copy {n})"),
    "program_copied": ("Đã sao chép thành “{name}”.", "Copied as “{name}”."),
    "program_saved": ("Đã lưu chương trình “{name}”.", "Program “{name}” saved."),
    "program_deleted": ("Đã xóa chương trình {id}.", "Program {id} deleted."),
    "program_new": ("Chương trình mới", "New program"),
    "program_new_blank": ("Bắt đầu từ đầu", "Start from scratch"),
    "program_from_template": ("Bắt đầu từ mẫu", "Start from template"),
    "program_default_level": ("Mức trước bước đầu (%)", "Level before the first step (%)"),
    "program_unsaved": ("Chưa lưu thay đổi.", "Changes not saved yet."),
    "program_curve": ("Mức sáng trong đêm", "The night's curve"),
    "program_night": ("Đêm ngày", "Night of"),
    "program_holiday_on": ("Ngày lễ:", "Public holiday:"),
    "program_curve_invalid": (
        "Sửa các lỗi để xem đường mức sáng.",
        "Fix the errors to see the curve.",
    ),
    "program_warnings": (
        "Cảnh báo trong năm (vẫn lưu được):",
        "Warnings over the year (it can still be saved):",
    ),
    "step_anchor": ("Mốc", "Anchor"),
    "step_offset": ("Lệch (phút)", "Offset (min)"),
    "step_fade": ("Chuyển (giây)", "Fade (s)"),
    "step_offset_min": ("Lệch (phút) bước", "Offset (min) of step"),
    "step_level": ("Mức sáng bước", "Level of step"),
    "step_fade_s": ("Chuyển (giây) bước", "Fade (s) of step"),
    "step_add": ("Thêm bước", "Add a step"),
    "step_error_level": ("Mức sáng phải từ 0 đến 100 %", "The level must be 0..100 %"),
    "step_error_anchor": (
        "Mốc phải là sunset, sunrise, civil_dusk, … hoặc giờ HH:MM",
        "The anchor must be sunset, sunrise, civil_dusk, … or a time HH:MM",
    ),
    "step_error_offset_min": ("Lệch tối đa ±720 phút", "The offset is at most ±720 minutes"),
    "step_error_fade_s": ("Thời gian chuyển phải ≥ 0 giây", "The fade must be ≥ 0 seconds"),
    "step_up": ("Lên", "Move up"),
    "step_down": ("Xuống", "Move down"),
    "step_remove": ("Bỏ", "Remove"),
    # --- calendars (issue 16)
    "calendars_intro": (
        "Lịch chọn chương trình cho từng đêm: quy tắc đầu tiên khớp sẽ được dùng.",
        "A calendar picks each night's program: the first matching rule wins.",
    ),
    "calendar_rules": ("Quy tắc", "Rules"),
    "calendar_groups": ("Nhóm dùng lịch này", "Groups using it"),
    "calendar_new": ("Lịch mới", "New calendar"),
    "calendar_default_program": ("Chương trình mặc định", "Default program"),
    "calendar_order_hint": (
        "Quy tắc theo thứ tự ưu tiên (trên cùng trước).",
        "Rules in priority order (top first).",
    ),
    "calendar_saved": ("Đã lưu lịch “{name}”.", "Calendar “{name}” saved."),
    "calendar_deleted": ("Đã xóa lịch {id}.", "Calendar {id} deleted."),
    "calendar_assign": ("Gán", "Assign"),
    "calendar_assign_group": ("Gán cho nhóm", "Assign to group"),
    "calendar_unassign": ("Bỏ gán", "Unassign"),
    "calendar_assigned": ("Nhóm “{group}” dùng lịch này.", "Group “{group}” now uses it."),
    "calendar_unassigned": (
        "Nhóm “{group}” không dùng lịch này nữa.",
        "Group “{group}” no longer uses it.",
    ),
    "calendar_preview": ("Đêm ngày D chạy gì?", "What runs on date D?"),
    "calendar_subject": ("Nhóm hoặc đèn", "Group or luminaire"),
    "calendar_show": ("Xem", "Show"),
    "calendar_runs": ("Lịch {calendar}: {programs}", "Calendar {calendar}: {programs}"),
    "calendar_by_rules": ("theo quy tắc {rules}", "by rule {rules}"),
    "calendar_by_default": ("theo chương trình mặc định", "by the default program"),
    "rule_add": ("Thêm quy tắc (lên đầu)", "Add a rule (at the top)"),
    "rule_kind": ("Loại", "Kind"),
    "rule_kind_date": ("Một ngày", "One date"),
    "rule_kind_range": ("Khoảng ngày", "Date range"),
    "rule_kind_annual": ("Hằng năm", "Every year"),
    "rule_kind_weekdays": ("Thứ trong tuần", "Weekdays"),
    "rule_kind_holiday": ("Ngày lễ", "Public holiday"),
    "rule_program": ("Chương trình", "Program"),
    "rule_date": ("Ngày", "Date"),
    "rule_start": ("Từ", "From"),
    "rule_end": ("Đến", "To"),
    "rule_holiday": ("Ngày lễ", "Holiday"),
    "rule_any_holiday": ("Mọi ngày lễ", "Any public holiday"),
    "rule_observed": ("Cả ngày nghỉ bù", "Observed days too"),
    "rule_days": ("Thứ", "Days"),
    "rule_valid_from": ("Hiệu lực từ", "Valid from"),
    "rule_valid_until": ("Hiệu lực đến", "Valid until"),
    "holiday_new_year": ("Tết Dương lịch", "New Year"),
    "holiday_tet": ("Tết Nguyên Đán (âm lịch)", "Lunar New Year (Tết)"),
    "holiday_hung_kings": ("Giỗ Tổ Hùng Vương (âm lịch)", "Hùng Kings (lunar)"),
    "holiday_reunification": ("Ngày Chiến thắng 30/4", "Reunification Day 30 April"),
    "holiday_labour": ("Quốc tế Lao động 1/5", "Labour Day 1 May"),
    "holiday_national": ("Quốc khánh 2/9", "National Day 2 September"),
    "holiday_culture": ("Ngày Văn hóa Việt Nam 24/11", "Vietnamese Culture Day 24 November"),
    "holiday_day_off": ("Ngày nghỉ hoán đổi", "Swapped day off"),
    "wd_mon": ("T2", "Mon"),
    "wd_tue": ("T3", "Tue"),
    "wd_wed": ("T4", "Wed"),
    "wd_thu": ("T5", "Thu"),
    "wd_fri": ("T6", "Fri"),
    "wd_sat": ("T7", "Sat"),
    "wd_sun": ("CN", "Sun"),
    # --- audit and keys (issue 16)
    "audit_actor": ("Người thực hiện", "Who"),
    "audit_entity": ("Đối tượng", "Target"),
    "audit_entity_id": ("Mã", "Id"),
    "audit_count": ("{total} mục", "{total} entries"),
    "audit_empty": ("Không có mục nào.", "No entries."),
    "audit_field": ("Trường", "Field"),
    "audit_before": ("Trước", "Before"),
    "audit_after": ("Sau", "After"),
    "audit_action_create": ("tạo", "created"),
    "audit_action_update": ("sửa", "updated"),
    "audit_action_delete": ("xóa", "deleted"),
    "audit_action_revoke": ("thu hồi", "revoked"),
    "audit_action_sign_in": ("đăng nhập", "signed in"),
    "entity_program": ("chương trình", "program"),
    "entity_calendar": ("lịch", "calendar"),
    "entity_group": ("nhóm", "group"),
    "entity_override": ("điều khiển tay", "override"),
    "entity_luminaire": ("đèn", "luminaire"),
    "entity_gateway": ("gateway", "gateway"),
    "entity_lamp_type": ("loại đèn", "lamp type"),
    "entity_fault": ("sự cố", "fault"),
    "entity_api_key": ("khóa API", "API key"),
    "entity_dashboard": ("bảng điều khiển", "dashboard"),
    "key_create": ("Tạo khóa", "Create a key"),
    "key_role": ("Vai trò", "Role"),
    "key_prefix": ("Đầu khóa", "Prefix"),
    "key_created": ("Tạo lúc", "Created"),
    "key_revoked_at": ("Thu hồi lúc", "Revoked"),
    "key_revoke": ("Thu hồi", "Revoke"),
    "key_revoked": ("Đã thu hồi khóa “{name}”.", "Key “{name}” revoked."),
    "key_shown_once": (
        "Khóa mới (chỉ hiện một lần, hãy chép ngay):",
        "The new key (shown only once, copy it now):",
    ),
    "key_sign_ins": ("Đăng nhập bảng điều khiển gần đây", "Recent dashboard sign-ins"),
    "key_client": ("Địa chỉ", "Address"),
    # --- field work (crews' phone page and work orders)
    "nav_work": ("Sửa chữa", "Field work"),
    "work_title": ("Sự cố cần sửa", "Faults to fix"),
    "work_my_wards": ("Phường của tôi", "My wards"),
    "work_show": ("Xem", "Show"),
    "work_near_me": ("Gần tôi", "Near me"),
    "work_locating": ("Đang xác định vị trí…", "Finding your position…"),
    "work_no_location": ("Không lấy được vị trí.", "Could not get your position."),
    "work_near_within": (
        "Trong bán kính {km} km quanh {lat}, {lon}",
        "Within {km} km of {lat}, {lon}",
    ),
    "work_km": ("{km} km", "{km} km"),
    "work_no_faults": ("Không có sự cố nào đang mở ở đây.", "No open faults here."),
    "work_open_map": ("Chỉ đường", "Open in maps"),
    "work_since": ("từ {time}", "since {time}"),
    "work_select": ("Chọn", "Select"),
    "work_take": ("Nhận việc", "Take it"),
    "work_take_selected": ("Nhận các sự cố đã chọn", "Take the selected faults"),
    "work_none_selected": ("Hãy chọn ít nhất một sự cố.", "Select at least one fault."),
    "work_order": ("Phiếu #{id}", "Work order #{id}"),
    "work_my_orders": ("Việc của tôi", "My work orders"),
    "work_fault_count": ("{count} sự cố", "{count} fault(s)"),
    "work_read_only": (
        "Chỉ xem: vai trò của bạn không được xử lý phiếu công việc.",
        "Read only: your role may not handle work orders.",
    ),
    "work_crew": ("Đội", "Crew"),
    "work_created_at": ("Tạo lúc", "Created"),
    "work_minutes": ("Số phút làm", "Minutes spent"),
    "work_minutes_spent": ("{minutes} phút", "{minutes} min"),
    "work_minutes_n": ("{minutes} phút", "{minutes} min"),
    "work_waiting_verify": (
        "Chờ hệ thống xác nhận đèn đã hoạt động lại (hoặc xác nhận tay, có lý do).",
        "Waiting for telemetry to show the light works again (or verify by hand, with a reason).",
    ),
    "work_verified_by": ("{who}, lúc {time}", "{who}, at {time}"),
    "work_reason": ("Lý do", "Reason"),
    "work_faults": ("Sự cố trong phiếu", "Faults in this order"),
    "work_notes_title": ("Nhật ký", "Notes"),
    "work_note": ("Ghi chú", "Note"),
    "work_add_note": ("Thêm ghi chú", "Add note"),
    "work_created": ("Đã tạo phiếu #{id}.", "Work order #{id} created."),
    "work_moved": ("Phiếu #{id}: {state}.", "Work order #{id}: {state}."),
    "work_noted": ("Đã thêm ghi chú.", "Note added."),
    "wstate_new": ("Mới", "New"),
    "wstate_assigned": ("Đã giao", "Assigned"),
    "wstate_on_site": ("Tại hiện trường", "On site"),
    "wstate_fixed": ("Đã sửa", "Fixed"),
    "wstate_verified": ("Đã xác nhận", "Verified"),
    "wstate_cancelled": ("Đã hủy", "Cancelled"),
    "wmove_assigned": ("Nhận việc", "Take it"),
    "wmove_on_site": ("Đã đến nơi", "I am on site"),
    "wmove_fixed": ("Đã sửa xong", "Fixed"),
    "wmove_verified": ("Xác nhận tay", "Verify by hand"),
    "wmove_cancelled": ("Hủy phiếu", "Cancel the order"),
}

FAULT_TYPE_PREFIX = "ft_"


class Translator:
    """``t(key, **values)``: the string in this language with ``{values}`` filled in.

    An unknown key is a bug (tests check every template key): it raises ``KeyError``.
    """

    def __init__(self, lang: Lang, zone: tzinfo) -> None:
        self.lang = lang
        self.zone = zone
        self._index = 0 if lang is Lang.VI else 1

    def __call__(self, key: str, **values: Any) -> str:
        text = STRINGS[key][self._index]
        return text.format(**values) if values else text

    def has(self, key: str) -> bool:
        return key in STRINGS

    def fault_type(self, value: str) -> str:
        key = FAULT_TYPE_PREFIX + value
        return self(key) if key in STRINGS else value

    def num(self, value: float | None, decimals: int = 0) -> str:
        """A number in this language's convention; ``—`` for None."""
        if value is None:
            return self("none")
        return format_number(value, decimals, AlertLang(self.lang.value))

    def pct(self, value: float | None, decimals: int = 0) -> str:
        return self("none") if value is None else f"{self.num(value, decimals)} %"

    def hm(self, at: datetime | str | None) -> str:
        """``18:32`` local (``—`` for None); ISO strings are parsed."""
        local = self._local(at)
        return self("none") if local is None else local.strftime("%H:%M")

    def when(self, at: datetime | str | None) -> str:
        """``18:32 21/06/2026`` (vi) or ``18:32 2026-06-21`` (en), local."""
        local = self._local(at)
        if local is None:
            return self("none")
        if self.lang is Lang.VI:
            return local.strftime("%H:%M %d/%m/%Y")
        return local.strftime("%H:%M %Y-%m-%d")

    def day(self, value: date | str | None) -> str:
        if value is None:
            return self("none")
        if isinstance(value, str):
            value = date.fromisoformat(value[:10])
        return value.strftime("%d/%m/%Y") if self.lang is Lang.VI else value.isoformat()

    def short_day(self, value: date | str) -> str:
        if isinstance(value, str):
            value = date.fromisoformat(value[:10])
        return value.strftime("%d/%m") if self.lang is Lang.VI else value.strftime("%m-%d")

    def _local(self, at: datetime | str | None) -> datetime | None:
        if at is None:
            return None
        if isinstance(at, str):
            at = datetime.fromisoformat(at)
        return at.astimezone(self.zone)


def validation_messages(errors: Iterable[Any], t: Translator) -> list[dict[str, Any]]:
    """Pydantic errors as ``{"field", "message"}``, in the user's language where known."""
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        key = f"v_{err.get('type', '')}"
        ctx = err.get("ctx") or {}
        try:
            message = t(key, **ctx) if t.has(key) else str(err.get("msg", ""))
        except KeyError:
            message = str(err.get("msg", ""))
        out.append({"field": ".".join(loc) or "body", "message": message})
    return out


def parse_lang(value: str | None) -> Lang | None:
    if value is None:
        return None
    try:
        return Lang(value.strip().lower()[:2])
    except ValueError:
        return None

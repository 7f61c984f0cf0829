"""The dashboard's own settings, read once when the app is built (never at import).

``controller/config/settings.py`` has no ``dashboard`` section yet, so these come from the
environment (single underscore, not the ``__`` of nested settings):

=====================================  ==========================================
``STREETLIGHT_DASHBOARD_TILE_URL``     raster tile template, ``https://host/{z}/{x}/{y}.png``;
                                       empty: the map draws its own outline, offline
``STREETLIGHT_DASHBOARD_TILE_ATTRIBUTION``  text shown under the map (tile licence)
``STREETLIGHT_DASHBOARD_TILE_MAX_ZOOM``     highest zoom the tile server has (default 19)
``STREETLIGHT_DASHBOARD_SESSION_IDLE_MIN``  sign-out after this many idle minutes (480)
``STREETLIGHT_DASHBOARD_SESSION_MAX_HOURS`` sign-out after this many hours in all (24)
``STREETLIGHT_DASHBOARD_MAP_POLL_S``        how often the map refreshes marker states (10)
=====================================  ==========================================

When the settings grow a ``dashboard`` section with these fields (``tile_url``,
``tile_attribution``, ``tile_max_zoom``, ``session_idle_min``, ``session_max_hours``,
``map_poll_s``), it wins over the environment variables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from controller.core.errors import ConfigError

ENV_PREFIX = "STREETLIGHT_DASHBOARD_"


@dataclass(frozen=True, slots=True)
class DashboardConfig:
    """Validated dashboard options (times in seconds)."""

    tile_url: str | None = None
    tile_attribution: str = ""
    tile_max_zoom: int = 19
    session_idle_s: float = 8 * 3600.0
    session_max_s: float = 24 * 3600.0
    map_poll_s: float = 10.0
    max_sessions: int = 10_000

    @property
    def tile_origin(self) -> str | None:
        """``scheme://host[:port]`` of the tile server, for the Content-Security-Policy."""
        if not self.tile_url:
            return None
        parts = urlsplit(self.tile_url.replace("{s}", "a"))
        return f"{parts.scheme}://{parts.netloc}"


def _number(name: str, raw: Any, low: float, high: float) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: not a number (got {raw!r})") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}: must be between {low:g} and {high:g} (got {raw!r})")
    return value


def _tile_url(name: str, raw: str) -> str | None:
    url = raw.strip()
    if not url:
        return None
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"{name}: must start with http:// or https:// (got {raw!r})")
    missing = [p for p in ("{z}", "{x}", "{y}") if p not in url]
    if missing:
        raise ConfigError(f"{name}: the template lacks {', '.join(missing)} (got {raw!r})")
    return url


def load_config(environ: Mapping[str, str], section: Any = None) -> DashboardConfig:
    """Build the config from a settings section (if the settings have one) or ``environ``.

    Raises :class:`ConfigError` naming the variable when a value is invalid.
    """

    def raw(field: str, default: Any) -> tuple[str, Any]:
        if section is not None and hasattr(section, field):
            return f"dashboard.{field}", getattr(section, field)
        env = ENV_PREFIX + field.upper()
        return env, environ.get(env, default)

    name, url = raw("tile_url", "")
    tile_url = _tile_url(name, str(url or ""))
    _, attribution = raw("tile_attribution", "")
    name, zoom = raw("tile_max_zoom", 19)
    max_zoom = int(_number(name, zoom, 0, 24))
    name, idle = raw("session_idle_min", 480)
    idle_s = _number(name, idle, 1, 7 * 24 * 60) * 60
    name, max_h = raw("session_max_hours", 24)
    max_s = _number(name, max_h, 0.1, 24 * 90) * 3600
    name, poll = raw("map_poll_s", 10)
    poll_s = _number(name, poll, 1, 3600)
    return DashboardConfig(
        tile_url=tile_url,
        tile_attribution=str(attribution or ""),
        tile_max_zoom=max_zoom,
        session_idle_s=idle_s,
        session_max_s=max_s,
        map_poll_s=poll_s,
    )

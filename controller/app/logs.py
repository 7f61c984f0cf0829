"""Logging: plain lines on a terminal, one JSON object per line otherwise (journald, files).

Context such as the gateway or luminaire goes in ``extra`` and becomes a field:
``log.warning("gateway offline", extra={"gateway": "gw-p1-le-duan"})``.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

CONTEXT_FIELDS = ("gateway", "gateway_id", "luminaire", "luminaire_id", "fault_id", "alert")


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", <context fields>, "exc"}`` per record."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure(level: int = logging.INFO, *, json_lines: bool | None = None) -> None:
    """Set up the root logger once: JSON unless stderr is a terminal."""
    use_json = (not sys.stderr.isatty()) if json_lines is None else json_lines
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if use_json else logging.Formatter("%(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # pymodbus logs every timeout as an ERROR with raw frames; the driver reports gateway
    # outages itself, once when they start and once when they end.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

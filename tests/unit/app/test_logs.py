"""Structured logs: one JSON object per line with the context fields."""

from __future__ import annotations


def test_json_log_lines_carry_the_context() -> None:
    import json
    import logging

    from controller.app.logs import JsonFormatter

    record = logging.LogRecord("controller.loop.runtime", logging.WARNING, __file__, 1,
                               "gateway %s offline", ("gw-1",), None)  # fmt: skip
    record.gateway = "gw-1"
    record.luminaire_id = 7
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "gateway gw-1 offline"
    assert (line["level"], line["gateway"], line["luminaire_id"]) == ("warning", "gw-1", 7)
    assert line["ts"].endswith("+00:00")

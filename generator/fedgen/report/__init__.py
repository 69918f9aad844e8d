"""Report formatters: pure functions Report -> str, one module per format, listed in one dict."""

from __future__ import annotations

from collections.abc import Callable

from fedgen.report.jsonout import render_json
from fedgen.report.sarif import render_sarif
from fedgen.report.text import render_text
from fedgen.validate.engine import Report

Formatter = Callable[..., str]

FORMATS: dict[str, Formatter] = {
    "text": render_text,
    "json": render_json,
    "sarif": render_sarif,
}

__all__ = ["FORMATS", "Report", "render_json", "render_sarif", "render_text"]

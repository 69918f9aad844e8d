"""Report formatters: pure functions report -> str, one module per format, listed in one dict per report:
FORMATS for validate's Report, STATUS_FORMATS for status's StatusReport."""

from __future__ import annotations

from collections.abc import Callable

from fedgen.report.jsonout import render_json
from fedgen.report.sarif import render_sarif
from fedgen.report.status import STATUS_FORMATS
from fedgen.report.text import render_text
from fedgen.validate.engine import Report
from fedgen.validate.finding import printable  # escapes what a message quotes from hostile input

Formatter = Callable[..., str]

FORMATS: dict[str, Formatter] = {
    "text": render_text,
    "json": render_json,
    "sarif": render_sarif,
}

__all__ = ["FORMATS", "STATUS_FORMATS", "Report", "printable", "render_json", "render_sarif", "render_text"]

"""One line of the doctor's output, and the verdict over all of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

OK, WARN, FAIL, SKIP = "OK", "WARN", "FAIL", "SKIP"


@dataclass(frozen=True)
class Line:
    status: str
    check: str
    text: str
    fix: str = ""  # for FAIL: what to do

    def render(self) -> str:
        return f"{self.status:<4}  {self.check:<7} {self.text}"


def verdict(lines: Sequence[Line]) -> str:
    failed = next((line for line in lines if line.status == FAIL), None)
    return "OK" if failed is None else f"FAIL: {failed.check}: {failed.text} - {failed.fix}"

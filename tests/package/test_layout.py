"""The package's shape (issue 18): small modules, and every top-level module placed in the import layers that
`make lint` enforces (an unplaced module could import upward unnoticed)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import fedgen

PACKAGE = Path(fedgen.__file__).parent
ROOT = PACKAGE.parent.parent
MAX_LINES = 450


def test_no_module_is_over_450_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in sorted(PACKAGE.rglob("*.py")) if (n := len(p.read_bytes().splitlines())) > MAX_LINES}
    assert not long, f"split these by job (at most {MAX_LINES} lines each): {long}"


def test_every_top_level_module_has_a_layer() -> None:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if c["id"] == "layers")["layers"]
    placed = {name.strip() for layer in layers for name in layer.replace("|", ":").split(":")}
    found = {f"fedgen.{p.stem}" for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    found |= {f"fedgen.{p.parent.name}" for p in PACKAGE.glob("*/__init__.py")}
    assert found - placed == set(), "place these in the layers contract of pyproject.toml"
    assert placed - found == set(), "the layers contract names modules that do not exist"

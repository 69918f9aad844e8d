"""Where fedgen finds the files it ships: the schemas inside the package, the workspace's pinned tools."""

from __future__ import annotations

from pathlib import Path

# Package data: installed with the package (wheel or editable), so validate works from any install.
SCHEMAS_DIR = Path(__file__).resolve().parent / "schemas"
SPEC_SCHEMA = SCHEMAS_DIR / "federation.schema.json"
# generator/fedgen/paths.py -> the source checkout's root (its .tools/bin holds the pinned Go tools); for an
# installed wheel this is a folder without .tools, and the tools come from PATH.
SOURCE_ROOT = Path(__file__).resolve().parents[2]

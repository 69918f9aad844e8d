"""Where fedgen finds the files it ships beside the package (schemas)."""

from __future__ import annotations

from pathlib import Path

# generator/fedgen/paths.py -> the repository root holds schemas/ next to generator/.
SOURCE_ROOT = Path(__file__).resolve().parents[2]
SCHEMAS_DIR = SOURCE_ROOT / "schemas"
SPEC_SCHEMA = SCHEMAS_DIR / "federation.schema.json"

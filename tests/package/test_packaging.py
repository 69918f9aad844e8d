"""fedgen installed from its wheel (not the editable source tree) finds its schemas and validates.

The wheel is built offline from this checkout (`pip wheel --no-build-isolation`, setuptools from the test
extras), unpacked into a scratch folder that is put first on sys.path of a fresh interpreter, and that
interpreter runs `fedgen schema` and `fedgen validate` on a rendered repo from another working folder, with
kubeconform on PATH (where an installed fedgen looks for it; only a source checkout has .tools/bin).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.support import REPO_ROOT
from tests.validate.support import pristine

SOURCE_SCHEMAS = REPO_ROOT / "generator" / "fedgen" / "schemas"


def _run_installed(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys; sys.path.insert(0, sys.argv.pop(1)); import fedgen, fedgen.paths; "
        "print(fedgen.__file__, fedgen.paths.SCHEMAS_DIR, file=sys.stderr); "
        "from fedgen.cli import main; sys.argv[0] = 'fedgen'; main()"
    )
    env = {**os.environ, "PATH": f"{REPO_ROOT / '.tools' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([sys.executable, "-c", code, str(site), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def test_the_wheel_ships_the_schemas_and_validates_from_any_folder(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO_ROOT), "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("fedgen-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    shipped = sorted(p.relative_to(site / "fedgen" / "schemas") for p in (site / "fedgen" / "schemas").rglob("*") if p.is_file())
    assert shipped == sorted(p.relative_to(SOURCE_SCHEMAS) for p in SOURCE_SCHEMAS.rglob("*") if p.is_file())

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    schema = _run_installed(site, elsewhere, "schema")
    assert schema.returncode == 0, schema.stderr
    module, schemas_dir = schema.stderr.split()[:2]
    assert Path(module).is_relative_to(site) and Path(schemas_dir) == site / "fedgen" / "schemas", schema.stderr
    assert json.loads(schema.stdout) == json.loads((SOURCE_SCHEMAS / "federation.schema.json").read_text())

    repo = pristine("ranged")
    result = _run_installed(site, elsewhere, "validate", "--repo", str(repo), "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["findings"] == [] and report["summary"]["objects"] > 20, report["summary"]

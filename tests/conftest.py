"""Fixtures shared by the tests."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import OTHER_SPEC, dump_yaml


@pytest.fixture(scope="session")
def sealing_keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(private key, certificate) made at test time; only the certificate goes next to specs."""
    from fedgen.seal import generate_development_keypair

    folder = tmp_path_factory.mktemp("sealing")
    key_pem, cert_pem = generate_development_keypair()
    key, cert = folder / "key.pem", folder / "cert.pem"
    key.write_bytes(key_pem)
    key.chmod(0o600)
    cert.write_bytes(cert_pem)
    return key, cert


@pytest.fixture
def write_spec(tmp_path: Path, sealing_keypair: tuple[Path, Path]) -> Callable[..., Path]:
    """Write OTHER_SPEC (after `edit(spec_dict)`) as <tmp>/repo/spec/federation.yaml; returns its path."""

    def write(edit: Callable[[dict[str, Any]], None] | None = None, *, name: str = "federation.yaml") -> Path:
        folder = tmp_path / "repo" / "spec"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(sealing_keypair[1], folder / "sealing.pem")
        data = copy.deepcopy(OTHER_SPEC)
        if edit:
            edit(data)
        path = folder / name
        dump_yaml(data, path)
        return path

    return write

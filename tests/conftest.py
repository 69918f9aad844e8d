"""Fixtures shared by the tests."""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from tests.gcs_emulator import Emulator
from tests.kubeapi.cluster import Kubectl, install_crds
from tests.kubeapi.server import ApiServer, Clusters, Etcd
from tests.support import OTHER_SPEC, dump_yaml, render_spec

# Property tests: the same examples on every run (derandomize: no flaky "new" example on a CI rerun, nothing
# kept in a .hypothesis folder) and no per-example deadline (a loaded machine is slow, not wrong; hangs are
# caught by the tests' own generous bounds). FEDGEN_HYPOTHESIS=explore draws fresh examples while developing.
settings.register_profile("ci", derandomize=True, database=None, deadline=None)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("FEDGEN_HYPOTHESIS", "ci"))


@pytest.fixture(scope="session")
def sealing_keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(private key, certificate) made at test time; only the certificate goes next to specs."""
    from fedgen.seal.certificate import generate_development_keypair

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


# ------------------------------------------------------------------------------ Cloud Storage (fake-gcs-server)


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    emulator = Emulator(tmp_path_factory.mktemp("fake-gcs"))
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.kill()


@pytest.fixture
def gcs(gcs_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The session emulator with STORAGE_EMULATOR_HOST set for this test; short retries so failures are quick."""
    if gcs_emulator.process is None or gcs_emulator.process.poll() is not None:
        gcs_emulator.start()
    for key, value in gcs_emulator.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("FEDGEN_GCS_RETRY_SECONDS", "3")
    return gcs_emulator


# ------------------------------------------------------------------------------ a real Kubernetes API server


@pytest.fixture(scope="session")
def kube_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Etcd]:
    """One etcd for the session; every API server the tests start is a cluster of its own in it."""
    etcd = Etcd(tmp_path_factory.mktemp("etcd"))
    try:
        yield etcd.start()
    finally:
        etcd.stop()


@pytest.fixture(scope="session")
def kube_template(kube_etcd: Etcd, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The etcd prefix of a cluster with the CRDs fedgen's trees use, installed once: every test cluster
    starts from a copy of it (installing the CRDs takes longer than starting an API server)."""
    api = ApiServer(f"template-{os.getpid()}", tmp_path_factory.mktemp("kube-template"), kube_etcd)
    try:
        api.start()
        install_crds(Kubectl(api.folder / "kubeconfig"))
    finally:
        api.stop()
    return api.prefix


@pytest.fixture
def kube_api(kube_etcd: Etcd, kube_template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clusters]:
    """kube_api(name) -> a fresh kube-apiserver (a cluster with the CRDs); all stopped when the test ends."""
    clusters = Clusters(kube_etcd, kube_template, tmp_path_factory)
    try:
        yield clusters
    finally:
        clusters.stop()


@pytest.fixture(scope="module")
def kube_api_module(kube_etcd: Etcd, kube_template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clusters]:
    """As kube_api, for clusters a whole test module shares."""
    clusters = Clusters(kube_etcd, kube_template, tmp_path_factory)
    try:
        yield clusters
    finally:
        clusters.stop()


@pytest.fixture
def rendered(write_spec: Callable[..., Path]) -> tuple[Path, Path]:
    """(spec, repo) after a first render of OTHER_SPEC, which must succeed."""
    spec = write_spec()
    result = render_spec(spec)
    assert result.exit_code == 0, result.output
    return spec, spec.parent.parent

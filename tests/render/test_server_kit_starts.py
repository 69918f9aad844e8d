"""The kit the rendered manifests deliver starts a real NVFlare server (issue 2's 'done when').

The files come from the built ConfigMaps and the unsealed SealedSecret, never from the state. The only
liberty taken: paths the pod sees under the bucket mount are redirected to a temporary folder.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from fedgen.cli import main
from fedgen.render.pod import kit_root
from fedgen.seal.crypto import unseal_value
from fedgen.spec import load_federation
from fedgen.spec.model import WORKSPACE_MOUNT
from tests.support import free_port_pair, kustomize_build

pytestmark = pytest.mark.slow


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server exited early"
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing listened on port {port} within {timeout} s")


def test_rendered_kit_starts_a_real_server(write_spec: Callable[..., Path], sealing_keypair: tuple[Path, Path], tmp_path: Path) -> None:
    fl, admin = free_port_pair()

    def edit(d: dict[str, Any]) -> None:
        d["spec"]["server"]["ports"] = {"fl": fl, "admin": admin}

    spec = write_spec(edit)
    repo = spec.parent.parent
    result = CliRunner().invoke(main, ["render", str(spec), "--repo", str(repo)])
    assert result.exit_code == 0, result.output
    fed = load_federation(spec)
    built = [d for d in YAML(typ="safe", pure=True).load_all(kustomize_build(repo / "clusters/gke-eu")) if d]
    objects = {(d["kind"], d["metadata"]["name"]): d for d in built}
    deployment = objects[("Deployment", "nvflare-flserver")]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}

    root = tmp_path / "pod"
    kit = root / mounts["kit"].lstrip("/")
    workspace = tmp_path / "bucket"
    # startup/: the projected volume (ConfigMap + the key from the SealedSecret's Secret).
    startup_dir = root / mounts["startup"].lstrip("/")
    startup_dir.mkdir(parents=True)
    for source in volumes["startup"]["projected"]["sources"]:
        if "configMap" in source:
            for name, text in objects[("ConfigMap", source["configMap"]["name"])]["data"].items():
                (startup_dir / name).write_text(text)
        else:
            sealed = objects[("SealedSecret", source["secret"]["name"])]
            for item in source["secret"]["items"]:
                value = unseal_value(
                    sealing_keypair[0].read_bytes(),
                    sealed["spec"]["encryptedData"][item["key"]],
                    namespace=sealed["metadata"]["namespace"],
                    name=sealed["metadata"]["name"],
                    scope="strict",
                )
                (startup_dir / item["path"]).write_bytes(value)
                os.chmod(startup_dir / item["path"], item["mode"])
    local_dir = root / mounts["local"].lstrip("/")
    local_dir.mkdir(parents=True)
    for name, text in objects[("ConfigMap", volumes["local"]["configMap"]["name"])]["data"].items():
        (local_dir / name).write_text(text.replace(WORKSPACE_MOUNT, str(workspace)))
    for d in (startup_dir, local_dir):  # read-only, as the pod mounts them
        for f in d.iterdir():
            f.chmod(f.stat().st_mode & 0o444)
        d.chmod(0o555)

    args = [a.replace(kit_root(fed.server.name), str(kit)) for a in container["args"]]
    env = {**os.environ, **{e["name"]: e["value"] for e in container["env"]}, "HOME": str(tmp_path)}
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen([sys.executable, *args], cwd=kit, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_port(fl, proc, timeout=60)
        _wait_for_port(admin, proc, timeout=30)
        assert proc.poll() is None
    except AssertionError:
        log.flush()
        tail = (tmp_path / "server.log").read_text(errors="replace").splitlines()[-30:]
        raise AssertionError("server did not come up:\n" + "\n".join(tail)) from None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        log.close()
    assert proc.returncode is not None
    assert (kit / "log.txt").exists(), "the server writes its log into the writable kit root"

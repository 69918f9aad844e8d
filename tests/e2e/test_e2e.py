"""Issue 5: a real NVFlare federation runs from what fedgen renders and bundles (see tests/e2e/flow.py).

The server runs from the BUILT sync root (kubectl kustomize): its pod's volumes materialised as the kubelet
would (the SealedSecret unsealed by the real kubeseal with the test's controller key), mounted at the manifest's real paths in a
private mount namespace, read-only root, the container's own command, args and env, uid/gid 10000. Two sites
run their bundle's untouched run.sh; a third enrolls by request (issue 8: its key never leaves its folder) and
runs its enrollment README's command; each site has its own network namespace, and the admin drives the FLARE
API from another. Needs root, `ip` and `unshare`: without them the tests FAIL (never skip).

    make e2e            # only these tests
    .venv/bin/python bench/bench_e2e.py   # the same flow on demand, with the timing table
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.e2e import flow, kube, netns, procs, results
from tests.e2e.netns import SERVER_IP

# ---------------------------------------------------------------------------- fast checks of the emulation


def test_dollar_paren_expansion_follows_kubernetes() -> None:
    env = {"A": "x", "B": "$(A)y"}
    assert kube.expand("$(A)", env.get) == "x"
    assert kube.expand("pre-$(A)-post", env.get) == "pre-x-post"
    assert kube.expand("$(MISSING)", env.get) == "$(MISSING)"
    assert kube.expand("$$(A)", env.get) == "$(A)"  # $$ escapes
    assert kube.expand("$$$(A)", env.get) == "$x"
    assert kube.expand("$(A", env.get) == "$(A"  # unterminated
    assert kube.expand("a$b$", env.get) == "a$b$"
    assert kube.expand("$(B)", env.get) == "$(A)y"  # no recursive expansion
    container = {"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "$(A)2"}, {"name": "C", "value": "$(D)"}, {"name": "D", "value": "4"}]}
    assert kube.container_env(container) == {"A": "1", "B": "12", "C": "$(D)", "D": "4"}  # only earlier vars


def test_projected_volume_is_written_in_the_kubelet_layout(tmp_path: Path) -> None:
    built = kube.Built([{"kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "ns"}, "data": {"a.json": "{}", "b.pem": "B"}}])
    volume = {"name": "startup", "projected": {"defaultMode": 0o444, "sources": [{"configMap": {"name": "cm"}}]}}
    target = tmp_path / "vol"
    group = 4321 if os.geteuid() == 0 else os.getegid()
    assert kube.materialise_volume(volume, target, built=built, namespace="ns", sealing_key=b"", fs_group=group) == "projected"
    data = target / "..data"
    assert data.is_symlink() and not Path(str(data.readlink())).is_absolute()
    for name in ("a.json", "b.pem"):
        link = target / name
        assert link.is_symlink() and str(link.readlink()) == f"..data/{name}"
        real = link.resolve()
        assert real.is_relative_to(target.resolve()), "every link must stay inside the mount (NVFlare's realpath check)"
        st = real.stat()
        assert stat.S_IMODE(st.st_mode) == 0o444 and st.st_gid == group
    assert stat.S_IMODE(target.stat().st_mode) & stat.S_ISGID and target.stat().st_gid == group


def test_key_copies_finds_a_key_in_every_form_and_no_other_key(tmp_path: Path) -> None:
    import base64
    import zipfile

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    def pem() -> bytes:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    mine, other = pem(), pem()
    key = serialization.load_pem_private_key(mine, None)
    forms = {
        "copy.pem": mine,
        "state.json": b'{"files": {"k": "' + base64.b64encode(mine) + b'"}}',
        "key.der": key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        "other.pem": other,
        "other.json": b'{"k": "' + base64.b64encode(other) + b'"}',
    }
    for name, data in forms.items():
        (tmp_path / name).write_bytes(data)
    with zipfile.ZipFile(tmp_path / "kit.zip", "w") as zf:
        zf.writestr("startup/client.key", mine)
    found = sorted(Path(p).name for p in flow.key_copies(mine, [tmp_path]))
    assert found == ["copy.pem", "key.der", "kit.zip", "state.json"]


def test_expected_model_follows_the_components() -> None:
    got = flow.expected_global_model([[1.0, 2.0]], {"a": 1.0, "b": 3.0}, 2)
    assert got.dtype == np.float32 and got.tolist() == [[5.0, 6.0]]  # + mean(1, 3) per round


@pytest.mark.e2e
def test_podinit_reports_and_stops_stragglers(tmp_path: Path) -> None:
    """What the federation tests rely on to say "every process exited": a process that outlives the
    container's command (here: setsid, like NVFlare's job processes) is reported, then stopped."""
    netns.check_prerequisites()
    topo = netns.Topology()
    started = None
    try:
        topo.start()
        plan = {"mounts": [], "root": None, "cwd": "/", "user": None, "grace": 1,
                "argv": ["/bin/sh", "-c", "setsid sleep 300 & exit 3"], "env": {"PATH": "/usr/bin:/bin"}}  # fmt: skip
        started = procs.start_container("straggler", topo.server_ns, plan, tmp_path)
        assert started.wait(30) == 3, started.tails()
        report = started.read_report()
        assert report is not None and report["exit_code"] == 3
        assert [s["cmdline"] for s in report["stragglers"]] == ["sleep 300"]
        assert topo.pids()[topo.server_ns] == []
    finally:
        if started is not None:
            started.stop()
        topo.teardown()
    assert topo.leftovers() == [] and not topo.errors


# ------------------------------------------------------------------------------------- the federation


def _record(exposure: str, outcome: flow.Outcome, record_property: Any) -> None:
    results.RUNS[exposure] = {k: round(v, 3) for k, v in outcome.timings.items()}
    results.DETAILS[exposure] = outcome.facts
    path = results.write(results.RUNS, results.DETAILS)
    for key, value in outcome.timings.items():
        record_property(f"{exposure}.{key}_seconds", round(value, 3))
    print(f"\nend-to-end ({exposure}) phase timings, written to {path}:\n{results.table({exposure: results.RUNS[exposure]})}")


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.parametrize("exposure", ["gateway", "loadbalancer"])
def test_federation_runs_end_to_end(exposure: str, e2e_sealing: tuple[bytes, bytes], tmp_path: Path, record_property: Any) -> None:
    outcome = flow.main_flow(tmp_path, e2e_sealing, exposure=exposure)
    facts = outcome.facts
    _record(exposure, outcome, record_property)

    sites = [s["name"] for s in flow.E2E_SPEC["spec"]["sites"]]
    assert facts["registered"] == sorted(sites)
    requesting = [s["name"] for s in flow.E2E_SPEC["spec"]["sites"] if s.get("enrollment") == "request"]
    assert requesting and sorted(facts["enrolled"]) == requesting, "a site must join by request, without a bundle"
    assert facts["job"]["status"] == "FINISHED:COMPLETED"
    assert np.allclose(facts["model"]["value"], facts["model"]["expected"])
    assert all(code == 0 for code in facts["exit"].values()), facts["exit"]
    assert all(r is not None and not r["stragglers"] for r in facts["reports"].values()), facts["reports"]
    proc = facts["server_process"]
    assert proc["uid"][0] == "10000" and proc["mounts"]["/"] == "ro"

    # What differs between the modes is in the manifests; the kit works the same through either.
    m = facts["manifests"]
    ports = m["ports"]
    assert m["service_ports_to_container"] == {ports["fl"]: ports["fl"], ports["admin"]: ports["admin"]}
    fqdn = f"{flow.E2E_SPEC['spec']['server']['name']}.{flow.E2E_SPEC['spec']['server']['tenant']}.svc.cluster.local"
    if exposure == "gateway":
        # fedgen status --admin from the admin's namespace (issue 16): ready with every site, then one named.
        status = facts["status"]
        assert status["ready"]["exit"] == 0 and status["ready"]["ready"] is True, status["ready"]
        assert status["ready"]["sites"] == {"connected": sorted(sites), "missing": [], "unknown": []}
        assert status["ready"]["address"]["value"] == SERVER_IP and status["ready"]["address"]["matches"] is True
        assert status["one_stopped"]["exit"] == 1 and status["one_stopped"]["sites"]["missing"] == [flow.STOPPED_SITE]
        assert [p["message"] for p in status["one_stopped"]["problems"]] == [f"site {flow.STOPPED_SITE} is not connected to the NVFlare server"]
        assert status["stopped"] == {"kube-apiserver": "terminated", "etcd": "terminated"}
        assert m["service_type"] == "ClusterIP"
        assert m["exclude_inbound_ports"] is None, "passthrough keeps the sidecar on the NVFlare ports"
        assert m["gateway_routes"] == sorted([(ports["fl"], fqdn, ports["fl"]), (ports["admin"], fqdn, ports["admin"])])
    else:
        assert m["service_type"] == "LoadBalancer"
        assert m["exclude_inbound_ports"] == sorted(ports.values())
        assert m["gateway_routes"] == []
        assert {str(ports["fl"]): "DISABLE", str(ports["admin"]): "DISABLE"} in m["peer_authentication"]


@pytest.mark.slow
@pytest.mark.e2e
def test_site_from_another_federations_ca_cannot_register(e2e_sealing: tuple[bytes, bytes], tmp_path: Path, record_property: Any) -> None:
    facts = flow.foreign_ca_flow(tmp_path, e2e_sealing)
    print("\nforeign-CA site:", json.dumps(facts, default=str))
    record_property("foreign_ca", json.dumps(facts, default=str))
    assert facts["watched_seconds"] >= flow.TIMEOUTS["foreign_watch"]
    assert facts["rogue_log_evidence"]

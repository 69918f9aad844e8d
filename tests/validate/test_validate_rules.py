"""fedgen validate on real renders: clean trees have no findings; every rule fires on a planted defect.

Each plant copies a fresh render (made once per test process), edits the rendered YAML by hand, re-stamps the
ledger (so only the plant differs from a render, unless the plant is about the ledger) and runs the real
validation: kubectl kustomize, kubeconform on the offline schemas, every rule. It asserts that the planted
rule fires, and that nothing else fires beyond the collateral the plant declares and the findings of a hand
edit, which validate sees whatever the ledger says (HAND_EDIT: it renders the spec again).
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import io
import json
import shutil
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fedgen.validate.engine import Report, validate
from fedgen.validate.rules import REGISTRY
from tests.validate.support import (
    BASE_DIR,
    BOOTSTRAP_DIR,
    CLUSTER,
    CLUSTER_DIR,
    ENROLL_REQUEST,
    ENROLL_SIGNED,
    ENROLL_SITE,
    FEDERATION,
    HAND_EDIT,
    INGRESS_DIR,
    SERVER,
    SERVER_DIR,
    SITE_DIR,
    SPEC,
    TENANT,
    WORKLOAD,
    Enrollment,
    add_resource,
    cert_pem,
    certificate,
    container,
    doc,
    edit,
    edit_obj,
    enrollment,
    fresh,
    pem_key,
    remove_resource,
    replace_kit_certs,
    restamp,
    rsa_key,
    save,
)

Edit = Callable[[Path], None]


@dataclass(frozen=True)
class Plant:
    rule: str
    name: str
    edit: Edit
    base: str = "ranged"  # ranged (gateway, source ranges) | bypass (loadbalancer exposure) | example
    also: frozenset[str] = frozenset()  # other rules the plant rightly fires
    restamp: bool = True  # record the edit in the ledger, as if rendered (False for ledger plants)


def rules_of(report: Report) -> set[str]:
    return {f.rule for f in report.findings}


# ---------------------------------------------------------------------------------------------- editors


def _deployment(change: Callable[[dict[str, Any]], None]) -> Edit:
    return lambda repo: edit_obj(repo, f"{SERVER_DIR}/deployment.yaml", "Deployment", change)


def _container(change: Callable[[dict[str, Any]], None]) -> Edit:
    return _deployment(lambda d: change(container(d)))


def _security(key: str, value: Any) -> Edit:
    return _container(lambda c: c["securityContext"].__setitem__(key, value))


def _service(change: Callable[[dict[str, Any]], None], path: str = f"{SERVER_DIR}/service.yaml") -> Edit:
    return lambda repo: edit_obj(repo, path, "Service", change)


def _set(path: str, kind: str, change: Callable[[dict[str, Any]], None], name: str | None = None) -> Edit:
    return lambda repo: edit_obj(repo, path, kind, change, name=name)


def _write(path: str, text: str | bytes) -> Edit:
    def run(repo: Path) -> None:
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_bytes(text if isinstance(text, bytes) else text.encode())

    return run


def _both(*edits: Edit) -> Edit:
    def run(repo: Path) -> None:
        for e in edits:
            e(repo)

    return run


def _add_object(folder: str, name: str, obj: dict[str, Any]) -> Edit:
    return _both(lambda repo: save(repo, f"{folder}/{name}", [obj]), lambda repo: add_resource(repo, folder, name))


def _delete(path: str, folder: str | None = None) -> Edit:
    def run(repo: Path) -> None:
        (repo / path).unlink()
        if folder:
            remove_resource(repo, folder, Path(path).name)

    return run


def _sealed(change: Callable[[dict[str, Any]], None]) -> Edit:
    return _set(f"{SERVER_DIR}/sealed-secret.yaml", "SealedSecret", change)


def _first_sealed_value(d: dict[str, Any]) -> tuple[str, bytes]:
    key = sorted(d["spec"]["encryptedData"])[0]
    return key, base64.b64decode(d["spec"]["encryptedData"][key])


def _reprefix(d: dict[str, Any]) -> None:
    key, raw = _first_sealed_value(d)
    d["spec"]["encryptedData"][key] = base64.b64encode((256).to_bytes(2, "big") + raw[2:]).decode()


def _configmap(name: str, change: Callable[[dict[str, Any]], None]) -> Edit:
    return _set(f"{SERVER_DIR}/configmaps.yaml", "ConfigMap", change, name=name)


def _fed_server(change: Callable[[str], str]) -> Edit:
    return _configmap(f"{WORKLOAD}-startup", lambda d: d["data"].__setitem__("fed_server.json", change(d["data"]["fed_server.json"])))


def _site_startup(change: Callable[[dict[str, Any]], None]) -> Edit:
    return _set(f"{SITE_DIR}/configmaps.yaml", "ConfigMap", change, name="nvflare-site-a-startup")


def _virtual_service(change: Callable[[dict[str, Any]], None]) -> Edit:
    return _set(f"{INGRESS_DIR}/virtual-service.yaml", "VirtualService", change)


def _gateway(change: Callable[[dict[str, Any]], None]) -> Edit:
    return _set(f"{INGRESS_DIR}/gateway.yaml", "Gateway", change)


def _root_sync(change: Callable[[dict[str, Any]], None]) -> Edit:
    return _set(f"{BOOTSTRAP_DIR}/root-sync.yaml", "RootSync", change)


def _app_project(change: Callable[[dict[str, Any]], None]) -> Edit:
    return _set(f"{BOOTSTRAP_DIR}/apps/app-project.yaml", "AppProject", change)


def _authz(name: str, change: Callable[[dict[str, Any]], None]) -> Edit:
    return _set(f"{SERVER_DIR}/authorization-policies.yaml", "AuthorizationPolicy", change, name=name)


def _drop_doc(path: str, kind: str, name: str) -> Edit:
    return lambda repo: edit(repo, path, lambda docs: docs.remove(doc(docs, kind, name)))


def _new_ca_and_server(cn: str, *, expired: bool = False) -> Edit:
    def run(repo: Path) -> None:
        ca_key, leaf_key = rsa_key(), rsa_key()
        now = dt.datetime.now(dt.timezone.utc)
        root = certificate("test-root", ca_key, not_after=now - dt.timedelta(days=1) if expired else None)
        leaf = certificate(cn, leaf_key, issuer=("test-root", ca_key), not_after=now - dt.timedelta(days=1) if expired else None)
        replace_kit_certs(repo, root=root, server=leaf)

    return run


def _other_root(repo: Path) -> None:
    replace_kit_certs(repo, root=certificate("another-root", rsa_key()))


def _pem_file(repo: Path) -> None:
    (repo / "keys").mkdir(exist_ok=True)
    (repo / "keys" / "leaked.pem").write_bytes(pem_key(rsa_key()))


def _der_file(path: str, key: Callable[[], Any], syntax: Any) -> Edit:
    """A private key made now, written in DER (binary) form."""
    return lambda repo: _write(path, key().private_bytes(serialization.Encoding.DER, syntax, serialization.NoEncryption()))(repo)


def _tar_gz(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _gzip_bomb(expanded_mib: int) -> bytes:
    """expanded_mib MiB of zeros as one gzip stream of concatenated members (each 1 MiB, ~1 KB packed)."""
    return gzip.compress(bytes(1024 * 1024)) * expanded_mib


def _kustomization(folder: str, change: Callable[[dict[str, Any]], None]) -> Edit:
    return lambda repo: edit(repo, f"{folder}/kustomization.yaml", lambda docs: change(docs[0]))


def _link(path: str, target: str) -> Edit:
    def run(repo: Path) -> None:
        (repo / path).symlink_to(target)

    return run


def _encoded_key(d: dict[str, Any]) -> None:
    d["data"]["debug.key"] = base64.b64encode(pem_key(rsa_key())).decode()


EXAMPLE_TFVARS = "terraform/acp-dev/platform.auto.tfvars.json"  # the example runs on the reference architecture


def _copy_tfvars(repo: Path) -> None:
    shutil.copy(repo / EXAMPLE_TFVARS, repo / "clusters/acp-dev/platform.auto.tfvars.json")


def _tfvars(change: Callable[[dict[str, Any]], None]) -> Edit:
    def run(repo: Path) -> None:
        path = repo / EXAMPLE_TFVARS
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")

    return run


def _spec(change: Callable[[dict[str, Any]], None]) -> Edit:
    return lambda repo: edit(repo, SPEC, lambda docs: change(docs[0]))


def _remove_limits(c: dict[str, Any]) -> None:
    del c["resources"]["limits"]


def _json_key(text: str, change: Callable[[dict[str, Any]], None]) -> str:
    doc = json.loads(text)
    change(doc)
    return json.dumps(doc, indent=4) + "\n"


def _max_clients(value: int) -> Callable[[dict[str, Any]], None]:
    return lambda doc: doc["servers"][0].__setitem__("max_num_clients", value)


def _local(key: str, change: Callable[[dict[str, Any]], None]) -> Edit:
    return _configmap(f"{WORKLOAD}-local", lambda d: d["data"].__setitem__(key, _json_key(d["data"][key], change)))


def _spec(change: Callable[[dict[str, Any]], None]) -> Edit:
    return lambda repo: edit(repo, SPEC, lambda docs: change(docs[0]))


def _drop_rendered_resources(d: dict[str, Any]) -> None:
    """Without fedgen's resources.json, NVFlare reads the provisioning template's resources.json.default."""
    del d["data"]["resources.json"]


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _enrolled(path: str, data: Callable[[Enrollment], bytes]) -> Edit:
    """Write a file made from site-c's real enrollment files (made with nvflare when first needed)."""
    return lambda repo: _write(path, data(enrollment()))(repo)


def _request_with(extra: dict[str, bytes]) -> Callable[[Enrollment], bytes]:
    return lambda e: _zip({**_members(e.request), **extra})


def _edited_site_yaml(e: Enrollment) -> bytes:
    members = _members(e.request)
    return _zip({**members, "site.yaml": members["site.yaml"] + b"# edited after the request was made\n"})


def _enroll_site(change: Callable[[dict[str, Any]], None]) -> Edit:
    return _spec(lambda d: change(next(s for s in d["spec"]["sites"] if s["name"] == ENROLL_SITE)))


def _drop_enroll_site(d: dict[str, Any]) -> None:
    d["spec"]["sites"] = [s for s in d["spec"]["sites"] if s["name"] != ENROLL_SITE]


ENROLL_DIR = f"enrollment/{FEDERATION}"
OVERLAY_DIR = f"tenants/{TENANT}/overlays/{CLUSTER}"
NAMESPACE_OBJ = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": TENANT, "labels": {"extra": "copy"}}}
STALE = (
    f"# Generated by fedgen from {SPEC}. Do not edit: change the spec and run fedgen render.\n"
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: stale\n  namespace: fl-genomics\ndata:\n  a: b\n"
)
PLAINTEXT_SECRET = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: fl-genomics\nstringData:\n  password: hunter2\n"
LEDGER = f".fedgen/owned/{FEDERATION}.json"
CLUSTER_ADMIN = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRoleBinding",
    "metadata": {"name": "fl-ksa-cluster-admin"},
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
    "subjects": [{"kind": "ServiceAccount", "name": "fl-ksa", "namespace": TENANT}],
}


def _ledger(change: Callable[[dict[str, Any]], None]) -> Edit:
    def run(repo: Path) -> None:
        data = json.loads((repo / LEDGER).read_text())
        change(data)
        (repo / LEDGER).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")

    return run


def _copy_ledger(repo: Path) -> None:
    shutil.copy(repo / LEDGER, repo / ".fedgen/owned/copy.json")


# ------------------------------------------------------------------------------------------------ plants

SHARED_EDIT = frozenset({"FG102"})
# The example's own warning: no loadBalancerSourceRanges (FG709).
EXAMPLE_WARNINGS = frozenset({"FG709"})

PLANTS: tuple[Plant, ...] = (
    # FG1xx spec and drift
    Plant("FG101", "owned file deleted", _delete(f"{BASE_DIR}/service-entries.yaml"), restamp=False, also=frozenset({"FG502"})),
    Plant("FG101", "shared tfvars deleted", _delete(EXAMPLE_TFVARS), base="example", restamp=False, also=EXAMPLE_WARNINGS),
    Plant("FG102", "owned file edited by hand", _service(lambda d: d["metadata"]["labels"].__setitem__("hand", "edit")), restamp=False),
    Plant(
        "FG102",
        "shared tfvars edited by hand",
        _tfvars(lambda d: d.__setitem__("platform_name", "edited")),
        base="example",
        restamp=False,
        also=EXAMPLE_WARNINGS,
    ),
    Plant("FG103", "interrupted render journal", _write(".fedgen/journal.json", "{}\n")),
    Plant("FG104", "unreadable ledger", _write(".fedgen/owned/broken.json", "not json\n")),
    Plant("FG105", "spec not in the repo", lambda r: (r / SPEC).unlink()),
    Plant("FG106", "spec does not load", _spec(lambda d: d["spec"]["server"]["ports"].__setitem__("fl", "abc"))),
    Plant("FG107", "generated file no ledger owns", _write(f"{CLUSTER_DIR}/stale.yaml", STALE)),
    Plant("FG108", "unused allowlist entry", _write(".fedgen/allowlist.yaml", "allow:\n  - rule: FG709\n    object: Service/nowhere/x\n    reason: test\n")),
    # FG1xx enrollment files (site-c enrolled with the real nvflare tools, then tampered with)
    Plant("FG109", "note under enrollment/", _write(f"{ENROLL_DIR}/requests/README.txt", "site-c asked by mail\n"), base="enrolled"),
    Plant("FG109", "request zip in the signed folder", _enrolled(f"{ENROLL_DIR}/signed/{ENROLL_SITE}.request.zip", lambda e: e.request), base="enrolled"),
    Plant(
        "FG110",
        "request filed under another federation",
        _enrolled(f"enrollment/proteomics/requests/{ENROLL_SITE}.request.zip", lambda e: e.request),
        base="enrolled",
    ),
    Plant("FG111", "request renamed for another site", _enrolled(f"{ENROLL_DIR}/requests/site-x.request.zip", lambda e: e.request), base="enrolled"),
    Plant("FG112", "request member edited", _enrolled(ENROLL_REQUEST, _edited_site_yaml), base="enrolled"),
    Plant("FG112", "signed zip truncated", _enrolled(ENROLL_SIGNED, lambda e: e.signed[: len(e.signed) // 2]), base="enrolled"),
    Plant("FG112", "request larger than 64 KiB", _write(ENROLL_REQUEST, b"PK\x03\x04" + bytes(70_000)), base="enrolled"),
    Plant("FG113", "enrolled site removed from the spec", _spec(_drop_enroll_site), base="enrolled"),
    Plant("FG113", "org differs from the spec", _enroll_site(lambda s: s.__setitem__("org", "hospital_z")), base="enrolled"),
    Plant("FG113", "site enrolls by bundle", _enroll_site(lambda s: s.pop("enrollment")), base="enrolled"),
    Plant("FG113", "request for another project", _both(_enrolled(ENROLL_REQUEST, lambda e: e.other_project_request), _delete(ENROLL_SIGNED)), base="enrolled"),
    Plant("FG114", "signed zip without its request", _delete(ENROLL_REQUEST), base="enrolled"),
    # Hand edits that re-stamp the ledger (as every restamped plant does): validate renders the spec again.
    Plant("FG120", "replicas edited", _deployment(lambda d: d["spec"].__setitem__("replicas", 2))),
    Plant("FG121", "contribution forged", _ledger(lambda d: d["contributions"][0]["tfvars"].__setitem__("platform_name", "forged")), also=SHARED_EDIT),
    Plant("FG122", "file no ledger lists in a tenant folder", _write(f"{SERVER_DIR}/notes.txt", "kept here by hand\n")),
    Plant("FG123", "cluster-admin binding in a tenant folder", _add_object(BASE_DIR, "rbac.yaml", CLUSTER_ADMIN)),
    Plant("FG124", "image from another registry", _container(lambda c: c.__setitem__("image", "registry.example.net/x/nvflare:2.9.0@sha256:" + "ab" * 32))),
    Plant("FG125", "two ledgers render one federation", _copy_ledger),
    # FG2xx schema (kubeconform, real schemas)
    Plant("FG201", "typo field", _deployment(lambda d: d["spec"].__setitem__("replcas", 1))),
    Plant("FG201", "wrong type", _deployment(lambda d: d["spec"].__setitem__("replicas", "one"))),
    Plant("FG202", "unknown apiVersion", _deployment(lambda d: d.__setitem__("apiVersion", "apps/v9"))),
    Plant(
        "FG202",
        "kind without schema",
        _add_object(SERVER_DIR, "widget.yaml", {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": TENANT}}),
    ),
    # FG3xx mesh, passthrough
    Plant("FG301", "service port named grpc", _service(lambda d: d["spec"]["ports"][0].__setitem__("name", "grpc-flport"))),
    Plant("FG301", "appProtocol http2", _service(lambda d: d["spec"]["ports"][1].__setitem__("appProtocol", "http2"))),
    Plant("FG302", "gateway terminates", _gateway(lambda d: d["spec"]["servers"][0]["port"].__setitem__("protocol", "HTTP2"))),
    Plant(
        "FG302",
        "destination rule originates TLS",
        _set(f"{SERVER_DIR}/destination-rule.yaml", "DestinationRule", lambda d: d["spec"]["trafficPolicy"]["tls"].__setitem__("mode", "SIMPLE")),
    ),
    Plant("FG303", "gateway lacks admin port", _gateway(lambda d: d["spec"].__setitem__("servers", d["spec"]["servers"][:1]))),
    Plant(
        "FG304", "gateway service lacks admin port", _service(lambda d: d["spec"].__setitem__("ports", d["spec"]["ports"][:1]), f"{INGRESS_DIR}/service.yaml")
    ),
    Plant("FG305", "no tcp route for admin port", _virtual_service(lambda d: d["spec"].__setitem__("tcp", d["spec"]["tcp"][:1]))),
    Plant(
        "FG306",
        "short destination host",
        _virtual_service(lambda d: d["spec"]["tcp"][0]["route"][0]["destination"].__setitem__("host", SERVER)),
        also=frozenset({"FG607"}),
    ),
    Plant("FG307", "no destination rule", _delete(f"{SERVER_DIR}/destination-rule.yaml", SERVER_DIR)),
    Plant(
        "FG307",
        "destination rule disables mTLS",
        _set(f"{SERVER_DIR}/destination-rule.yaml", "DestinationRule", lambda d: d["spec"]["trafficPolicy"]["tls"].__setitem__("mode", "DISABLE")),
    ),
    Plant(
        "FG308",
        "allow names the wrong namespace",
        _authz(f"{WORKLOAD}-allow-gateway", lambda d: d["spec"]["rules"][0]["from"][0]["source"].__setitem__("namespaces", ["other-ns"])),
    ),
    Plant("FG309", "deny policy removed", _drop_doc(f"{SERVER_DIR}/authorization-policies.yaml", "AuthorizationPolicy", f"{WORKLOAD}-deny-non-gateway")),
    # FG3xx mesh, bypass
    Plant(
        "FG311",
        "admin port not excluded",
        _deployment(lambda d: d["spec"]["template"]["metadata"]["annotations"].__setitem__("traffic.sidecar.istio.io/excludeInboundPorts", "9102")),
        base="bypass",
    ),
    Plant(
        "FG312",
        "includeInboundPorts captures the ports",
        _deployment(lambda d: d["spec"]["template"]["metadata"]["annotations"].__setitem__("traffic.sidecar.istio.io/includeInboundPorts", "9102,9103")),
        base="bypass",
    ),
    Plant("FG313", "no peer authentication", _delete(f"{SERVER_DIR}/peer-authentication.yaml", SERVER_DIR), base="bypass"),
    Plant(
        "FG314",
        "destination rule keeps TLS",
        _set(f"{SERVER_DIR}/destination-rule.yaml", "DestinationRule", lambda d: d["spec"]["trafficPolicy"].pop("portLevelSettings")),
        base="bypass",
    ),
    Plant(
        "FG315",
        "network policy open to the world",
        _set(f"{SERVER_DIR}/network-policy.yaml", "NetworkPolicy", lambda d: d["spec"]["ingress"][0].__setitem__("from", [{"ipBlock": {"cidr": "0.0.0.0/0"}}])),
        base="bypass",
    ),
    # FG4xx secrets
    Plant("FG401", "plaintext secret outside sync roots", _write("docs/secret.yaml", PLAINTEXT_SECRET)),
    Plant("FG402", "PEM key file", _pem_file),
    Plant("FG402", "RSA key in DER (PKCS#8)", _der_file("keys/leaked.der", rsa_key, serialization.PrivateFormat.PKCS8)),
    Plant("FG402", "RSA key in DER (PKCS#1)", _der_file("docs/blob.bin", rsa_key, serialization.PrivateFormat.TraditionalOpenSSL)),
    Plant(
        "FG402",
        "EC key in DER (SEC1)",
        _der_file("docs/ec.key", lambda: ec.generate_private_key(ec.SECP256R1()), serialization.PrivateFormat.TraditionalOpenSSL),
    ),
    Plant("FG402", "PEM key in a file with NUL bytes", lambda r: _write("docs/notes.bin", b"\0\0header\0" + pem_key(rsa_key()))(r)),
    Plant("FG402", "PEM key at the end of a 9 MiB file", lambda r: _write("docs/big.log", b"log line\n" * (1024 * 1024) + pem_key(rsa_key()))(r)),
    Plant("FG402", "key inside a tar.gz", lambda r: _write("docs/backup.tar.gz", _tar_gz({"kit/server.key": pem_key(rsa_key())}))(r)),
    Plant(
        "FG402",
        "DER key in a zip inside a tar.gz",
        lambda r: _write(
            "docs/bundle.tgz",
            _tar_gz(
                {
                    "inner.zip": _zip(
                        {"k.der": rsa_key().private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())}
                    )
                }
            ),
        )(r),
    ),
    Plant("FG403", "base64 key in a ConfigMap", _configmap(f"{WORKLOAD}-local", _encoded_key)),
    Plant("FG404", "sealed value not base64", _sealed(lambda d: d["spec"]["encryptedData"].__setitem__(_first_sealed_value(d)[0], "not base64!!"))),
    Plant("FG405", "sealed for another key size", _sealed(_reprefix)),
    Plant("FG405", "site secret sealed for another key size", _set(f"{SITE_DIR}/sealed-secret.yaml", "SealedSecret", _reprefix), base="sites"),
    Plant(
        "FG406",
        "cluster-wide annotation on a strict secret",
        _sealed(lambda d: d["metadata"].setdefault("annotations", {}).__setitem__("sealedsecrets.bitnami.com/cluster-wide", "true")),
    ),
    Plant("FG407", "template renamed", _sealed(lambda d: d["spec"]["template"]["metadata"].__setitem__("name", "other"))),
    # FG402 looks into every archive too: it reports the same key as a key in a file
    Plant(
        "FG408",
        "private key inside the request zip",
        _enrolled(ENROLL_REQUEST, lambda e: _request_with({f"{ENROLL_SITE}.key": e.key})(e)),
        base="enrolled",
        also=frozenset({"FG402"}),
    ),
    Plant(
        "FG408",
        "private key in a zip out of place",
        _enrolled(f"{ENROLL_DIR}/{ENROLL_SITE}.zip", lambda e: _zip({f"{ENROLL_SITE}.key": e.key})),
        base="enrolled",
        also=frozenset({"FG109", "FG402"}),
    ),
    Plant("FG409", "gzip bomb", lambda r: _write("docs/logs.gz", _gzip_bomb(100))(r)),
    Plant("FG409", "JSON nested 100000 deep", _write("docs/deep.json", "[" * 100_000 + "]" * 100_000)),
    Plant("FG409", "YAML larger than 8 MiB", _write("docs/huge.yaml", "a: " + "x" * (9 * 1024 * 1024) + "\n")),
    # FG5xx GitOps structure
    # Plants that edit a shared file (sync root kustomization, bootstrap) are also drift: FG102 (or FG101).
    Plant("FG501", "sync root without kustomization", _delete(f"{CLUSTER_DIR}/kustomization.yaml"), also=frozenset({"FG101"})),
    Plant("FG502", "sync root does not build", lambda r: add_resource(r, CLUSTER_DIR, "missing.yaml"), also=SHARED_EDIT),
    Plant("FG503", "tfvars in a sync root", _copy_tfvars, base="example", also=EXAMPLE_WARNINGS),
    Plant(
        "FG504",
        "namespaced object without namespace",
        _set(f"{BASE_DIR}/network-policies.yaml", "NetworkPolicy", lambda d: d["metadata"].pop("namespace"), name="allow-egress-to-private-google-apis"),
    ),
    Plant(
        "FG505",
        "namespace on a cluster-scoped object",
        _set(f"{BASE_DIR}/namespace.yaml", "Namespace", lambda d: d["metadata"].__setitem__("namespace", "default")),
    ),
    Plant("FG506", "reserved label prefix", _deployment(lambda d: d["metadata"]["labels"].__setitem__("configsync.gke.io/owner", "me"))),
    Plant("FG507", "server-set fields", _service(lambda d: d["metadata"].__setitem__("uid", "0f0f0f0f-0000-0000-0000-000000000000"))),
    Plant(
        "FG508",
        "object in Config Sync's namespace",
        _add_object(
            CLUSTER_DIR,
            "cms.yaml",
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "config-management-system"}, "data": {"a": "b"}},
        ),
        also=SHARED_EDIT,
    ),
    Plant("FG509", "namespace declared twice for a cluster", _add_object(BOOTSTRAP_DIR, "namespace.yaml", NAMESPACE_OBJ), also=SHARED_EDIT),
    Plant(
        "FG510", "RootSync syncs a missing folder", _root_sync(lambda d: d["spec"]["git"].__setitem__("dir", "clusters/nowhere")), also=SHARED_EDIT | {"FG511"}
    ),
    Plant(
        "FG511",
        "RootSync syncs another cluster's folder",
        _root_sync(lambda d: d["spec"]["git"].__setitem__("dir", f"tenants/{TENANT}")),
        also=SHARED_EDIT | {"FG501"},
    ),
    Plant("FG512", "RootSync revision differs from the spec", _root_sync(lambda d: d["spec"]["git"].__setitem__("revision", "develop")), also=SHARED_EDIT),
    Plant("FG513", "RootSync in hierarchy format", _root_sync(lambda d: d["spec"].__setitem__("sourceFormat", "hierarchy")), also=SHARED_EDIT),
    Plant("FG514", "RootSync built by its own sync root", lambda r: add_resource(r, CLUSTER_DIR, "bootstrap/root-sync.yaml"), also=SHARED_EDIT | {"FG509"}),
    Plant("FG515", "broken YAML in a sync root", _write(f"{CLUSTER_DIR}/broken.yaml", "a: [1\n")),
    Plant(
        "FG516",
        "AppProject whitelist lacks a rendered kind",
        _app_project(
            lambda d: d["spec"].__setitem__("namespaceResourceWhitelist", [e for e in d["spec"]["namespaceResourceWhitelist"] if e["kind"] != "ConfigMap"])
        ),
        base="argocd",
        also=SHARED_EDIT,
    ),
    Plant(
        "FG516",
        "AppProject destinations lack the tenant",
        _app_project(lambda d: d["spec"].__setitem__("destinations", [e for e in d["spec"]["destinations"] if e["namespace"] != TENANT])),
        base="argocd",
        also=SHARED_EDIT,
    ),
    Plant(
        "FG516",
        "AppProject blacklists a rendered kind",
        _app_project(lambda d: d["spec"].__setitem__("namespaceResourceBlacklist", [{"group": "apps", "kind": "*"}])),
        base="argocd",
        also=SHARED_EDIT,
    ),
    Plant(
        "FG516",
        "Application names a project the repo lacks",
        _set(f"{BOOTSTRAP_DIR}/apps/application.yaml", "Application", lambda d: d["spec"].__setitem__("project", "nowhere")),
        base="argocd",
        also=SHARED_EDIT,
    ),
    # The example runs on the reference architecture: its own Config Sync manages tenant fl-1's baseline.
    Plant(
        "FG517",
        "tenant namespace declared on the platform",
        _add_object("tenants/fl-1/base", "namespace.yaml", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fl-1"}}),
        base="example",
        also=EXAMPLE_WARNINGS,
    ),
    Plant(
        "FG517",
        "platform's mutator declared again",
        _add_object(
            "tenants/fl-1/base",
            "mutators.yaml",
            {
                "apiVersion": "mutations.gatekeeper.sh/v1",
                "kind": "Assign",
                "metadata": {"name": "mutator-add-toleration-fl-1"},
                "spec": {
                    "applyTo": [{"groups": [""], "kinds": ["Pod"], "versions": ["v1"]}],
                    "location": "spec.tolerations",
                    "parameters": {"assign": {"value": []}},
                },
            },
        ),
        base="example",
        also=EXAMPLE_WARNINGS,
    ),
    Plant(
        "FG518",
        "generator reads /proc/self/environ",
        _kustomization(OVERLAY_DIR, lambda k: k.__setitem__("configMapGenerator", [{"name": "env", "files": ["e=/proc/self/environ"]}])),
    ),
    Plant("FG518", "resource outside the repository", _kustomization(OVERLAY_DIR, lambda k: k["resources"].append("../../../../../outside"))),
    Plant("FG518", "http resource", _kustomization(OVERLAY_DIR, lambda k: k["resources"].append("http://127.0.0.1:9/x.yaml"))),
    Plant("FG518", "git base", _kustomization(OVERLAY_DIR, lambda k: k["resources"].append("git::https://github.com/example/base.git//deploy?ref=main"))),
    Plant(
        "FG518",
        "file behind a symbolic link",
        _both(
            _link(f"{OVERLAY_DIR}/host.txt", "/etc/hostname"),
            _kustomization(OVERLAY_DIR, lambda k: k.__setitem__("configMapGenerator", [{"name": "h", "files": ["host.txt"]}])),
        ),
    ),
    Plant(
        "FG518",
        "folder behind a symbolic link",
        _both(_link(f"{OVERLAY_DIR}/linked", "../../base"), _kustomization(OVERLAY_DIR, lambda k: k.__setitem__("resources", ["linked", *k["resources"][1:]]))),
    ),
    Plant(
        "FG518",
        "generator reads the state",
        _both(
            _write(".fedgen/state/genomics/state.json", "{}\n"),
            _kustomization(
                OVERLAY_DIR, lambda k: k.__setitem__("configMapGenerator", [{"name": "s", "files": ["../../../../.fedgen/state/genomics/state.json"]}])
            ),
        ),
    ),
    Plant("FG518", "helm chart", _kustomization(OVERLAY_DIR, lambda k: k.__setitem__("helmCharts", [{"name": "x", "repo": "https://charts.example.com"}]))),
    Plant(
        "FG518",
        "exec plugin",
        _kustomization(
            OVERLAY_DIR,
            lambda k: k.__setitem__(
                "transformers",
                [
                    "apiVersion: example.com/v1\nkind: Run\nmetadata:\n  name: run\n  annotations:\n    config.kubernetes.io/function: |\n      exec:\n        path: /bin/sh\n"
                ],
            ),
        ),
    ),
    Plant(
        "FG518",
        "builtin generator reads an absolute path",
        _kustomization(
            OVERLAY_DIR,
            lambda k: k.__setitem__("generators", ["apiVersion: builtin\nkind: ConfigMapGenerator\nmetadata:\n  name: g\nfiles:\n- /etc/hostname\n"]),
        ),
    ),
    Plant("FG518", "upper-case field names", _kustomization(OVERLAY_DIR, lambda k: k.__setitem__("RESOURCES", ["/etc"]))),
    # FG6xx consistency
    Plant("FG601", "service selects nothing", _service(lambda d: d["spec"].__setitem__("selector", {"run": "nothing"})), also=frozenset({"FG604"})),
    Plant(
        "FG602",
        "deployment selector mismatch",
        _deployment(lambda d: d["spec"]["selector"]["matchLabels"].__setitem__("run", "other")),
        also=frozenset({"FG601"}),
    ),
    Plant(
        "FG603",
        "targetPort names no container port",
        _service(lambda d: d["spec"]["ports"][1].__setitem__("targetPort", "tcp-nothing")),
        also=frozenset({"FG605"}),
    ),
    Plant("FG604", "service renamed", _service(lambda d: d["metadata"].__setitem__("name", f"{SERVER}-svc")), also=frozenset({"FG307", "FG607"})),
    Plant("FG605", "service port differs from fed_server.json", _service(lambda d: d["spec"]["ports"][0].__setitem__("port", 9104)), also=frozenset({"FG607"})),
    Plant(
        "FG606",
        "container port differs from fed_server.json",
        _container(lambda c: c["ports"][1].__setitem__("containerPort", 9113)),
        also=frozenset({"FG605"}),
    ),
    Plant(
        "FG607",
        "route to a port the service lacks",
        _virtual_service(lambda d: d["spec"]["tcp"][0]["route"][0]["destination"]["port"].__setitem__("number", 9999)),
    ),
    Plant("FG608", "certificate for another name", _new_ca_and_server("wrong-name")),
    Plant("FG609", "root CA from elsewhere", _other_root),
    Plant("FG610", "expired certificates", _new_ca_and_server(SERVER, expired=True)),
    Plant(
        "FG611",
        "volume names a missing ConfigMap",
        _deployment(lambda d: d["spec"]["template"]["spec"]["volumes"][2]["configMap"].__setitem__("name", "missing-cm")),
    ),
    Plant("FG612", "fed_server.json unreadable", _fed_server(lambda text: "{not json")),
    Plant(
        "FG613",
        "site client dials another port",
        _site_startup(lambda d: d["data"].__setitem__("fed_client.json", d["data"]["fed_client.json"].replace(":9102", ":9999"))),
        base="sites",
    ),
    Plant(
        "FG613",
        "site client trusts another root CA",
        _site_startup(lambda d: d["data"].__setitem__("rootCA.pem", cert_pem(certificate("another-root", rsa_key())))),
        base="sites",
    ),
    Plant("FG614", "signed by another federation's root CA", _enrolled(ENROLL_SIGNED, lambda e: e.other_root_signed), base="enrolled"),
    Plant(
        "FG614",
        "signed zip named for another site",
        _enrolled(f"{ENROLL_DIR}/signed/site-x.signed.zip", lambda e: e.signed),
        base="enrolled",
        also=frozenset({"FG114"}),
    ),
    Plant("FG615", "request replaced by another request", _enrolled(ENROLL_REQUEST, lambda e: e.other_request), base="enrolled"),
    Plant("FG616", "resources.json admits one client of two", _local("resources.json", _max_clients(1))),
    Plant("FG616", "fed_server.json limit wins over resources.json", _fed_server(lambda text: _json_key(text, _max_clients(1)))),
    Plant(
        "FG616",
        "template default of 100 for 120 sites",
        _both(
            _configmap(f"{WORKLOAD}-local", _drop_rendered_resources),
            _spec(lambda d: d["spec"].__setitem__("sites", [{"name": f"site-{i}", "org": "hospital"} for i in range(120)])),
        ),
        also=frozenset({"FG710"}),
    ),
    # FG7xx hardening and exposure
    Plant("FG701", "may run as root", _security("runAsNonRoot", False)),
    Plant("FG702", "privilege escalation", _security("allowPrivilegeEscalation", True)),
    Plant("FG703", "privileged", _security("privileged", True)),
    Plant("FG704", "host network", _deployment(lambda d: d["spec"]["template"]["spec"].__setitem__("hostNetwork", True))),
    Plant("FG705", "writable root filesystem", _security("readOnlyRootFilesystem", False)),
    Plant("FG706", "no limits", _container(_remove_limits)),
    Plant("FG707", "token mounted", _deployment(lambda d: d["spec"]["template"]["spec"].__setitem__("automountServiceAccountToken", True))),
    Plant("FG708", "capabilities kept", _container(lambda c: c["securityContext"].pop("capabilities"))),
    Plant("FG709", "gateway open to any address", _service(lambda d: d["spec"].pop("loadBalancerSourceRanges"), f"{INGRESS_DIR}/service.yaml")),
    Plant("FG710", "server memory limit below the estimate", _container(lambda c: c["resources"]["limits"].__setitem__("memory", "256Mi"))),
    Plant("FG709", "bypass load balancer open", _service(lambda d: d["spec"].__setitem__("loadBalancerSourceRanges", ["0.0.0.0/0"])), base="bypass"),
    Plant("FG711", "server image by tag", _container(lambda c: c.__setitem__("image", "europe-west4-docker.pkg.dev/gen-proj/fl/nvflare:2.9.0"))),
    Plant(
        "FG711",
        "site-cluster image by tag",
        _set(f"{SITE_DIR}/deployment.yaml", "Deployment", lambda d: container(d).__setitem__("image", "nvflare:latest")),
        base="sites",
    ),
)


def test_every_rule_has_a_planted_defect_test() -> None:
    planted = {p.rule for p in PLANTS}
    assert sorted(set(REGISTRY.ids) - planted) == [], "rules without a test that fires them"
    assert sorted(planted - set(REGISTRY.ids)) == [], "plants for rules that do not exist"


def test_clean_tree_tests_cover_every_rule() -> None:
    """The clean-tree tests assert an empty report (all rules run), so none fires on a clean render; here we
    check each planted rule's collateral is a real rule, so a typo cannot hide an unexpected finding."""
    for plant in PLANTS:
        assert plant.also <= set(REGISTRY.ids), plant


@pytest.mark.parametrize("plant", PLANTS, ids=[f"{p.rule}-{p.name.replace(' ', '-')}" for p in PLANTS])
def test_planted_defect_fires_its_rule(plant: Plant, tmp_path: Path) -> None:
    repo = fresh(plant.base, tmp_path)
    plant.edit(repo)
    if plant.restamp:
        restamp(repo)
    report = validate(repo=repo)
    fired = rules_of(report)
    assert plant.rule in fired, [(f.rule, f.path, f.message) for f in report.findings]
    unexpected = fired - {plant.rule} - plant.also - HAND_EDIT
    assert not unexpected, [(f.rule, f.path, f.line, f.object, f.message) for f in report.findings if f.rule in unexpected]
    for f in report.findings:
        assert f.path and f.message and "\n" not in f.message and f.remediation
        assert len(f.fingerprint) == 64
    assert report.exit_code == (1 if report.errors else 0)


# ------------------------------------------------------------------------------------------- clean trees


@pytest.mark.parametrize("base", ["ranged", "bypass", "argocd", "sites", "enrolled"])
def test_rendered_tree_with_source_ranges_has_no_findings(base: str, tmp_path: Path) -> None:
    """Both exposure modes (gateway passthrough, loadbalancer bypass), both engines, a site running its
    client on its own cluster (own sync root, own sealing certificate), and a site enrolled by request (its
    request and signed zips committed, made with the real nvflare tools) validate clean."""
    report = validate(repo=fresh(base, tmp_path))
    assert [(f.rule, f.path, f.line, f.message) for f in report.findings] == []
    assert report.exit_code == 0
    assert report.objects > 20


def test_rendered_example_has_only_the_open_ranges_warning(tmp_path: Path) -> None:
    """examples/federation.yaml leaves loadBalancerSourceRanges empty on purpose: that is one warning
    (FG709) and nothing else; warnings do not fail the check. It runs on the reference architecture: the
    fl-ksa its server uses is the platform's (no FG611), and it declares nothing the platform manages."""
    report = validate(repo=fresh("example", tmp_path))
    assert [(f.rule, f.severity, f.object) for f in report.findings] == [("FG709", "warning", "Service/istio-ingress/nvflare-fl-1")]
    assert report.errors == 0 and report.exit_code == 0


def test_mesh_rules_find_the_servers_once_per_validation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every mesh rule walks the same servers: they are found once per sync root, not once per rule (which
    made FG30x cost more than the rules themselves at many federations)."""
    from fedgen.validate.rules import mesh_context

    calls: list[int] = []
    real = mesh_context.find_servers

    def counted(objects: Any) -> Any:
        calls.append(1)
        return real(objects)

    monkeypatch.setattr(mesh_context, "find_servers", counted)
    report = validate(repo=fresh("ranged", tmp_path))
    assert report.findings == () and len(report.sync_roots) == 1
    assert len(calls) == 1


def test_findings_point_at_the_source_line(tmp_path: Path) -> None:
    repo = fresh("ranged", tmp_path)
    _security("privileged", True)(repo)
    restamp(repo)
    [finding] = [f for f in validate(repo=repo).findings if f.rule == "FG703"]
    lines = (repo / SERVER_DIR / "deployment.yaml").read_text().splitlines()
    assert finding.path == f"{SERVER_DIR}/deployment.yaml"
    assert finding.object == f"Deployment/{TENANT}/{WORKLOAD}"
    assert lines[finding.line - 1].strip() == "privileged: true"


def test_kubernetes_version_changes_the_schemas(tmp_path: Path) -> None:
    """A kind the default version does not serve has no schema there: FG202, never a silent pass."""
    repo = fresh("ranged", tmp_path)
    _deployment(lambda d: d.__setitem__("apiVersion", "apps/v1beta1"))(repo)
    restamp(repo)
    assert "FG202" in rules_of(validate(repo=repo, kubernetes_version="1.33"))

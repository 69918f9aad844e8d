"""fedgen.validate.kubeconform against the real kubeconform binary (v0.7.0) and the committed offline schemas.

The binary must be at <repo>/.tools/bin/kubeconform: these tests fail, never skip, without it. Each YAML stream
below is validated once (module-scoped fixtures) to keep the suite fast.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import fedgen.executables
from fedgen.errors import ExternalError, InputError
from fedgen.validate.kubeconform import (
    DEFAULT_KUBERNETES_VERSION,
    SchemaResult,
    available_kubernetes_versions,
    find_kubeconform,
    validate_manifests,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
KUBECONFORM = REPO_ROOT / ".tools" / "bin" / "kubeconform"
SCHEMAS = REPO_ROOT / "generator" / "fedgen" / "schemas"


@pytest.fixture(scope="module", autouse=True)
def real_kubeconform():
    """Point the wrapper at the repository's kubeconform; fail loudly when it is not there."""
    if not (KUBECONFORM.is_file() and os.access(KUBECONFORM, os.X_OK)):
        pytest.fail(
            f"kubeconform v0.7.0 is required at {KUBECONFORM}: install it with "
            f"GOBIN={KUBECONFORM.parent} go install github.com/yannh/kubeconform/cmd/kubeconform@v0.7.0",
            pytrace=False,
        )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FEDGEN_KUBECONFORM", str(KUBECONFORM))
        yield KUBECONFORM


def stream(*docs: str) -> bytes:
    return "---\n".join(textwrap.dedent(d).lstrip("\n") for d in docs).encode()


def one(results: list[SchemaResult], name: str) -> SchemaResult:
    found = [r for r in results if r.name == name]
    assert len(found) == 1, (name, results)
    return found[0]


# ----------------------------------------------------------------------------------------------- manifests

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: server1
  namespace: fl-1
  labels: {app: server1}
spec:
  replicas: 1
  selector:
    matchLabels: {app: server1}
  template:
    metadata:
      labels: {app: server1}
    spec:
      serviceAccountName: nvflare
      securityContext: {runAsNonRoot: true, runAsUser: 1000, seccompProfile: {type: RuntimeDefault}}
      containers:
        - name: server
          image: us-east4-docker.pkg.dev/my-project/acp-dev-fl-repository/nvflare:2.9.0
          args: ["--workspace", "/workspace"]
          ports:
            - {name: tcp-fl, containerPort: 8002}
            - {name: tcp-admin, containerPort: 8003}
          resources:
            requests: {cpu: 500m, memory: 1Gi}
            limits: {memory: 2Gi}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {drop: [ALL]}
          volumeMounts:
            - {name: kit, mountPath: /workspace/startup, readOnly: true}
      volumes:
        - name: kit
          configMap: {name: server1-kit}
"""

SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: server1, namespace: fl-1}
spec:
  selector: {app: server1}
  ports:
    - {name: tcp-fl, port: 8002, targetPort: 8002}
    - {name: tcp-admin, port: 8003, targetPort: tcp-admin}
"""

CONFIGMAP = """
apiVersion: v1
kind: ConfigMap
metadata: {name: server1-kit, namespace: fl-1}
data:
  fed_server.json: '{"format_version": 2}'
"""

# name -> (valid manifest, the same with one misspelt field, the JSON path kubeconform names for the typo)
CUSTOM_RESOURCES: dict[str, tuple[str, str, str]] = {
    "rootsync": (
        """
        apiVersion: configsync.gke.io/v1beta1
        kind: RootSync
        metadata: {name: rootsync, namespace: config-management-system}
        spec:
          sourceFormat: unstructured
          sourceType: git
          git:
            repo: https://github.com/example/fl-gitops.git
            revision: main
            dir: clusters/acp-dev
            auth: none
          override:
            reconcileTimeout: 5m
        """,
        "revision: main",
        "revison: main",
    ),
    "reposync": (
        """
        apiVersion: configsync.gke.io/v1beta1
        kind: RepoSync
        metadata: {name: reposync, namespace: fl-1}
        spec:
          sourceFormat: unstructured
          git: {repo: https://github.com/example/fl-gitops.git, revision: main, dir: tenants/fl-1, auth: none}
        """,
        "sourceFormat: unstructured",
        "sourceFromat: unstructured",
    ),
    "sealedsecret": (
        """
        apiVersion: bitnami.com/v1alpha1
        kind: SealedSecret
        metadata:
          name: sealedsecret
          namespace: fl-1
          annotations: {sealedsecrets.bitnami.com/namespace-wide: "false"}
        spec:
          encryptedData:
            server.key: AgBy3i4OJSWK+PiTySYZZA==
          template:
            metadata: {name: sealedsecret, namespace: fl-1, labels: {app: server1}}
            type: Opaque
        """,
        "encryptedData:",
        "encrytedData:",
    ),
    "virtualservice": (
        """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: virtualservice, namespace: istio-ingress}
        spec:
          hosts: ["*"]
          gateways: [istio-ingress/fl-gateway]
          tls:
            - match: [{port: 8002, sniHosts: [server1]}]
              route:
                - destination: {host: server1.fl-1.svc.cluster.local, port: {number: 8002}}
        """,
        "sniHosts:",
        "sniHost:",
    ),
    "gateway": (
        """
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: gateway, namespace: istio-ingress}
        spec:
          selector: {istio: ingressgateway}
          servers:
            - port: {number: 8002, name: tls-fl, protocol: TLS}
              hosts: ["*"]
              tls: {mode: PASSTHROUGH}
        """,
        "{mode: PASSTHROUGH}",
        "{mdoe: PASSTHROUGH}",
    ),
    "authorizationpolicy": (
        """
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: authorizationpolicy, namespace: fl-1}
        spec:
          action: ALLOW
          selector:
            matchLabels: {app: server1}
          rules:
            - from: [{source: {namespaces: [istio-ingress]}}]
              to: [{operation: {ports: ["8002", "8003"]}}]
        """,
        "- from:",
        "- form:",
    ),
    "peerauthentication": (
        """
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: peerauthentication, namespace: fl-1}
        spec:
          mtls: {mode: STRICT}
        """,
        "mtls:",
        "mtsl:",
    ),
    "destinationrule": (
        """
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: destinationrule, namespace: fl-1}
        spec:
          host: server1.fl-1.svc.cluster.local
          trafficPolicy:
            tls: {mode: ISTIO_MUTUAL}
        """,
        "trafficPolicy:",
        "trafficPolcy:",
    ),
    "assign": (
        """
        apiVersion: mutations.gatekeeper.sh/v1
        kind: Assign
        metadata: {name: assign}
        spec:
          applyTo:
            - {groups: [""], kinds: [Pod], versions: [v1]}
          match:
            scope: Namespaced
            kinds: [{apiGroups: ["*"], kinds: [Pod]}]
            namespaces: [fl-1]
          location: spec.nodeSelector
          parameters:
            assign:
              value: {cloud.google.com/gke-nodepool: fl-pool}
        """,
        "location:",
        "locaton:",
    ),
    "application": (
        """
        apiVersion: argoproj.io/v1alpha1
        kind: Application
        metadata: {name: application, namespace: argocd}
        spec:
          project: default
          source:
            repoURL: https://github.com/example/fl-gitops.git
            targetRevision: main
            path: clusters/acp-dev
          destination: {server: "https://kubernetes.default.svc", namespace: fl-1}
          syncPolicy:
            automated: {prune: true, selfHeal: true}
        """,
        "automated:",
        "automatd:",
    ),
}


def misspelt(name: str) -> str:
    manifest, right, wrong = CUSTOM_RESOURCES[name]
    assert manifest.count(right) == 1, (name, right)
    return manifest.replace(right, wrong)


# ------------------------------------------------------------------------------------------------ results


# Built-in kinds: valid ones, a typo'd field, a wrong type, and two kinds without a schema.
BUILTIN_MANIFESTS = stream(
    DEPLOYMENT,
    SERVICE,
    CONFIGMAP,
    DEPLOYMENT.replace("name: server1\n  namespace", "name: typo\n  namespace").replace("replicas: 1", "replcas: 1"),
    DEPLOYMENT.replace("name: server1\n  namespace", "name: wrongtype\n  namespace").replace("replicas: 1", 'replicas: "two"'),
    "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: widget, namespace: fl-1}\nspec: {}\n",
    "apiVersion: v1\nkind: Gadget\nmetadata: {name: gadget}\n",
)


@pytest.fixture(scope="module")
def builtin_results() -> list[SchemaResult]:
    return validate_manifests(BUILTIN_MANIFESTS)


@pytest.fixture(scope="module")
def crd_valid_results() -> list[SchemaResult]:
    return validate_manifests(stream(*(m for m, _, _ in CUSTOM_RESOURCES.values())))


@pytest.fixture(scope="module")
def crd_typo_results() -> list[SchemaResult]:
    return validate_manifests(stream(*(misspelt(n) for n in CUSTOM_RESOURCES)))


def test_valid_deployment_service_configmap(builtin_results):
    first = builtin_results[:3]
    assert [(r.kind, r.api_version, r.name, r.namespace, r.status, r.messages, r.document_index) for r in first] == [
        ("Deployment", "apps/v1", "server1", "fl-1", "valid", (), 0),
        ("Service", "v1", "server1", "fl-1", "valid", (), 1),
        ("ConfigMap", "v1", "server1-kit", "fl-1", "valid", (), 2),
    ]


def test_misspelt_field_is_invalid_with_its_path(builtin_results):
    result = one(builtin_results, "typo")
    assert result.status == "invalid"
    assert result.document_index == 3
    assert result.messages == ("/spec: additional properties 'replcas' not allowed",)


def test_wrong_type_is_invalid_with_its_path(builtin_results):
    result = one(builtin_results, "wrongtype")
    assert result.status == "invalid"
    assert result.document_index == 4
    assert len(result.messages) == 1
    assert result.messages[0].startswith("/spec/replicas: ")
    assert "string" in result.messages[0] and "integer" in result.messages[0]


def test_unknown_kind_or_api_version_is_no_schema(builtin_results):
    widget, gadget = one(builtin_results, "widget"), one(builtin_results, "gadget")
    assert (widget.status, widget.kind, widget.api_version, widget.namespace, widget.document_index) == (
        "no-schema",
        "Widget",
        "example.com/v1",
        "fl-1",
        5,
    )
    assert (gadget.status, gadget.api_version, gadget.document_index) == ("no-schema", "v1", 6)
    assert "could not find schema for example.com/v1 Widget" in widget.messages[0]
    assert "Kubernetes " + DEFAULT_KUBERNETES_VERSION in widget.messages[0]


def test_custom_resources_pass(crd_valid_results):
    assert [(r.name, r.status, r.messages) for r in crd_valid_results] == [(name, "valid", ()) for name in CUSTOM_RESOURCES]
    assert [r.document_index for r in crd_valid_results] == list(range(len(CUSTOM_RESOURCES)))


@pytest.mark.parametrize("name", list(CUSTOM_RESOURCES))
def test_misspelt_custom_resource_field_is_caught(crd_typo_results, name):
    result = one(crd_typo_results, name)
    manifest, right, wrong = CUSTOM_RESOURCES[name]
    typo = wrong.split(":")[0].strip("{- ")
    assert result.status == "invalid", result
    assert any(f"additional properties '{typo}' not allowed" in m for m in result.messages), result.messages
    assert all(m.startswith("/") for m in result.messages)


def test_document_order_and_index():
    docs = [f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i:02d}}}\n" for i in range(25)]
    # an explicit start, an empty document and a comment-only one still count as documents
    text = "---\n" + "---\n".join(docs[:10]) + "---\n---\n# only a comment\n---\n" + "---\n".join(docs[10:])
    results = validate_manifests(text.encode())
    assert [r.name for r in results] == [f"cm-{i:02d}" for i in range(25)]
    assert [r.document_index for r in results] == list(range(10)) + list(range(12, 27))
    assert {r.status for r in results} == {"valid"}


def test_broken_documents_are_errors_in_place():
    text = stream(
        CONFIGMAP,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dup}\ndata: {a: '1'}\ndata: {b: '2'}\n",
        "just: [unclosed\n",
        SERVICE,
    )
    results = validate_manifests(text)
    assert [(r.document_index, r.status) for r in results] == [(0, "valid"), (1, "error"), (2, "error"), (3, "valid")]
    assert "already set" in results[1].messages[0]


def test_list_items_are_validated_one_by_one():
    text = stream(
        """
        apiVersion: v1
        kind: List
        items:
          - {apiVersion: v1, kind: ConfigMap, metadata: {name: a, namespace: ns-a}}
          - {apiVersion: v1, kind: ConfigMap, metadata: {name: b, namespace: ns-b}, dta: {}}
        """,
        CONFIGMAP,
    )
    results = validate_manifests(text)
    assert [(r.name, r.namespace, r.status, r.document_index) for r in results] == [
        ("a", "ns-a", "valid", 0),
        ("b", "ns-b", "invalid", 0),
        ("server1-kit", "fl-1", "valid", 1),
    ]
    assert results[1].messages == ("/: additional properties 'dta' not allowed",)


def test_results_are_deterministic(builtin_results):
    again = validate_manifests(BUILTIN_MANIFESTS)
    assert again == builtin_results


def test_kubernetes_version_selects_the_schemas():
    claim = stream(
        """
        apiVersion: resource.k8s.io/v1
        kind: ResourceClaim
        metadata: {name: claim, namespace: fl-1}
        spec:
          devices:
            requests:
              - name: gpu
                exactly: {deviceClassName: gpu.nvidia.com}
        """
    )
    old = validate_manifests(claim, kubernetes_version="1.33")
    new = validate_manifests(claim, kubernetes_version="1.35")
    assert [r.status for r in old] == ["no-schema"]
    assert [r.status for r in new] == ["valid"], new


def test_versions_and_default():
    versions = available_kubernetes_versions()
    assert versions == ("1.33", "1.34", "1.35", "1.36", "1.37")
    assert DEFAULT_KUBERNETES_VERSION in versions
    assert validate_manifests(b"", kubernetes_version="v1.35.2") == []


def test_unknown_kubernetes_version_is_input_error():
    with pytest.raises(InputError) as excinfo:
        validate_manifests(stream(CONFIGMAP), kubernetes_version="1.20")
    assert "1.20" in str(excinfo.value)
    for version in available_kubernetes_versions():
        assert version in str(excinfo.value)


def test_schemas_dir_override(tmp_path):
    (tmp_path / "kubernetes" / "v1.99").mkdir(parents=True)
    (tmp_path / "crds").mkdir()
    source = SCHEMAS / "kubernetes" / f"v{DEFAULT_KUBERNETES_VERSION}" / "configmap-v1.json"
    (tmp_path / "kubernetes" / "v1.99" / "configmap-v1.json").write_bytes(source.read_bytes())
    assert available_kubernetes_versions(tmp_path) == ("1.99",)
    results = validate_manifests(stream(CONFIGMAP, SERVICE), kubernetes_version="1.99", schemas_dir=tmp_path)
    assert [r.status for r in results] == ["valid", "no-schema"]


def test_find_kubeconform_order_and_missing(monkeypatch, tmp_path):
    assert find_kubeconform() == KUBECONFORM
    monkeypatch.setenv("FEDGEN_KUBECONFORM", str(tmp_path / "nope"))
    with pytest.raises(ExternalError) as excinfo:
        find_kubeconform()
    assert str(excinfo.value).startswith("kubeconform not found: ")
    assert "go install github.com/yannh/kubeconform/cmd/kubeconform@v0.7.0" in str(excinfo.value)
    assert excinfo.value.exit_code == 3
    monkeypatch.delenv("FEDGEN_KUBECONFORM")
    monkeypatch.setattr(fedgen.executables, "TOOLS_BIN", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ExternalError, match="^kubeconform not found: "):
        find_kubeconform()


# ------------------------------------------------------------------------------------------------ schemas


def _objects(node):
    if isinstance(node, dict):
        yield node
        for key, value in node.items():
            if key in ("enum", "default", "required", "const", "examples"):
                continue
            yield from _objects(value)
    elif isinstance(node, list):
        for value in node:
            yield from _objects(value)


def test_crd_schemas_are_strict_and_standalone():
    files = sorted((SCHEMAS / "crds").rglob("*.json"))
    assert len(files) >= 30
    for path in files:
        schema = json.loads(path.read_bytes())
        assert schema.get("additionalProperties") is False, path
        # The root metadata stays open: the API server checks it as ObjectMeta whatever the CRD says.
        assert "additionalProperties" not in schema["properties"]["metadata"], path
        for node in _objects(schema):
            if node is not schema["properties"]["metadata"] and isinstance(node.get("properties"), dict) and "type" in node:
                assert "additionalProperties" in node, path
            assert not any(k.startswith("x-kubernetes-") or k == "nullable" for k in node if "type" in node), path
            ref = node.get("$ref")
            assert ref is None or not isinstance(ref, str) or ref.startswith("#"), (path, ref)


def test_every_schema_loads_in_kubeconform():
    """A schema kubeconform cannot compile would pass for a missing one: feed it one object of each kind."""
    docs: list[tuple[str, str]] = []
    for path in sorted((SCHEMAS / "kubernetes" / f"v{DEFAULT_KUBERNETES_VERSION}").glob("*.json")):
        props = json.loads(path.read_bytes())["properties"]
        docs.append((props["apiVersion"]["enum"][0], props["kind"]["enum"][0]))
    for path in sorted((SCHEMAS / "crds").glob("*/*.json")):
        kind, version = path.stem.split("_", 1)
        docs.append((f"{path.parent.name}/{version}", kind))
    text = "".join(f"---\napiVersion: {a}\nkind: {k}\nmetadata: {{name: o{i}}}\n" for i, (a, k) in enumerate(docs))
    results = validate_manifests(text.encode())
    assert len(results) == len(docs)
    # valid, or invalid for a missing required field; never no-schema or error
    assert [r for r in results if r.status not in ("valid", "invalid")] == []


def _load_build_script():
    spec = importlib.util.spec_from_file_location("build_schemas", REPO_ROOT / "tools" / "build_schemas.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def test_committed_schemas_match_the_build_script():
    """Regenerate in memory (a few seconds) and compare with schemas/ byte for byte."""
    build = _load_build_script()
    crd_sources = build.default_crd_sources()
    assert (crd_sources / "catalog").is_dir(), f"CRD sources missing at {crd_sources} (set FEDGEN_CRD_SOURCES to the shared crds folder)"
    files = build.build(crd_sources)
    assert build.differences(files, SCHEMAS) == [], "run: .venv/bin/python tools/build_schemas.py"


def test_crd_sources_found_beside_the_local_checkout_a_clone_came_from(tmp_path, monkeypatch):
    """CI clones the working copy into a temporary folder; the sources sit beside the original checkout."""
    build = _load_build_script()
    monkeypatch.delenv("FEDGEN_CRD_SOURCES", raising=False)
    original = tmp_path / "work" / "main"
    (tmp_path / "work" / "shared" / "crds" / "catalog").mkdir(parents=True)
    original.mkdir()
    subprocess.run(["git", "init", "-q", str(original)], check=True)
    clone = tmp_path / "elsewhere" / "clone"
    subprocess.run(["git", "clone", "-q", f"{original}/.", str(clone)], check=True, capture_output=True)

    assert build.local_origin(clone) == original
    assert build.default_crd_sources(clone) == tmp_path / "work" / "shared" / "crds"
    # The original checkout has the sources beside it and no origin; a folder with neither gets the first
    # candidate, which the error names.
    assert build.local_origin(original) is None
    assert build.default_crd_sources(original) == tmp_path / "work" / "shared" / "crds"
    assert build.default_crd_sources(tmp_path / "elsewhere" / "plain") == tmp_path / "elsewhere" / "shared" / "crds"

    # A remote URL is not a folder, and the environment variable wins over everything.
    subprocess.run(["git", "-C", str(clone), "remote", "set-url", "origin", "https://example.invalid/x.git"], check=True)
    assert build.local_origin(clone) is None
    assert build.default_crd_sources(clone) == tmp_path / "elsewhere" / "shared" / "crds"
    monkeypatch.setenv("FEDGEN_CRD_SOURCES", str(tmp_path / "given"))
    assert build.default_crd_sources(clone) == tmp_path / "given"

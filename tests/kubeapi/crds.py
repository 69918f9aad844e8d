"""CustomResourceDefinitions for the test API server, made from the schemas fedgen ships for kubeconform.

generator/fedgen/schemas/crds/<group>/<kind>_<version>.json are strict JSON Schemas (see its README): nulls
as a "null" type, `additionalProperties: false` on every object with properties, the x-kubernetes-*
annotations dropped. An API server wants structural OpenAPI v3 instead, so each schema is turned back:
a "null" type becomes `nullable`, integer-or-string `anyOf` gets `x-kubernetes-int-or-string`, a value
without a type is free-form again (objects with fields get `type: object`), objects without declared
fields keep unknown fields (`x-kubernetes-preserve-unknown-fields`, which is what the
upstream CRDs say for them: otherwise the server would prune them and every diff would show it), and
`additionalProperties: false` goes (the server prunes unknown fields of a structural schema; kubectl's
field validation reports them). What the file names do not say (kind spelling, plural, scope, whether
status is a subresource) is written here, from each project's CRD.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from fedgen.paths import SCHEMAS_DIR

SCHEMAS = SCHEMAS_DIR / "crds"


@dataclass(frozen=True)
class Names:
    kind: str
    plural: str
    namespaced: bool = True
    status_subresource: bool = True


# (group, lower-case kind as in the file names) -> names, from each project's own CRD.
NAMES: dict[tuple[str, str], Names] = {
    ("argoproj.io", "application"): Names("Application", "applications", status_subresource=False),
    ("argoproj.io", "applicationset"): Names("ApplicationSet", "applicationsets"),
    ("argoproj.io", "appproject"): Names("AppProject", "appprojects", status_subresource=False),
    ("bitnami.com", "sealedsecret"): Names("SealedSecret", "sealedsecrets"),
    ("configsync.gke.io", "reposync"): Names("RepoSync", "reposyncs"),
    ("configsync.gke.io", "rootsync"): Names("RootSync", "rootsyncs"),
    ("mutations.gatekeeper.sh", "assign"): Names("Assign", "assign", namespaced=False),
    ("mutations.gatekeeper.sh", "assignmetadata"): Names("AssignMetadata", "assignmetadata", namespaced=False),
    ("mutations.gatekeeper.sh", "modifyset"): Names("ModifySet", "modifyset", namespaced=False),
    ("networking.istio.io", "destinationrule"): Names("DestinationRule", "destinationrules"),
    ("networking.istio.io", "gateway"): Names("Gateway", "gateways"),
    ("networking.istio.io", "serviceentry"): Names("ServiceEntry", "serviceentries"),
    ("networking.istio.io", "sidecar"): Names("Sidecar", "sidecars"),
    ("networking.istio.io", "virtualservice"): Names("VirtualService", "virtualservices"),
    ("security.istio.io", "authorizationpolicy"): Names("AuthorizationPolicy", "authorizationpolicies"),
    ("security.istio.io", "peerauthentication"): Names("PeerAuthentication", "peerauthentications"),
}

# Keywords a structural schema allows next to the ones rebuilt below (value validations only).
_VALUE_KEYWORDS = ("format", "enum", "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
                   "minLength", "maxLength", "minItems", "maxItems", "uniqueItems", "minProperties", "maxProperties", "required")  # fmt: skip
_LOGIC = ("oneOf", "anyOf", "allOf", "not")
_INT_OR_STRING = [{"type": "integer"}, {"type": "string"}]


def _value_only(node: Any) -> bool:
    """May this node sit inside oneOf/anyOf/allOf/not of a structural schema (no types, no defaults)?"""
    if isinstance(node, list):
        return all(_value_only(n) for n in node)
    if not isinstance(node, dict):
        return True
    if any(k in node for k in ("type", "additionalProperties", "default", "nullable")):
        return False
    return all(_value_only(v) for k, v in node.items() if k in ("properties", "items", *_LOGIC))


def structural(node: dict[str, Any], *, root: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    kind = node.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        if len(kinds) != len(kind):
            out["nullable"] = True
        kind = kinds[0] if len(kinds) == 1 else None
    any_of = node.get("anyOf")
    if kind is None and isinstance(any_of, list) and sorted(any_of, key=json.dumps) == _INT_OR_STRING:
        out["x-kubernetes-int-or-string"] = True
        out["anyOf"] = _INT_OR_STRING
    elif kind is not None:
        out["type"] = kind
    elif isinstance(node.get("properties"), dict):
        out["type"] = "object"  # the catalog leaves it out where upstream says object
    else:
        out["x-kubernetes-preserve-unknown-fields"] = True  # a free-form value (upstream: any type)
    for key in _VALUE_KEYWORDS:
        if key in node:
            out[key] = node[key]
    if "default" in node:
        out["default"] = node["default"]
    for key in _LOGIC:
        if key in node and "x-kubernetes-int-or-string" not in out and _value_only(node[key]):
            out[key] = node[key]
    if isinstance(node.get("items"), dict):
        out["items"] = structural(node["items"])
    properties = node.get("properties")
    if isinstance(properties, dict):
        props = {}
        for name, child in properties.items():
            if root and name == "metadata":
                props[name] = {"type": "object"}  # a CRD may not say more about metadata
            else:
                props[name] = structural(child)
        out["properties"] = props
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        out["additionalProperties"] = structural(extra)
    elif out.get("type") == "object" and not root and not isinstance(properties, dict) and extra is not False:
        out["x-kubernetes-preserve-unknown-fields"] = True
    elif extra is True:
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


_VERSION_ORDER = ("v1", "v1beta1", "v1alpha3", "v1alpha2", "v1alpha1")


def definitions(kinds: Collection[tuple[str, str]] | None = None) -> list[dict[str, Any]]:
    """One CustomResourceDefinition per kind whose schemas fedgen ships (or per (group, Kind) of `kinds`),
    serving its newest shipped version (what fedgen renders)."""
    versions: dict[tuple[str, str], dict[str, dict[str, Any]]] = defaultdict(dict)
    for path in sorted(SCHEMAS.glob("*/*.json")):
        kind, _, version = path.stem.rpartition("_")
        versions[(path.parent.name, kind)][version] = json.loads(path.read_text())
    unknown = sorted(set(versions) - set(NAMES))
    assert not unknown, f"schemas without names in tests/kubeapi/crds.py: {unknown}"
    out = []
    for (group, kind), by_version in sorted(versions.items()):
        names = NAMES[(group, kind)]
        if kinds is not None and (group, names.kind) not in kinds:
            continue
        storage = min(by_version, key=_VERSION_ORDER.index)
        entries = []
        for version in [storage]:
            entry: dict[str, Any] = {
                "name": version,
                "served": True,
                "storage": version == storage,
                "schema": {"openAPIV3Schema": structural(by_version[version], root=True)},
            }
            if names.status_subresource and "status" in by_version[version].get("properties", {}):
                entry["subresources"] = {"status": {}}
            entries.append(entry)
        out.append(
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": f"{names.plural}.{group}"},
                "spec": {
                    "group": group,
                    "names": {"kind": names.kind, "listKind": f"{names.kind}List", "plural": names.plural, "singular": names.kind.lower()},
                    "scope": "Namespaced" if names.namespaced else "Cluster",
                    "versions": entries,
                },
            }
        )
    return out

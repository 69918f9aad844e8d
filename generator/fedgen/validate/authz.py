"""Istio AuthorizationPolicy evaluation for one TCP connection, in three-valued logic.

True = certainly allowed, False = certainly denied, None = depends on something the repo cannot tell
(principals of unknown service accounts, IP blocks, custom conditions). Rules decide what None means.
Semantics (Istio): a matching DENY denies; otherwise no ALLOW policy allows; otherwise a matching ALLOW
allows, else deny. HTTP-only fields make an ALLOW rule never match TCP and are ignored in a DENY rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fedgen.validate.k8s import as_dict, as_list
from fedgen.validate.model import KObject

ROOT_NAMESPACE = "istio-system"
HTTP_ONLY = ("methods", "notMethods", "paths", "notPaths", "hosts", "notHosts")
Tri = bool | None


@dataclass(frozen=True)
class Connection:
    source_namespace: str | None  # None: no mesh identity (a client outside the mesh)
    port: int


def _glob(value: str, pattern: str) -> bool:
    pattern = str(pattern)
    if pattern == "*":
        return True
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    return value == pattern


def _all(values: Iterable[Tri]) -> Tri:
    out: Tri = True
    for v in values:
        if v is False:
            return False
        if v is None:
            out = None
    return out


def _any(values: Iterable[Tri]) -> Tri:
    out: Tri = False
    for v in values:
        if v is True:
            return True
        if v is None:
            out = None
    return out


def _not(v: Tri) -> Tri:
    return None if v is None else not v


def _namespace_in(conn: Connection, patterns: Any) -> bool:
    return conn.source_namespace is not None and any(_glob(conn.source_namespace, p) for p in as_list(patterns))


def _principal_in(conn: Connection, patterns: Any) -> Tri:
    if conn.source_namespace is None:
        return False
    results: list[Tri] = []
    for p in as_list(patterns):
        p = str(p)
        if p == "*":
            results.append(True)
        elif f"/ns/{conn.source_namespace}/" in p or p.endswith(f"/ns/{conn.source_namespace}"):
            results.append(None)  # the service account is not known
        elif "/ns/" in p and "*" not in p.split("/ns/", 1)[1].split("/", 1)[0]:
            results.append(False)
        else:
            results.append(None)
    return _any(results)


def _source(src: Mapping[str, Any], conn: Connection) -> Tri:
    checks: list[Tri] = []
    for key, value in src.items():
        if key == "namespaces":
            checks.append(_namespace_in(conn, value))
        elif key == "notNamespaces":
            checks.append(not _namespace_in(conn, value))
        elif key == "principals":
            checks.append(_principal_in(conn, value))
        elif key == "notPrincipals":
            checks.append(_not(_principal_in(conn, value)))
        else:
            checks.append(None)
    return _all(checks)


def _operation(op: Mapping[str, Any], conn: Connection, action: str) -> Tri:
    checks: list[Tri] = []
    for key, value in op.items():
        if key == "ports":
            checks.append(str(conn.port) in [str(p) for p in as_list(value)])
        elif key == "notPorts":
            checks.append(str(conn.port) not in [str(p) for p in as_list(value)])
        elif key in HTTP_ONLY:
            if action == "ALLOW":
                checks.append(False)
        else:
            checks.append(None)
    return _all(checks)


def _condition(cond: Mapping[str, Any], conn: Connection, action: str) -> Tri:
    key = str(cond.get("key", ""))
    values = [str(v) for v in as_list(cond.get("values"))]
    not_values = [str(v) for v in as_list(cond.get("notValues"))]
    if key == "destination.port":
        actual: str | None = str(conn.port)
    elif key == "source.namespace":
        actual = conn.source_namespace
        if actual is None:
            return False if values else True
    elif key.startswith("request.") and action == "ALLOW":
        return False
    else:
        return None
    if actual is None:
        return None
    ok = (not values or any(_glob(actual, v) for v in values)) and not any(_glob(actual, v) for v in not_values)
    return ok


def rule_matches(rule: Mapping[str, Any], conn: Connection, action: str) -> Tri:
    parts: list[Tri] = []
    if "from" in rule:
        parts.append(_any(_source(as_dict(as_dict(f).get("source")), conn) for f in as_list(rule.get("from"))))
    if "to" in rule:
        parts.append(_any(_operation(as_dict(as_dict(t).get("operation")), conn, action) for t in as_list(rule.get("to"))))
    for cond in as_list(rule.get("when")):
        parts.append(_condition(as_dict(cond), conn, action))
    return _all(parts)


def applies_to(policy: KObject, namespace: str, labels: Mapping[str, str]) -> bool:
    spec = policy.spec
    if "targetRef" in spec or "targetRefs" in spec:
        return False
    if policy.namespace not in (namespace, ROOT_NAMESPACE):
        return False
    selector = as_dict(as_dict(spec.get("selector")).get("matchLabels"))
    return all(labels.get(str(k)) == str(v) for k, v in selector.items())


def policies_for(objects: Iterable[KObject], namespace: str, labels: Mapping[str, str]) -> list[KObject]:
    return [o for o in objects if o.group == "security.istio.io" and o.kind == "AuthorizationPolicy" and applies_to(o, namespace, labels)]


def decide(policies: Iterable[KObject], conn: Connection) -> Tri:
    denied: Tri = False
    allows: list[Tri] = []
    has_allow = False
    for policy in policies:
        action = str(policy.spec.get("action", "ALLOW"))
        rules = [as_dict(r) for r in as_list(policy.spec.get("rules"))]
        if action == "DENY":
            denied = _any([denied, *(rule_matches(r, conn, action) for r in rules)])
        elif action == "ALLOW":
            has_allow = True
            allows.extend(rule_matches(r, conn, action) for r in rules)
    if denied is True:
        return False
    allowed: Tri = _any(allows) if has_allow else True
    if denied is None:
        return None if allowed is not False else False
    return allowed

"""FG2xx: every built object against the offline, strict schemas of the chosen Kubernetes version."""

from __future__ import annotations

from collections.abc import Iterator

from fedgen.validate.finding import ERROR
from fedgen.validate.model import Model
from fedgen.validate.rule import Hit, Rule, on


def _split(message: str) -> tuple[str, str]:
    """kubeconform's '<JSON pointer>: <message>' -> (pointer, message)."""
    head, sep, tail = message.partition(": ")
    if sep and head.startswith("/"):
        return ("" if head == "/" else head), tail
    return "", message


def _field(ptr: str) -> str:
    return ptr.strip("/").replace("/", ".") or "(root)"


def schema_invalid(model: Model) -> Iterator[Hit]:
    for verdict in model.schema:
        if verdict.status == "invalid":
            for message in verdict.messages or ("does not match its schema",):
                ptr, text = _split(message)
                yield on(verdict.obj, ptr, f"{_field(ptr)}: {text} (Kubernetes {model.kubernetes_version} schema)")


def schema_unchecked(model: Model) -> Iterator[Hit]:
    """No schema (or kubeconform could not check the object, or skipped it): never a silent pass."""
    for verdict in model.schema:
        obj = verdict.obj
        if verdict.status == "no-schema":
            yield on(
                obj, "/apiVersion", f"no schema for {obj.api_version} {obj.kind} in Kubernetes {model.kubernetes_version} nor among the custom resource schemas"
            )
        elif verdict.status in ("error", "skipped"):
            yield on(obj, "", f"not checked against a schema ({verdict.status}): {'; '.join(verdict.messages) or 'no detail from kubeconform'}")


RULES = (
    Rule(
        "FG201",
        "schema-invalid",
        ERROR,
        "Built objects match the strict schema of their kind (no unknown fields, right types).",
        "Fix the field named in the message (a typo, a wrong type, a field of another version).",
        schema_invalid,
        uses_schema=True,
    ),
    Rule(
        "FG202",
        "schema-unchecked",
        ERROR,
        "Every built object is checked against a schema: a kind without one (or one kubeconform cannot check) is a finding, never a silent pass.",
        "Use an apiVersion the chosen Kubernetes version serves (--kubernetes-version), or add the CRD's schema under schemas/crds/.",
        schema_unchecked,
        uses_schema=True,
    ),
)

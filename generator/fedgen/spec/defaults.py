"""The spec's defaults, filled from its JSON Schema: the one place they are declared.

A property absent from the document whose schema carries a `default` gets a copy of it, in every object the
schema describes with `properties` (nested ones and array items included, `$ref`s within the schema
followed). An absent object with a default (e.g. `spec.platform: {}`) is filled in turn, so the defaults of
its own properties appear as well. Values a default cannot express (the server's host names default to its
name; a cluster's platform kind to spec.platform.kind; maxClients and the bucket name are computed) are
derived where they are used.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any


def fill_defaults(instance: Any, schema: Mapping[str, Any], root: Mapping[str, Any] | None = None) -> Any:
    """A plain copy of `instance` (dicts, lists, scalars) with the schema's defaults filled in. Meant for a
    document the schema accepts; parts of another shape are copied as they are."""
    root = schema if root is None else root
    schema = _resolved(schema, root)
    if isinstance(instance, Mapping):
        properties: Mapping[str, Any] = schema.get("properties") or {}
        filled = {key: fill_defaults(value, properties.get(key) or {}, root) for key, value in instance.items()}
        for key, sub in properties.items():
            sub = _resolved(sub, root)
            if key not in filled and "default" in sub:
                filled[key] = fill_defaults(copy.deepcopy(sub["default"]), sub, root)
        return filled
    if isinstance(instance, list):
        items = schema.get("items")
        return [fill_defaults(item, items if isinstance(items, Mapping) else {}, root) for item in instance]
    return instance


def _resolved(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """The schema a local `$ref` ("#/$defs/name") points to, merged under the referring schema's own keywords."""
    ref = schema.get("$ref")
    if not isinstance(ref, str):
        return schema
    if not ref.startswith("#/"):
        raise ValueError(f"schema reference {ref!r}: only references within the schema are supported")
    target: Any = root
    for part in ref[2:].split("/"):
        target = target[part.replace("~1", "/").replace("~0", "~")]
    return {**_resolved(target, root), **{k: v for k, v in schema.items() if k != "$ref"}}

"""The spec loader: every bad spec is one positioned line per problem, exit 2, and nothing on disk changes."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from ruamel.yaml import YAML

from fedgen.cli import main
from fedgen.errors import SpecErrors
from fedgen.spec import Federation, load_federation
from fedgen.spec.schema import SpecValidator, spec_schema
from fedgen.spec.semantic import git_ref_problem
from tests.support import REPO_ROOT, tree_snapshot

GOOD = """\
apiVersion: fedgen/v1
kind: Federation
metadata:
  name: example_project
spec:
  nvflare:
    version: "2.9.0"
    image: us-east4-docker.pkg.dev/p/r/nvflare:2.9.0
  gitops:
    engine: config-sync
    repo: https://github.com/example/fl-gitops.git
  clusters:
    - {name: acp-dev, projectId: my-project,
       projectNumber: "123456789012",
       region: us-east4}
  workspace:
    bucket: nvf-ws
  server:
    name: server1
    org: nvidia
    cluster: acp-dev
    tenant: fl-1
    ports: {fl: 8002, admin: 8003}
    hostNames: [server1]
  sites:
    - {name: client1, org: nvidia}
    - {name: client2, org: nvidia}
  admins:
    - {name: admin@nvidia.com, org: nvidia, role: project_admin}
"""

# (id, replace this, with that, expected message fragment, expected "line:col" or None)
BAD_SPECS = [
    ("unknown-field", "    engine: config-sync\n", "    engine: config-sync\n    revison: main\n", "did you mean 'revision'", "11:5"),
    ("wrong-api-version", "apiVersion: fedgen/v1", "apiVersion: fedgen/v2", 'expected "fedgen/v1"', "1:13"),
    ("engine-enum", "engine: config-sync", "engine: flux", 'is not one of "config-sync", "argocd"', "10:13"),
    ("port-type", "fl: 8002,", "fl: '8002',", "expected integer", "23:17"),
    ("port-range", "fl: 8002,", "fl: 80,", "less than the minimum", "23:17"),
    ("missing-required", "  workspace:\n    bucket: nvf-ws\n", "", "missing required field 'workspace'", "5:1"),
    ("dangling-cluster", "    cluster: acp-dev", "    cluster: acp-prod", "not in spec.clusters", "21:14"),
    ("duplicate-name", "{name: client2, org: nvidia}", "{name: client1, org: nvidia}", "already used by sites[0]", "27:14"),
    ("path-site-name", "{name: client2, org: nvidia}", "{name: ../../etc, org: nvidia}", "must be a DNS label", "27:14"),
    ("org-hyphen", "    org: nvidia\n    cluster", "    org: nv-idia\n    cluster", "only letters, digits and '_'", "20:10"),
    ("reserved-namespace", "tenant: fl-1", "tenant: kube-system", "reserved namespace", "22:13"),
    ("bad-role", "role: project_admin", "role: root", 'is not one of "project_admin"', "29:51"),
    ("admin-not-email", "{name: admin@nvidia.com,", "{name: admin,", "must be an e-mail address", "29:14"),
    ("bad-cidr", "    hostNames: [server1]\n", "    hostNames: [server1]\n    loadBalancerSourceRanges: [10.0.0.1/8]\n", "is not a CIDR", "25:32"),
    ("bad-host", "hostNames: [server1]", "hostNames: [Server_1]", "not a DNS host name", "24:17"),
    ("bucket-name", "bucket: nvf-ws", "bucket: nvf-ws\n    bucketName: goog-bucket", "not a valid GCS bucket name", "18:17"),
    ("version-mismatch", 'version: "2.9.0"', 'version: "2.8.1"', "does not match the installed nvflare", "7:14"),
    ("same-ports", "admin: 8003}", "admin: 8002}", "equals the fl port", "23:30"),
    ("duplicate-key", "  workspace:\n", "  workspace:\n    bucket: a1\n", "duplicate key", None),
    (
        "alias",
        "  sites:\n    - {name: client1, org: nvidia}\n",
        "  sites:\n    - &s {name: client1, org: nvidia}\n    - *s\n",
        "anchors and aliases are not allowed",
        "26:7",
    ),
    ("custom-tag", "bucket: nvf-ws", "bucket: !!python/object:os.system nvf-ws", "is not allowed; plain values only", "17:13"),
    ("merge-key", "  workspace:\n    bucket: nvf-ws\n", "  workspace:\n    <<: {bucket: x}\n", "merge keys", "17:5"),
    ("two-documents", "apiVersion: fedgen/v1\n", "a: 1\n---\napiVersion: fedgen/v1\n", "more than one YAML document", "3:1"),
    ("syntax", "hostNames: [server1]", "hostNames: [server1", "expected ',' or ']'", None),
    ("top-level-list", GOOD, "- 1\n- 2\n", "expected object, got array", "1:1"),
    ("missing-sealing-cert", "  clusters:\n", "  sealing:\n    certificate: keys/none.pem\n  clusters:\n", "cannot be read", "13:18"),
    ("long-tenant", "tenant: fl-1", "tenant: " + "t" * 45, "at most 40", "22:13"),
    (
        "max-clients-below-sites",
        "    hostNames: [server1]\n",
        "    hostNames: [server1]\n    maxClients: 1\n",
        "admits fewer clients than the 2 declared sites",
        "25:17",
    ),
    ("memory-quantity", "    hostNames: [server1]\n", "    hostNames: [server1]\n    resources: {memory: 2GB}\n", "does not match", "25:25"),
    # Strings are matched whole: a trailing newline (Python's `$` matches before one) or any control or
    # invisible character is refused where it stands, in values and keys alike.
    ("site-name-newline", "{name: client2, org: nvidia}", '{name: "client2\\n", org: nvidia}', "U+000A", "27:14"),
    ("host-name-newline", "hostNames: [server1]", 'hostNames: ["server1\\n"]', "U+000A", "24:17"),
    ("org-newline", "    org: nvidia\n    cluster", '    org: "nvidia\\n"\n    cluster', "U+000A", "20:10"),
    ("admin-name-option", "{name: admin@nvidia.com,", "{name: -rf@nvidia.com,", "starting with a letter or digit", "29:14"),
    ("admin-name-newline", "{name: admin@nvidia.com,", '{name: "admin@nvidia.com\\n",', "U+000A", "29:14"),
    ("block-scalar-newline", "    name: server1\n", "    name: |\n      server1\n", "U+000A", "19:11"),
    ("key-with-tab", "    engine: config-sync", '    "engine\\t": config-sync', "U+0009", "10:5"),
    ("bidi-override", "{name: client2, org: nvidia}", '{name: "client\\u202e2", org: nvidia}', "U+202E", "27:14"),
    ("hostile-revision", "fl-gitops.git\n", 'fl-gitops.git\n    revision: "main;touch${IFS}/tmp/x"\n', "does not match", "12:15"),
    ("revision-dotdot", "fl-gitops.git\n", "fl-gitops.git\n    revision: main..x\n", "holds '..'", "12:15"),
    ("revision-lock", "fl-gitops.git\n", "fl-gitops.git\n    revision: refs/heads/main.lock\n", "ends with '.lock'", "12:15"),
    ("revision-option", "fl-gitops.git\n", "fl-gitops.git\n    revision: '--upload-pack'\n", "starts with '-'", "12:15"),
    ("repo-shell", "repo: https://github.com/example/fl-gitops.git", "repo: 'https://github.com/x/y.git;id'", "does not match", "11:11"),
    ("repo-credentials", "repo: https://github.com/example/fl-gitops.git", "repo: https://me:token@github.com/x/y.git", "does not match", "11:11"),
    ("repo-ssh-option", "repo: https://github.com/example/fl-gitops.git", "repo: git@-oProxyCommand=x:y", "does not match", "11:11"),
]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "federation.yaml"
    path.write_text(text)
    return path


def test_good_spec_loads(tmp_path: Path) -> None:
    fed = load_federation(_write(tmp_path, GOOD))
    assert fed.server.fl_port == 8002 and fed.server.default_host == "server1"
    assert fed.workspace.bucket_name == "my-project-acp-dev-nvf-ws"
    assert fed.sealing.certificate is None and fed.sealing.scope == "strict"


def test_example_spec_loads() -> None:
    fed = load_federation(REPO_ROOT / "examples" / "federation.yaml")
    assert [s.name for s in fed.sites] == ["client1", "client2"]
    assert fed.admins[0].role == "project_admin"


def test_example_has_language_server_modeline() -> None:
    first = (REPO_ROOT / "examples" / "federation.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=../generator/fedgen/schemas/federation.schema.json"


@pytest.mark.parametrize("case", BAD_SPECS, ids=[c[0] for c in BAD_SPECS])
def test_bad_spec_is_positioned_exit_2_and_changes_nothing(tmp_path: Path, case: tuple[str, str, str, str, str | None]) -> None:
    _, old, new, fragment, where = case
    assert old in GOOD, "the test case must edit the good spec"
    spec = _write(tmp_path, GOOD.replace(old, new, 1))
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "README.md").write_text("hand-written\n")
    before = tree_snapshot(repo, exclude=())
    result = CliRunner().invoke(main, ["render", str(spec), "--repo", str(repo)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    matching = [line for line in lines if fragment in line]
    assert matching, f"no line says {fragment!r}: {lines}"
    assert re.match(rf"^{re.escape(str(spec))}:\d+:\d+: ", matching[0]), matching[0]
    if where:
        assert matching[0].startswith(f"{spec}:{where}: "), matching[0]
    assert all(re.match(rf"^{re.escape(str(spec))}:\d+:\d+: ", line) for line in lines), lines
    assert tree_snapshot(repo, exclude=()) == before


def test_all_errors_reported_at_once_sorted(tmp_path: Path) -> None:
    text = GOOD.replace("tenant: fl-1", "tenant: default").replace("{name: client2, org: nvidia}", "{name: client1, org: nvidia}")
    with pytest.raises(SpecErrors) as info:
        load_federation(_write(tmp_path, text))
    positions = [tuple(int(x) for x in m.split(":")[1:3]) for m in info.value.messages]
    assert len(positions) == 2 and positions == sorted(positions)


def test_size_cap(tmp_path: Path) -> None:
    big = GOOD + "#" + "x" * (1024 * 1024) + "\n"
    with pytest.raises(SpecErrors, match="larger than 1024 KiB"):
        load_federation(_write(tmp_path, big))


def test_deep_nesting_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecErrors, match="nested deeper"):
        load_federation(_write(tmp_path, "a: " + "[" * 100 + "]" * 100 + "\n"))


def test_expired_sealing_certificate(tmp_path: Path) -> None:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old")])
    past = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(past)
        .not_valid_after(past + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "old.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    text = GOOD.replace("  clusters:\n", "  sealing:\n    certificate: old.pem\n  clusters:\n")
    with pytest.raises(SpecErrors, match=r"federation.yaml:13:18: .*expired"):
        load_federation(_write(tmp_path, text))


def test_schema_command_prints_the_schema_file() -> None:
    import json

    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == json.loads((REPO_ROOT / "generator" / "fedgen" / "schemas" / "federation.schema.json").read_text())


def _schema_patterns(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("pattern"), str):
            yield node["pattern"]
        for value in node.values():
            yield from _schema_patterns(value)
    elif isinstance(node, list):
        for value in node:
            yield from _schema_patterns(value)


def test_schema_patterns_match_whole_strings_in_python_as_in_editors() -> None:
    """Editors check `pattern` with ECMA-262 search semantics, where `$` is the end of the string; fedgen checks
    the same schema with whole-string matches. The two agree when every pattern is anchored ^...$ and uses
    no Python-only syntax; and then no value with a trailing newline passes, as it did with jsonschema's
    re.search (Python's `$` also matches before a final newline)."""
    schema = spec_schema()
    patterns = list(_schema_patterns(schema))
    assert len(patterns) >= 10
    for pattern in patterns:
        assert pattern.startswith("^") and pattern.endswith("$") and not pattern.endswith("\\$"), pattern
        assert not any(token in pattern for token in ("(?P", "\\A", "\\Z", "\\z", "(?i", "(?x", "(?s", "(?m")), pattern
    data = YAML(typ="safe", pure=True).load(GOOD)
    data["spec"]["platform"] = {"platformName": "dev"}
    data["spec"]["gitops"]["revision"] = "main"
    validator = SpecValidator(schema)
    assert list(validator.iter_errors(data)) == []
    for path in (("spec", "platform", "platformName"), ("spec", "gitops", "revision"), ("metadata", "name"), ("spec", "gitops", "repo")):
        bad = copy.deepcopy(data)
        holder = bad
        for step in path[:-1]:
            holder = holder[step]
        holder[path[-1]] += "\n"
        errors = list(validator.iter_errors(bad))
        assert [e.validator for e in errors] == ["pattern"], (path, errors)
        assert list(Draft202012Validator(schema).iter_errors(bad)) == [], "jsonschema's own pattern would accept it"


REF_ALPHABET = "ab09._+/-"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=REF_ALPHABET, min_size=1, max_size=12))
def test_revision_rule_agrees_with_git_check_ref_format(ref: str) -> None:
    """Within the schema's characters, fedgen accepts a revision exactly when git does (and never one that
    starts with '-', which git would read as an option)."""
    git = shutil.which("git")
    assert git is not None, "git is needed (scripts/bootstrap.sh checks for it)"
    by_git = subprocess.run([git, "check-ref-format", "--allow-onelevel", ref], capture_output=True, check=False).returncode == 0
    ours = git_ref_problem(ref) is None
    if ref.startswith("-"):
        assert not ours
    else:
        assert ours == by_git, (ref, by_git)


# ----------------------------------------------------------------------------- defaults: only in the schema

# A spec with nothing optional written (one site, so the defaults of array items show).
MINIMAL = GOOD.replace("    ports: {fl: 8002, admin: 8003}\n", "").replace("    - {name: client2, org: nvidia}\n", "")
# Defaults the filler can never apply: a required property inside an optional object without a default.
NEVER_FILLED = {"spec.clusters[].platform.kind"}


def _schema_defaults(schema: dict[str, Any], root: dict[str, Any], path: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, default) of every property of the schema that declares one, `$ref`s followed."""
    for key, sub in (schema.get("properties") or {}).items():
        child, sub = f"{path}.{key}" if path else key, _resolved(sub, root)
        if "default" in sub:
            yield child, sub["default"]
        yield from _schema_defaults(sub, root, child)
    if isinstance(schema.get("items"), dict):
        yield from _schema_defaults(_resolved(schema["items"], root), root, f"{path}[]")


def _resolved(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    if "$ref" not in schema:
        return schema
    target: Any = root
    for part in schema["$ref"].removeprefix("#/").split("/"):
        target = target[part]
    return {**target, **{k: v for k, v in schema.items() if k != "$ref"}}


def _at(data: Any, path: str) -> Any:
    for part in path.split("."):
        name, items = part.removesuffix("[]"), part.endswith("[]")
        data = data[name]
        if items:
            data = data[0]
    return data


# Where the loaded Federation holds each default (None: an object whose default only makes its own
# properties' defaults apply; those are checked one by one).
FEDERATION_FIELD: dict[str, Callable[[Federation], Any] | None] = {
    "spec.gitops.revision": lambda f: f.gitops.revision,
    "spec.gitops.auth": lambda f: f.gitops.auth,
    "spec.sealing": None,
    "spec.sealing.scope": lambda f: f.sealing.scope,
    "spec.platform": None,
    "spec.platform.kind": lambda f: f.platform.kind,
    "spec.platform.resourceNamePrefix": lambda f: f.platform.resource_name_prefix,
    "spec.platform.platformName": lambda f: f.platform.platform_name,
    "spec.platform.nodePoolMachineType": lambda f: f.node_pool_machine_type,
    "spec.server.ports": lambda f: {"fl": f.server.fl_port, "admin": f.server.admin_port},
    "spec.server.exposure": lambda f: f.server.exposure,
    "spec.server.loadBalancerSourceRanges": lambda f: list(f.server.load_balancer_source_ranges),
    "spec.server.maxJobs": lambda f: f.server.max_jobs,
    "spec.server.resources": None,
    "spec.sites[].enrollment": lambda f: f.sites[0].enrollment,
}


def test_every_schema_default_is_in_a_loaded_minimal_spec(tmp_path: Path) -> None:
    from fedgen.spec.defaults import fill_defaults
    from fedgen.spec.yamlsafe import load_yaml_file

    schema = spec_schema()
    defaults = dict(_schema_defaults(schema, schema))
    assert len(defaults) >= 15, defaults  # the walk found them
    path = _write(tmp_path, MINIMAL)
    filled = fill_defaults(load_yaml_file(path).data, schema)
    written = YAML(typ="safe", pure=True).load(MINIMAL)
    fed = load_federation(path)
    assert sorted(set(defaults) - NEVER_FILLED) == sorted(FEDERATION_FIELD), "map each new default to the field that holds it"
    for where, default in defaults.items():
        if where in NEVER_FILLED:
            continue
        with pytest.raises(KeyError):
            _at(written, where)  # the minimal spec leaves it out
        assert _at(filled, where) == default or default == {} and isinstance(_at(filled, where), dict), where
        field = FEDERATION_FIELD[where]
        if field is not None:
            assert field(fed) == default, where
    assert fed.clusters[0].platform == defaults["spec.platform.kind"]  # a cluster inherits the federation's


def test_fill_defaults_keeps_what_is_written_and_follows_refs_objects_and_items() -> None:
    from fedgen.spec.defaults import fill_defaults

    schema = {
        "$defs": {"kind": {"enum": ["a", "b"], "default": "a"}},
        "properties": {
            "kind": {"$ref": "#/$defs/kind"},
            "box": {"default": {}, "properties": {"size": {"default": 3}, "inner": {"properties": {"x": {"default": 1}}}}},
            "rows": {"items": {"properties": {"n": {"default": 0}}}},
        },
    }
    assert fill_defaults({"rows": [{}, {"n": 5}], "extra": [1]}, schema) == {
        "rows": [{"n": 0}, {"n": 5}],
        "extra": [1],
        "kind": "a",
        "box": {"size": 3},
    }
    written = {"kind": "b", "box": {"size": 9, "inner": {}}}
    assert fill_defaults(written, schema) == {"kind": "b", "box": {"size": 9, "inner": {"x": 1}}}
    assert written == {"kind": "b", "box": {"size": 9, "inner": {}}}  # a copy: the input is not touched
    filled = fill_defaults({}, schema)
    filled["box"]["size"] = 4
    assert fill_defaults({}, schema)["box"] == {"size": 3}  # defaults are copied, never shared


SPEC_MODULES = ("model.py", "load.py", "semantic.py")


def test_no_spec_default_is_repeated_in_the_model_loader_or_checks() -> None:
    """The loader fills defaults from the schema; model, loader and semantic checks read filled values. So none
    of them may hold a schema default's value as a literal, fall back with .get(<defaulted key>, ...), or give
    a record field a default."""
    import ast

    schema = spec_schema()
    defaults = dict(_schema_defaults(schema, schema))
    keys = {where.rsplit(".", 1)[-1].removesuffix("[]") for where in defaults}
    values = {v for v in defaults.values() if isinstance(v, (str, int)) and not isinstance(v, bool)}
    found = []
    for name in SPEC_MODULES:
        source = REPO_ROOT / "generator" / "fedgen" / "spec" / name
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Constant) and not isinstance(node.value, bool) and node.value in values:
                found.append(f"{name}:{node.lineno}: the literal {node.value!r} is a schema default")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get"
                and len(node.args) == 2
                and isinstance(node.args[0], ast.Constant)
                and node.args[0].value in keys
            ):
                found.append(f"{name}:{node.lineno}: .get({node.args[0].value!r}, ...) falls back for a schema default")
            if name == "model.py" and isinstance(node, ast.ClassDef):
                found += [
                    f"{name}:{f.lineno}: field {f.target.id} of {node.name} has a default"
                    for f in node.body
                    if isinstance(f, ast.AnnAssign) and f.value is not None and isinstance(f.target, ast.Name)
                ]
    assert found == []


def _as_read(data: object, position: object, path: tuple[object, ...] = ()) -> Iterator[tuple[object, ...]]:
    """Every value of a loaded document with its type and its (value, key) positions."""
    shown = None if isinstance(data, (dict, list)) else repr(data)
    yield path, type(data).__name__, shown, position(list(path)), position(list(path), key=True)  # type: ignore[operator]
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        yield from _as_read(value, position, (*path, key))


_SCALARS = [
    "yes",
    "no",
    "on",
    "True",
    "FALSE",
    "null",
    "~",
    "",
    "1e3",
    "1.0",
    ".5",
    "0o17",
    "017",
    "0x1F",
    "0b101",
    "1_000",
    "+1",
    "-0",
    ".inf",
    "-.Inf",
    ".NaN",
    "12:30:45",
    "'quoted'",
    '"d\\u00e9"',
    "é café",
    "0.",
    "1e",
    "09",
    "[a, 1]",
    "{a: 1, b: c}",
]


@pytest.mark.parametrize("value", _SCALARS)
def test_spec_reader_reads_what_ruamel_yaml_parses(value: str) -> None:
    """libyaml reads the spec (fedgen.spec.yamlsafe), ruamel.yaml composes and constructs it: values, their YAML
    1.2 types and every line and column are what ruamel.yaml's own parser gives."""
    from fedgen.spec.yamlsafe import LoadedYaml, load_yaml_bytes

    flow = f"{{k: {value}}}" if value else "{}"  # an empty value in a flow mapping: ruamel.yaml's column varies
    text = f"a: {value}\nlist:\n  - {value}\n  -\n  - {flow}\nempty:\nlast: {value}\n"
    yaml = YAML(typ="rt", pure=True)
    reference = LoadedYaml(yaml.constructor.construct_document(next(yaml.compose_all(text))), "x")
    read = load_yaml_bytes(text.encode(), origin="x")
    assert list(_as_read(read.data, read.position)) == list(_as_read(reference.data, reference.position))


def test_spec_reader_reads_a_large_spec_as_ruamel_yaml_does(tmp_path: Path) -> None:
    from fedgen.spec.yamlsafe import LoadedYaml, load_yaml_bytes

    sites = "".join(f"    - {{name: site-{i}, org: org{i % 3}}}\n    - name: block-{i}\n      org: 'o{i}'\n" for i in range(300))
    text = GOOD.replace("  sites:\n", "  sites:\n" + sites, 1)
    yaml = YAML(typ="rt", pure=True)
    reference = LoadedYaml(yaml.constructor.construct_document(next(yaml.compose_all(text))), "x")
    read = load_yaml_bytes(text.encode(), origin="x")
    assert list(_as_read(read.data, read.position)) == list(_as_read(reference.data, reference.position))

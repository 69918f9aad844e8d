"""The shortcuts fedgen validate takes for speed give the answers of the plain way.

- validate() overlaps kubectl kustomize, kubeconform and the rules: its report is evaluate(collect_model(...))'s,
  and a rule that does not say it uses kubeconform's verdicts gives the same findings without them;
- kubeconform gets the built objects as documents already split (validate_documents), not as a stream to
  split and parse again, grouped a few to a file: same results as validate_manifests (a file per document);
- FG403 skips files whose source cannot spell base64 of a key (may_hold_encoded_key): never a file where the
  plain walk finds one, however the value is written (JSON escapes, every YAML scalar style);
- a missing tool is still reported after invalid input (the allowlist), as before the builds started early;
- YAML files are read in one walk over libyaml's nodes (data, line map and checks together): the documents,
  lines and errors of the plain way (construct, walk for lines, copy to plain data), and kustomize's output
  the plain data of the plain way;
- the file reader reuses the kustomization files the guard parsed when their text is unchanged; the guard's
  later checks reuse what its earlier ones parsed and lstat-ed, with the answers of a fresh guard;
- the NVFlare worker gets its request when the collector starts, before the repo is read (the specs load
  while kustomize builds); the worker parses StaticFileBuilder's template before its request comes, and its
  kits are those of a process that did not;
- a validate process skips the collector's walk of the heap at its exit: its output and exit code are those
  of the same validation run in-process.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedgen.cli import main
from fedgen.errors import ExternalError
from fedgen.provision import static
from fedgen.validate.collect import collector, files
from fedgen.validate.collect.collector import ModelCollector, collect_model
from fedgen.validate.collect.files import read_file, read_files
from fedgen.validate.engine import _findings, evaluate, validate
from fedgen.validate.kubeconform import DEFAULT_KUBERNETES_VERSION, validate_documents, validate_manifests
from fedgen.validate.kustomization import Guard
from fedgen.validate.model import Model, RepoFile
from fedgen.validate.rules import REGISTRY
from fedgen.validate.rules.secrets import encoded_private_key, may_hold_encoded_key
from fedgen.validate.scan import list_files
from fedgen.validate.yamlsource import _clean, _one_pass, load_all_plain, parse_file, parse_yaml, parse_yaml_plain
from tests.support import REPO_ROOT
from tests.validate.support import CLUSTER_DIR, SERVER_DIR, container, edit_obj, fresh, pem_key, restamp, rsa_key

# --------------------------------------------------------------------------------- overlapped evaluation


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A render with a schema error (FG201) and a hardening error (FG703) at once."""
    repo = fresh("ranged", tmp_path_factory.mktemp("planted"))

    def change(d: dict[str, Any]) -> None:
        d["spec"]["replcas"] = 1
        container(d)["securityContext"]["privileged"] = True

    edit_obj(repo, f"{SERVER_DIR}/deployment.yaml", "Deployment", change)
    restamp(repo)
    return repo


def test_overlapped_validation_reports_what_the_plain_evaluation_does(planted: Path) -> None:
    report = validate(repo=planted)
    plain = evaluate(collect_model(planted.resolve(), kubernetes_version=DEFAULT_KUBERNETES_VERSION), REGISTRY)
    assert {"FG201", "FG703"} <= {f.rule for f in report.findings}
    assert report.findings == plain.findings
    assert (report.objects, report.files, report.sync_roots) == (plain.objects, plain.files, plain.sync_roots)


def test_only_rules_marked_uses_schema_read_kubeconforms_verdicts(planted: Path) -> None:
    model = collect_model(planted.resolve(), kubernetes_version=DEFAULT_KUBERNETES_VERSION)
    assert any(v.status != "valid" for v in model.schema)
    without = Model(**{**model.__dict__, "schema": ()})
    for rule in REGISTRY:
        if not rule.uses_schema:
            assert _findings(without, [rule]) == _findings(model, [rule]), rule.id
    assert {r.id for r in REGISTRY if r.uses_schema} == {"FG201", "FG202"}


def test_the_worker_is_asked_before_the_repo_is_read(planted: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The collector's start loads the specs and sends NVFlare's worker its request; finish() reads the repo
    and the ledgers' digests after that, and the model is the one collect_model gives."""
    monkeypatch.setattr(static, "_ANSWERS", {})
    monkeypatch.setattr(static, "_HINTS", {})
    order: list[str] = []
    send, ledgers = static.StaticKits._send, collector.finish_ledgers
    monkeypatch.setattr(static.StaticKits, "_send", lambda kits, requests: order.append("request") or send(kits, requests))
    monkeypatch.setattr(files, "read_files", lambda *a: order.append("read files") or read_files(*a))
    monkeypatch.setattr(collector, "finish_ledgers", lambda *a: order.append("ledger digests") or ledgers(*a))
    with ModelCollector(planted.resolve(), kubernetes_version=DEFAULT_KUBERNETES_VERSION) as started:
        assert order == ["request"]
        model = started.finish().complete()
    assert order == ["request", "ledger digests", "read files"]
    plain = collect_model(planted.resolve(), kubernetes_version=DEFAULT_KUBERNETES_VERSION)
    assert model.rerender == plain.rerender and model.rerender.files
    assert model.specs == plain.specs and model.ledgers == plain.ledgers


# The kits of the example's federation as JSON, from a fresh interpreter; after preload() when argv[1] is "preload",
# and then with every further YAML parse made to fail (the template was parsed by preload).
_KITS_SCRIPT = """
import base64, json, sys
from pathlib import Path
from fedgen.provision import lighter
from fedgen.provision.static import static_request
from fedgen.spec import load_federation
request = static_request(load_federation(Path(sys.argv[2])))
if sys.argv[1] == "preload":
    lighter.preload()
    import yaml
    def refuse(*args, **kwargs):
        raise AssertionError("a template parsed after preload")
    yaml.safe_load = yaml.load = refuse
kits = lighter.static_kits(request)
print(json.dumps({n: {p: base64.b64encode(d).decode() for p, d in k.items()} for n, k in kits.items()}, sort_keys=True))
"""


def test_the_worker_parses_the_template_before_its_request_with_the_same_kits() -> None:
    def kits(mode: str) -> Any:
        ran = subprocess.run(
            [sys.executable, "-c", _KITS_SCRIPT, mode, str(REPO_ROOT / "examples" / "federation.yaml")], capture_output=True, text=True, timeout=300
        )
        assert ran.returncode == 0, ran.stderr
        return json.loads(ran.stdout)

    preloaded = kits("preload")
    assert preloaded == kits("plain")
    assert any(path.endswith("fed_server.json") for kit in preloaded.values() for path in kit)


def test_a_validate_process_exits_with_the_report_of_an_in_process_run(planted: Path) -> None:
    args = ["validate", "--repo", str(planted), "--format", "json"]
    ran = subprocess.run([sys.executable, "-m", "fedgen", *args], capture_output=True, text=True, timeout=300)
    in_process = CliRunner().invoke(main, args)
    assert (ran.returncode, ran.stdout) == (in_process.exit_code, in_process.stdout)
    assert ran.returncode == 1 and {"FG201", "FG703"} <= {f["rule"] for f in json.loads(ran.stdout)["findings"]}


# ------------------------------------------------------------------------------------ kubeconform input


def test_documents_already_split_validate_like_a_stream() -> None:
    docs = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "ns"}, "data": {"k": "v"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "namespace": "ns"}, "dta": {}},
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}},
        {"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": "x"}}]},
    ]
    texts = [json.dumps(d, sort_keys=True) for d in docs]
    split = validate_documents(texts)
    streamed = validate_manifests("".join(f"---\n{t}\n" for t in texts).encode())
    assert [(r.document_index, r.kind, r.name, r.namespace, r.status, r.messages) for r in split] == [
        (r.document_index, r.kind, r.name, r.namespace, r.status, r.messages) for r in streamed
    ]
    assert [r.status for r in split] == ["valid", "invalid", "no-schema", "invalid"]


def test_grouped_documents_get_the_verdicts_of_one_file_each() -> None:
    """kubeconform reads JSON documents grouped a few to a file (no identity twice in one): each verdict still
    lands on its own document, even among objects of one kind and name in many namespaces."""
    docs: list[Any] = []
    for i in range(6):
        cm: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "same", "namespace": f"ns{i}"}, "data": {"k": "v"}}
        if i % 3 == 1:
            cm["dta"] = {}  # invalid: strict schemas refuse unknown fields
        docs.append(cm)
    docs += [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "g-", "namespace": "ns0"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": 5}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": 5},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name"]},
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "same"}},
        {"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "same"}, "x": 1}]},
    ]
    texts = [json.dumps(d, sort_keys=True) for d in docs]
    split = validate_documents(texts)
    streamed = validate_manifests("".join(f"---\n{t}\n" for t in texts).encode())  # YAML text: a file each
    assert [(r.document_index, r.namespace, r.status, r.messages) for r in split] == [(r.document_index, r.namespace, r.status, r.messages) for r in streamed]
    assert [r.status for r in split[:6]] == ["valid", "invalid", "valid", "valid", "invalid", "valid"]


# ------------------------------------------------------------------------------------- FG403 prefilter


def _encoded_keys() -> list[str]:
    key = rsa_key()
    pem = pem_key(key)
    from cryptography.hazmat.primitives import serialization

    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    wrapped = base64.encodebytes(pem).decode()  # 76-character lines
    return [base64.b64encode(pem).decode(), base64.b64encode(der).decode(), wrapped, "  " + wrapped.replace("\n", "\n\t ")]


ENCODED = _encoded_keys()


def _sources(value: str) -> dict[str, str]:
    """The same value written in many ways a YAML/JSON file can spell a string."""
    escaped_all = "".join(f"\\u{ord(c):04x}" for c in value)
    out = {
        "json": json.dumps({"data": {"k": value}}),
        "json-ascii-escapes": '{"data": {"k": "' + escaped_all + '"}}',
        "json-escaped-slash": json.dumps({"k": value}).replace("/", "\\/"),
        "json-top-level-string": json.dumps(value),
        "yaml-double-quoted": yaml.safe_dump({"k": value}, default_style='"', width=40),
        "yaml-single-quoted": yaml.safe_dump({"k": value}, default_style="'", width=40),
        "yaml-literal": "k: |\n" + "".join(f"  {line}\n" for line in value.splitlines()),
        "yaml-folded": "k: >-\n" + "".join(f"  {line}\n" for line in value.split()),
        "yaml-plain-multiline": "k: " + "\n   ".join(value[i : i + 40] for i in range(0, len(value), 40)) + "\n",
        "yaml-flow-list": "k: [" + json.dumps(value) + "]\n",
        "yaml-double-quoted-escapes": 'k: "' + value.replace("\n", "\\n").replace("\t", "\\t").replace(" ", "\\_") + '"\n',
        "yaml-alias": "a: &v " + json.dumps(value) + "\nb: *v\n",
    }
    raw = base64.b64decode("".join(value.split()))
    out["yaml-binary"] = "k: !!binary |\n  " + base64.b64encode(raw).decode() + "\n"
    # A tag spelt so that neither "binary" nor a long base64 run is in the source: junk the binary decoder drops.
    junk = ".".join(base64.b64encode(raw).decode()[i : i + 8] for i in range(0, len(base64.b64encode(raw)), 8))
    out["yaml-binary-escaped-tag"] = "%TAG !e! tag:yaml.org,2002:\n---\nk: !e!%62inary " + json.dumps(junk) + "\n"
    return out


@pytest.mark.parametrize("value", ENCODED, ids=["pem", "der", "wrapped", "indented"])
def test_prefilter_never_hides_an_encoded_key(value: str) -> None:
    for label, text in _sources(value).items():
        path = f"docs/x.{'json' if label.startswith('json') else 'yaml'}"
        parsed = parse_file(path, text)
        model = Model(files={path: RepoFile(path, text, parsed.docs, parsed.error, parsed.error_line)}, roots=())
        walked = [s for d in parsed.docs for s in _all_strings(d.data)]
        if parsed.error or not any(s == value or "".join(s.split()) == "".join(value.split()) for s in walked):
            continue  # this spelling does not parse back to the value (e.g. YAML folding of a wrapped value)
        assert may_hold_encoded_key(text, yaml=path.endswith(".yaml")), label
        assert list(encoded_private_key(model)), label


def _all_strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (_all_strings(k) + _all_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _all_strings(v)]
    return [value] if isinstance(value, str) else []


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300),
    cut=st.integers(min_value=0, max_value=300),
    as_json=st.booleans(),
    style=st.sampled_from([None, '"', "'", "|", ">"]),
)
def test_prefilter_is_sound_on_random_documents(text: str, cut: int, as_json: bool, style: str | None) -> None:
    """Random documents with a long base64 value (an encoded key or not) spliced into random text: whenever
    the plain walk meets a candidate string, the prefilter lets the file through."""
    value = text[:cut] + ENCODED[0] + text[cut:]
    doc = {"a": [text, {"b": value}], text[:20]: 1}
    source = json.dumps(doc, ensure_ascii=False) if as_json else yaml.safe_dump(doc, default_style=style, allow_unicode=True, width=60)
    path = "docs/x.json" if as_json else "docs/x.yaml"
    parsed = parse_file(path, source)
    assert parsed.error is None, parsed.error
    candidates = [
        s
        for d in parsed.docs
        for s in _all_strings(d.data)
        if len(s) >= 64 and not s.strip("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/= \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0")
    ]
    if candidates:
        assert may_hold_encoded_key(source, yaml=not as_json)


def test_prefilter_skips_prose_and_schemas() -> None:
    schema = {"description": "Kind is a string value representing the REST resource, in CamelCase!", "type": "string"}
    assert not may_hold_encoded_key(json.dumps({"properties": {f"p{i}": schema for i in range(50)}}), yaml=False)
    assert not may_hold_encoded_key("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: b\n")
    assert may_hold_encoded_key("a: !custom b\n")  # a YAML tag: always walked


# ------------------------------------------------------------------------------------------ error order


def test_a_missing_tool_comes_after_invalid_input(tmp_path: Path) -> None:
    repo = fresh("ranged", tmp_path)
    (repo / ".fedgen" / "allowlist.yaml").write_text("allow:\n  - rule: FG709\n    object: x\n")
    env = {"FEDGEN_KUBECTL": str(tmp_path / "no-such-kubectl")}
    result = CliRunner().invoke(main, ["validate", "--repo", str(repo)], env=env)
    assert result.exit_code == 2 and "needs a reason" in result.output, result.output
    (repo / ".fedgen" / "allowlist.yaml").unlink()
    result = CliRunner().invoke(main, ["validate", "--repo", str(repo)], env=env)
    assert result.exit_code == 3 and "kubectl" in result.output, result.output


# ------------------------------------------------------------------------------------ one-pass YAML reading

ONE_PASS_CASES = {
    "scalars": "a: 1\nb: 0x1f\nc: 1.5e3\nd: .inf\ne: yes\nf: ~\ng: 2024-01-02\nh: 2024-01-02T03:04:05Z\ni: '1'\nj: 0o17\nk: 1_000\n",
    "binary": "k: !!binary aGVsbG8=\n",
    "keys as other scalars": "1: a\ntrue: b\n~: c\n2024-01-02: d\n1.5: e\n",
    "keys that collide once constructed": "1: a\n01: b\n'x': c\nyes: d\ntrue: e\n",
    "pointer escapes": "a/b: 1\nc~d: {e/f~g: [1, {h: 2}]}\n",
    "anchors and aliases": "a: &x {b: [1, 2]}\nc: *x\nd: [*x, *x]\n",
    "merge key": "base: &b {x: 1}\nobj:\n  <<: *b\n  y: 2\n",
    "quoted merge key": "'<<': 1\n",
    "value key": "a: {=: 1}\n",
    "set": "s: !!set {a, b}\n",
    "omap": "o: !!omap [a: 1, b: 2]\n",
    "custom tag": "a: !thing 1\n",
    "bad int tag": "a: !!int nope\n",
    "complex key": "? [a, b]\n: 1\n",
    "duplicate key": "a: 1\nb: 2\na: 3\n",
    "duplicate key, spelt differently": "1: a\n'1': b\n",
    "documents": "---\na: 1\n---\n---\n~\n---\n- x\n- y: [1]\n...\n---\nz: 2\n",
    "syntax error": "a: [1, 2\nb: 3\n",
    "error in a later document": "a: 1\n---\nb: {c\n",
    "tabs": "a:\n\t- 1\n",
    "undefined alias": "a: *nope\n",
    "deep": "a: " + "[" * 120 + "]" * 120 + "\n",
    "just under the depth": "a: " + "[" * 98 + "]" * 98 + "\n",
    "recursive alias": "a: &r [*r]\n",
    "alias bomb": "a: &a [" + ",".join(["x"] * 20) + "]\n" + "".join(f"{c}: &{c} [" + ",".join([f"*{p}"] * 20) + "]\n" for p, c in zip("abcd", "bcde")),
    "block scalars": "a: |\n  x\n  y\nb: >-\n  z\n  w\n",
    "empty values": "a:\nb: []\nc: {}\nd: ''\n",
    "a scalar document": "just text\n",
    "empty": "",
}


@pytest.mark.parametrize("text", ONE_PASS_CASES.values(), ids=ONE_PASS_CASES.keys())
def test_one_pass_reads_like_the_plain_way(text: str) -> None:
    assert parse_yaml("f.yaml", text) == parse_yaml_plain("f.yaml", text)
    try:
        plain: Any = [_clean(d) for d in yaml.load_all(text, Loader=yaml.CSafeLoader) if d is not None]
    except Exception as exc:  # noqa: BLE001 - whatever the plain way raises, the one-pass reader raises too
        with pytest.raises(type(exc)):
            load_all_plain(text)
    else:
        assert load_all_plain(text) == plain


def test_one_pass_reads_a_rendered_repository_itself(tmp_path: Path) -> None:
    """Every YAML file of a render is read by the one walk (not handed to the plain way), with the plain
    way's documents and lines; so are the built objects kustomize prints."""
    repo = fresh("ranged", tmp_path)
    files = sorted(p for p in repo.rglob("*.y*ml") if ".fedgen" not in p.parts)
    assert len(files) > 20
    for path in files:
        text = path.read_text()
        _one_pass(text, positions=True)  # raises on anything it leaves to the plain way
        assert parse_yaml(path.name, text) == parse_yaml_plain(path.name, text), path
    model = collect_model(repo.resolve(), kubernetes_version=DEFAULT_KUBERNETES_VERSION)
    built = [o.data for r in model.roots for o in r.objects]
    stream = yaml.safe_dump_all(built, sort_keys=False)
    assert len(built) > 20
    assert load_all_plain(stream) == [_clean(d) for d in yaml.load_all(stream, Loader=yaml.CSafeLoader) if d is not None]
    _one_pass(stream, positions=False)


_leaf = st.one_of(
    st.sampled_from(["1", "0x10", "1.0", "yes", "no", "~", "null", "2024-01-02", "'q'", '"d"', "a/b", "t~x", "<<", "=", "!!str 5", "&k v", "*k"]),
    st.text(alphabet="ab1:-#'\" ", max_size=4),
)


@st.composite
def _yaml_texts(draw: st.DrawFn) -> str:
    """Small block and flow YAML with repeated keys, odd scalars, anchors and aliases, some of it invalid."""

    def node(depth: int) -> str:
        choice = draw(st.integers(0, 3 if depth < 4 else 0))
        if choice == 0:
            return draw(_leaf)
        if choice == 1:
            return "[" + ", ".join(node(depth + 1) for _ in range(draw(st.integers(0, 3)))) + "]"
        keys = [draw(_leaf) for _ in range(draw(st.integers(0, 3)))]
        return "{" + ", ".join(f"{k}: {node(depth + 1)}" for k in keys) + "}"

    keys = [draw(_leaf) for _ in range(draw(st.integers(1, 4)))]
    return "".join(f"{k}: {node(0)}\n" for k in keys)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_yaml_texts())
def test_one_pass_reads_random_yaml_like_the_plain_way(text: str) -> None:
    assert parse_yaml("r.yaml", text) == parse_yaml_plain("r.yaml", text)


def test_the_file_reader_reuses_what_the_guard_parsed(tmp_path: Path) -> None:
    repo = fresh("ranged", tmp_path).resolve()
    paths = list_files(repo)
    guard = Guard(repo, frozenset(paths))
    assert guard.check(CLUSTER_DIR).buildable
    kustomizations = sorted(guard.parsed)
    assert len(kustomizations) > 3
    reused, plain = read_files(repo, paths, guard.parsed), read_files(repo, paths)
    assert reused == plain
    assert all(reused[rel].docs is guard.parsed[rel][1].docs for rel in kustomizations)  # not parsed twice
    changed = repo / kustomizations[0]  # changed after the guard read it: parsed again
    changed.write_text(changed.read_text() + "commonLabels: {late: edit}\n")
    assert read_file(repo, kustomizations[0], guard.parsed) == read_file(repo, kustomizations[0])
    assert read_file(repo, kustomizations[0], guard.parsed).docs[0].data["commonLabels"] == {"late": "edit"}


def test_a_guard_that_checked_before_answers_like_a_fresh_one(tmp_path: Path) -> None:
    repo = fresh("ranged", tmp_path).resolve()
    other = repo / "clusters" / "other"
    other.mkdir()
    (other / "link").symlink_to(repo / "tenants")
    tenant = next(p.name for p in (repo / "tenants").iterdir())
    (other / "kustomization.yaml").write_text(f"resources:\n- ../../tenants/{tenant}\n- link/{tenant}\n- missing.yaml\n")
    paths = frozenset(list_files(repo))
    used = Guard(repo, paths)
    assert used.check(CLUSTER_DIR).buildable
    assert used.modes and used.parsed
    second, fresh_check = used.check("clusters/other"), Guard(repo, paths).check("clusters/other")
    assert second == fresh_check
    assert [r.message for r in second.refusals] == [f"resources entry 'link/{tenant}' passes through the symbolic link clusters/other/link"]


# A stand-in worker: replies with argv[1] as written, then lives on until its input ends (as the real one
# may, while the interpreter tears down).
_LINGERING_WORKER = """
import sys
sys.stdin.buffer.readline()
sys.stdout.buffer.write(sys.argv[1].encode())
sys.stdout.buffer.flush()
sys.stdin.buffer.read()
"""


def _stand_in_worker(monkeypatch: pytest.MonkeyPatch, reply: str) -> None:
    from fedgen.provision import runner

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-c", _LINGERING_WORKER, reply], stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    monkeypatch.setattr(static, "_ANSWERS", {})
    monkeypatch.setattr(static, "_HINTS", {})
    monkeypatch.setattr(runner, "spawn_worker", spawn)


def test_the_worker_s_reply_is_read_without_waiting_for_its_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    kit = {"s1": {"startup/fed_client.json": base64.b64encode(b"{}").decode()}}
    _stand_in_worker(monkeypatch, json.dumps({"kits": [kit]}) + "\n")
    with static.StaticKits(["hint"]) as kits:
        answers = kits.ask([("hint", {"roster": "r"})])
        assert answers() == [{"s1": {"startup/fed_client.json": b"{}"}}]
        assert kits.proc is not None and kits.proc.poll() is None  # still running: its end was not waited for
    assert kits.proc.returncode == 0  # close() ended it


def test_a_worker_that_ends_without_a_whole_reply_is_an_external_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    _stand_in_worker(monkeypatch, '{"kits": [')
    with static.StaticKits(["hint"]) as kits:
        answers = kits.ask([("hint", {"roster": "r"})])
        assert kits.proc is not None and kits.proc.stdin is not None
        kits.proc.stdin.close()  # the stand-in ends after its partial line
        with pytest.raises(ExternalError, match="gave no answer"):
            answers()


def test_the_nvflare_version_is_read_as_importlib_metadata_reads_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read off the dist-info folder's name (importlib.metadata is imported only for the fallback); the
    fallback, when no single dist-info folder is found, gives the same version."""
    from importlib import metadata

    from fedgen import nvflare_version

    expected = metadata.version("nvflare")
    nvflare_version.installed_nvflare_version.cache_clear()
    assert nvflare_version.installed_nvflare_version() == expected
    nvflare_version.installed_nvflare_version.cache_clear()
    monkeypatch.setattr(Path, "glob", lambda self, pattern: iter(()))
    try:
        assert nvflare_version.installed_nvflare_version() == expected
    finally:
        nvflare_version.installed_nvflare_version.cache_clear()

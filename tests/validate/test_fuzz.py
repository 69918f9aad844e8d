"""Hostile inputs (hypothesis): the spec loader and `fedgen validate`'s file readers never crash.

Spec loader (fedgen.spec.load_federation): random YAML documents, random bytes, random mutations of a valid
spec (structural and textual), deep nesting, huge scalars, alias bombs. The only exceptions allowed are
InputError / SpecErrors, each message one line starting with the spec's path; the extreme cases run in a child
process bounded in memory, and killed if they hang (no timing is asserted: see _bounded).
Validate readers (fedgen.validate.yamlsource.parse_file, allowlist parsing): never raise on any text (an
error is data: one line), and allowlist problems are InputErrors naming the file.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import resource
import shutil
import signal
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from fedgen.errors import InputError, SpecErrors
from fedgen.spec import Federation, load_federation
from tests.support import OTHER_SPEC, dump_yaml

# No per-example deadline (the profile in tests/conftest.py): on a loaded machine a slow example is not a bug.
FUZZ = settings(max_examples=120, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
MEMORY_LIMIT = 256 * 2**20  # growth of the peak RSS while reading one extreme input (the file limit is 1 MiB)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, sealing_keypair: tuple[Path, Path]) -> Path:
    """Where the specs go; sealing.pem next to them, so a mutation that keeps the spec valid loads."""
    path = tmp_path_factory.mktemp("fuzz")
    shutil.copy(sealing_keypair[1], path / "sealing.pem")
    return path


def _valid_text() -> str:
    out = io.StringIO()
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.dump(OTHER_SPEC, out)
    return out.getvalue()


VALID = _valid_text()


def check_loader(path: Path) -> Federation | None:
    """Load; the only failures allowed are InputError/SpecErrors with one-line messages naming the file."""
    try:
        return load_federation(path)
    except SpecErrors as exc:
        assert exc.messages, "SpecErrors without a message"
        for message in exc.messages:
            assert "\n" not in message and "\r" not in message, repr(message)
            assert message.startswith(f"{path}:"), message
        assert str(exc) == "\n".join(exc.messages)
    except InputError as exc:
        message = str(exc)
        assert message and "\n" not in message, repr(message)
        assert message.startswith(str(path)), message
    return None


def load_bytes(folder: Path, data: bytes) -> Federation | None:
    path = folder / "federation.yaml"
    path.write_bytes(data)
    return check_loader(path)


# ----------------------------------------------------------------------------------------------- strategies

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["", "~", "null", "yes", "no", "on", "0x1F", "1e3", "2024-01-02", "12:30:00", ".inf", "<<", "=", "!!str", "*a", "&a"]),
)
documents = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5), max_leaves=40)


# Every place in OTHER_SPEC a value sits (path of keys and indexes).
def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*prefix, i))


SPEC_PATHS = [p for p in _paths(OTHER_SPEC) if p]


def _apply(doc: Any, path: tuple[Any, ...], op: str, value: Any) -> None:
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if op == "replace":
        parent[last] = value
    elif op == "delete":
        del parent[last]
    elif op == "extra" and isinstance(parent, dict):
        parent[f"x-{value!s:.10}"] = value
    elif op == "extra" and isinstance(parent, list):
        parent.append(value)
    elif op == "duplicate" and isinstance(parent, list):
        parent.append(copy.deepcopy(parent[last]))


mutations = st.lists(
    st.tuples(st.sampled_from(SPEC_PATHS), st.sampled_from(["replace", "delete", "extra", "duplicate"]), documents),
    min_size=1,
    max_size=4,
)

YAML_NOISE = list(":-[]{}&*!|>'\"#%@`,? \t\n") + ["\n  ", ": ", "- ", "<<: ", "!!binary ", "!!python/object ", "\ufeff", "\x85", "\u2028", "\\", "..."]


@st.composite
def text_mutations(draw: st.DrawFn) -> str:
    text = VALID
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["insert", "delete", "replace", "dup-line", "drop-line", "indent"]))
        pos = draw(st.integers(0, max(0, len(text) - 1)))
        if kind == "insert":
            text = text[:pos] + draw(st.sampled_from(YAML_NOISE) | st.text(max_size=8)) + text[pos:]
        elif kind == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 20)) :]
        elif kind == "replace":
            text = text[:pos] + draw(st.sampled_from(YAML_NOISE)) + text[pos + 1 :]
        else:
            lines = text.split("\n")
            i = draw(st.integers(0, len(lines) - 1))
            if kind == "dup-line":
                lines.insert(i, lines[i])
            elif kind == "drop-line":
                del lines[i]
            else:
                lines[i] = " " * draw(st.integers(1, 3)) + lines[i]
            text = "\n".join(lines)
    return text


# ------------------------------------------------------------------------------------------ spec loader


def test_the_valid_spec_loads(folder: Path) -> None:
    assert isinstance(load_bytes(folder, VALID.encode()), Federation)


@FUZZ
@given(doc=documents)
def test_random_yaml_documents(folder: Path, doc: Any) -> None:
    out = io.StringIO()
    YAML(typ="safe", pure=True).dump(doc, out)
    load_bytes(folder, out.getvalue().encode())


@FUZZ
@given(data=st.binary(max_size=2048))
def test_random_bytes(folder: Path, data: bytes) -> None:
    load_bytes(folder, data)


@FUZZ
@given(data=st.binary(max_size=256))
def test_random_bytes_after_a_valid_prefix(folder: Path, data: bytes) -> None:
    load_bytes(folder, VALID.encode()[: len(VALID) // 2] + data)


@FUZZ
@given(changes=mutations)
def test_structural_mutations_of_a_valid_spec(folder: Path, changes: list[tuple[tuple[Any, ...], str, Any]]) -> None:
    doc = copy.deepcopy(OTHER_SPEC)
    for path, op, value in changes:
        try:
            _apply(doc, path, op, value)
        except (KeyError, IndexError, TypeError):
            pass  # an earlier change removed or replaced what this path pointed into
    path = folder / "federation.yaml"
    dump_yaml(doc, path)
    check_loader(path)


@FUZZ
@given(text=text_mutations())
def test_textual_mutations_of_a_valid_spec(folder: Path, text: str) -> None:
    load_bytes(folder, text.encode("utf-8", errors="surrogatepass"))


def _bounded(fn: Callable[[], object], limit_seconds: float = 60.0) -> tuple[float, int]:
    """Run fn in a forked child; return (seconds, growth of its peak RSS in bytes). Fails the test when fn raises
    or runs past limit_seconds (the child is then killed): hostile inputs must not hang the suite either."""
    r, w = os.pipe()
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            fn()
            report = {"ok": True}
        except BaseException:  # noqa: BLE001 - the assertion or crash, to the parent
            report = {"ok": False, "error": traceback.format_exc()}
        report["growth"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
        os.write(w, json.dumps(report).encode())
        os._exit(0)
    os.close(w)
    try:
        while True:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.perf_counter() - start > limit_seconds:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail(f"still running after {limit_seconds:.0f} s", pytrace=False)
            time.sleep(0.01)
        seconds = time.perf_counter() - start
        with os.fdopen(r, "rb") as fh:
            report = json.loads(fh.read() or b"{}")
    finally:
        with contextlib.suppress(OSError):
            os.close(r)
    assert report.get("ok"), report.get("error", "the child died")
    return seconds, int(report["growth"])


EXTREMES: dict[str, bytes] = {
    "deep flow sequence": b"[" * 100_000,
    "deep flow mapping": b"{a: " * 50_000,
    "deep block mapping": "".join(f"{' ' * i}k:\n" for i in range(3000)).encode(),
    "deep block sequence": "".join(f"{' ' * i}- \n" for i in range(0, 6000, 2)).encode(),
    "deep nesting inside the spec": VALID.replace("spec:\n", "spec:\n  deep: " + "[" * 200 + "]" * 200 + "\n", 1).encode(),
    "huge string scalar": b"metadata:\n  name: " + b"x" * (1024 * 1024 - 40) + b"\n",
    "over the size limit": b"a: " + b"y" * (3 * 1024 * 1024),
    "huge integer": b"apiVersion: " + b"9" * 100_000 + b"\n",
    "huge float": b"apiVersion: 1." + b"9" * 100_000 + b"e99999999\n",
    "many keys": b"".join(b"k%d: %d\n" for _ in range(1)).replace(b"%d", b"1") + b"".join(f"k{i}: {i}\n".encode() for i in range(60_000)),
    "long line of commas": b"a: [" + b"1," * 400_000 + b"]",
    "alias bomb": b"a: &a [x, x, x, x, x, x, x, x, x]\n"
    + b"".join(f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n".encode() for i in range(8)),
    "merge keys": b"base: &b {x: 1}\nother:\n  <<: *b\n",
    "python tag": b"!!python/object/apply:os.system ['true']\n",
    "many documents": b"---\na: 1\n" * 10_000,
    "nul byte": VALID.encode().replace(b"spec:", b"sp\x00ec:", 1),
    "not utf-8": b"\xff\xfe" + VALID.encode("utf-16-le"),
    "bom": b"\xef\xbb\xbf" + VALID.encode(),
    "only a comment": b"# nothing\n",
    "empty": b"",
    "tabs for indentation": VALID.replace("  ", "\t").encode(),
    "duplicate keys": VALID.encode() + b"kind: Federation\n",
    "sites a million long": VALID.replace("sites:\n", "sites: [" + "{name: s, org: o}, " * 20_000 + "]\nx-old-sites:\n", 1).encode(),
}


@pytest.mark.parametrize("name", sorted(EXTREMES))
def test_extreme_inputs_are_refused_quickly_in_bounded_memory(folder: Path, name: str) -> None:
    path = folder / f"{name.replace(' ', '-')}.yaml"
    path.write_bytes(EXTREMES[name])
    # Not a timing assertion: _bounded's generous limit only catches the exponential or quadratic blow-ups
    # these inputs are made to provoke (a 20 KB line of "[" used to take seconds, a 1 MiB one hours).
    _, growth = _bounded(lambda: check_loader(path))
    assert growth < MEMORY_LIMIT, f"{name}: peak RSS grew by {growth / 2**20:.0f} MiB"


def test_missing_and_unreadable_specs(folder: Path) -> None:
    check_loader(folder / "absent.yaml")
    check_loader(folder)  # a folder
    unreadable = folder / "unreadable.yaml"
    unreadable.write_bytes(VALID.encode())
    unreadable.chmod(0)
    try:
        check_loader(unreadable)
    finally:
        unreadable.chmod(0o600)


@settings(deadline=None, max_examples=8, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(text=text_mutations())
def test_render_command_line_on_mutated_specs_exits_0_or_2_with_one_line_errors(folder: Path, text: str) -> None:
    """The same through `fedgen render --check` (no state, no writes): exit 0, 1 or 2, never a traceback."""
    from click.testing import CliRunner

    from fedgen.cli import main

    spec = folder / "cli" / "federation.yaml"
    spec.parent.mkdir(exist_ok=True)
    shutil.copy(folder / "sealing.pem", spec.parent / "sealing.pem")
    spec.write_bytes(text.encode("utf-8", errors="surrogatepass"))
    assume(load_federation_fails(spec))  # valid specs would provision (slow, and not what this is about)
    result = CliRunner().invoke(main, ["render", str(spec), "--repo", str(spec.parent), "--check"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for line in result.output.splitlines():
        assert line.startswith(f"{spec}:") or line.startswith(f"error: {spec}"), line


def load_federation_fails(path: Path) -> bool:
    try:
        load_federation(path)
    except InputError:
        return True
    return False


# ---------------------------------------------------------------------------------------- validate readers


def _parse_file(path: str, text: str) -> Any:
    from fedgen.validate.yamlsource import parse_file

    parsed = parse_file(path, text)
    if parsed.error is not None:
        assert "\n" not in parsed.error and parsed.error, repr(parsed.error)
        assert parsed.error_line is None or (isinstance(parsed.error_line, int) and parsed.error_line >= 1)
    for doc in parsed.docs:
        assert doc.path == path
        assert isinstance(doc.line, int) and doc.line >= 1
    return parsed


@FUZZ
@given(doc=documents, as_json=st.booleans())
def test_validate_reader_on_random_documents(doc: Any, as_json: bool) -> None:
    import json

    if as_json:
        try:
            text = json.dumps(doc)
        except ValueError:
            return
        _parse_file("tenants/x/file.json", text)
    else:
        out = io.StringIO()
        YAML(typ="safe", pure=True).dump_all([doc, doc], out)
        _parse_file("tenants/x/file.yaml", out.getvalue())


@FUZZ
@given(text=st.text(max_size=2000) | text_mutations())
def test_validate_reader_on_random_text(text: str) -> None:
    _parse_file("clusters/c/kustomization.yaml", text)
    _parse_file("terraform/x.auto.tfvars.json", text)


@pytest.mark.parametrize("name", [n for n in sorted(EXTREMES) if n != "not utf-8"])
def test_validate_reader_on_extreme_inputs(name: str) -> None:
    text = EXTREMES[name].decode("utf-8", errors="replace")
    _, growth = _bounded(lambda: _parse_file("tenants/t/x.yaml", text), limit_seconds=5 if name == "alias bomb" else 60)
    assert growth < MEMORY_LIMIT, f"{name}: peak RSS grew by {growth / 2**20:.0f} MiB"


def test_validate_reader_refuses_an_alias_bomb_and_reads_modest_aliases() -> None:
    from fedgen.validate.yamlsource import ALIAS_EXPANSION, ALIAS_FREE_NODES

    bomb = _parse_file("tenants/t/x.yaml", EXTREMES["alias bomb"].decode())
    assert bomb.error is not None and "excessive aliasing" in bomb.error and bomb.error_line is not None, bomb
    # Aliases are YAML: a list of 50 references to one 20-item list (1,000+ visits, 21 distinct nodes) reads.
    modest = "base: &b [" + ", ".join(str(i) for i in range(20)) + "]\nuses: [" + ", ".join(["*b"] * 50) + "]\n"
    parsed = _parse_file("tenants/t/y.yaml", modest)
    assert parsed.error is None and parsed.docs[0].data["uses"][49] == list(range(20))
    # The bound: past ALIAS_FREE_NODES visits, more than ALIAS_EXPANSION per distinct node is refused.
    # Here: about 21 visits per reference to 25 distinct nodes.
    over = ALIAS_FREE_NODES // 21 + 1
    assert over * 21 > ALIAS_EXPANSION * 25
    big = "base: &b [" + ", ".join(str(i) for i in range(20)) + "]\nuses: [" + ", ".join(["*b"] * over) + "]\n"
    assert "excessive aliasing" in (_parse_file("tenants/t/z.yaml", big).error or "")


def _allowlist(doc: Any, *, reraise: bool = False) -> None:
    from fedgen.validate.allowlist import parse_allowlist
    from fedgen.validate.rules import REGISTRY

    out = io.StringIO()
    YAML(typ="safe", pure=True).dump({"allow": [doc]} if isinstance(doc, dict) else doc, out)
    try:
        parse_allowlist(out.getvalue(), origin=".fedgen/validate-allow.yaml", registry=REGISTRY)
    except InputError as exc:
        assert len(str(exc).splitlines()) == 1 and str(exc).startswith(".fedgen/validate-allow.yaml:"), str(exc)
        if reraise:
            raise


any_keys = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5), max_leaves=40)


@FUZZ
@given(doc=any_keys)
def test_allowlist_parsing_fails_only_with_one_line_input_errors(doc: Any) -> None:
    _allowlist(doc)


@pytest.mark.parametrize("name", ["\n", "a\u2028b", "x\ry"])
def test_allowlist_error_for_a_field_name_with_a_line_break_is_one_line(name: str) -> None:
    with pytest.raises(InputError) as caught:
        _allowlist({"rule": "x", "reason": "r", name: None}, reraise=True)
    assert repr(name) in str(caught.value) and len(str(caught.value).splitlines()) == 1

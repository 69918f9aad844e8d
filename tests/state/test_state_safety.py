"""The state against operator mistakes and other users: no silent new root CA, owner-only or refused,
never in a bucket the workloads mount."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from ruamel.yaml import YAML

from fedgen.enroll.fingerprints import fingerprint
from fedgen.errors import InputError
from fedgen.spec import load_federation
from fedgen.state.local import LocalStore
from tests.support import fedgen_cli, render_spec, tree_snapshot

SpecWriter = Callable[..., Path]
CONFIGMAPS = "tenants/fl-genomics/nvflare-flserver/configmaps.yaml"


def _one_line(result: Result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def _everything(repo: Path) -> dict[str, bytes]:
    return tree_snapshot(repo, exclude=())


def _committed_root(repo: Path, rel: str = CONFIGMAPS) -> str:
    docs = YAML(typ="safe", pure=True).load_all((repo / rel).read_text())
    startup = next(d for d in docs if d and d["metadata"]["name"].endswith("-startup"))
    return fingerprint(startup["data"]["rootCA.pem"].encode())


def _state_root(state: Path) -> str:
    return fingerprint(json.loads((state / "state.json").read_text())["nvflare_cert"]["root_cert"].encode())


# ------------------------------------------------------------------------------------------- root CA


def test_a_lost_or_mistyped_state_does_not_mint_a_new_root_ca(rendered: tuple[Path, Path], tmp_path: Path) -> None:
    spec, repo = rendered
    before = _everything(repo)
    committed = _committed_root(repo)
    mistyped = tmp_path / "stat"  # the state is at .fedgen/state/genomics
    for args in ((), ("--check",)):
        result = render_spec(spec, "--state", str(mistyped), *args)
        assert result.exit_code == 2, result.output
        line = _one_line(result)
        assert f"state {mistyped} holds no root CA, but the committed federation genomics trusts ({committed} in {CONFIGMAPS})" in line
        assert "Point --state at the federation's state" in line and f"fedgen render {spec} --new-root-ca" in line
    assert _everything(repo) == before
    assert not mistyped.exists()  # refused before the lock, which would have made the folder
    # The default state lost (deleted): the same.
    state = repo / ".fedgen/state/genomics"
    shutil.move(state, tmp_path / "backup")
    lost = render_spec(spec)
    assert lost.exit_code == 2 and "holds no root CA" in _one_line(lost)
    assert _everything(repo) == {p: d for p, d in before.items() if not p.startswith(".fedgen/state/genomics/")}


def test_a_state_with_another_root_ca_is_refused_and_new_root_ca_starts_over(rendered: tuple[Path, Path], write_spec: SpecWriter, tmp_path: Path) -> None:
    spec, repo = rendered
    other = tmp_path / "other-repo"
    shutil.copytree(spec.parent, other / "spec")
    assert fedgen_cli("render", str(other / "spec" / spec.name), "--repo", str(other)).exit_code == 0
    other_state = other / ".fedgen/state/genomics"
    committed, theirs = _committed_root(repo), _state_root(other_state)
    assert committed != theirs
    before = _everything(repo)
    refused = render_spec(spec, "--state", str(other_state))
    assert refused.exit_code == 2
    assert f"holds another root CA ({theirs}) than the one the committed federation genomics trusts ({committed} in " in _one_line(refused)
    assert _everything(repo) == before
    # Starting over on purpose (it cannot be undone: without a terminal to ask on, only with --yes).
    unasked = render_spec(spec, "--state", str(other_state), "--new-root-ca")
    assert unasked.exit_code == 2 and "pass --yes" in _one_line(unasked)
    assert _everything(repo) == before
    old_state = (other_state / "state.json").read_bytes()
    started = render_spec(spec, "--state", str(other_state), "--new-root-ca", "--yes")
    assert started.exit_code == 0, started.output
    # First a copy of the state that held the old CA, beside it and owner-only; then every bundle named.
    (backup,) = sorted(other_state.glob("state.json.backup-*"))
    assert f"backed up the state {other_state} to {backup}" in started.stderr
    assert backup.read_bytes() == old_state and backup.stat().st_mode & 0o777 == 0o600
    assert "site-a, site-b, lead@genomics.example.org: a new bundle (root CA changed)" in started.output
    assert "flserver: commit and push: Config Sync rolls the server (root CA changed)" in started.output
    new_root = _committed_root(repo)
    assert new_root not in (committed, theirs) and new_root == _state_root(other_state)
    assert render_spec(spec, "--state", str(other_state)).exit_code == 0  # now they agree


def test_the_ledger_finds_the_committed_root_after_the_kit_moved(rendered: tuple[Path, Path], write_spec: SpecWriter, tmp_path: Path) -> None:
    """A spec change that moves the server kit (new tenant) still finds the root the repo trusts."""
    spec, repo = rendered
    committed = _committed_root(repo)

    def moved(data: dict[str, Any]) -> None:
        data["spec"]["server"]["tenant"] = "fl-genomics-two"

    write_spec(moved)
    result = render_spec(spec, "--state", str(tmp_path / "empty"))
    assert result.exit_code == 2
    assert f"({committed} in {CONFIGMAPS})" in _one_line(result)


def test_rotate_root_ca_needs_no_flag_and_names_every_bundle(rendered: tuple[Path, Path]) -> None:
    spec, repo = rendered
    committed = _committed_root(repo)
    result = fedgen_cli("rotate", "--root-ca", "--spec", str(spec), "--repo", str(repo), "--yes")
    assert result.exit_code == 0, result.output
    assert "site-a, site-b, lead@genomics.example.org: a new bundle (root CA changed)" in result.output
    assert _committed_root(repo) != committed


# ------------------------------------------------------------------------------------------- modes and owner


@pytest.mark.parametrize(
    ("target", "mode", "fix"),
    [
        (".fedgen/state/genomics/state.json", 0o644, "chmod 600"),
        (".fedgen/state/genomics/state.json", 0o620, "chmod 600"),
        (".fedgen/state/genomics/lock", 0o604, "chmod 600"),
        (".fedgen/state/genomics", 0o755, "chmod 700"),
        (".fedgen/state", 0o711, "chmod 700"),
    ],
)
def test_a_state_open_to_others_is_refused_with_the_chmod_that_fixes_it(rendered: tuple[Path, Path], target: str, mode: int, fix: str) -> None:
    spec, repo = rendered
    path = repo / target
    path.chmod(mode)
    before = _everything(repo)
    for args in (
        ["render", str(spec), "--repo", str(repo)],
        ["render", str(spec), "--repo", str(repo), "--check"],
        ["client-bundle", "site-a", "--spec", str(spec), "--repo", str(repo), "--out", str(repo.parent / "b.tgz")],
        ["certs", str(spec), "--repo", str(repo)],
    ):
        result = fedgen_cli(*args)
        assert result.exit_code == 2, (args, result.output)
        line = _one_line(result)
        assert f"{path} is {stat.filemode(path.stat().st_mode)}" in line
        command = re.search(r"run `([^`]+)`", line)
        assert command and command.group(1) == f"{fix} {path}", line
    assert _everything(repo) == before and path.stat().st_mode & 0o777 == mode  # refused, not silently fixed
    assert not (repo.parent / "b.tgz").exists()
    assert command is not None
    subprocess.run(command.group(1), shell=True, check=True)  # noqa: S602 - the exact command the message gave
    assert render_spec(spec).exit_code == 0


def test_every_open_path_is_named_in_one_command(rendered: tuple[Path, Path]) -> None:
    spec, repo = rendered
    state = repo / ".fedgen/state/genomics"
    state.chmod(0o750)
    (state / "state.json").chmod(0o640)
    line = _one_line(render_spec(spec))
    assert f"run `chmod 700 {state} && chmod 600 {state / 'state.json'}`" in line


def test_a_state_owned_by_another_user_is_refused(rendered: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    _, repo = rendered
    state = repo / ".fedgen/state/genomics"
    owner = state.stat().st_uid
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)
    with pytest.raises(InputError, match=rf"belongs to uid {owner}, not to the user running fedgen \(uid {owner + 1}\)"):
        LocalStore(state).load()


def test_the_read_path_creates_nothing(tmp_path: Path) -> None:
    absent = tmp_path / "a" / "b"
    assert LocalStore(absent).load().project is None
    assert not (tmp_path / "a").exists()


def test_new_state_folders_are_owner_only_whatever_the_umask(write_spec: SpecWriter) -> None:
    spec = write_spec()
    old = os.umask(0o002)
    try:
        assert render_spec(spec).exit_code == 0
    finally:
        os.umask(old)
    state = spec.parent.parent / ".fedgen/state"
    assert [oct(p.stat().st_mode & 0o777) for p in (state, state / "genomics")] == ["0o700", "0o700"]
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in (state / "genomics").iterdir()} == {"lock": "0o600", "state.json": "0o600"}


# ------------------------------------------------------------------------------------------- buckets


def test_workload_buckets_name_every_bucket_the_rendered_tree_reaches(write_spec: SpecWriter, tmp_path: Path) -> None:
    """The list the --state check uses is the rendered truth: every gcsfuse volume and every bucket
    granted in the tfvars, in both exposure modes and with a site cluster."""
    from fedgen.seal.certificate import generate_development_keypair

    def variant(data: dict[str, Any]) -> None:
        data["spec"]["server"]["exposure"] = "loadbalancer"
        data["spec"]["clusters"].append({"name": "gke-hosp-a", "projectId": "hosp-a-proj", "region": "europe-west1", "sealing": {"certificate": "hosp-a.pem"}})
        data["spec"]["sites"][0]["cluster"] = "gke-hosp-a"
        data["spec"]["server"]["externalAddress"] = "203.0.113.10"

    for edit in (None, variant):
        shutil.rmtree(tmp_path / "repo", ignore_errors=True)  # each variant its own repo and state
        spec = write_spec(edit)
        (spec.parent / "hosp-a.pem").write_bytes(generate_development_keypair(common_name="hosp-a")[1])
        assert render_spec(spec).exit_code == 0
        found: set[str] = set()
        for path, data in tree_snapshot(spec.parent.parent, exclude=(".fedgen", "spec")).items():
            if path.endswith((".yaml", ".yml")):
                for doc in YAML(typ="safe", pure=True).load_all(data):
                    found |= set(_bucket_names(doc))
            elif path.endswith(".json"):
                found |= set(_bucket_names(json.loads(data)))
        assert found and found <= set(load_federation(spec).workload_buckets), found


def _bucket_names(node: Any) -> list[str]:
    """Every value under a key naming a bucket (bucketName, bucket_name, *_bucket_name) anywhere in a document."""
    out: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, str) and re.fullmatch(r"(?i)bucket_?name|.*_bucket_name", str(key)):
                out.append(value)
            else:
                out += _bucket_names(value)
    elif isinstance(node, list):
        for item in node:
            out += _bucket_names(item)
    return out


@pytest.mark.parametrize("damage", [{"server": "10.0.0.1"}, {"participants": ["site-a"]}, {"kits": 7}])
def test_a_damaged_state_section_is_one_line_exit_2_and_nothing_changes(rendered: tuple[Path, Path], damage: dict[str, object]) -> None:
    spec, repo = rendered
    document = repo / ".fedgen/state/genomics/state.json"
    state = json.loads(document.read_text())
    state.update(damage)
    document.write_text(json.dumps(state))
    before = tree_snapshot(repo, exclude=())
    result = render_spec(spec)
    (section,) = damage
    assert result.exit_code == 2, result.output
    assert f"damaged state: {section} is not a JSON object" in _one_line(result)
    assert tree_snapshot(repo, exclude=()) == before

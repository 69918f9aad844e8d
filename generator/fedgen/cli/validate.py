"""`fedgen validate` (the PR check) and `fedgen schema` (the spec's JSON Schema)."""

from __future__ import annotations

import atexit
import gc
import json
import os
import sys
from pathlib import Path

import click

from fedgen import api
from fedgen.cli.options import REPO_PATH

FORMAT_NAMES = ("text", "json", "sarif")


def _colour(stream: object) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)()) and "NO_COLOR" not in os.environ


@click.command()
@click.option("--repo", type=REPO_PATH, default=".", show_default=True, help="Rendered GitOps repository to check.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMAT_NAMES),
    default="text",
    show_default=True,
    help="text (grouped by file), json, or sarif (SARIF 2.1.0 for code scanning).",
)
@click.option("--kubernetes-version", metavar="X.Y", default=None, help="Kubernetes minor version whose schemas to use (default: GKE regular channel's).")
@click.option(
    "--allowlist",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Allowlist to apply instead of the repo's .fedgen/allowlist.yaml (a PR check passes the base branch's).",
)
@click.option("--list-rules", is_flag=True, help="Print the rules as a Markdown table and exit.")
def validate(repo: Path, fmt: str, kubernetes_version: str | None, list_rules: bool, allowlist: Path | None) -> None:
    """Check a rendered repo before its GitOps engine (Config Sync or Argo CD) applies it: the PR check.

    \b
    Builds each clusters/<cluster>/ sync root with kubectl kustomize as the engine does, validates every
    object offline against strict schemas (kubeconform), renders each ledger's spec again (without the
    state) to compare with the rendered files, then checks mesh, secrets, GitOps layout, cross-object
    consistency and hardening rules. Needs no state, no network and no credentials, and reads no spec
    argument: the specs are the ones the ledgers (.fedgen/owned/*.json) name.
    Silence a finding with an entry (rule, object, reason) in .fedgen/allowlist.yaml: an error only by
    its exact object, globs match warnings only.

    \b
    Safe on untrusted pull requests: a kustomization naming a URL, an absolute path, a path out of the
    repo or through a symbolic link, helm or a plugin is an error (FG518) and is not built; kustomize runs
    without the runner's environment, HOME or network.

    \b
    Example:
      fedgen validate --repo . --format sarif > fedgen.sarif
      fedgen validate --allowlist base-allowlist.yaml   # a PR check, with the base branch's allowlist

    \b
    Exit codes: 0 no errors (warnings are printed but do not fail), 1 error findings,
    2 invalid input (flags, allowlist), 3 kubectl or kubeconform missing (or a bug, an interrupt).
    """
    if list_rules:
        from fedgen.cli import formatting

        click.echo(formatting.rules_table(api.rules(), retired=api.retired_rule_ids()), nl=False)
        return
    # A short-lived run that builds one large acyclic heap: no cyclic garbage collection until it is done,
    # and none when the process ends (the interpreter's last collections walked the heap for 30-60 ms).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    atexit.unregister(gc.freeze)  # once per process, however many validations it runs
    atexit.register(gc.freeze)
    try:
        report = api.validate(repo=repo, kubernetes_version=kubernetes_version, allowlist=allowlist)
        from fedgen.report import FORMATS

        text = FORMATS[fmt](report, colour=_colour(sys.stdout))
    finally:
        if gc_was_enabled:
            gc.enable()
    click.echo(text, nl=False, color=_colour(sys.stdout))
    sys.exit(report.exit_code)


@click.command()
def schema() -> None:
    """Print the JSON Schema of the federation spec (for editors and CI).

    \b
    Example:
      fedgen schema > federation.schema.json
    and in federation.yaml, for completion in editors:
      # yaml-language-server: $schema=federation.schema.json

    Exit codes: 0.
    """
    click.echo(json.dumps(api.schema(), indent=2))

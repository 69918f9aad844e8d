"""What the command modules share: the one way a spec is given, the confirmation of irreversible steps, and
the options several commands take. Imports nothing of fedgen.cli (the command modules import it)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from fedgen.api import DEFAULT_TIMEOUT
from fedgen.errors import InputError

F = TypeVar("F", bound=Callable[..., Any])

SPEC_PATH = click.Path(path_type=Path, dir_okay=False)
REPO_PATH = click.Path(path_type=Path, file_okay=False)
STATE_HELP = "State folder or gs://bucket/prefix. Default: <repo>/.fedgen/state/<federation> (git-ignored, owner-only)."


def err(message: str) -> None:
    click.echo(message, err=True)


def deprecated(old: str, new: str) -> None:
    """The one-line note an old spelling earns: it still works."""
    err(f"deprecated: {old}; use {new}")


def spec_input(*, positional: bool) -> Callable[[F], F]:
    """--spec SPEC, and with `positional` also `COMMAND SPEC` (PRODUCT.md's forms); the command gets `spec`."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, spec: Path | None, spec_argument: Path | None = None, **kwargs: Any) -> Any:
            return fn(*args, spec=one_spec(spec_argument, spec), **kwargs)

        command = click.option("--spec", "spec", type=SPEC_PATH, metavar="SPEC", help="The federation spec (YAML).")(wrapper)
        if positional:
            command = click.argument("spec_argument", required=False, metavar="[SPEC]", type=SPEC_PATH)(command)
        return command  # type: ignore[return-value]

    return decorate


def one_spec(argument: Path | None, option: Path | None) -> Path:
    if argument is not None and option is not None:
        raise click.UsageError("the spec is given twice (SPEC and --spec SPEC): give it once")
    spec = argument if argument is not None else option
    if spec is None:
        raise click.UsageError("missing the spec: pass --spec SPEC")
    return spec


def format_option(fn: F) -> F:
    """--format text|json for the commands that end with WHO MUST ACT (the command gets `fmt`)."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="json: one JSON document on stdout (what changed, WHO MUST ACT; docs/certificates.md) instead of the text.",
    )(fn)


def yes_option(fn: F) -> F:
    return click.option("--yes", "yes", is_flag=True, help="Confirm the irreversible step without asking (for scripts; required without a terminal).")(fn)


def confirm(action: str, consequence: str, *, yes: bool) -> None:
    """Ask on a terminal before an irreversible step (`action`: what it does, in the imperative, lowercase);
    without a terminal, --yes is required (InputError, exit 2). A refusal is an InputError too: nothing changed."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise InputError(f"refusing to {action} without a confirmation ({consequence}): there is no terminal to ask on; pass --yes")
    try:
        agreed = click.confirm(f"{action[0].upper()}{action[1:]}? {consequence[0].upper()}{consequence[1:]}; this cannot be undone.", default=False, err=True)
    except click.Abort:  # end of input or Ctrl-C at the prompt
        agreed = False
    if not agreed:
        raise InputError("not confirmed: nothing was changed")


def kube_options(fn: F) -> F:
    """--kubeconfig, --context (repeatable) and --timeout, shared by the commands that ask clusters."""
    fn = click.option(
        "--timeout",
        type=click.FloatRange(min=0.5, max=300),
        default=DEFAULT_TIMEOUT,
        show_default=True,
        help="Seconds to wait for each request to a cluster or the NVFlare server.",
    )(fn)
    fn = click.option(
        "--context",
        "contexts",
        multiple=True,
        metavar="[CLUSTER=]CONTEXT",
        help="Kubeconfig context of a cluster, as CLUSTER=CONTEXT (repeatable), or CONTEXT alone for a one-cluster "
        "federation. Default: gke_<projectId>_<region>_<cluster> (what gcloud writes), else a context named like the cluster.",
    )(fn)
    fn = click.option("--kubeconfig", type=click.Path(path_type=Path, dir_okay=False), help="Kubeconfig to read. Default: $KUBECONFIG, else ~/.kube/config.")(
        fn
    )
    return fn

"""The command line: the `fedgen` group and its global options. Each command family lives in its own module
(render, validate, sites, certs, workspace, state, cluster), a few lines per command over fedgen.api; they
are registered at the bottom. Errors become exit codes here, once, for every command (FedgenGroup.invoke).

Exit codes: 0 ok, 1 findings or drift, 2 invalid input, 3 external failure (and a bug or an interrupt).
"""

from __future__ import annotations

import importlib
import traceback
from typing import Any

import click

from fedgen import __version__
from fedgen.cli.options import err
from fedgen.errors import FedgenError, SpecErrors

INTERNAL_EXIT = 3  # a bug or an interrupt: the documented codes are 0-3 only
ERROR_LINE_LIMIT = 2000


# Each command by name: (its module in fedgen.cli, its attribute). A module is imported when its command runs
# (or --help lists them all), so `fedgen validate` starts kubectl kustomize before render's or enroll's
# imports would have been read.
COMMANDS = {
    "render": ("render", "render"),
    "remove": ("render", "remove"),
    "validate": ("validate", "validate"),
    "schema": ("validate", "schema"),
    "client-bundle": ("sites", "client_bundle"),
    "enroll": ("sites", "enroll"),
    "certs": ("certs", "certs"),
    "rotate": ("certs", "rotate"),
    "workspace": ("workspace", "workspace"),
    "state": ("state", "state"),
    "status": ("cluster", "status"),
    "bootstrap": ("cluster", "bootstrap"),
}


class FedgenGroup(click.Group):
    """A click group that maps every error of every command below it to one line on stderr and its exit code;
    a traceback only with --debug. Nothing leaves with a code outside 0-3: a bug or an interrupt is exit 3.
    Its commands (COMMANDS) are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            module, attribute = COMMANDS[cmd_name]
            self.add_command(getattr(importlib.import_module(f"fedgen.cli.{module}"), attribute), cmd_name)
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FedgenError as exc:
            from fedgen.report import printable

            if ctx.params.get("debug"):
                traceback.print_exc()
            # Positioned spec errors already read FILE:LINE:COL: message, one per line. Messages may quote
            # hostile input: control characters are shown escaped.
            lines = [printable(line, ERROR_LINE_LIMIT) for line in str(exc).split("\n")]
            err("\n".join(lines) if isinstance(exc, SpecErrors) else f"error: {' '.join(lines)}")
            ctx.exit(exc.exit_code)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # click reports usage errors itself (exit 2)
        except KeyboardInterrupt:
            err("interrupted")
            ctx.exit(INTERNAL_EXIT)
        except Exception as exc:  # noqa: BLE001 - a bug: say so in one line, details with --debug
            from fedgen.report import printable

            if ctx.params.get("debug"):
                traceback.print_exc()
            err(f"internal error: {printable(f'{type(exc).__name__}: {exc}', ERROR_LINE_LIMIT)} (a bug; rerun with --debug)")
            ctx.exit(INTERNAL_EXIT)


@click.group(cls=FedgenGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(__version__, prog_name="fedgen")
def main(debug: bool) -> None:
    """Render an NVIDIA FLARE federation into a GitOps repository for GKE, and check it.

    \b
    Typical day:
      fedgen render federation.yaml     # provision kits, write clusters/ tenants/ terraform/
      git diff && git commit            # review what changed
      fedgen validate                   # the PR check (no state, no network)

    \b
    The spec: every command that reads one takes --spec SPEC; render, certs, status and
    workspace push also take it as their first argument (fedgen render SPEC).
    Irreversible steps (a new root CA, remove, enroll approve --replace, state unlock --force)
    ask on a terminal and first copy the state beside itself; scripts pass --yes.

    Exit codes: 0 ok, 1 findings or drift, 2 invalid input, 3 external failure.
    `fedgen COMMAND --help` explains each command.
    """
    from fedgen.scratch import sweep

    sweep()  # key folders a killed fedgen left in the temporary folder

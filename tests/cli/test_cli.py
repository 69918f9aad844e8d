"""The command line as one shape: errors mapped to exit codes once (in the group) for every command, one way to
give a spec (old spellings kept, with a note), and irreversible steps confirmed and preceded by a backup."""

from __future__ import annotations

import inspect
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import Result

from fedgen import api
from fedgen.cli import main
from fedgen.errors import ExternalError, FedgenError, InputError, SpecErrors
from fedgen.write import Plan
from tests.support import fedgen_cli, tree_snapshot

SpecWriter = Callable[..., Path]

# Every command, with arguments that reach the fedgen.api function it calls.
COMMANDS: list[tuple[list[str], str]] = [
    (["render", "s.yaml"], "render"),
    (["remove", "genomics", "--yes"], "remove"),
    (["validate"], "validate"),
    (["schema"], "schema"),
    (["client-bundle", "site-a", "--spec", "s.yaml"], "client_bundle"),
    (["enroll", "kit", "site-a", "--spec", "s.yaml"], "enroll_kit"),
    (["enroll", "approve", "r.zip", "--spec", "s.yaml"], "enroll_approve"),
    (["certs", "s.yaml"], "certificates"),
    (["rotate", "site-a", "--spec", "s.yaml"], "rotate"),
    (["workspace", "push", "s.yaml"], "workspace_push"),
    (["state", "unlock", "--state", "st"], "state_unlock"),
    (["status", "s.yaml"], "status"),
    (["bootstrap", "acp-dev"], "bootstrap"),
]

ERRORS: list[tuple[BaseException, int, list[str]]] = [
    (FedgenError("3 findings"), 1, ["error: 3 findings"]),
    (InputError("bad flag"), 2, ["error: bad flag"]),
    (SpecErrors(["f.yaml:1:2: one", "f.yaml:3:4: two"]), 2, ["f.yaml:1:2: one", "f.yaml:3:4: two"]),
    (ExternalError("bucket gone"), 3, ["error: bucket gone"]),
    (InputError("quoted \x1b[31mred\nnext"), 2, ["error: quoted \\x1b[31mred next"]),
    (RuntimeError("boom"), 3, ["internal error: RuntimeError: boom (a bug; rerun with --debug)"]),
    (RecursionError("maximum recursion depth exceeded"), 3, ["internal error: RecursionError: maximum recursion depth exceeded (a bug; rerun with --debug)"]),
    (KeyboardInterrupt(), 3, ["interrupted"]),
]


def _leaf_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    ctx = click.Context(group)
    for name in group.list_commands(ctx):  # the top group imports its commands on first use
        command = group.get_command(ctx, name)
        assert command is not None, name
        if isinstance(command, click.Group):
            yield from _leaf_commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


def _raising(exc: BaseException) -> Callable[..., Any]:
    def boom(**kwargs: Any) -> Any:
        raise exc

    return boom


# ------------------------------------------------------------------------------------ errors, in one place


def test_every_command_is_in_the_error_table() -> None:
    """A new command gets its error mapping tested by being listed here."""
    listed = {tuple(argv[: 2 if argv[0] in ("enroll", "workspace", "state") else 1]) for argv, _ in COMMANDS}
    assert {path for path, _ in _leaf_commands(main)} == listed


@pytest.mark.parametrize("argv, function", COMMANDS, ids=[" ".join(a[:2]) for a, _ in COMMANDS])
@pytest.mark.parametrize("raised, code, lines", ERRORS, ids=[type(e).__name__ for e, _, _ in ERRORS])
def test_each_error_kind_is_its_exit_code_and_one_line(
    argv: list[str], function: str, raised: BaseException, code: int, lines: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api, function, _raising(raised))
    result = fedgen_cli(*argv)
    assert result.exit_code == code, result.output
    assert result.stderr.splitlines() == lines
    assert result.stdout == ""


def test_the_api_offers_every_operation_with_keyword_only_arguments() -> None:
    from fedgen.api import _FAMILY_OF

    assert sorted(api.__all__) == sorted(_FAMILY_OF)
    functions = [getattr(api, name) for name in api.__all__ if inspect.isfunction(getattr(api, name))]
    assert {f.__name__ for f in functions} >= {function for _, function in COMMANDS}  # every command's operation
    for function in functions:
        kinds = {p.kind for p in inspect.signature(function).parameters.values()}
        assert kinds <= {inspect.Parameter.KEYWORD_ONLY}, function.__name__


def test_debug_adds_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "schema", _raising(ExternalError("bucket gone")))
    result = fedgen_cli("--debug", "schema")
    assert result.exit_code == 3
    assert "Traceback (most recent call last)" in result.stderr and result.stderr.rstrip().endswith("error: bucket gone")


def test_usage_errors_stay_clicks_exit_2() -> None:
    result = fedgen_cli("render", "--no-such-flag")
    assert result.exit_code == 2 and "No such option" in result.stderr


# ------------------------------------------------------------------------------------ the spec's one shape

# (argv before the spec, the api function, whether PRODUCT.md's positional form applies)
SPEC_COMMANDS: list[tuple[list[str], str, bool]] = [
    (["render"], "render", True),
    (["certs"], "certificates", True),
    (["status"], "status", True),
    (["workspace", "push"], "workspace_push", True),
    (["client-bundle", "site-a"], "client_bundle", False),
    (["enroll", "kit", "site-a"], "enroll_kit", False),
    (["enroll", "approve", "r.zip"], "enroll_approve", False),
    (["rotate", "site-a"], "rotate", False),
    (["state", "unlock"], "state_unlock", False),
]


def _spy(monkeypatch: pytest.MonkeyPatch, function: str) -> None:
    """The api function reports what it was given, as an input error (so the command stops right there)."""

    def spy(**kwargs: Any) -> Any:
        raise InputError(" ".join(f"{k}={kwargs[k]}" for k in ("spec", "participant", "root_ca") if k in kwargs))

    monkeypatch.setattr(api, function, spy)


def _lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


@pytest.mark.parametrize("argv, function, positional", SPEC_COMMANDS, ids=[" ".join(a[:2]) for a, _, _ in SPEC_COMMANDS])
def test_every_spec_reading_command_takes_spec_option_and_product_forms_without_a_note(
    argv: list[str], function: str, positional: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    _spy(monkeypatch, function)
    forms = [[*argv, "--spec", "fed.yaml"]] + ([[*argv, "fed.yaml"]] if positional else [])
    for form in forms:
        result = fedgen_cli(*form)
        assert result.exit_code == 2, result.output
        assert _lines(result)[0].startswith("error: spec=fed.yaml"), result.stderr
        assert len(_lines(result)) == 1 and "deprecated" not in result.stderr
    if positional:
        twice = fedgen_cli(*argv, "a.yaml", "--spec", "b.yaml")
        assert twice.exit_code == 2 and "the spec is given twice" in twice.stderr
    if function not in ("state_unlock", "rotate"):  # (--state instead; the old `rotate SPEC`, below)
        missing = fedgen_cli(*argv)
        assert missing.exit_code == 2 and "missing the spec: pass --spec SPEC" in missing.stderr


def test_the_old_rotate_spelling_works_with_a_one_line_note(monkeypatch: pytest.MonkeyPatch) -> None:
    _spy(monkeypatch, "rotate")
    old = fedgen_cli("rotate", "fed.yaml", "site-a")
    assert old.exit_code == 2
    assert _lines(old) == [
        "deprecated: fedgen rotate SPEC PARTICIPANT; use fedgen rotate PARTICIPANT --spec SPEC",
        "error: spec=fed.yaml participant=site-a root_ca=False",
    ]
    root = fedgen_cli("rotate", "fed.yaml", "--root-ca", "--yes")
    assert _lines(root) == [
        "deprecated: fedgen rotate SPEC --root-ca; use fedgen rotate --root-ca --spec SPEC",
        "error: spec=fed.yaml participant=None root_ca=True",
    ]
    new = fedgen_cli("rotate", "--root-ca", "--spec", "fed.yaml", "--yes")
    assert _lines(new) == ["error: spec=fed.yaml participant=None root_ca=True"]
    assert fedgen_cli("rotate", "a", "b", "--spec", "fed.yaml").exit_code == 2  # one participant at a time
    missing = fedgen_cli("rotate", "--root-ca", "--yes")
    assert missing.exit_code == 2 and "missing the spec: pass --spec SPEC" in missing.stderr


def test_help_teaches_the_shape_examples_and_exit_codes() -> None:
    top = " ".join(fedgen_cli("--help").output.split())
    assert "every command that reads one takes --spec SPEC; render, certs, status and workspace push also take it as their first argument" in top
    assert "scripts pass --yes" in top
    for path, _ in _leaf_commands(main):
        text = fedgen_cli(*path, "--help").output
        assert "Example" in text and "Exit codes" in text, path


# ------------------------------------------------------------------------------ irreversible steps

IRREVERSIBLE: list[tuple[list[str], str]] = [
    (["render", "fed.yaml", "--new-root-ca"], "render"),
    (["rotate", "--root-ca", "--spec", "fed.yaml"], "rotate"),
    (["remove", "genomics"], "remove"),
    (["enroll", "approve", "r.zip", "--spec", "fed.yaml", "--replace"], "enroll_approve"),
    (["state", "unlock", "--state", "gs://bucket/p", "--force"], "state_unlock"),
]


@pytest.mark.parametrize("argv, function", IRREVERSIBLE, ids=[" ".join(a[:2]) for a, _ in IRREVERSIBLE])
def test_without_a_terminal_an_irreversible_step_needs_yes(argv: list[str], function: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def record(**kwargs: Any) -> Any:
        calls.append(kwargs)
        if kwargs.get("check"):  # remove lists what it would change before it asks
            return api.RemoveResult(Plan(changes=()))
        raise InputError("done")

    monkeypatch.setattr(api, function, record)
    refused = fedgen_cli(*argv)  # CliRunner's stdin is no terminal
    assert refused.exit_code == 2
    assert _lines(refused)[-1].startswith("error: refusing to ") and _lines(refused)[-1].endswith("there is no terminal to ask on; pass --yes")
    assert all(call.get("check") for call in calls)  # nothing irreversible was asked of the api
    confirmed = fedgen_cli(*argv, "--yes")
    assert _lines(confirmed)[-1] == "error: done" and not all(call.get("check") for call in calls)


def _fedgen_on_a_terminal(args: list[str], answer: bytes, cwd: Path) -> tuple[int, str]:
    """Run fedgen with a pseudo-terminal as stdin, answer its question, return (exit code, stderr)."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "fedgen", *args], stdin=terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd)
    os.close(terminal)
    try:
        deadline = time.monotonic() + 120
        asked = b""
        while b"cannot be undone" not in asked and time.monotonic() < deadline and proc.poll() is None:
            ready, _, _ = select.select([proc.stderr], [], [], 0.5)
            if ready:
                asked += os.read(proc.stderr.fileno(), 4096)  # type: ignore[union-attr]
        os.write(controller, answer)
        _, err = proc.communicate(timeout=120)
    finally:
        os.close(controller)
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, (asked + err).decode()


def test_remove_on_a_terminal_asks_and_backs_up_the_state_first(rendered: tuple[Path, Path]) -> None:
    _, repo = rendered
    state = repo / ".fedgen/state/genomics"
    before = tree_snapshot(repo, exclude=())
    code, err = _fedgen_on_a_terminal(["remove", "genomics", "--repo", str(repo)], b"n\n", repo)
    assert code == 2, err
    assert f"Remove federation genomics from {repo}? " in err and "this cannot be undone" in err
    assert "error: not confirmed: nothing was changed" in err
    assert tree_snapshot(repo, exclude=()) == before

    code, err = _fedgen_on_a_terminal(["remove", "genomics", "--repo", str(repo)], b"y\n", repo)
    assert code == 0, err
    (backup,) = sorted(state.glob("state.json.backup-*"))
    assert f"backed up the state {state} to {backup}" in err
    assert backup.read_bytes() == (state / "state.json").read_bytes() == before[".fedgen/state/genomics/state.json"]
    assert backup.stat().st_mode & 0o777 == 0o600 and state.stat().st_mode & 0o777 == 0o700
    assert not (repo / ".fedgen/owned/genomics.json").exists()


def test_commands_are_imported_when_they_run() -> None:
    """`fedgen validate` does not import the other commands' modules (so its builds start sooner)."""
    code = "import sys; from fedgen.cli import main; main.get_command(None, 'validate'); print(sorted(m for m in sys.modules if m.startswith('fedgen.cli.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "fedgen.cli.validate" in out
    assert not any(f"fedgen.cli.{m}'" in out for m in ("render", "sites", "certs", "workspace", "state", "cluster", "who_acts"))

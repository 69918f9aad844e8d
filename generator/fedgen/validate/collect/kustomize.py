"""Running `kubectl kustomize` on a folder as the GitOps engine does, sandboxed (no network, nothing of the
runner, a timeout, an output cap), and reading what it prints. Folders a kustomization check refuses are
never run (kustomization.py)."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fedgen.executables import find_tool
from fedgen.validate.kustomization import Guard, RootCheck
from fedgen.validate.sandbox import run_sandboxed
from fedgen.validate.yamlsource import load_all_plain

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
KUSTOMIZE_TIMEOUT = 120
MAX_OUTPUT_BYTES = 256 * 1024 * 1024

Kustomized = tuple[list[dict[str, Any]], str | None]  # (objects, None) or ([], first error line)


def kustomization_in(folder: Path) -> Path | None:
    for name in KUSTOMIZATION_FILES:
        if (folder / name).is_file():
            return folder / name
    return None


def kustomize_output(repo: Path, folder: str, load_restrictor: bool) -> tuple[bytes, str | None]:
    """Run kubectl kustomize like the applier, sandboxed: (stdout, None) or (b"", first error line)."""
    kubectl = find_tool("kubectl")
    command = [str(kubectl), "kustomize"]
    if load_restrictor:
        command.append("--load-restrictor=LoadRestrictionsNone")
    command.append(folder)
    ran = run_sandboxed(command, cwd=repo, timeout=KUSTOMIZE_TIMEOUT, max_stdout=MAX_OUTPUT_BYTES)
    if ran.timed_out:
        return b"", f"kubectl kustomize did not finish within {KUSTOMIZE_TIMEOUT}s"
    if ran.too_large:
        return b"", f"kubectl kustomize printed more than {MAX_OUTPUT_BYTES // (1024 * 1024)} MiB"
    if ran.returncode != 0:
        lines = [ln.strip() for ln in ran.stderr.splitlines() if ln.strip()]
        detail = lines[0] if lines else f"exit {ran.returncode}"
        return b"", detail.removeprefix("error: ").replace(str(repo) + "/", "")
    return ran.stdout, None


def kustomize(repo: Path, folder: str, *, load_restrictor: bool) -> Kustomized:
    """The objects `kubectl kustomize` makes of one folder, as the engines build it (fedgen status and
    bootstrap read the same objects validate checks)."""
    text, error = kustomize_output(repo, folder, load_restrictor)
    if error is not None:
        return [], error
    try:
        docs = load_all_plain(text.decode("utf-8"))
    except Exception as exc:  # noqa: BLE001 - any parser's error: kustomize printed something unreadable
        return [], f"build output is not YAML: {' '.join(str(exc).split())[:200]}"
    return [d for d in docs if isinstance(d, dict)], None


class KustomizeRuns:
    """Checks each folder's kustomizations (kustomization.py) and runs kubectl kustomize for those that pass,
    many at once, parsing what each prints (threads wait on the subprocesses, so reading the repo in the
    meantime overlaps with them). A folder with a refusal is never run."""

    def __init__(self, repo: Path, pool: ThreadPoolExecutor, listed: Iterable[str]) -> None:
        self.repo = repo
        self.pool = pool
        self.guard = Guard(repo, frozenset(listed))
        self.checks: dict[str, RootCheck] = {}
        self.futures: dict[str, Future[Kustomized]] = {}

    def start(self, folder: str, *, load_restrictor: bool) -> None:
        if folder in self.checks or kustomization_in(self.repo / folder) is None:
            return
        find_tool("kubectl")  # missing tool: exit 3 before any thread starts
        self.checks[folder] = check = self.guard.check(folder)
        if check.buildable:
            self.futures[folder] = self.pool.submit(kustomize, self.repo, folder, load_restrictor=load_restrictor)

    def results(self) -> dict[str, Kustomized]:
        return {folder: future.result() for folder, future in sorted(self.futures.items())}

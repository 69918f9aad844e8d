"""Where a bundle may be written. It holds a private key, so never where a `git add` would pick it up.

Default: ~/fedgen-bundles/<federation>/<name>.tar.gz, its two folders created owner-only (0700), outside
every repository (unless the home folder itself is one; then the rule below applies to it too).

Refused (InputError, before anything is written): a path inside a git work tree that git would not ignore
(git itself answers: `git rev-parse --show-toplevel`, `git check-ignore`), and a path inside the GitOps
repository (--repo) when that folder is no git work tree, so nothing can tell whether it would be ignored.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from fedgen.errors import ExternalError, InputError

DEFAULT_FOLDER = "fedgen-bundles"
FOLDER_MODE = 0o700
GIT_TIMEOUT = 30


def default_out(federation: str, name: str) -> Path:
    return Path.home() / DEFAULT_FOLDER / federation / f"{name}.tar.gz"


def prepare_default(path: Path) -> None:
    """Create the default folders owner-only; tighten them when they exist with access for others."""
    for folder in (path.parent.parent, path.parent):
        try:
            folder.mkdir(mode=FOLDER_MODE, exist_ok=True)
            if folder.stat().st_mode & 0o077:
                os.chmod(folder, FOLDER_MODE)
        except OSError as exc:
            raise ExternalError(f"{folder}: cannot create an owner-only folder for bundles ({exc.strerror})") from None


def _existing_folder(path: Path) -> Path:
    folder = path.parent.resolve()
    while not folder.is_dir():
        folder = folder.parent
    return folder


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    git = shutil.which("git")
    if git is None:
        raise ExternalError("git not found: client-bundle asks git whether the archive would be committed; install git")
    # Without GIT_DIR, GIT_WORK_TREE and friends: the answer is about the folder, not about a caller's setting.
    # No fsmonitor hook either: reading the index must not start a program a repository's config names.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    try:
        return subprocess.run([git, "-c", "core.fsmonitor=false", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=GIT_TIMEOUT, check=False)  # noqa: S603
    except (OSError, subprocess.SubprocessError) as exc:
        raise ExternalError(f"git {args[0]} could not run in {cwd}: {exc}") from None


def _work_tree(folder: Path) -> Path | None:
    """The git work tree holding `folder`, or None when it is in none."""
    proc = _git(["rev-parse", "--show-toplevel"], folder)
    if proc.returncode == 0 and proc.stdout.strip():
        return Path(proc.stdout.strip()).resolve()
    if "not a git repository" in proc.stderr:
        return None
    detail = " ".join(proc.stderr.split()) or f"exit {proc.returncode}"
    raise InputError(f"{folder}: git cannot tell whether it is in a repository ({detail}); write the bundle elsewhere with --out")


def check_outside_repository(path: Path, repo: Path) -> None:
    """InputError unless `path` is outside every git work tree (or git-ignored in it) and outside `repo`."""
    target = path.parent.resolve() / path.name
    tree = _work_tree(_existing_folder(path))
    if tree is not None:
        # With the index: a tracked file is not ignored, whatever .gitignore says (git commit -a would take it).
        ignored = _git(["check-ignore", "-q", "--", str(target)], tree)
        if ignored.returncode == 0:
            return
        if ignored.returncode != 1:
            detail = " ".join(ignored.stderr.split()) or f"exit {ignored.returncode}"
            raise InputError(f"{path}: lies in the git repository {tree}, and git cannot tell whether it ignores it ({detail}); write the bundle elsewhere")
        raise InputError(
            f"{path}: lies in the git repository {tree} and git would not ignore it; a bundle holds a private key: "
            f"write it outside (the default is ~/{DEFAULT_FOLDER}/<federation>/<name>.tar.gz), or git-ignore that path first"
        )
    repo = repo.resolve()
    if target == repo or repo in target.parents:
        raise InputError(
            f"{path}: lies in the repository {repo} (not a git work tree, so nothing tells whether git would ignore it); "
            f"a bundle holds a private key: write it outside (the default is ~/{DEFAULT_FOLDER}/<federation>/<name>.tar.gz)"
        )

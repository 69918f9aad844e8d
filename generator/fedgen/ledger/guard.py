"""Which repo paths a render or remove may touch, checked for every path a ledger, a plan or a journal names.

Ledgers are committed and the journal lives in the repo too, so a pull request can edit them: their paths
are hostile input. A path fedgen touches is relative and normalized, lies in a folder renders write
(OUTPUT_ROOTS: never the tool, .git, or fedgen's own folder where the default state lives; of that folder
only the records fedgen writes are allowed), and is never reached through a symbolic link, whichever
component the link is.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from fedgen.errors import InputError

FEDGEN_DIR = ".fedgen"
# The top-level folders every rendered file lives in (the repo's own files, the tool's included, lie elsewhere).
OUTPUT_ROOTS = ("clusters", "tenants", "terraform")


def path_problem(path: object, *, internal: Callable[[str], bool] = lambda _: False) -> str | None:
    """Why fedgen may not touch this repo path (None: it may). internal: the .fedgen/ paths it may touch."""
    if not isinstance(path, str) or not path or "\0" in path:
        return "not a file path"
    p = PurePosixPath(path)
    if p.is_absolute():
        return "an absolute path"
    if ".." in p.parts:
        return "leaves the repository"
    if str(p) != path:
        return "not a normalized relative path"
    if any(part.casefold() == ".git" for part in p.parts):
        return "inside git's own folder"
    # casefold: on a case-insensitive file system .FEDGEN/state is the state too
    if p.parts[0].casefold() == FEDGEN_DIR and not internal(path):
        return f"inside {FEDGEN_DIR}/, where the state and fedgen's scratch space live"
    if p.parts[0] not in OUTPUT_ROOTS and not internal(path):
        return f"outside the folders renders write ({', '.join(f'{r}/' for r in OUTPUT_ROOTS)})"
    return None


def refuse_symlinks(repo: Path, path: str) -> None:
    """InputError when any existing component of repo/path is a symbolic link (lstat from the repo down)."""
    current = repo
    for part in PurePosixPath(path).parts:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return  # the rest does not exist yet: nothing to follow
        if stat.S_ISLNK(mode):
            link = current.relative_to(repo).as_posix()
            where = "is" if link == path else f"lies behind {link}, which is"
            raise InputError(f"{path}: {where} a symbolic link; fedgen never writes or deletes through links (replace the link with a folder or file)")
